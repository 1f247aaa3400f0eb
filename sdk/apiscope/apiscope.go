// Package apiscope matches Proxmox API calls against the method+path scopes a
// plugin's capabilities declare. The core's API proxy and sdk/plugintest use
// it, so a plugin is refused the same way in tests and in production.
//
// A scope path is "/"-separated. Segments in braces are one-segment
// wildcards:
//
//	{node}     this host's node name, exactly
//	{vmid}     a guest ID (1-999999999, no leading zero)
//	{storage}  a storage ID ([A-Za-z][A-Za-z0-9_.-]*)
//	{upid}     a task ID ("UPID:...")
//	{volume}   a volume ID ("storage:name", may contain an encoded "/")
//	{any}      any single segment
//
// A final "/**" matches one or more deeper segments. Paths are cleaned
// before matching (see [Clean]): "..", ".", empty segments, encoded "." or
// "..", control characters, "?", "#", "\" and double encoding are refused.
package apiscope

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// Scope is one API method and path pattern.
type Scope struct {
	Method string
	Path   string
}

func (s Scope) String() string { return s.Method + " " + s.Path }

// MaxPathLen bounds the paths [Clean] accepts.
const MaxPathLen = 2048

// FromProto converts the wire form of a capability's scopes.
func FromProto(in []*pluginv1.APIScope) []Scope {
	out := make([]Scope, 0, len(in))
	for _, s := range in {
		out = append(out, Scope{Method: s.GetMethod(), Path: s.GetPath()})
	}
	return out
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true}

type segKind uint8

const (
	kLiteral segKind = iota
	kNode
	kVMID
	kStorage
	kUPID
	kVolume
	kAny
	kDeep // "**", last only
)

var wildcards = map[string]segKind{
	"{node}": kNode, "{vmid}": kVMID, "{storage}": kStorage,
	"{upid}": kUPID, "{volume}": kVolume, "{any}": kAny,
}

type seg struct {
	kind segKind
	lit  string
}

type compiled struct {
	method string
	segs   []seg
}

// Set is a compiled list of scopes, safe for concurrent use.
type Set struct {
	scopes []compiled
}

// Validate reports whether s is a well-formed scope, naming what is wrong.
func Validate(s Scope) error {
	_, err := compile(s)
	return err
}

func compile(s Scope) (compiled, error) {
	if !methods[s.Method] {
		return compiled{}, fmt.Errorf("scope %q: method must be GET, POST, PUT or DELETE", s.String())
	}
	if !strings.HasPrefix(s.Path, "/") {
		return compiled{}, fmt.Errorf("scope %q: path must start with \"/\" (relative to /api2/json)", s.String())
	}
	c := compiled{method: s.Method}
	if s.Path == "/" {
		return c, nil
	}
	parts := strings.Split(s.Path[1:], "/")
	for i, p := range parts {
		switch {
		case p == "":
			return compiled{}, fmt.Errorf("scope %q: empty path segment", s.String())
		case p == "**":
			if i != len(parts)-1 {
				return compiled{}, fmt.Errorf("scope %q: \"**\" is only allowed as the last segment", s.String())
			}
			if i == 0 {
				return compiled{}, fmt.Errorf("scope %q: \"/**\" would grant the whole API; declare the paths you use", s.String())
			}
			c.segs = append(c.segs, seg{kind: kDeep})
		case strings.HasPrefix(p, "{"):
			k, ok := wildcards[p]
			if !ok {
				return compiled{}, fmt.Errorf("scope %q: unknown wildcard %q (known: {node} {vmid} {storage} {upid} {volume} {any})", s.String(), p)
			}
			c.segs = append(c.segs, seg{kind: k})
		default:
			if !literalOK(p) {
				return compiled{}, fmt.Errorf("scope %q: segment %q has characters outside [A-Za-z0-9._:@!-]", s.String(), p)
			}
			c.segs = append(c.segs, seg{kind: kLiteral, lit: p})
		}
	}
	return c, nil
}

func literalOK(p string) bool {
	if p == "." || p == ".." {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == ':', c == '@', c == '!':
		default:
			return false
		}
	}
	return true
}

