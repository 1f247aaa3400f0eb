package proxmox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Perl's JSON encoder emits a number as a string when the value was last
// used as one, and booleans as 0/1. These wire types accept either form;
// typed results convert them to plain Go types.

// flexInt decodes 42, 42.0, "42" or null (as 0).
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	f, err := flexNumber(b)
	if err != nil {
		return err
	}
	*n = flexInt(f)
	return nil
}

// flexFloat decodes 0.5, "0.5" or null (as 0).
type flexFloat float64

func (n *flexFloat) UnmarshalJSON(b []byte) error {
	f, err := flexNumber(b)
	if err != nil {
		return err
	}
	*n = flexFloat(f)
	return nil
}

// flexBool decodes 0/1, "0"/"1", true/false or null (as false).
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "true":
		*v = true
		return nil
	case "false", "null", `""`:
		*v = false
		return nil
	}
	f, err := flexNumber(b)
	if err != nil {
		return fmt.Errorf("boolean: %w", err)
	}
	*v = f != 0
	return nil
}

func flexNumber(b []byte) (float64, error) {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return 0, nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
		if s == "" {
			return 0, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("number %q: %w", s, err)
		}
		return f, nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("number %s: %w", b, err)
	}
	return f, nil
}

// jsonScalarString renders a decoded config value the way PVE stores it in
// the config file: strings as is, numbers in their literal form, booleans
// as 1/0. Anything else keeps its JSON text.
func jsonScalarString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, true
		}
	case 't':
		return "1", true
	case 'f':
		return "0", true
	}
	return string(raw), true
}
