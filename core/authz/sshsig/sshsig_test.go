package sshsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/internal/keygentest"
	"golang.org/x/crypto/ssh"
)

const ns = "felhom-op"

var msg = []byte(`{"version":1,"host":"pve1","capability":"guest.delete"}` + "\n")

// TestKeygenSignaturesVerify: signatures made by ssh-keygen verify, for
// every key type and both hash algorithms, and nothing else does.
func TestKeygenSignaturesVerify(t *testing.T) {
	keygentest.Path(t)
	dir := t.TempDir()
	for _, kt := range keygentest.KeyTypes {
		key := keygentest.Generate(t, dir, kt)
		for _, hash := range []HashAlgorithm{SHA512, SHA256} {
			t.Run(kt.Name+"/"+string(hash), func(t *testing.T) {
				var extra []string
				if hash == SHA256 {
					extra = []string{"-O", "hashalg=sha256"}
				}
				armored := keygentest.Sign(t, key.Path, ns, msg, extra...)
				sig, err := Parse(armored)
				if err != nil {
					t.Fatalf("parse ssh-keygen signature: %v\n%s", err, armored)
				}
				if sig.HashAlgorithm != hash {
					t.Errorf("hash algorithm %q, want %q", sig.HashAlgorithm, hash)
				}
				if !bytes.Equal(sig.PublicKey.Marshal(), key.Public.Marshal()) {
					t.Errorf("signature carries another key than %s", key.Path)
				}
				if kt.T == "rsa" && sig.Signature.Format != ssh.KeyAlgoRSASHA512 {
					t.Errorf("ssh-keygen rsa format %q, want rsa-sha2-512", sig.Signature.Format)
				}
				if err := Verify(msg, sig, ns); err != nil {
					t.Fatalf("verify: %v", err)
				}
				// The re-encoding is byte-identical to what ssh-keygen wrote.
				if !bytes.Equal(Armor(sig.Marshal()), armored) {
					t.Errorf("Armor(Marshal()) differs from ssh-keygen output:\n%s\n%s", Armor(sig.Marshal()), armored)
				}

				if err := Verify(msg, sig, "other-ns"); !errors.Is(err, ErrNamespace) {
					t.Errorf("other namespace: %v, want ErrNamespace", err)
				}
				tampered := bytes.Replace(msg, []byte("pve1"), []byte("pve2"), 1)
				if err := Verify(tampered, sig, ns); !errors.Is(err, ErrBadSignature) {
					t.Errorf("tampered message: %v, want ErrBadSignature", err)
				}
				blob, err := Unarmor(armored)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Parse(append(blob, 0)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "trailing") {
					t.Errorf("raw blob + 1 byte: %v, want trailing-bytes ErrMalformed", err)
				}
				if _, err := Parse(Armor(append(blob, "junk"...))); !errors.Is(err, ErrMalformed) {
					t.Errorf("armored blob + junk: %v, want ErrMalformed", err)
				}
				if _, err := Parse(Armor(sig.MarshalVersion(2))); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "version 2") {
					t.Errorf("version 2: %v, want ErrMalformed naming the version", err)
				}
				// Raw blobs are accepted as well as armored ones.
				raw, err := Parse(blob)
				if err != nil || Verify(msg, raw, ns) != nil {
					t.Errorf("raw blob: parse %v", err)
				}
			})
		}
	}
}

// TestGoSignaturesVerifyWithKeygen: what Sign writes, ssh-keygen accepts.
func TestGoSignaturesVerifyWithKeygen(t *testing.T) {
	keygentest.Path(t)
	dir := t.TempDir()
	for _, kt := range keygentest.KeyTypes {
		t.Run(kt.Name, func(t *testing.T) {
			key := keygentest.Generate(t, dir, kt)
			allowed := filepath.Join(dir, kt.Name+".allowed")
			if err := os.WriteFile(allowed, []byte("op@example "+key.PubLine+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, hash := range []HashAlgorithm{SHA512, SHA256} {
				armored, err := Sign(rand.Reader, key.Signer(t), msg, ns, hash)
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(armored)), "\n") {
					if len(line) > armorWidth {
						t.Errorf("armor line of %d chars: %q", len(line), line)
					}
				}
				if ok, out := keygentest.Verify(t, allowed, "op@example", ns, armored, msg); !ok {
					t.Errorf("ssh-keygen -Y verify refused our %s signature: %s", hash, out)
				}
				if ok, _ := keygentest.Verify(t, allowed, "op@example", "other-ns", armored, msg); ok {
					t.Errorf("ssh-keygen accepted our signature in another namespace")
				}
				sig, err := Parse(armored)
				if err != nil {
					t.Fatal(err)
				}
				if kt.T == "rsa" && sig.Signature.Format != ssh.KeyAlgoRSASHA512 {
					t.Errorf("rsa signed with %q, want rsa-sha2-512", sig.Signature.Format)
				}
			}
		})
	}
}

