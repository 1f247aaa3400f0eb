package pvesim

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Parameter types, as PVE's JSON schema names them.
const (
	tString  = "string"
	tInteger = "integer"
	tNumber  = "number"
	tBoolean = "boolean"
	tArray   = "array"
)

// paramSpec describes one API parameter: the simulator's own compact
// statement of PVE's parameter rules, checked against the real schema by
// the conformance test.
type paramSpec struct {
	name      string // for families the prefix, e.g. "net"
	famMax    int    // >0: an indexed family name0..name(famMax-1), schema "name[n]"
	typ       string
	optional  bool
	enum      []string
	pattern   string // anchored when compiled, like Perl's m/^$pattern$/
	re        *regexp.Regexp
	min, max  *float64
	minLength int // -1 when unset
	maxLength int // -1 when unset
	format    string
	requires  string
	inPath    bool
}

func newSpec(name, typ string, optional bool) *paramSpec {
	p := &paramSpec{name: name, typ: typ, optional: optional, minLength: -1, maxLength: -1}
	if i := strings.Index(name, "["); i > 0 && strings.HasSuffix(name, "]") {
		n, err := strconv.Atoi(name[i+1 : len(name)-1])
		if err != nil || n <= 0 {
			panic("pvesim: bad family size in " + name)
		}
		p.name, p.famMax = name[:i], n
	}
	return p
}

// opt declares an optional parameter; a name like "net[32]" declares the
// family net0..net31.
func opt(name, typ string) *paramSpec { return newSpec(name, typ, true) }

// req declares a required parameter.
func req(name, typ string) *paramSpec { return newSpec(name, typ, false) }

func (p *paramSpec) oneOf(v ...string) *paramSpec { p.enum = v; return p }
func (p *paramSpec) fmt(f string) *paramSpec      { p.format = f; return p }
func (p *paramSpec) maxLen(n int) *paramSpec      { p.maxLength = n; return p }
func (p *paramSpec) minLen(n int) *paramSpec      { p.minLength = n; return p }
func (p *paramSpec) needs(other string) *paramSpec {
	p.requires = other
	return p
}
func (p *paramSpec) path() *paramSpec { p.inPath = true; return p }
func (p *paramSpec) atLeast(v float64) *paramSpec {
	p.min = &v
	return p
}
func (p *paramSpec) atMost(v float64) *paramSpec {
	p.max = &v
	return p
}
func (p *paramSpec) between(lo, hi float64) *paramSpec { return p.atLeast(lo).atMost(hi) }
func (p *paramSpec) match(re string) *paramSpec {
	p.pattern = re
	p.re = regexp.MustCompile(`^(?:` + re + `)$`)
	return p
}

// schemaName is the parameter name as the PVE schema writes it.
func (p *paramSpec) schemaName() string {
	if p.famMax > 0 {
		return p.name + "[n]"
	}
	return p.name
}

// endpointParams is the parameter table of one endpoint.
type endpointParams struct {
	list     []*paramSpec
	byName   map[string]*paramSpec
	families []*paramSpec
}

func params(groups ...[]*paramSpec) *endpointParams {
	e := &endpointParams{byName: map[string]*paramSpec{}}
	for _, g := range groups {
		for _, p := range g {
			if _, dup := e.byName[p.schemaName()]; dup {
				panic("pvesim: duplicate parameter " + p.schemaName())
			}
			e.byName[p.schemaName()] = p
			e.list = append(e.list, p)
			if p.famMax > 0 {
				e.families = append(e.families, p)
			}
		}
	}
	return e
}

// ps groups specs; a readability helper for the tables.
func ps(p ...*paramSpec) []*paramSpec { return p }

// lookup finds the spec for a concrete parameter name such as "net3".
func (e *endpointParams) lookup(name string) *paramSpec {
	if p, ok := e.byName[name]; ok && p.famMax == 0 {
		return p
	}
	for _, f := range e.families {
		if idx, ok := strings.CutPrefix(name, f.name); ok && idx != "" && (idx == "0" || idx[0] != '0') {
			n, err := strconv.Atoi(idx)
			if err == nil && n >= 0 && n < f.famMax {
				return f
			}
		}
	}
	return nil
}

