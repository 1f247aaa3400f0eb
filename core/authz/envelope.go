package authz

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// EnvelopeVersion is the only envelope format version accepted.
const EnvelopeVersion = 1

// Defaults for the envelope's time checks.
const (
	DefaultSkew   = 30 * time.Second
	DefaultMaxTTL = 15 * time.Minute
)

// MaxEnvelopeSize bounds an envelope file.
const MaxEnvelopeSize = 64 << 10

// Envelope is a signed operation: what the operator signs with
// `ssh-keygen -Y sign -n felhom-op -f KEY op.json`.
//
// The signature covers the file's exact bytes; there is no
// canonicalisation. So that every reader agrees on what those bytes say,
// [ParseEnvelope] refuses anything ambiguous: invalid UTF-8, a duplicate
// key at any depth, an unknown or differently-cased field, a missing
// field, a null, trailing data after the object.
type Envelope struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	// OpID is the nonce: lowercase hex, at least 128 bits.
	OpID      string    `json:"op_id"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Capability is the namespaced capability ID, e.g. "guest.delete".
	Capability string `json:"capability"`
	// Params are the capability's parameters; numbers are json.Number.
	Params map[string]any `json:"params"`
	// Destructive is the signer's statement that the op is destructive;
	// it must be true for a capability of class destructive.
	Destructive bool `json:"destructive"`
}

var (
	opIDPattern       = regexp.MustCompile(`^[0-9a-f]{32,128}$`)
	capabilityPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`)
	hostPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
)

// Bounds on envelope times: well inside what every consumer can hold.
var (
	minEnvelopeTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxEnvelopeTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// envelopeFields are the required top-level keys, exactly spelled.
var envelopeFields = []string{"version", "host", "op_id", "issued_at", "expires_at", "capability", "params", "destructive"}

// maxJSONDepth bounds nesting inside params.
const maxJSONDepth = 32

// ParseEnvelope strictly decodes an envelope and checks each field's form.
// Its errors are *Rejection with ReasonMalformedEnvelope.
func ParseEnvelope(data []byte) (*Envelope, error) {
	e, err := parseEnvelope(data)
	if err != nil {
		return nil, reject(ReasonMalformedEnvelope, err, "%v", err)
	}
	return e, nil
}

func parseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%d bytes exceeds %d", len(data), MaxEnvelopeSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkStrictJSON(data); err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	for k := range raw {
		if !slices.Contains(envelopeFields, k) {
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	for _, k := range envelopeFields {
		v, ok := raw[k]
		if !ok {
			return nil, fmt.Errorf("missing field %q", k)
		}
		if string(v) == "null" {
			return nil, fmt.Errorf("field %q is null", k)
		}
	}
	e := &Envelope{}
	var issued, expires string
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"version", &e.Version}, {"host", &e.Host}, {"op_id", &e.OpID}, {"issued_at", &issued},
		{"expires_at", &expires}, {"capability", &e.Capability}, {"destructive", &e.Destructive},
	} {
		if err := json.Unmarshal(raw[f.name], f.dst); err != nil {
			return nil, fmt.Errorf("field %q: %v", f.name, jsonTypeError(err))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw["params"]))
	dec.UseNumber()
	if err := dec.Decode(&e.Params); err != nil || e.Params == nil {
		return nil, errors.New(`field "params": want a JSON object`)
	}
	if e.Version != EnvelopeVersion {
		return nil, fmt.Errorf("version %d, only %d is supported", e.Version, EnvelopeVersion)
	}
	if len(e.Host) > 253 || !hostPattern.MatchString(e.Host) {
		return nil, fmt.Errorf("host %q is not a host ID", clip(e.Host))
	}
	if !opIDPattern.MatchString(e.OpID) {
		return nil, fmt.Errorf("op_id %q: want 32 to 128 lowercase hex digits (at least 128 random bits)", clip(e.OpID))
	}
	if len(e.Capability) > 128 || !capabilityPattern.MatchString(e.Capability) {
		return nil, fmt.Errorf("capability %q: want dot-separated lowercase labels like guest.delete", clip(e.Capability))
	}
	var err error
	if e.IssuedAt, err = parseEnvelopeTime("issued_at", issued); err != nil {
		return nil, err
	}
	if e.ExpiresAt, err = parseEnvelopeTime("expires_at", expires); err != nil {
		return nil, err
	}
	if !e.ExpiresAt.After(e.IssuedAt) {
		return nil, fmt.Errorf("expires_at %s is not after issued_at %s", expires, issued)
	}
	return e, nil
}

func parseEnvelopeTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want RFC 3339, e.g. 2026-06-01T12:00:00Z", field, clip(s))
	}
	if t.Before(minEnvelopeTime) || !t.Before(maxEnvelopeTime) {
		return time.Time{}, fmt.Errorf("%s %s is outside 2000..2200", field, s)
	}
	return t, nil
}

func jsonTypeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "want " + te.Type.String() + ", got " + te.Value
	}
	return err.Error()
}

// checkStrictJSON walks the tokens: one value, no duplicate keys at any
// depth, bounded nesting, nothing after it.
func checkStrictJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	if err := walkObject(dec, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func walkObject(dec *json.Decoder, depth int) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("not JSON: object key is not a string")
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", clip(key))
		}
		seen[key] = true
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("not JSON: %v", err)
	}
	return nil
}

func walkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1)
	case '[':
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("not JSON: %v", err)
		}
		return nil
	}
	return fmt.Errorf("not JSON: unexpected %v", d)
}

// Marshal writes the envelope as indented JSON with a final newline, the
// form `felhom-agent op new` writes. Times are UTC, whole seconds.
func (e *Envelope) Marshal() ([]byte, error) {
	params := e.Params
	if params == nil {
		params = map[string]any{}
	}
	out := struct {
		Version     int            `json:"version"`
		Host        string         `json:"host"`
		OpID        string         `json:"op_id"`
		IssuedAt    string         `json:"issued_at"`
		ExpiresAt   string         `json:"expires_at"`
		Capability  string         `json:"capability"`
		Params      map[string]any `json:"params"`
		Destructive bool           `json:"destructive"`
	}{e.Version, e.Host, e.OpID, e.IssuedAt.UTC().Format(time.RFC3339), e.ExpiresAt.UTC().Format(time.RFC3339),
		e.Capability, params, e.Destructive}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("marshal envelope: %w", err)
	}
	return b.Bytes(), nil
}

// NewOpID returns 128 random bits as 32 lowercase hex digits.
func NewOpID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("new op id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// EnvelopeChecks are the time and audience rules for an envelope.
type EnvelopeChecks struct {
	// Host is this host's ID; "" skips the host check (op verify without
	// --host only).
	Host string
	// Skew is the clock tolerance (default 30s), MaxTTL the longest
	// allowed expires_at - issued_at (default 15m).
	Skew   time.Duration
	MaxTTL time.Duration
}

func (c EnvelopeChecks) skew() time.Duration {
	if c.Skew <= 0 {
		return DefaultSkew
	}
	return c.Skew
}

func (c EnvelopeChecks) maxTTL() time.Duration {
	if c.MaxTTL <= 0 {
		return DefaultMaxTTL
	}
	return c.MaxTTL
}

// Check applies c to e at now.
func (e *Envelope) Check(c EnvelopeChecks, now time.Time) error {
	if c.Host != "" && e.Host != c.Host {
		return reject(ReasonWrongHost, nil, "op is for host %q, this is %q", e.Host, c.Host)
	}
	if w := e.ExpiresAt.Sub(e.IssuedAt); w > c.maxTTL() {
		return reject(ReasonOpWindowTooLong, nil, "window %s exceeds the maximum %s", w, c.maxTTL())
	}
	skew := c.skew()
	if now.Add(skew).Before(e.IssuedAt) {
		return reject(ReasonOpNotYetValid, nil, "issued at %s, clock reads %s (skew %s)", stamp(e.IssuedAt), stamp(now), skew)
	}
	if !now.Add(-skew).Before(e.ExpiresAt) {
		return reject(ReasonOpExpired, nil, "expired at %s, clock reads %s (skew %s)", stamp(e.ExpiresAt), stamp(now), skew)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
