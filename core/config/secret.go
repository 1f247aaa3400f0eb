package config

import (
	"encoding/json"
	"fmt"
)

const redacted = "[REDACTED]"

// Secret holds a credential. Every way of printing it (fmt verbs, JSON,
// hclog fields) yields [REDACTED]; only Reveal returns the value, so a
// secret reaches a log only by an explicit, greppable call.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value. Call it only where the value is sent
// to its one legitimate consumer (an Authorization header).
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return "config.Secret{" + s.String() + "}" }

// Format covers every fmt verb, %x and %q included.
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.String()) }

// MarshalJSON writes the redacted form: the config is never written back
// with its secrets.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the real value.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("secret must be a JSON string")
	}
	s.v = v
	return nil
}