// Compile checks and compiles scopes; the error names the first bad one.
func Compile(scopes []Scope) (*Set, error) {
	set := &Set{scopes: make([]compiled, 0, len(scopes))}
	var errs []error
	for _, s := range scopes {
		c, err := compile(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.scopes = append(set.scopes, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// Match reports whether method+path is inside one of scopes, with {node}
// bound to node. Malformed scopes never match; an unclean path never matches.
func Match(scopes []Scope, node, method, path string) bool {
	for _, s := range scopes {
		c, err := compile(s)
		if err != nil {
			continue
		}
		if _, err := matchOne([]compiled{c}, node, method, path); err == nil {
			return true
		}
	}
	return false
}

// Allows reports whether method+path is inside the set, with {node} bound
// to node. An unclean path is refused.
func (s *Set) Allows(node, method, path string) bool {
	_, err := matchOne(s.scopes, node, method, path)
	return err == nil
}

// Check is Allows with a reason: it returns the cleaned path to forward to
// Proxmox, or an error saying why the call is refused.
func (s *Set) Check(node, method, path string) (string, error) {
	return matchOne(s.scopes, node, method, path)
}

func matchOne(scopes []compiled, node, method, path string) (string, error) {
	segs, err := split(path)
	if err != nil {
		return "", err
	}
	for i := range scopes {
		if scopes[i].method == method && segsMatch(scopes[i].segs, segs, node) {
			return join(segs), nil
		}
	}
	return "", fmt.Errorf("%s %s is not in the declared API scopes", method, join(segs))
}

func segsMatch(pattern []seg, segs []string, node string) bool {
	for i, p := range pattern {
		if p.kind == kDeep {
			return len(segs) > i
		}
		if i >= len(segs) {
			return false
		}
		v := segs[i]
		// Only {volume} may hold an (encoded) slash.
		if p.kind != kVolume && strings.IndexByte(v, '/') >= 0 {
			return false
		}
		switch p.kind {
		case kLiteral:
			if v != p.lit {
				return false
			}
		case kNode:
			if node == "" || v != node {
				return false
			}
		case kVMID:
			if !isVMID(v) {
				return false
			}
		case kStorage:
			if !isStorageID(v) {
				return false
			}
		case kUPID:
			if !strings.HasPrefix(v, "UPID:") {
				return false
			}
		case kVolume:
			if colon := strings.IndexByte(v, ':'); colon <= 0 || !isStorageID(v[:colon]) {
				return false
			}
		case kAny:
		}
	}
	return len(segs) == len(pattern)
}

func isVMID(v string) bool {
	if len(v) == 0 || len(v) > 9 || v[0] == '0' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func isStorageID(v string) bool {
	if v == "" {
		return false
	}
	c := v[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// Clean returns the canonical form of an API path (each segment decoded,
// checked and re-escaped), or an error naming what makes it unsafe. The core
// forwards the canonical form, so what was matched is what Proxmox sees.
func Clean(path string) (string, error) {
	segs, err := split(path)
	if err != nil {
		return "", err
	}
	return join(segs), nil
}

// split decodes and checks every segment of path.
func split(path string) ([]string, error) {
	if len(path) > MaxPathLen {
		return nil, fmt.Errorf("api path is longer than %d bytes", MaxPathLen)
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("api path %q must start with \"/\"", path)
	}
	if path == "/" {
		return nil, nil
	}
	raw := strings.Split(path[1:], "/")
	segs := make([]string, 0, len(raw))
	for _, r := range raw {
		if r == "" {
			return nil, fmt.Errorf("api path %q has an empty segment", path)
		}
		v, err := url.PathUnescape(r)
		if err != nil {
			return nil, fmt.Errorf("api path %q: bad escape in segment %q", path, r)
		}
		if err := segmentOK(v); err != nil {
			return nil, fmt.Errorf("api path %q: segment %q: %w", path, r, err)
		}
		segs = append(segs, v)
	}
	return segs, nil
}

func segmentOK(v string) error {
	if v == "." || v == ".." {
		return errors.New("dot segments are refused")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f {
			return errors.New("control characters are refused")
		}
		switch c {
		case '\\', '?', '#', '%', ' ':
			return fmt.Errorf("%q is refused in a path segment", string(c))
		}
	}
	if strings.IndexByte(v, '/') >= 0 {
		for _, part := range strings.Split(v, "/") {
			if part == "" || part == "." || part == ".." {
				return errors.New("encoded \"/\" with an empty or dot part is refused")
			}
		}
	}
	return nil
}

func join(segs []string) string {
	if len(segs) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