// validate checks params like PVE::JSONSchema::validate with
// additionalProperties => 0 and returns the errors map (nil when valid).
func (e *endpointParams) validate(params map[string]pval) map[string]string {
	errs := map[string]string{}
	for _, p := range e.list {
		if p.famMax > 0 {
			continue
		}
		v, ok := params[p.name]
		if !ok || v.kind == kUndef {
			if !p.optional {
				errs[p.name] = "property is missing and it is not optional"
			}
			continue
		}
		if msg := p.check(v); msg != "" {
			errs[p.name] = msg
		}
	}
	for name, v := range params {
		p := e.lookup(name)
		if p == nil {
			errs[name] = "property is not defined in schema and the schema does not allow additional properties"
			continue
		}
		if p.famMax > 0 && v.kind != kUndef {
			if msg := p.check(v); msg != "" {
				errs[name] = msg
			}
		}
		if p.requires != "" {
			if r, ok := params[p.requires]; !ok || r.kind == kUndef {
				errs[p.requires] = fmt.Sprintf("missing property - '%s' requires this property", name)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// check validates one defined value in PVE's order: type, format, pattern,
// length, range, enumeration. It returns the error text or "".
func (p *paramSpec) check(v pval) string {
	switch v.kind {
	case kArray:
		if p.typ != tArray {
			return fmt.Sprintf("type check ('%s') failed - got ARRAY", p.typ)
		}
		return ""
	case kObject:
		return fmt.Sprintf("type check ('%s') failed - got HASH", p.typ)
	case kJSONBool:
		if p.typ != tBoolean {
			return fmt.Sprintf("type check ('%s') failed - got JSON::PP::Boolean", p.typ)
		}
		return ""
	}
	s := v.s
	switch p.typ {
	case tArray:
		return "" // form-encoded arrays arrive NUL-joined
	case tBoolean:
		if s != "0" && s != "1" {
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", s)
		}
	case tInteger:
		if !isInteger(s) {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", s)
		}
	case tNumber:
		if !isNumber(s) {
			return fmt.Sprintf("type check ('number') failed - got '%s'", s)
		}
	}
	if p.format != "" {
		if err := checkFormat(p.format, s); err != "" {
			return "invalid format - " + err
		}
	}
	if p.re != nil && !p.re.MatchString(s) {
		return "value does not match the regex pattern"
	}
	if p.maxLength >= 0 && len(s) > p.maxLength {
		return fmt.Sprintf("value may only be %d characters long", p.maxLength)
	}
	if p.minLength >= 0 && len(s) < p.minLength {
		return fmt.Sprintf("value must be at least %d characters long", p.minLength)
	}
	if isNumber(s) {
		f, _ := strconv.ParseFloat(s, 64)
		if p.max != nil && f > *p.max {
			return "value must have a maximum value of " + perlNum(*p.max)
		}
		if p.min != nil && f < *p.min {
			return "value must have a minimum value of " + perlNum(*p.min)
		}
	}
	if len(p.enum) > 0 {
		found := false
		for _, e := range p.enum {
			if e == s {
				found = true
				break
			}
		}
		if !found {
			return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", s, strings.Join(p.enum, ", "))
		}
	}
	return ""
}

var (
	integerRE = regexp.MustCompile(`^[+-]?\d+$`)
	numberRE  = regexp.MustCompile(`^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`)
)

func isInteger(s string) bool { return integerRE.MatchString(s) }
func isNumber(s string) bool  { return numberRE.MatchString(s) }

// perlNum prints a number the way Perl interpolates it.
func perlNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 15, 64)
}

// Format validators. Each returns "" or PVE's die message (with newline).
var (
	configIDRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_-]+$`)
	storageRE  = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	vmidRE     = regexp.MustCompile(`^[1-9][0-9]{2,8}$`)
	nodeNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	dnsNameRE  = regexp.MustCompile(`^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	tagRE      = regexp.MustCompile(`(?i)^[a-z0-9_][a-z0-9_\-+.]*$`)
	urlencRE   = regexp.MustCompile(`^[-%a-zA-Z0-9_.!~*'()]*$`)
	poolIDRE   = regexp.MustCompile(`(?i)^[A-Za-z0-9_\-]+$`)
	volumeIDRE = regexp.MustCompile(`^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$`)
	startupRE  = regexp.MustCompile(`^(?:(order=)?\d+|up=\d+|down=\d+)$`)
	taskStatRE = regexp.MustCompile(`(?i)^(ok|error|warning|unknown)$`)
)

// contentTypes are the storage content types PVE knows.
var contentTypes = map[string]bool{
	"images": true, "rootdir": true, "vztmpl": true, "iso": true,
	"backup": true, "snippets": true, "import": true,
}

type formatFunc func(string) string

var formats = map[string]formatFunc{
	"pve-configid": func(v string) string {
		if !configIDRE.MatchString(v) {
			return fmt.Sprintf("invalid configuration ID '%s'\n", v)
		}
		return ""
	},
	"pve-storage-id": func(v string) string {
		if !storageRE.MatchString(v) {
			return fmt.Sprintf("storage ID '%s' contains illegal characters\n", v)
		}
		return ""
	},
	"pve-vmid": func(v string) string {
		if !vmidRE.MatchString(v) {
			return "value does not look like a valid VM ID\n"
		}
		return ""
	},
	"pve-node": func(v string) string {
		if !nodeNameRE.MatchString(v) {
			return "value does not look like a valid node name\n"
		}
		return ""
	},
	"dns-name": func(v string) string {
		if !dnsNameRE.MatchString(v) {
			return "value does not look like a valid DNS name\n"
		}
		return ""
	},
	"pve-tag": func(v string) string {
		if !tagRE.MatchString(v) {
			return "invalid characters in tag\n"
		}
		return ""
	},
	"urlencoded": func(v string) string {
		if !urlencRE.MatchString(v) {
			return fmt.Sprintf("invalid urlencoded string: %s\n", v)
		}
		return ""
	},
	"pve-poolid": func(v string) string {
		if !poolIDRE.MatchString(v) {
			return fmt.Sprintf("invalid pool ID '%s'\n", v)
		}
		return ""
	},
	"pve-volume-id": func(v string) string {
		if !volumeIDRE.MatchString(v) {
			return fmt.Sprintf("unable to parse volume ID '%s'\n", v)
		}
		return ""
	},
	"pve-storage-content": func(v string) string {
		if !contentTypes[v] {
			return fmt.Sprintf("invalid content type '%s'\n", v)
		}
		return ""
	},
	"pve-task-status-type": func(v string) string {
		if !taskStatRE.MatchString(v) {
			return fmt.Sprintf("invalid status '%s'\n", v)
		}
		return ""
	},
	"pve-startup-order": func(v string) string {
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			if !startupRE.MatchString(part) {
				return "unable to parse startup options\n"
			}
		}
		return ""
	},
}

