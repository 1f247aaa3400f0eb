// Package sshsig reads, writes, signs and verifies SSH signatures in the
// SSHSIG format of OpenSSH's PROTOCOL.sshsig (what `ssh-keygen -Y sign`
// writes), on top of golang.org/x/crypto/ssh, which has no SSHSIG support.
//
// It follows OpenSSH's sshsig.c where the format leaves room: version 1
// only; no trailing bytes after the blob; a non-empty namespace that must
// equal the expected one; hash sha256 or sha512; the reserved field is
// ignored (the signed data always carries an empty one, as in OpenSSH);
// RSA signatures only as rsa-sha2-256 or rsa-sha2-512. It is stricter
// where OpenSSH is lax or x/crypto is permissive: SHA-1 "ssh-rsa"
// signatures get their own error ([ErrSHA1RSA]), DSA and other key types
// outside [SupportedKeyTypes] are refused ([ErrUnsupportedKey]), RSA keys
// below [MinRSABits] are refused, and security-key (sk-) signatures must
// carry the user-presence flag (x/crypto enforces it since v0.52.0).
//
// Deciding whether a key may sign for someone (allowed_signers) is not
// this package's job; see package allowedsigners.
package sshsig

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// Format constants from PROTOCOL.sshsig.
const (
	MagicPreamble = "SSHSIG"
	Version       = 1
)

// MinRSABits is the smallest RSA modulus accepted, for signing keys and
// certificate authorities alike.
const MinRSABits = 2048

// HashAlgorithm names the hash over the message ("sha256" or "sha512").
type HashAlgorithm string

// The two hash algorithms PROTOCOL.sshsig allows.
const (
	SHA256 HashAlgorithm = "sha256"
	SHA512 HashAlgorithm = "sha512"
)

// Errors, matched with errors.Is; the returned errors wrap them with detail.
var (
	// ErrMalformed: not an SSHSIG signature (armor, encoding, field layout,
	// unsupported version or hash algorithm, trailing bytes).
	ErrMalformed = errors.New("malformed ssh signature")
	// ErrNamespace: the signature was made for another namespace.
	ErrNamespace = errors.New("signature namespace does not match")
	// ErrSHA1RSA: an RSA signature in the SHA-1 "ssh-rsa" format.
	ErrSHA1RSA = errors.New("rsa signature uses sha-1 (ssh-rsa); only rsa-sha2-256 and rsa-sha2-512 are accepted")
	// ErrUnsupportedKey: DSA, unknown or otherwise unsupported key types.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrBadSignature: the signature does not verify for this message.
	ErrBadSignature = errors.New("signature does not verify")
)

// SupportedKeyTypes are the plain key types accepted as signing keys, on
// their own or inside a certificate.
var SupportedKeyTypes = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256,
	ssh.KeyAlgoECDSA384,
	ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSA,
	ssh.KeyAlgoSKED25519,
	ssh.KeyAlgoSKECDSA256,
}

// Signature is a decoded SSHSIG blob.
type Signature struct {
	// PublicKey is the signing key; an *ssh.Certificate when signed with
	// a certificate.
	PublicKey ssh.PublicKey
	Namespace string
	// Reserved is kept for Marshal only; it plays no part in verification.
	Reserved      []byte
	HashAlgorithm HashAlgorithm
	Signature     *ssh.Signature

	// rawKey is the publickey field as received, so that Marshal
	// re-emits it byte for byte.
	rawKey []byte
}

// IsArmored reports whether data starts like an armored signature.
func IsArmored(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armorBegin))
}

// Parse decodes an armored (-----BEGIN SSH SIGNATURE-----) or raw SSHSIG
// blob. The result is syntactically valid and its key type is supported;
// whether it verifies is [Verify]'s job.
func Parse(data []byte) (*Signature, error) {
	blob := data
	if IsArmored(data) {
		var err error
		if blob, err = Unarmor(data); err != nil {
			return nil, err
		}
	}
	return ParseBlob(blob)
}

// ParseBlob decodes a raw SSHSIG blob.
func ParseBlob(blob []byte) (*Signature, error) {
	r := reader{buf: blob}
	magic := r.bytes(len(MagicPreamble))
	if r.err != nil || string(magic) != MagicPreamble {
		return nil, fmt.Errorf("%w: missing SSHSIG preamble", ErrMalformed)
	}
	version := r.uint32()
	if r.err != nil {
		return nil, fmt.Errorf("%w: truncated version", ErrMalformed)
	}
	if version != Version {
		return nil, fmt.Errorf("%w: version %d, only version %d is supported", ErrMalformed, version, Version)
	}
	rawKey := r.string()
	namespace := r.string()
	reserved := r.string()
	hashAlg := r.string()
	rawSig := r.string()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, r.err)
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after the signature", ErrMalformed, len(r.buf))
	}
	if len(namespace) == 0 {
		return nil, fmt.Errorf("%w: empty namespace", ErrMalformed)
	}
	switch h := HashAlgorithm(hashAlg); h {
	case SHA256, SHA512:
	default:
		return nil, fmt.Errorf("%w: hash algorithm %q, want sha256 or sha512", ErrMalformed, printable(string(hashAlg)))
	}
	key, err := parseKey(rawKey)
	if err != nil {
		return nil, err
	}
	sig, err := parseSignature(rawSig)
	if err != nil {
		return nil, err
	}
	return &Signature{
		PublicKey:     key,
		Namespace:     string(namespace),
		Reserved:      reserved,
		HashAlgorithm: HashAlgorithm(hashAlg),
		Signature:     sig,
		rawKey:        rawKey,
	}, nil
}

