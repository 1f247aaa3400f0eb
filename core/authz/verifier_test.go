package authz

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/internal/keygentest"
	"gitea.dooplex.hu/admin/felhom-agent/core/authz/sshsig"
	"golang.org/x/crypto/ssh"
)

var testMessage = []byte(`{"version":1,"host":"pve1","op_id":"00112233445566778899aabbccddeeff"}` + "\n")

// TestVerifierAcceptsKeygenSignatures: for each key type and both hash
// algorithms, a signature by ssh-keygen verifies for its principal, and
// FindPrincipals names that principal.
func TestVerifierAcceptsKeygenSignatures(t *testing.T) {
	keygentest.Path(t)
	dir := t.TempDir()
	var lines []string
	keys := map[string]keygentest.Key{}
	for _, kt := range keygentest.KeyTypes {
		k := keygentest.Generate(t, dir, kt)
		keys[kt.Name] = k
		lines = append(lines, kt.Name+"@example "+k.PubLine)
	}
	v := Verifier{Signers: writeSigners(t, dir, lines...)}
	for _, kt := range keygentest.KeyTypes {
		for _, extra := range [][]string{nil, {"-O", "hashalg=sha256"}} {
			sig := keygentest.Sign(t, keys[kt.Name].Path, DefaultNamespace, testMessage, extra...)
			principal := kt.Name + "@example"
			res, err := v.Verify(testMessage, sig, principal)
			if err != nil {
				t.Errorf("%s %v: %v", kt.Name, extra, err)
				continue
			}
			want := "sha512"
			if extra != nil {
				want = "sha256"
			}
			if res.Principal != principal || res.HashAlgorithm != want ||
				res.KeyFingerprint != ssh.FingerprintSHA256(keys[kt.Name].Public) || res.KeyType != keys[kt.Name].Public.Type() {
				t.Errorf("%s: result %+v", kt.Name, res)
			}
			found, err := v.FindPrincipals(testMessage, sig)
			if err != nil || found.Principal != principal || len(found.Principals) != 1 || len(found.Sources) != 1 {
				t.Errorf("%s: FindPrincipals %+v, %v", kt.Name, found, err)
			}
		}
	}
}

// TestVerifierRefusals: each way a signature can be wrong is refused with
// its own reason, and ssh-keygen refuses the same input.
func TestVerifierRefusals(t *testing.T) {
	keygentest.Path(t)
	dir := t.TempDir()
	ed := keygentest.Generate(t, dir, keygentest.KeyType{Name: "ed", T: "ed25519"})
	rsaKey := keygentest.Generate(t, dir, keygentest.KeyType{Name: "rsa", T: "rsa", Bits: "2048"})
	ns := keygentest.Generate(t, dir, keygentest.KeyType{Name: "ns", T: "ecdsa", Bits: "256"})
	old := keygentest.Generate(t, dir, keygentest.KeyType{Name: "old", T: "ed25519"})
	future := keygentest.Generate(t, dir, keygentest.KeyType{Name: "future", T: "ed25519"})
	stranger := keygentest.Generate(t, dir, keygentest.KeyType{Name: "stranger", T: "ed25519"})
	allowedPath := filepath.Join(dir, "allowed_signers")
	signers := writeSignersAt(t, allowedPath,
		"ed@example "+ed.PubLine,
		"rsa@example "+rsaKey.PubLine,
		`ns@example namespaces="felhom-op" `+ns.PubLine,
		`old@example valid-before="20200101" `+old.PubLine,
		`future@example valid-after="20990101" `+future.PubLine,
	)

	edSig := keygentest.Sign(t, ed.Path, DefaultNamespace, testMessage)
	blob, err := sshsig.Unarmor(edSig)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sshsig.Parse(edSig)
	if err != nil {
		t.Fatal(err)
	}
	// A cryptographically valid SHA-1 ssh-rsa signature by a listed key.
	data, _ := sshsig.SignedData(testMessage, DefaultNamespace, sshsig.SHA512)
	sha1Sig, err := rsaKey.Signer(t).(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSA)
	if err != nil {
		t.Fatal(err)
	}
	sha1Blob := (&sshsig.Signature{PublicKey: rsaKey.Public, Namespace: DefaultNamespace, HashAlgorithm: sshsig.SHA512, Signature: sha1Sig}).Marshal()
	tampered := []byte(strings.Replace(string(testMessage), "pve1", "pve2", 1))

	cases := []struct {
		name      string
		sig, msg  []byte
		principal string
		namespace string
		want      Reason
	}{
		{"wrong namespace", keygentest.Sign(t, ed.Path, "other-ns", testMessage), testMessage, "ed@example", DefaultNamespace, ReasonNamespaceMismatch},
		{"tampered message", edSig, tampered, "ed@example", DefaultNamespace, ReasonBadSignature},
		{"trailing bytes", sshsig.Armor(append(blob, 0)), testMessage, "ed@example", DefaultNamespace, ReasonMalformedSignature},
		{"version 2", sshsig.Armor(parsed.MarshalVersion(2)), testMessage, "ed@example", DefaultNamespace, ReasonMalformedSignature},
		{"sha-1 ssh-rsa", sshsig.Armor(sha1Blob), testMessage, "rsa@example", DefaultNamespace, ReasonSHA1RSA},
		{"namespaces= option", keygentest.Sign(t, ns.Path, "other-ns", testMessage), testMessage, "ns@example", "other-ns", ReasonNamespaceMismatch},
		{"valid-before past", keygentest.Sign(t, old.Path, DefaultNamespace, testMessage), testMessage, "old@example", DefaultNamespace, ReasonKeyExpired},
		{"valid-after future", keygentest.Sign(t, future.Path, DefaultNamespace, testMessage), testMessage, "future@example", DefaultNamespace, ReasonKeyNotYetValid},
		{"unknown key", keygentest.Sign(t, stranger.Path, DefaultNamespace, testMessage), testMessage, "ed@example", DefaultNamespace, ReasonUnknownKey},
		{"wrong principal", edSig, testMessage, "rsa@example", DefaultNamespace, ReasonPrincipalMismatch},
		{"not a signature", []byte("hello"), testMessage, "ed@example", DefaultNamespace, ReasonMalformedSignature},
	}
	for _, tc := range cases {
		v := Verifier{Signers: signers, Namespace: tc.namespace}
		_, err := v.Verify(tc.msg, tc.sig, tc.principal)
		if got := ReasonOf(err); got != tc.want {
			t.Errorf("%s: %v, want reason %s", tc.name, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), tc.want.Sentence()) {
			t.Errorf("%s: error %q lacks the sentence", tc.name, err)
		}
		if ok, out := keygentest.Verify(t, allowedPath, tc.principal, tc.namespace, tc.sig, tc.msg); ok {
			t.Errorf("%s: ssh-keygen accepted what we refuse: %s", tc.name, out)
		}
	}
	// The namespaces= refusal names the line.
	v := Verifier{Signers: signers, Namespace: "other-ns"}
	_, err = v.Verify(testMessage, keygentest.Sign(t, ns.Path, "other-ns", testMessage), "ns@example")
	if !strings.Contains(err.Error(), allowedPath+":3") {
		t.Errorf("namespaces= refusal does not name the line: %v", err)
	}
}