// TestSHA1RSARefused: an RSA blob whose signature uses the SHA-1 ssh-rsa
// format is refused with ErrSHA1RSA even though it is cryptographically
// valid (x/crypto's rsa Verify would accept it), and ssh-keygen agrees.
func TestSHA1RSARefused(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	blob := forge(t, signer, ssh.KeyAlgoRSA)
	sig, err := Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.PublicKey.Verify(mustSignedData(t, SHA512), sig.Signature); err != nil {
		t.Fatalf("precondition: the forged sha-1 signature should be valid for x/crypto: %v", err)
	}
	if err := Verify(msg, sig, ns); !errors.Is(err, ErrSHA1RSA) {
		t.Fatalf("ssh-rsa format: %v, want ErrSHA1RSA", err)
	}
	// The same key with rsa-sha2-256 is fine.
	if err := Verify(msg, mustParse(t, forge(t, signer, ssh.KeyAlgoRSASHA256)), ns); err != nil {
		t.Fatalf("rsa-sha2-256: %v", err)
	}

	t.Run("ssh-keygen agrees", func(t *testing.T) {
		keygentest.Path(t)
		allowed := filepath.Join(t.TempDir(), "allowed")
		line := "op@example " + string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
		if err := os.WriteFile(allowed, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		if ok, out := keygentest.Verify(t, allowed, "op@example", ns, Armor(blob), msg); ok {
			t.Errorf("ssh-keygen accepted the sha-1 signature: %s", out)
		}
	})
}

func mustSignedData(t *testing.T, h HashAlgorithm) []byte {
	t.Helper()
	d, err := SignedData(msg, ns, h)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustParse(t *testing.T, blob []byte) *Signature {
	t.Helper()
	s, err := Parse(blob)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forge signs msg with an explicit signature algorithm.
func forge(t *testing.T, signer ssh.Signer, algo string) []byte {
	t.Helper()
	s, err := signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, mustSignedData(t, SHA512), algo)
	if err != nil {
		t.Fatal(err)
	}
	return (&Signature{PublicKey: signer.PublicKey(), Namespace: ns, HashAlgorithm: SHA512, Signature: s}).Marshal()
}

func TestRefusedKeys(t *testing.T) {
	// DSA: x/crypto cannot even parse it; the error must say unsupported.
	dsaKey := ssh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{ssh.InsecureKeyAlgoDSA, big.NewInt(23), big.NewInt(11), big.NewInt(4), big.NewInt(8)})
	blob := (&Signature{rawKey: dsaKey, Namespace: ns, HashAlgorithm: SHA512,
		Signature: &ssh.Signature{Format: ssh.InsecureKeyAlgoDSA, Blob: make([]byte, 40)}}).Marshal()
	if _, err := Parse(blob); !errors.Is(err, ErrUnsupportedKey) || !strings.Contains(err.Error(), "DSA") {
		t.Errorf("dsa: %v, want ErrUnsupportedKey naming DSA", err)
	}

	unknown := ssh.Marshal(struct{ Name, Data string }{"ssh-foo@example.com", "x"})
	blob = (&Signature{rawKey: unknown, Namespace: ns, HashAlgorithm: SHA512,
		Signature: &ssh.Signature{Format: "ssh-foo@example.com", Blob: []byte{1}}}).Marshal()
	if _, err := Parse(blob); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("unknown key type: %v, want ErrUnsupportedKey", err)
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(small)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(forge(t, signer, ssh.KeyAlgoRSASHA512)); !errors.Is(err, ErrUnsupportedKey) || !strings.Contains(err.Error(), "1024") {
		t.Errorf("1024-bit rsa: %v, want ErrUnsupportedKey naming the size", err)
	}
	if _, err := Sign(rand.Reader, signer, msg, ns, SHA512); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("sign with 1024-bit rsa: %v, want ErrUnsupportedKey", err)
	}
}