// parseKey decodes the publickey field and applies the key-type policy.
func parseKey(raw []byte) (ssh.PublicKey, error) {
	kr := reader{buf: raw}
	algo := string(kr.string())
	if kr.err != nil {
		return nil, fmt.Errorf("%w: truncated public key", ErrMalformed)
	}
	switch algo {
	case ssh.InsecureKeyAlgoDSA, ssh.InsecureCertAlgoDSAv01:
		return nil, fmt.Errorf("%w: %s (DSA) keys are not accepted", ErrUnsupportedKey, algo)
	}
	key, err := ssh.ParsePublicKey(raw)
	if err != nil {
		if !knownKeyAlgo(algo) {
			return nil, fmt.Errorf("%w: %q", ErrUnsupportedKey, printable(algo))
		}
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// CheckKey applies the key-type policy to a signing key or certificate
// authority: a type in [SupportedKeyTypes] (a certificate is judged by the
// key it certifies and by its authority), RSA of at least [MinRSABits].
func CheckKey(key ssh.PublicKey) error {
	if cert, ok := key.(*ssh.Certificate); ok {
		if err := CheckKey(cert.Key); err != nil {
			return err
		}
		if err := CheckKey(cert.SignatureKey); err != nil {
			return fmt.Errorf("certificate authority: %w", err)
		}
		return nil
	}
	t := key.Type()
	supported := false
	for _, s := range SupportedKeyTypes {
		if s == t {
			supported = true
		}
	}
	if !supported {
		return fmt.Errorf("%w: %s", ErrUnsupportedKey, t)
	}
	if t == ssh.KeyAlgoRSA {
		ck, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: rsa key without modulus", ErrUnsupportedKey)
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: rsa key without modulus", ErrUnsupportedKey)
		}
		if bits := rk.N.BitLen(); bits < MinRSABits {
			return fmt.Errorf("%w: %d-bit rsa key, minimum is %d", ErrUnsupportedKey, bits, MinRSABits)
		}
	}
	return nil
}

func knownKeyAlgo(algo string) bool {
	for _, s := range SupportedKeyTypes {
		if s == algo {
			return true
		}
		if c, ok := certAlgo(s); ok && c == algo {
			return true
		}
	}
	return false
}

func certAlgo(keyAlgo string) (string, bool) {
	switch keyAlgo {
	case ssh.KeyAlgoED25519:
		return ssh.CertAlgoED25519v01, true
	case ssh.KeyAlgoECDSA256:
		return ssh.CertAlgoECDSA256v01, true
	case ssh.KeyAlgoECDSA384:
		return ssh.CertAlgoECDSA384v01, true
	case ssh.KeyAlgoECDSA521:
		return ssh.CertAlgoECDSA521v01, true
	case ssh.KeyAlgoRSA:
		return ssh.CertAlgoRSAv01, true
	case ssh.KeyAlgoSKED25519:
		return ssh.CertAlgoSKED25519v01, true
	case ssh.KeyAlgoSKECDSA256:
		return ssh.CertAlgoSKECDSA256v01, true
	}
	return "", false
}

// skFormat reports whether a signature format carries the security-key
// flags and counter after the signature.
func skFormat(format string) bool {
	return format == ssh.KeyAlgoSKED25519 || format == ssh.KeyAlgoSKECDSA256
}

// parseSignature decodes the SSH signature blob (string format, string
// sig, and for sk keys byte flags + uint32 counter).
func parseSignature(raw []byte) (*ssh.Signature, error) {
	r := reader{buf: raw}
	format := r.string()
	blob := r.string()
	if r.err != nil {
		return nil, fmt.Errorf("%w: signature field: %v", ErrMalformed, r.err)
	}
	sig := &ssh.Signature{Format: string(format), Blob: blob}
	if skFormat(sig.Format) {
		if len(r.buf) != 5 {
			return nil, fmt.Errorf("%w: security-key signature has %d bytes of flags and counter, want 5", ErrMalformed, len(r.buf))
		}
		sig.Rest = r.buf
	} else if len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in the signature field", ErrMalformed, len(r.buf))
	}
	return sig, nil
}

// Marshal encodes s as a raw SSHSIG blob (version 1).
func (s *Signature) Marshal() []byte {
	return s.MarshalVersion(Version)
}