// TestVerifierCertificate: a certificate made by ssh-keygen -s for
// alice@example is accepted for alice through a cert-authority line and
// refused for bob, as ssh-keygen does.
func TestVerifierCertificate(t *testing.T) {
	keygentest.Path(t)
	dir := t.TempDir()
	ca := keygentest.Generate(t, dir, keygentest.KeyType{Name: "ca", T: "ed25519"})
	otherCA := keygentest.Generate(t, dir, keygentest.KeyType{Name: "other-ca", T: "ed25519"})
	user := keygentest.Generate(t, dir, keygentest.KeyType{Name: "user", T: "ecdsa", Bits: "256"})
	certPath := keygentest.Certify(t, ca.Path, user.Path+".pub", "op-cert-1", "alice@example", "+10m")
	sig := keygentest.Sign(t, certPath, DefaultNamespace, testMessage)

	allowedPath := filepath.Join(dir, "allowed_signers")
	v := Verifier{Signers: writeSignersAt(t, allowedPath, "*@example cert-authority "+ca.PubLine)}
	res, err := v.Verify(testMessage, sig, "alice@example")
	if err != nil {
		t.Fatal(err)
	}
	if res.CertKeyID != "op-cert-1" || res.KeyType != ssh.CertAlgoECDSA256v01 ||
		res.KeyFingerprint != ssh.FingerprintSHA256(user.Public) || res.CAFingerprint != ssh.FingerprintSHA256(ca.Public) {
		t.Errorf("result %+v", res)
	}
	if ok, out := keygentest.Verify(t, allowedPath, "alice@example", DefaultNamespace, sig, testMessage); !ok {
		t.Errorf("ssh-keygen refused alice: %s", out)
	}
	if _, err := v.Verify(testMessage, sig, "bob@example"); ReasonOf(err) != ReasonPrincipalMismatch {
		t.Errorf("bob: %v, want principal_mismatch", err)
	}
	if ok, _ := keygentest.Verify(t, allowedPath, "bob@example", DefaultNamespace, sig, testMessage); ok {
		t.Error("ssh-keygen accepted bob")
	}
	found, err := v.FindPrincipals(testMessage, sig)
	if err != nil || found.Principal != "alice@example" {
		t.Errorf("FindPrincipals: %+v %v", found, err)
	}
	// Listed CA, but not this one.
	v2 := Verifier{Signers: writeSigners(t, dir, "*@example cert-authority "+otherCA.PubLine)}
	if _, err := v2.FindPrincipals(testMessage, sig); ReasonOf(err) != ReasonUnknownKey || !strings.Contains(err.Error(), "certificate authority") {
		t.Errorf("other CA: %v, want unknown_key naming the CA", err)
	}
	// The user key as a plain line does not grant the certificate.
	v3 := Verifier{Signers: writeSigners(t, dir, "alice@example "+user.PubLine)}
	if _, err := v3.Verify(testMessage, sig, "alice@example"); ReasonOf(err) != ReasonUnknownKey {
		t.Errorf("plain line for a certificate: %v", err)
	}

	// Our signer with the same certificate is accepted by ssh-keygen.
	pubCert := keygentest.Load(t, strings.TrimSuffix(certPath, ".pub")).Public.(*ssh.Certificate)
	certSigner, err := ssh.NewCertSigner(pubCert, user.Signer(t))
	if err != nil {
		t.Fatal(err)
	}
	goSig, err := sshsig.Sign(rand.Reader, certSigner, testMessage, DefaultNamespace, sshsig.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	if ok, out := keygentest.Verify(t, allowedPath, "alice@example", DefaultNamespace, goSig, testMessage); !ok {
		t.Errorf("ssh-keygen refused our certificate signature: %s", out)
	}
}

func writeSigners(t testing.TB, dir string, lines ...string) *AllowedSigners {
	t.Helper()
	f, err := os.CreateTemp(dir, "allowed_signers")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return writeSignersAt(t, f.Name(), lines...)
}

func writeSignersAt(t testing.TB, path string, lines ...string) *AllowedSigners {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadAllowedSigners(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