func TestParseRefusesBadFields(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	good, err := SignBlob(rand.Reader, signer, msg, ns, SHA512)
	if err != nil {
		t.Fatal(err)
	}
	base := mustParse(t, good)
	mutate := func(f func(s *Signature)) []byte {
		s := *base
		sg := *base.Signature
		s.Signature = &sg
		f(&s)
		return s.Marshal()
	}
	cases := map[string][]byte{
		"empty":            nil,
		"bad magic":        append([]byte("SSHSIH"), good[6:]...),
		"version 0":        base.MarshalVersion(0),
		"truncated":        good[:len(good)-3],
		"empty namespace":  mutate(func(s *Signature) { s.Namespace = "" }),
		"hash sha1":        mutate(func(s *Signature) { s.HashAlgorithm = "sha1" }),
		"sig trailing":     mutate(func(s *Signature) { s.Signature.Rest = []byte{1} }),
		"huge length":      append(append([]byte(nil), good[:10]...), 0xff, 0xff, 0xff, 0xff),
		"armor no footer":  []byte(armorBegin + "\nAAAA\n"),
		"armor header kv":  []byte(armorBegin + "\nComment: x\n" + armorEnd + "\n"),
		"armor after end":  append(Armor(good), "extra\n"...),
		"armor blank line": []byte(strings.Replace(string(Armor(good)), "\n", "\n\n", 2)),
	}
	for name, data := range cases {
		if _, err := Parse(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// A non-empty reserved field is ignored, as in OpenSSH.
	withReserved := mutate(func(s *Signature) { s.Reserved = []byte("future") })
	if err := Verify(msg, mustParse(t, withReserved), ns); err != nil {
		t.Errorf("non-empty reserved: %v", err)
	}
}

func TestArmorWidths(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	blob, err := SignBlob(rand.Reader, signer, msg, ns, SHA512)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString(blob)
	for _, width := range []int{64, 70, 76, len(enc)} {
		var b strings.Builder
		b.WriteString(armorBegin + "\r\n")
		for s := enc; s != ""; {
			n := min(width, len(s))
			b.WriteString(s[:n] + "\r\n")
			s = s[n:]
		}
		b.WriteString(armorEnd + "\r\n\n")
		got, err := Unarmor([]byte("\n" + b.String()))
		if err != nil {
			t.Errorf("width %d: %v", width, err)
			continue
		}
		if !bytes.Equal(got, blob) {
			t.Errorf("width %d: blob differs", width)
		}
	}
}

// TestCertificateSignature: a signature by a certificate's key carries the
// certificate and verifies against the certified key.
func TestCertificateSignature(t *testing.T) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := ssh.NewSignerFromKey(caPriv)
	userPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	user, _ := ssh.NewSignerFromKey(userPriv)
	cert := &ssh.Certificate{Key: user.PublicKey(), CertType: ssh.UserCert, KeyId: "id",
		ValidPrincipals: []string{"alice@example"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, user)
	if err != nil {
		t.Fatal(err)
	}
	armored, err := Sign(rand.Reader, certSigner, msg, ns, SHA512)
	if err != nil {
		t.Fatal(err)
	}
	sig := mustParse(t, armored)
	got, ok := sig.PublicKey.(*ssh.Certificate)
	if !ok {
		t.Fatalf("public key is %T, want *ssh.Certificate", sig.PublicKey)
	}
	if got.KeyId != "id" || sig.Signature.Format != ssh.KeyAlgoRSASHA512 {
		t.Errorf("cert key id %q, format %q", got.KeyId, sig.Signature.Format)
	}
	if err := Verify(msg, sig, ns); err != nil {
		t.Fatal(err)
	}
}

// TestSecurityKeySignatures builds sk-ed25519 and sk-ecdsa signatures by
// hand (PROTOCOL.u2f) since no FIDO device is at hand, and checks that the
// user-presence flag is required.
func TestSecurityKeySignatures(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const app = "ssh:"
	for _, tc := range []struct {
		name string
		key  []byte
		sign func(data []byte) []byte
	}{
		{"sk-ed25519", ssh.Marshal(struct{ Name, Key, App string }{ssh.KeyAlgoSKED25519, string(edPub), app}),
			func(d []byte) []byte { return ed25519.Sign(edPriv, d) }},
		{"sk-ecdsa", ssh.Marshal(struct{ Name, Curve, Key, App string }{ssh.KeyAlgoSKECDSA256, "nistp256",
			string(elliptic.Marshal(elliptic.P256(), ecPriv.X, ecPriv.Y)), app}),
			func(d []byte) []byte {
				h := sha256.Sum256(d)
				r, s, err := ecdsa.Sign(rand.Reader, ecPriv, h[:])
				if err != nil {
					t.Fatal(err)
				}
				return ssh.Marshal(struct{ R, S *big.Int }{r, s})
			}},
	} {
		for _, flags := range []byte{0x01, 0x00} {
			appHash := sha256.Sum256([]byte(app))
			msgHash := sha256.Sum256(mustSignedData(t, SHA512))
			counter := []byte{0, 0, 0, 7}
			signed := append(append(append(appHash[:], flags), counter...), msgHash[:]...)
			format := ssh.KeyAlgoSKED25519
			if tc.name == "sk-ecdsa" {
				format = ssh.KeyAlgoSKECDSA256
			}
			s := &Signature{rawKey: tc.key, Namespace: ns, HashAlgorithm: SHA512,
				Signature: &ssh.Signature{Format: format, Blob: tc.sign(signed), Rest: append([]byte{flags}, counter...)}}
			sig, err := Parse(s.Marshal())
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			err = Verify(msg, sig, ns)
			if flags == 1 && err != nil {
				t.Errorf("%s with user presence: %v", tc.name, err)
			}
			if flags == 0 && !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s without user presence: %v, want ErrBadSignature", tc.name, err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ecSigner, _ := ssh.NewSignerFromKey(ecPriv)
	for _, s := range []ssh.Signer{signer, ecSigner} {
		blob, err := SignBlob(rand.Reader, s, msg, ns, SHA256)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
		f.Add(Armor(blob))
		f.Add(append(blob, 0))
	}
	f.Add([]byte(armorBegin + "\n" + armorEnd + "\n"))
	f.Add([]byte("SSHSIG\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("parse error outside the documented kinds: %v", err)
			}
			return
		}
		again, err := ParseBlob(sig.Marshal())
		if err != nil {
			t.Fatalf("re-parse of Marshal: %v", err)
		}
		if !bytes.Equal(again.Marshal(), sig.Marshal()) {
			t.Fatal("Marshal is not stable")
		}
		_ = Verify(msg, sig, sig.Namespace)
	})
}

// BenchmarkVerify is the cost of one SSHSIG verification per key type.
func BenchmarkVerify(b *testing.B) {
	edKey := func() any { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	ecKey := func(c elliptic.Curve) func() any {
		return func() any { k, _ := ecdsa.GenerateKey(c, rand.Reader); return k }
	}
	rsaKey := func() any { k, _ := rsa.GenerateKey(rand.Reader, 3072); return k }
	for _, kt := range []struct {
		name string
		gen  func() any
	}{
		{"ed25519", edKey}, {"ecdsa-p256", ecKey(elliptic.P256())}, {"ecdsa-p384", ecKey(elliptic.P384())},
		{"ecdsa-p521", ecKey(elliptic.P521())}, {"rsa-3072", rsaKey},
	} {
		b.Run(kt.name, func(b *testing.B) {
			signer, err := ssh.NewSignerFromKey(kt.gen())
			if err != nil {
				b.Fatal(err)
			}
			armored, err := Sign(rand.Reader, signer, msg, ns, SHA512)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				sig, err := Parse(armored)
				if err != nil {
					b.Fatal(err)
				}
				if err := Verify(msg, sig, ns); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
