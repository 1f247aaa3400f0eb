package allowedsigners

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Reasons why no entry grants a key, matched with errors.Is on the error
// [File.Find] returns.
var (
	ErrUnknownKey        = errors.New("key is not listed in allowed_signers")
	ErrPrincipalMismatch = errors.New("key is not listed for this principal")
	ErrNamespace         = errors.New("key is not permitted in this namespace")
	ErrExpired           = errors.New("key has expired")
	ErrNotYetValid       = errors.New("key is not yet valid")
	ErrCertInvalid       = errors.New("certificate is not valid")
	// ErrCertSHA1 is a certificate whose CA signed it with SHA-1 ssh-rsa.
	ErrCertSHA1 = errors.New("certificate is signed with sha-1 (ssh-rsa)")
)

// Query says what a key must be granted for.
type Query struct {
	// Principal, when set, must be granted (ssh-keygen -Y verify -I);
	// when empty, every granted principal is reported (find-principals).
	Principal string
	// Namespace is checked against namespaces= options; required.
	Namespace string
	// Now is the verify time for valid-after/valid-before and certificate
	// validity.
	Now time.Time
}

// Match is an entry that grants the key.
type Match struct {
	Entry *Entry
	// Principals are the identities the entry grants. For a plain key:
	// Query.Principal when set, else the non-negated patterns of the
	// entry's principals as written (which may hold wildcards). For a
	// certificate: Query.Principal when set, else the certificate's
	// principals that match the entry's pattern-list.
	Principals []string
	// Cert is the signing certificate when the entry is a cert-authority.
	Cert *ssh.Certificate
}

// MatchError says why the best candidate entry did not grant the key.
type MatchError struct {
	Err    error  // one of the Err* values
	Source string // FILE:LINE of the entry, "" for ErrUnknownKey
	Detail string
}

func (e *MatchError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source + ": ")
	}
	b.WriteString(e.Err.Error())
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

func (e *MatchError) Unwrap() error { return e.Err }

// Find returns every entry that grants key for q, in file order. When none
// does it returns a *MatchError for the most specific failure: an entry
// that lists the key for the principal but fails an option beats one that
// lists the key for another principal, which beats ErrUnknownKey.
func (f *File) Find(key ssh.PublicKey, q Query) ([]Match, error) {
	if q.Namespace == "" {
		return nil, errors.New("find allowed signer: namespace is empty")
	}
	var matches []Match
	var best *MatchError
	bestRank := 0
	for i := range f.Entries {
		e := &f.Entries[i]
		m, rank, err := e.check(key, q)
		if err == nil {
			matches = append(matches, m)
			continue
		}
		if rank > bestRank {
			best, bestRank = err, rank
		}
	}
	if len(matches) > 0 {
		return matches, nil
	}
	if best != nil {
		return nil, best
	}
	return nil, &MatchError{Err: ErrUnknownKey, Detail: fmt.Sprintf("%s key %s", key.Type(), ssh.FingerprintSHA256(key))}
}

// Failure ranks for Find: how far an entry got before failing.
const (
	rankNoKey = iota
	rankPrincipal
	rankOption
)