// MarshalVersion encodes s with an arbitrary version number; only tests
// and tools that need invalid blobs want anything but [Signature.Marshal].
func (s *Signature) MarshalVersion(version uint32) []byte {
	var b []byte
	b = append(b, MagicPreamble...)
	b = binary.BigEndian.AppendUint32(b, version)
	key := s.rawKey
	if key == nil {
		key = s.PublicKey.Marshal()
	}
	b = appendString(b, key)
	b = appendString(b, []byte(s.Namespace))
	b = appendString(b, s.Reserved)
	b = appendString(b, []byte(s.HashAlgorithm))
	var sig []byte
	sig = appendString(sig, []byte(s.Signature.Format))
	sig = appendString(sig, s.Signature.Blob)
	sig = append(sig, s.Signature.Rest...)
	b = appendString(b, sig)
	return b
}

// SignedData returns the bytes a key signs for message under namespace and
// hash algorithm h (PROTOCOL.sshsig: preamble, namespace, empty reserved,
// hash algorithm, H(message)).
func SignedData(message []byte, namespace string, h HashAlgorithm) ([]byte, error) {
	var digest []byte
	switch h {
	case SHA256:
		d := sha256.Sum256(message)
		digest = d[:]
	case SHA512:
		d := sha512.Sum512(message)
		digest = d[:]
	default:
		return nil, fmt.Errorf("%w: hash algorithm %q, want sha256 or sha512", ErrMalformed, printable(string(h)))
	}
	var b []byte
	b = append(b, MagicPreamble...)
	b = appendString(b, []byte(namespace))
	b = appendString(b, nil)
	b = appendString(b, []byte(h))
	b = appendString(b, digest)
	return b, nil
}

// Verify checks that sig is a valid signature by sig.PublicKey over
// message in namespace. It does not say whether the key is trusted.
func Verify(message []byte, sig *Signature, namespace string) error {
	if namespace == "" {
		return errors.New("verify ssh signature: expected namespace is empty")
	}
	if sig.Namespace != namespace {
		return fmt.Errorf("%w: signed for %q, expected %q", ErrNamespace, printable(sig.Namespace), namespace)
	}
	if err := CheckKey(sig.PublicKey); err != nil {
		return err
	}
	keyType := sig.PublicKey.Type()
	if cert, ok := sig.PublicKey.(*ssh.Certificate); ok {
		keyType = cert.Key.Type()
	}
	format := sig.Signature.Format
	switch {
	case keyType == ssh.KeyAlgoRSA && format == ssh.KeyAlgoRSA:
		return ErrSHA1RSA
	case keyType == ssh.KeyAlgoRSA:
		if format != ssh.KeyAlgoRSASHA256 && format != ssh.KeyAlgoRSASHA512 {
			return fmt.Errorf("%w: signature algorithm %q for an rsa key", ErrBadSignature, printable(format))
		}
	case format != keyType:
		return fmt.Errorf("%w: signature algorithm %q for a %s key", ErrBadSignature, printable(format), keyType)
	}
	data, err := SignedData(message, namespace, sig.HashAlgorithm)
	if err != nil {
		return err
	}
	if err := sig.PublicKey.Verify(data, sig.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// Sign signs message in namespace with signer and returns the armored
// signature, as `ssh-keygen -Y sign -n namespace` would. RSA keys sign with
// rsa-sha2-512 (as OpenSSH does), which needs an [ssh.AlgorithmSigner].
func Sign(rand io.Reader, signer ssh.Signer, message []byte, namespace string, h HashAlgorithm) ([]byte, error) {
	blob, err := SignBlob(rand, signer, message, namespace, h)
	if err != nil {
		return nil, err
	}
	return Armor(blob), nil
}

// SignBlob is [Sign] without the armor.
func SignBlob(rand io.Reader, signer ssh.Signer, message []byte, namespace string, h HashAlgorithm) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sign: namespace is empty")
	}
	pub := signer.PublicKey()
	if err := CheckKey(pub); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	data, err := SignedData(message, namespace, h)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	keyType := pub.Type()
	if cert, ok := pub.(*ssh.Certificate); ok {
		keyType = cert.Key.Type()
	}
	var sig *ssh.Signature
	if keyType == ssh.KeyAlgoRSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("sign: rsa key needs an ssh.AlgorithmSigner to sign with rsa-sha2-512")
		}
		sig, err = as.SignWithAlgorithm(rand, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	s := &Signature{PublicKey: pub, Namespace: namespace, HashAlgorithm: h, Signature: sig}
	return s.Marshal(), nil
}

// reader decodes RFC 4253 fields, remembering the first error.
type reader struct {
	buf []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.buf) < n {
		r.err = errors.New("truncated")
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) uint32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) string() []byte {
	n := r.uint32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.buf)) {
		r.err = fmt.Errorf("string of %d bytes exceeds the %d remaining", n, len(r.buf))
		return nil
	}
	return r.bytes(int(n))
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// printable makes attacker-chosen text safe to put in an error message.
func printable(s string) string {
	const max = 64
	var b []byte
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			b = append(b, '?')
			continue
		}
		b = append(b, c)
	}
	if len(s) > max {
		b = append(b, "..."...)
	}
	return string(b)
}