// opaqueFormats are formats the simulator knows by name but does not parse
// (mostly property strings); values are accepted as plain strings.
var opaqueFormats = map[string]bool{
	"pve-cpuset": true, "pve-qemu-sev-fmt": true, "pve-qemu-tdx-fmt": true, "pve-qm-boot": true,
	"pve-qm-bootdisk": true, "pve-qm-ide": true, "pve-qm-cicustom": true, "pve-vm-cpu-conf": true,
	"pve-qm-hostpci": true, "pve-hotplug-features": true, "pve-qm-ipconfig": true,
	"address-list": true, "pve-qm-rng": true, "pve-qm-smbios1": true, "pve-qm-watchdog": true,
	"lxc-ip-with-ll-iface-list": true, "pve-ct-timezone": true, "CIDR": true,
	"storage-pair-list": true, "backup-fleecing": true, "backup-performance": true,
	"email-or-username-list": true, "prune-backups": true, "pve-storage-path": true,
	"pve-storage-server": true, "pve-storage-portal-dns": true, "pve-storage-portal-dns-list": true,
	"pve-storage-vgname": true, "pve-storage-options": true, "pve-dir-override-list": true,
	"pve-calendar-event": true, "pve-day-of-week-list": true, "propstring": true,
}

// checkFormat applies a named format, with PVE's "-list" and "-opt" suffixes.
func checkFormat(format, v string) string {
	if f, ok := formats[format]; ok {
		return f(v)
	}
	if opaqueFormats[format] {
		return ""
	}
	if base, ok := strings.CutSuffix(format, "-list"); ok {
		if f, ok := formats[base]; ok {
			for _, item := range splitList(v) {
				if msg := f(item); msg != "" {
					return msg
				}
			}
			return ""
		}
	}
	if base, ok := strings.CutSuffix(format, "-opt"); ok {
		if f, ok := formats[base]; ok && v != "" {
			return f(v)
		}
		return ""
	}
	return "" // unknown formats are not enforced
}

// knownFormat reports whether the simulator recognises a format name.
func knownFormat(format string) bool {
	if formats[format] != nil || opaqueFormats[format] {
		return true
	}
	for _, suf := range []string{"-list", "-opt"} {
		if base, ok := strings.CutSuffix(format, suf); ok && formats[base] != nil {
			return true
		}
	}
	return false
}

// splitList is PVE::Tools::split_list: NUL-separated if any NUL is present,
// else separated by commas, semicolons and whitespace.
func splitList(s string) []string {
	if strings.Contains(s, "\x00") {
		return strings.Split(s, "\x00")
	}
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}
