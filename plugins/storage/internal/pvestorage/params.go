package pvestorage

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Capability parameters arrive as a JSON-like map (a protobuf Struct turned
// into Go values: string, float64, bool, []any, map[string]any, nil). These
// parsers check names and types and report the field at fault.

// params wraps one capability's parameter map.
type params struct {
	m     map[string]any
	known []string
}

func newParams(m map[string]any, known ...string) (params, error) {
	for _, k := range sortedKeys(m) {
		if !contains(known, k) {
			return params{}, invalid(k, "unknown parameter (known: %s)", strings.Join(known, ", "))
		}
	}
	return params{m: m, known: known}, nil
}

func (p params) str(key string) (string, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid(key, "want a string, got %s", typeName(v))
	}
	return s, nil
}

func (p params) boolean(key string) (bool, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return false, nil
	}
	switch b := v.(type) {
	case bool:
		return b, nil
	case float64:
		if b == 0 || b == 1 {
			return b == 1, nil
		}
	case string:
		switch b {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
	}
	return false, invalid(key, "want a boolean, got %s", describe(v))
}

func (p params) integer(key string) (int64, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return 0, nil
	}
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), nil
		}
	case string:
		if i, err := strconv.ParseInt(n, 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, invalid(key, "want an integer, got %s", describe(v))
}

// list takes a list of strings or one comma-separated string.
func (p params) list(key string) ([]string, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return nil, nil
	}
	switch l := v.(type) {
	case string:
		return SplitList(l), nil
	case []any:
		out := make([]string, 0, len(l))
		for i, x := range l {
			s, ok := x.(string)
			if !ok {
				return nil, invalid(fmt.Sprintf("%s[%d]", key, i), "want a string, got %s", typeName(x))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, invalid(key, "want a list of strings, got %s", typeName(v))
}

// stringMap takes an object whose values are strings, numbers or booleans
// (numbers and booleans become the strings Proxmox expects).
func (p params) stringMap(key string) (map[string]string, error) {
	v, ok := p.m[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid(key, "want an object, got %s", typeName(v))
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		switch y := x.(type) {
		case string:
			out[k] = y
		case bool:
			out[k] = boolParam(y)
		case float64:
			if y != math.Trunc(y) || math.Abs(y) >= 1<<53 {
				return nil, invalid(key+"."+k, "want an integer, got %v", y)
			}
			out[k] = strconv.FormatInt(int64(y), 10)
		default:
			return nil, invalid(key+"."+k, "want a string, number or boolean, got %s", typeName(x))
		}
	}
	return out, nil
}

func (p params) requiredID() (string, error) {
	id, err := p.str("id")
	if err != nil {
		return "", err
	}
	return id, ValidateID("id", id)
}

// ParseListParams parses storage.list parameters: content, type, enabled_only.
func ParseListParams(m map[string]any) (ListFilter, error) {
	p, err := newParams(m, "content", "enabled_only", "type")
	if err != nil {
		return ListFilter{}, err
	}
	var f ListFilter
	if f.Content, err = p.str("content"); err != nil {
		return f, err
	}
	if f.Type, err = p.str("type"); err != nil {
		return f, err
	}
	f.EnabledOnly, err = p.boolean("enabled_only")
	return f, err
}

// ParseIDParams parses parameters that are just a storage id
// (storage.status, storage.remove).
func ParseIDParams(m map[string]any) (string, error) {
	p, err := newParams(m, "id")
	if err != nil {
		return "", err
	}
	return p.requiredID()
}

// ParseContentParams parses storage.content parameters: id, content, vmid.
func ParseContentParams(m map[string]any) (string, ContentFilter, error) {
	p, err := newParams(m, "content", "id", "vmid")
	if err != nil {
		return "", ContentFilter{}, err
	}
	id, err := p.requiredID()
	if err != nil {
		return "", ContentFilter{}, err
	}
	var f ContentFilter
	if f.Content, err = p.str("content"); err != nil {
		return "", f, err
	}
	if f.Content != "" {
		if err := ValidateContentType("content", f.Content); err != nil {
			return "", f, err
		}
	}
	if f.VMID, err = p.integer("vmid"); err != nil {
		return "", f, err
	}
	if f.VMID != 0 {
		if err := ValidateVMID("vmid", f.VMID); err != nil {
			return "", f, err
		}
	}
	return id, f, nil
}

// DefineRequest is a parsed storage.define invocation.
type DefineRequest struct {
	Spec   Spec
	Update bool
	Digest string
}

// ParseDefineParams parses storage.define parameters: id, type, content,
// options, nodes, disable, update, digest. The result is validated.
func ParseDefineParams(m map[string]any) (DefineRequest, error) {
	p, err := newParams(m, "content", "digest", "disable", "id", "nodes", "options", "type", "update")
	if err != nil {
		return DefineRequest{}, err
	}
	var r DefineRequest
	if r.Spec.ID, err = p.str("id"); err != nil {
		return r, err
	}
	if r.Spec.Type, err = p.str("type"); err != nil {
		return r, err
	}
	if r.Spec.Content, err = p.list("content"); err != nil {
		return r, err
	}
	if r.Spec.Nodes, err = p.list("nodes"); err != nil {
		return r, err
	}
	if r.Spec.Options, err = p.stringMap("options"); err != nil {
		return r, err
	}
	if r.Spec.Disable, err = p.boolean("disable"); err != nil {
		return r, err
	}
	if r.Update, err = p.boolean("update"); err != nil {
		return r, err
	}
	if r.Digest, err = p.str("digest"); err != nil {
		return r, err
	}
	if r.Digest != "" && !r.Update {
		return r, invalid("digest", "a digest only applies to an update")
	}
	return r, ValidateSpec(r.Spec, r.Update)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", clip(x))
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return typeName(v)
}