func (e *Entry) check(key ssh.PublicKey, q Query) (Match, int, *MatchError) {
	fail := func(rank int, err error, format string, args ...any) (Match, int, *MatchError) {
		return Match{}, rank, &MatchError{Err: err, Source: e.Source(), Detail: fmt.Sprintf(format, args...)}
	}
	m := Match{Entry: e}
	cert, isCert := key.(*ssh.Certificate)
	switch {
	case e.CertAuthority && isCert && bytes.Equal(cert.SignatureKey.Marshal(), e.Key.Marshal()):
		m.Cert = cert
	case !e.CertAuthority && !isCert && bytes.Equal(key.Marshal(), e.Key.Marshal()):
	default:
		return Match{}, rankNoKey, &MatchError{Err: ErrUnknownKey}
	}

	if q.Principal != "" {
		if !MatchList(q.Principal, e.Principals) {
			return fail(rankPrincipal, ErrPrincipalMismatch, "%q does not match %q", q.Principal, e.Principals)
		}
		if isCert && !slices.Contains(cert.ValidPrincipals, q.Principal) {
			return fail(rankPrincipal, ErrPrincipalMismatch, "certificate %q does not list %q", cert.KeyId, q.Principal)
		}
		m.Principals = []string{q.Principal}
	} else if isCert {
		for _, p := range cert.ValidPrincipals {
			if p != "" && MatchList(p, e.Principals) {
				m.Principals = append(m.Principals, p)
			}
		}
		if len(m.Principals) == 0 {
			return fail(rankPrincipal, ErrPrincipalMismatch, "no principal of certificate %q matches %q", cert.KeyId, e.Principals)
		}
	} else {
		for _, p := range strings.Split(e.Principals, ",") {
			if !strings.HasPrefix(p, "!") {
				m.Principals = append(m.Principals, p)
			}
		}
	}

	if isCert {
		if err := checkCert(cert, m.Principals[0], q.Now); err != nil {
			err.Source = e.Source()
			return Match{}, rankOption, err
		}
	}
	if e.Namespaces != "" && !MatchList(q.Namespace, e.Namespaces) {
		return fail(rankOption, ErrNamespace, "namespace %q is not in namespaces=%q", q.Namespace, e.Namespaces)
	}
	if !e.ValidAfter.IsZero() && q.Now.Before(e.ValidAfter) {
		return fail(rankOption, ErrNotYetValid, "verify time %s is before valid-after %s", stamp(q.Now), stamp(e.ValidAfter))
	}
	if !e.ValidBefore.IsZero() && q.Now.After(e.ValidBefore) {
		return fail(rankOption, ErrExpired, "verify time %s is after valid-before %s", stamp(q.Now), stamp(e.ValidBefore))
	}
	return m, 0, nil
}

// checkCert applies what OpenSSH checks for a signing certificate (user
// type, validity, CA signature) plus two refusals of our own: a CA
// signature in SHA-1 ssh-rsa (OpenSSH refuses those by default since 8.2)
// and any critical option, whose restrictions (source-address,
// force-command, verify-required) cannot be honoured for an offline
// signature.
func checkCert(cert *ssh.Certificate, principal string, now time.Time) *MatchError {
	if cert.CertType != ssh.UserCert {
		return &MatchError{Err: ErrCertInvalid, Detail: fmt.Sprintf("certificate %q is a host certificate", cert.KeyId)}
	}
	if cert.Signature == nil || cert.Signature.Format == ssh.KeyAlgoRSA {
		return &MatchError{Err: ErrCertSHA1, Detail: fmt.Sprintf("certificate %q", cert.KeyId)}
	}
	if len(cert.CriticalOptions) > 0 {
		names := make([]string, 0, len(cert.CriticalOptions))
		for k := range cert.CriticalOptions {
			names = append(names, k)
		}
		return &MatchError{Err: ErrCertInvalid, Detail: fmt.Sprintf("certificate %q has critical options %q", cert.KeyId, names)}
	}
	unix := now.Unix()
	if unix < 0 || uint64(unix) < cert.ValidAfter {
		return &MatchError{Err: ErrNotYetValid, Detail: fmt.Sprintf("certificate %q is valid from %s", cert.KeyId, certTime(cert.ValidAfter))}
	}
	if cert.ValidBefore != ssh.CertTimeInfinity && uint64(unix) >= cert.ValidBefore {
		return &MatchError{Err: ErrExpired, Detail: fmt.Sprintf("certificate %q expired at %s", cert.KeyId, certTime(cert.ValidBefore))}
	}
	// CertChecker repeats the checks above and verifies the CA signature.
	checker := ssh.CertChecker{Clock: func() time.Time { return now }}
	if err := checker.CheckCert(principal, cert); err != nil {
		return &MatchError{Err: ErrCertInvalid, Detail: fmt.Sprintf("certificate %q: %v", cert.KeyId, err)}
	}
	return nil
}

func stamp(t time.Time) string { return t.Format(time.RFC3339) }

func certTime(v uint64) string {
	if v > 1<<62 {
		return "forever"
	}
	return time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
}
