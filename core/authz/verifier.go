package authz

import (
	"errors"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/allowedsigners"
	"gitea.dooplex.hu/admin/felhom-agent/core/authz/sshsig"
	"golang.org/x/crypto/ssh"
)

// DefaultNamespace is the SSHSIG namespace operations are signed in:
// ssh-keygen -Y sign -n felhom-op.
const DefaultNamespace = "felhom-op"

// AllowedSigners is a parsed OpenSSH allowed_signers file.
type AllowedSigners = allowedsigners.File

// LoadAllowedSigners reads an allowed_signers file; one bad line fails the
// load, with every bad line listed as FILE:LINE.
func LoadAllowedSigners(path string) (*AllowedSigners, error) {
	return allowedsigners.Load(path)
}

// Verifier checks SSH signatures against an allowed_signers file, like
// `ssh-keygen -Y verify` and `-Y find-principals` together.
type Verifier struct {
	Signers *AllowedSigners
	// Namespace is the expected SSHSIG namespace; "" means
	// DefaultNamespace.
	Namespace string
	// Now is the verify time for valid-after/valid-before and
	// certificates; nil means time.Now.
	Now func() time.Time
}

// Result describes a verified signature.
type Result struct {
	// Principal is the principal the signature is accepted for: the one
	// asked for by Verify; for FindPrincipals, from the first granting
	// allowed_signers line: its principals as written for a plain key,
	// or the first certificate principal that matches the line.
	Principal string
	// Principals are every identity granted, over all granting lines (see
	// allowedsigners.Match.Principals); policies are checked against them.
	Principals []string
	// KeyType is the signing key's type, e.g. "ssh-ed25519" or
	// "ssh-ed25519-cert-v01@openssh.com".
	KeyType string
	// KeyFingerprint is SHA256:... of the signing key (for a certificate,
	// of the certified key, as ssh-keygen prints it).
	KeyFingerprint string
	// CAFingerprint and CertKeyID are set for certificates.
	CAFingerprint string
	CertKeyID     string
	// Sources are the granting allowed_signers lines, as FILE:LINE.
	Sources       []string
	HashAlgorithm string
}

// Verify checks that sig is a valid signature of message in the
// namespace by a key that allowed_signers grants to principal.
func (v *Verifier) Verify(message, sig []byte, principal string) (Result, error) {
	if principal == "" {
		return Result{}, reject(ReasonInvalidRequest, nil, "no principal given")
	}
	return v.verify(message, sig, principal)
}

// FindPrincipals checks that sig is a valid signature of message in the
// namespace and returns every principal allowed_signers grants its key
// (honouring namespaces=, valid-after=, valid-before= and certificates).
// Unlike ssh-keygen -Y find-principals, namespaces= is checked.
func (v *Verifier) FindPrincipals(message, sig []byte) (Result, error) {
	return v.verify(message, sig, "")
}

func (v *Verifier) namespace() string {
	if v.Namespace == "" {
		return DefaultNamespace
	}
	return v.Namespace
}

func (v *Verifier) verify(message, sigData []byte, principal string) (Result, error) {
	if v.Signers == nil {
		return Result{}, reject(ReasonUnknownKey, nil, "no allowed_signers loaded")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	ns := v.namespace()
	sig, err := sshsig.Parse(sigData)
	if err != nil {
		return Result{}, sigRejection(err)
	}
	if err := sshsig.Verify(message, sig, ns); err != nil {
		return Result{}, sigRejection(err)
	}
	res := Result{
		KeyType:       sig.PublicKey.Type(),
		HashAlgorithm: string(sig.HashAlgorithm),
	}
	if cert, ok := sig.PublicKey.(*ssh.Certificate); ok {
		res.KeyFingerprint = ssh.FingerprintSHA256(cert.Key)
		res.CAFingerprint = ssh.FingerprintSHA256(cert.SignatureKey)
		res.CertKeyID = cert.KeyId
	} else {
		res.KeyFingerprint = ssh.FingerprintSHA256(sig.PublicKey)
	}
	matches, err := v.Signers.Find(sig.PublicKey, allowedsigners.Query{Principal: principal, Namespace: ns, Now: now()})
	if err != nil {
		return Result{}, matchRejection(err, res)
	}
	seen := map[string]bool{}
	for _, m := range matches {
		res.Sources = append(res.Sources, m.Entry.Source())
		for _, p := range m.Principals {
			if !seen[p] {
				seen[p] = true
				res.Principals = append(res.Principals, p)
			}
		}
	}
	switch {
	case principal != "":
		res.Principal = principal
	case matches[0].Cert != nil:
		res.Principal = matches[0].Principals[0]
	default:
		res.Principal = matches[0].Entry.Principals
	}
	return res, nil
}

func sigRejection(err error) *Rejection {
	switch {
	case errors.Is(err, sshsig.ErrNamespace):
		return reject(ReasonNamespaceMismatch, err, "%s", trimKind(err, sshsig.ErrNamespace))
	case errors.Is(err, sshsig.ErrSHA1RSA):
		return reject(ReasonSHA1RSA, err, "signature algorithm ssh-rsa")
	case errors.Is(err, sshsig.ErrUnsupportedKey):
		return reject(ReasonUnsupportedKeyType, err, "%s", trimKind(err, sshsig.ErrUnsupportedKey))
	case errors.Is(err, sshsig.ErrBadSignature):
		return reject(ReasonBadSignature, err, "%s", trimKind(err, sshsig.ErrBadSignature))
	default:
		return reject(ReasonMalformedSignature, err, "%s", trimKind(err, sshsig.ErrMalformed))
	}
}

func matchRejection(err error, res Result) *Rejection {
	var me *allowedsigners.MatchError
	detail := err.Error()
	if errors.As(err, &me) {
		detail = me.Detail
		if me.Source != "" {
			detail = me.Source + ": " + detail
		}
	}
	if res.CertKeyID != "" && !strings.Contains(detail, res.CertKeyID) {
		detail += "; certificate " + res.CertKeyID
	}
	switch {
	case errors.Is(err, allowedsigners.ErrUnknownKey):
		if res.CAFingerprint != "" {
			detail = "certificate authority " + res.CAFingerprint + " is not listed as cert-authority"
		}
		return reject(ReasonUnknownKey, err, "%s", detail)
	case errors.Is(err, allowedsigners.ErrPrincipalMismatch):
		return reject(ReasonPrincipalMismatch, err, "%s", detail)
	case errors.Is(err, allowedsigners.ErrNamespace):
		return reject(ReasonNamespaceMismatch, err, "%s", detail)
	case errors.Is(err, allowedsigners.ErrExpired):
		return reject(ReasonKeyExpired, err, "%s", detail)
	case errors.Is(err, allowedsigners.ErrNotYetValid):
		return reject(ReasonKeyNotYetValid, err, "%s", detail)
	case errors.Is(err, allowedsigners.ErrCertSHA1):
		return reject(ReasonSHA1RSA, err, "%s", detail)
	default:
		return reject(ReasonCertInvalid, err, "%s", detail)
	}
}

// trimKind drops the leading "kind: " text that duplicates the reason.
func trimKind(err, kind error) string {
	s := err.Error()
	if rest, ok := strings.CutPrefix(s, kind.Error()+": "); ok {
		return rest
	}
	return s
}
