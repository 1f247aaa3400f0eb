// Package keygentest drives the real OpenSSH ssh-keygen from tests: it
// makes keys and certificates in a test's temporary directory and signs
// and verifies with `ssh-keygen -Y`, so that interop is tested against the
// tool operators actually use.
package keygentest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Path returns the ssh-keygen binary, or skips the test when it is absent
// (fails instead when CI=true, where it must be installed).
func Path(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ssh-keygen not found (install openssh-client): %v", err)
		}
		t.Skipf("ssh-keygen not found (install openssh-client): %v", err)
	}
	return p
}

// KeyType is an ssh-keygen key kind: -t and -b.
type KeyType struct {
	Name string // a label for subtests and file names
	T    string // -t value
	Bits string // -b value, "" for the default
}

// KeyTypes are the key kinds an operator may sign with.
var KeyTypes = []KeyType{
	{"ed25519", "ed25519", ""},
	{"ecdsa-p256", "ecdsa", "256"},
	{"ecdsa-p384", "ecdsa", "384"},
	{"ecdsa-p521", "ecdsa", "521"},
	{"rsa-3072", "rsa", "3072"},
}

// Key is a key pair written by ssh-keygen.
type Key struct {
	Path    string // private key file; Path+".pub" is the public key
	Public  ssh.PublicKey
	PubLine string // "type base64" of the public key, no comment
}

// Run runs ssh-keygen with args and stdin, failing the test on a non-zero
// exit. It returns stdout.
func Run(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	out, errOut, err := Try(t, stdin, args...)
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// Try runs ssh-keygen and returns stdout, stderr and the exit error.
func Try(t testing.TB, stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	cmd := exec.Command(Path(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// Generate makes a new key without passphrase in dir.
func Generate(t testing.TB, dir string, kt KeyType) Key {
	t.Helper()
	path := filepath.Join(dir, kt.Name)
	args := []string{"-q", "-t", kt.T, "-N", "", "-C", "test-" + kt.Name, "-f", path}
	if kt.Bits != "" {
		args = append(args, "-b", kt.Bits)
	}
	Run(t, nil, args...)
	return Load(t, path)
}

// Load reads the public half of the key at path (path+".pub").
func Load(t testing.TB, path string) Key {
	t.Helper()
	pubText, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		t.Fatalf("parse %s.pub: %v", path, err)
	}
	return Key{Path: path, Public: pub, PubLine: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))}
}

// Signer returns an ssh.Signer for the private key file.
func (k Key) Signer(t testing.TB) ssh.Signer {
	t.Helper()
	pem, err := os.ReadFile(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatalf("parse %s: %v", k.Path, err)
	}
	return s
}

// Sign signs message with `ssh-keygen -Y sign -n namespace -f keyFile`
// (extra args such as "-O", "hashalg=sha256" go before -f) and returns the
// armored signature. keyFile may be a certificate whose private key sits
// beside it.
func Sign(t testing.TB, keyFile, namespace string, message []byte, extra ...string) []byte {
	t.Helper()
	args := append([]string{"-Y", "sign", "-n", namespace}, extra...)
	args = append(args, "-f", keyFile)
	return Run(t, message, args...)
}

// Certify signs pubFile with the CA key caFile (`ssh-keygen -s`) as a user
// certificate for principals, valid for validity (e.g. "+10m"), and
// returns the certificate's path.
func Certify(t testing.TB, caFile, pubFile, id, principals, validity string) string {
	t.Helper()
	Run(t, nil, "-q", "-s", caFile, "-I", id, "-n", principals, "-V", validity, pubFile)
	return strings.TrimSuffix(pubFile, ".pub") + "-cert.pub"
}

// Verify runs `ssh-keygen -Y verify` and reports whether it accepted the
// signature, with its combined output for failure messages.
func Verify(t testing.TB, allowedSigners, principal, namespace string, sig, message []byte) (bool, string) {
	t.Helper()
	sigFile := filepath.Join(t.TempDir(), "msg.sig")
	if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := Try(t, message, "-Y", "verify", "-f", allowedSigners, "-I", principal, "-n", namespace, "-s", sigFile)
	return err == nil, string(out) + string(errOut)
}
