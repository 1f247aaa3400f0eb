package authz

import (
	"errors"
	"fmt"
	"slices"
)

// Reason is a machine-readable rejection code, stable for the hub and for
// scripts.
type Reason string

// Rejection reasons.
const (
	ReasonUnknownKey             Reason = "unknown_key"
	ReasonPrincipalMismatch      Reason = "principal_mismatch"
	ReasonNamespaceMismatch      Reason = "namespace_mismatch"
	ReasonKeyExpired             Reason = "key_expired"
	ReasonKeyNotYetValid         Reason = "key_not_yet_valid"
	ReasonCertInvalid            Reason = "cert_invalid"
	ReasonSHA1RSA                Reason = "sha1_rsa"
	ReasonMalformedSignature     Reason = "malformed_signature"
	ReasonBadSignature           Reason = "bad_signature"
	ReasonUnsupportedKeyType     Reason = "unsupported_key_type"
	ReasonMalformedEnvelope      Reason = "malformed_envelope"
	ReasonWrongHost              Reason = "wrong_host"
	ReasonOpExpired              Reason = "op_expired"
	ReasonOpNotYetValid          Reason = "op_not_yet_valid"
	ReasonOpWindowTooLong        Reason = "op_window_too_long"
	ReasonReplay                 Reason = "replay"
	ReasonClockRollback          Reason = "clock_rollback"
	ReasonUnknownCapability      Reason = "unknown_capability"
	ReasonCapabilityMismatch     Reason = "capability_mismatch"
	ReasonCapabilityNotAllowed   Reason = "capability_not_allowed"
	ReasonDestructiveNotDeclared Reason = "destructive_not_declared"
	ReasonSignatureRequired      Reason = "signature_required"
	ReasonInvalidRequest         Reason = "invalid_request"
	ReasonNonceStoreFailure      Reason = "nonce_store_failure"
)

var sentences = map[Reason]string{
	ReasonUnknownKey:             "the signing key is not listed in allowed_signers",
	ReasonPrincipalMismatch:      "the signing key is not listed for this principal",
	ReasonNamespaceMismatch:      "the signature was made for another namespace",
	ReasonKeyExpired:             "the signing key or certificate has expired",
	ReasonKeyNotYetValid:         "the signing key or certificate is not valid yet",
	ReasonCertInvalid:            "the signing certificate is not valid",
	ReasonSHA1RSA:                "the RSA signature uses SHA-1 (ssh-rsa); sign with rsa-sha2-256 or rsa-sha2-512",
	ReasonMalformedSignature:     "the signature is not a valid SSH signature",
	ReasonBadSignature:           "the signature does not match the operation",
	ReasonUnsupportedKeyType:     "the signing key type is not accepted",
	ReasonMalformedEnvelope:      "the operation file is not a valid signed-op envelope",
	ReasonWrongHost:              "the operation is for another host",
	ReasonOpExpired:              "the operation has expired",
	ReasonOpNotYetValid:          "the operation is not valid yet",
	ReasonOpWindowTooLong:        "the operation's validity window is longer than allowed",
	ReasonReplay:                 "the operation was already used",
	ReasonClockRollback:          "the clock is behind an operation already accepted",
	ReasonUnknownCapability:      "the capability is not known on this host",
	ReasonCapabilityMismatch:     "the request names another capability than the signed operation",
	ReasonCapabilityNotAllowed:   "the signer is not allowed to run this capability",
	ReasonDestructiveNotDeclared: "the capability is destructive but the operation does not declare it",
	ReasonSignatureRequired:      "a destructive capability needs a signed operation",
	ReasonInvalidRequest:         "the request is invalid",
	ReasonNonceStoreFailure:      "the replay-protection store failed",
}

// Sentence is the fixed human explanation of r.
func (r Reason) Sentence() string {
	if s, ok := sentences[r]; ok {
		return s
	}
	return "rejected"
}

// Reasons lists every reason code, sorted.
func Reasons() []Reason {
	out := make([]Reason, 0, len(sentences))
	for r := range sentences {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Rejection is why an operation was refused. Reason and Detail are safe
// to send to the hub and show to operators (Detail holds no secrets: key
// fingerprints, principals, times, FILE:LINE); Err is the internal cause
// for the local log.
type Rejection struct {
	Reason Reason
	Detail string
	Err    error
}

func (r *Rejection) Error() string {
	s := string(r.Reason) + ": " + r.Reason.Sentence()
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

func (r *Rejection) Unwrap() error { return r.Err }

func reject(reason Reason, err error, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Detail: fmt.Sprintf(format, args...), Err: err}
}

// ReasonOf returns the reason of a *Rejection in err's chain, or "".
func ReasonOf(err error) Reason {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}
