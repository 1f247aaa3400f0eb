package pvesim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/internal/testenv"
)

// The schema conformance test checks the simulator against the real PVE
// API schema (../shared/pve-api/schema-subset.json, AGPL data read at test
// time and never copied into the repository):
//
//	(a) every served method+path exists in the schema, and the one the
//	    schema marks missing answers 501;
//	(b) the simulator's parameter table agrees with the schema's parameters;
//	(c) minimal valid calls are accepted, and unknown parameters, wrong
//	    types and enum/pattern/range violations are refused with 400;
//	(d) answers match the schema's "returns" shape;
//	(e) permission checks and proxying agree with the schema.

type schemaFile struct {
	Endpoints      []schemaEndpoint `json:"endpoints"`
	ExtraEndpoints []schemaEndpoint `json:"extra_endpoints"`
}

type schemaEndpoint struct {
	Method      string          `json:"method"`
	Path        string          `json:"path"`
	Missing     bool            `json:"missing"`
	Proxyto     *string         `json:"proxyto"`
	Permissions json.RawMessage `json:"permissions"`
	Parameters  []schemaParam   `json:"parameters"`
	Returns     json.RawMessage `json:"returns"`
}

type schemaParam struct {
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Optional  json.RawMessage `json:"optional"`
	Enum      []any           `json:"enum"`
	Pattern   string          `json:"pattern"`
	Minimum   any             `json:"minimum"`
	Maximum   any             `json:"maximum"`
	MaxLength *int            `json:"maxLength"`
	MinLength *int            `json:"minLength"`
	Format    json.RawMessage `json:"format"`
	Requires  string          `json:"requires"`
	InPath    bool            `json:"in_path"`
}

func loadSchema(t *testing.T) map[string]schemaEndpoint {
	t.Helper()
	path := filepath.Join(testenv.SharedDir(t), "pve-api", "schema-subset.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("read schema: %v", err)
		}
		t.Skipf("schema not readable: %v", err)
	}
	var f schemaFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	idx := map[string]schemaEndpoint{}
	for _, e := range append(f.Endpoints, f.ExtraEndpoints...) {
		idx[e.Method+" "+e.Path] = e
	}
	return idx
}

func truthy(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "0" && s != "null" && s != "false" && s != `""`
}

func numOf(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

var zeroEscRE = regexp.MustCompile(`\\0([^0-9]|$)`)

// normPattern rewrites a Perl pattern from the schema into the Go form the
// simulator writes: (?^: groups become (?:, \0 becomes \x00, and one group
// wrapping the whole pattern is dropped.
func normPattern(p string) string {
	p = strings.ReplaceAll(p, "(?^:", "(?:")
	p = zeroEscRE.ReplaceAllString(p, `\x00$1`)
	if strings.HasPrefix(p, "(?:") && strings.HasSuffix(p, ")") {
		depth := 0
		wraps := true
		for i := 0; i < len(p); i++ {
			switch p[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 && i != len(p)-1 {
					wraps = false
				}
			}
		}
		if wraps {
			p = p[3 : len(p)-1]
		}
	}
	return p
}

// compareParam returns the disagreements between a schema parameter and
// the simulator's spec.
func compareParam(sp schemaParam, p *paramSpec) []string {
	var diffs []string
	if sp.Type != p.typ {
		diffs = append(diffs, fmt.Sprintf("type %s vs %s", sp.Type, p.typ))
	}
	if truthy(sp.Optional) != p.optional {
		diffs = append(diffs, fmt.Sprintf("optional %v vs %v", truthy(sp.Optional), p.optional))
	}
	var senum []string
	for _, e := range sp.Enum {
		senum = append(senum, fmt.Sprint(e))
	}
	if !reflect.DeepEqual(senum, p.enum) && !(len(senum) == 0 && len(p.enum) == 0) {
		diffs = append(diffs, fmt.Sprintf("enum %v vs %v", senum, p.enum))
	}
	if normPattern(sp.Pattern) != normPattern(p.pattern) {
		diffs = append(diffs, fmt.Sprintf("pattern %q vs %q", sp.Pattern, p.pattern))
	}
	cmpNum := func(what string, sv any, pv *float64) {
		f, has := numOf(sv)
		switch {
		case !has && pv == nil:
		case has != (pv != nil):
			diffs = append(diffs, fmt.Sprintf("%s %v vs %v", what, sv, pv))
		case f != *pv:
			diffs = append(diffs, fmt.Sprintf("%s %v vs %v", what, f, *pv))
		}
	}
	cmpNum("minimum", sp.Minimum, p.min)
	cmpNum("maximum", sp.Maximum, p.max)
	cmpLen := func(what string, sv *int, pv int) {
		if (sv == nil && pv != -1) || (sv != nil && *sv != pv) {
			diffs = append(diffs, fmt.Sprintf("%s %v vs %d", what, sv, pv))
		}
	}
	cmpLen("maxLength", sp.MaxLength, p.maxLength)
	cmpLen("minLength", sp.MinLength, p.minLength)
	if sp.Requires != p.requires {
		diffs = append(diffs, fmt.Sprintf("requires %q vs %q", sp.Requires, p.requires))
	}
	if sp.InPath != p.inPath {
		diffs = append(diffs, fmt.Sprintf("in_path %v vs %v", sp.InPath, p.inPath))
	}
	var sfmt string
	isDict := strings.HasPrefix(strings.TrimSpace(string(sp.Format)), "{")
	if !isDict && len(sp.Format) > 0 {
		_ = json.Unmarshal(sp.Format, &sfmt)
	}
	switch {
	case p.format == "propstring":
		if !isDict {
			diffs = append(diffs, fmt.Sprintf("format %s vs propstring", sp.Format))
		}
	case p.format != "":
		if isDict || sfmt != p.format {
			diffs = append(diffs, fmt.Sprintf("format %s vs %s", sp.Format, p.format))
		}
		if !knownFormat(p.format) {
			diffs = append(diffs, "format "+p.format+" is unknown to the simulator")
		}
	}
	return diffs
}

// permString renders a simulator permission check like the schema's JSON.
func permJSON(pc permCheck) any {
	switch pc.kind {
	case "perm":
		privs := make([]any, len(pc.privs))
		for i, p := range pc.privs {
			privs[i] = p
		}
		out := []any{"perm", pc.path, privs}
		if pc.any {
			out = append(out, "any", float64(1))
		}
		return out
	case "or":
		out := []any{"or"}
		for _, a := range pc.alts {
			out = append(out, permJSON(a))
		}
		return out
	}
	return nil
}

// uncoveredOK are schema parameters the simulator deliberately does not
// accept, with the reason. Everything else must be in the parameter table.
var uncoveredOK = map[string]string{}

func TestSchemaConformance(t *testing.T) {
	schema := loadSchema(t)
	s, err := New(Options{Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	served := map[string]bool{}
	var compared, params, uncovered int
	var uncoveredList []string
	for _, rt := range s.routes {
		key := rt.method + " " + rt.template
		served[key] = true
		se, ok := schema[key]
		if !ok {
			t.Errorf("(a) %s is served but not in the schema", key)
			continue
		}
		if se.Missing {
			t.Errorf("(a) %s is served but the schema marks it missing", key)
			continue
		}
		// (e) permissions and proxying.
		var perms struct {
			Check json.RawMessage `json:"check"`
			User  string          `json:"user"`
		}
		_ = json.Unmarshal(se.Permissions, &perms)
		var want any
		if len(perms.Check) > 0 {
			_ = json.Unmarshal(perms.Check, &want)
		}
		if got := permJSON(rt.perm); !reflect.DeepEqual(got, want) {
			t.Errorf("(e) %s permission check %v, schema %s", key, got, perms.Check)
		}
		if got := se.Proxyto != nil && *se.Proxyto == "node"; got != rt.proxyNode {
			t.Errorf("(e) %s proxyto node: schema %v, simulator %v", key, got, rt.proxyNode)
		}
		// (b) parameters.
		inSchema := map[string]bool{}
		for _, sp := range se.Parameters {
			params++
			inSchema[sp.Name] = true
			p, ok := rt.params.byName[sp.Name]
			if !ok {
				if _, fine := uncoveredOK[key+" "+sp.Name]; fine {
					continue
				}
				uncovered++
				uncoveredList = append(uncoveredList, key+" "+sp.Name)
				if !truthy(sp.Optional) {
					t.Errorf("(b) %s: required parameter %q missing from the simulator's table", key, sp.Name)
				} else {
					t.Errorf("(b) %s: parameter %q missing from the simulator's table", key, sp.Name)
				}
				continue
			}
			compared++
			for _, d := range compareParam(sp, p) {
				t.Errorf("(b) %s %s: schema vs simulator: %s", key, sp.Name, d)
			}
		}
		for name := range rt.params.byName {
			if !inSchema[name] {
				t.Errorf("(b) %s: simulator parameter %q is not in the schema", key, name)
			}
		}
	}
	var notServed []string
	for key, se := range schema {
		if se.Missing {
			rec := httptest.NewRecorder()
			p := strings.ReplaceAll(strings.ReplaceAll(se.Path, "{node}", "pve"), "{vmid}", "100")
			req := httptest.NewRequest(se.Method, apiBase+p, nil)
			req.Header.Set("Authorization", "PVEAPIToken="+s.AdminToken())
			s.Handler().ServeHTTP(rec, req)
			want := fmt.Sprintf(`"message":"Method '%s %s' not implemented"`, se.Method, p)
			if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), want) {
				t.Errorf("(a) %s is missing upstream; want 501 %s, got %d %s", key, want, rec.Code, rec.Body)
			}
			continue
		}
		if !served[key] {
			notServed = append(notServed, key)
		}
	}
	sort.Strings(notServed)
	sort.Strings(uncoveredList)
	t.Logf("schema conformance: %d schema endpoints, %d served; %d schema parameters on served endpoints, %d compared, %d not in the simulator's table",
		len(schema), len(served), params, compared, uncovered)
	t.Logf("schema endpoints not served (answer 501): %s", strings.Join(notServed, "; "))
	if len(uncoveredList) > 0 {
		t.Logf("uncovered parameters: %s", strings.Join(uncoveredList, "; "))
	}
}

// --- (c) and (d): calls ---

// sampleValue returns a value valid for a parameter spec.
func sampleValue(p *paramSpec) string {
	switch p.name {
	case "node", "migratedfrom", "target":
		return "pve"
	case "storage":
		return "local"
	case "snapname", "snapshot":
		return "snap1"
	}
	if len(p.enum) > 0 {
		return p.enum[len(p.enum)-1]
	}
	byPattern := map[string]string{
		`(ide|sata|scsi|virtio)\d+`:           "scsi0",
		`/dev/parport\d+|/dev/usb/lp\d+`:      "/dev/parport0",
		`(/dev/.+|socket)`:                    "socket",
		`net\d+=\d+(,net\d+=\d+)*`:            "net0=1500",
		`\S+`:                                 "job1",
		`^/dev/[a-zA-Z0-9\/]+$`:               "/dev/sda",
		`([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}`: strings.TrimSuffix(strings.Repeat("AB:", 32), ":"),
		`(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])`:                 "1",
		`(now|\d{4}-\d{1,2}-\d{1,2}(T\d{1,2}:\d{1,2}:\d{1,2})?)`:                        "now",
		`(?:[^\x00-\x08\x10-\x1F\x7F]+)`:                                                "/sbin/init",
		`(?:(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\x00\w+=[^\x00-\x08\x10-\x1F\x7F]*)*)`: "A=b",
	}
	if p.pattern != "" {
		if v, ok := byPattern[p.pattern]; ok {
			return v
		}
		if strings.Contains(p.pattern, "@") {
			return "root@pam"
		}
		return "x"
	}
	byFormat := map[string]string{
		"pve-vmid": "100", "pve-vmid-list": "100", "pve-configid": "snap1", "pve-configid-list": "cores",
		"pve-storage-id": "local", "dns-name": "host1", "dns-name-list": "example.com", "pve-tag-list": "tag1",
		"pve-startup-order": "order=1", "pve-volume-id": "local:snippets/hook.pl", "urlencoded": "abc",
		"pve-poolid": "pool1", "pve-storage-content": "backup", "pve-storage-content-list": "backup",
		"pve-task-status-type-list": "ok", "pve-node": "pve", "pve-node-list": "pve",
	}
	if v, ok := byFormat[p.format]; ok {
		return v
	}
	switch p.typ {
	case tInteger:
		if p.min != nil {
			return perlNum(math.Max(*p.min, 1))
		}
		return "1"
	case tNumber:
		return "1"
	case tBoolean:
		return "1"
	}
	return "x"
}

// routeExtras are parameters a minimal call needs beyond the required ones
// to get past the handler's own checks.
var routeExtras = map[string]url.Values{
	"POST /nodes/{node}/vzdump":               {"vmid": {"100"}},
	"PUT /nodes/{node}/qemu/{vmid}/config":    {"cores": {"2"}},
	"POST /nodes/{node}/qemu/{vmid}/config":   {"cores": {"2"}},
	"PUT /nodes/{node}/lxc/{vmid}/config":     {"cores": {"2"}},
	"POST /nodes/{node}/lxc":                  {"vmid": {"300"}, "ostemplate": {"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}},
	"POST /nodes/{node}/qemu":                 {"vmid": {"300"}},
	"POST /storage":                           {"storage": {"nas"}, "type": {"nfs"}, "server": {"10.0.0.2"}, "export": {"/export"}},
	"GET /nodes/{node}/disks/smart":           {"disk": {"/dev/sda"}},
	"DELETE /nodes/{node}/lxc/{vmid}":         {"force": {"1"}},
	"POST /nodes/{node}/lxc/{vmid}/snapshot":  {"snapname": {"snap2"}},
	"POST /nodes/{node}/qemu/{vmid}/snapshot": {"snapname": {"snap2"}},
	"POST /cluster/backup":                    {"vmid": {"100"}, "schedule": {"daily"}},
}

// conformanceServer is a fresh in-process simulator with a snapshot "snap1"
// on both seeded guests, guest 101 running, a stopped VM 102, a backup job
// "job1" and one finished task.
func conformanceServer(t *testing.T) (*Server, string) {
	t.Helper()
	s, err := New(Options{Seed: true, TaskDuration: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, p := range []string{"/nodes/pve/lxc/100/snapshot", "/nodes/pve/qemu/101/snapshot"} {
		if code, body := inproc(s, http.MethodPost, p, url.Values{"snapname": {"snap1"}}); code != 200 {
			t.Fatalf("setup %s: %d %s", p, code, body)
		}
	}
	if code, body := inproc(s, http.MethodPost, "/nodes/pve/qemu", url.Values{"vmid": {"102"}, "scsi0": {"local-lvm:1"}}); code != 200 {
		t.Fatalf("setup create 102: %d %s", code, body)
	}
	if code, body := inproc(s, http.MethodPost, "/cluster/backup", url.Values{"id": {"job1"}, "vmid": {"100"}, "schedule": {"daily"}}); code != 200 {
		t.Fatalf("setup backup job: %d %s", code, body)
	}
	code, body := inproc(s, http.MethodPost, "/nodes/pve/qemu/101/status/start", nil)
	if code != 200 {
		t.Fatalf("setup start: %d %s", code, body)
	}
	var env struct{ Data string }
	_ = json.Unmarshal([]byte(body), &env)
	return s, env.Data
}

// inproc calls the handler in-process with the admin token.
func inproc(s *Server, method, path string, params url.Values) (int, string) {
	target := apiBase + path
	var req *http.Request
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
		req = httptest.NewRequest(method, target, nil)
	} else {
		req = httptest.NewRequest(method, target, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", "PVEAPIToken="+s.AdminToken())
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// minimalCall builds the path and parameters of a minimal valid call.
func minimalCall(rt *route, upid string) (string, url.Values) {
	pathVals := map[string]string{"node": "pve", "vmid": "100", "storage": "local", "snapname": "snap1",
		"upid": url.PathEscape(upid), "id": "job1", "volume": url.PathEscape("local:iso/debian-12.8.0-amd64-netinst.iso")}
	switch {
	case rt.method == http.MethodDelete && rt.template == "/nodes/{node}/qemu/{vmid}":
		pathVals["vmid"] = "102" // stopped
	case strings.HasSuffix(rt.template, "/lxc/{vmid}/status/start"):
		pathVals["vmid"] = "9999" // stopped
	case strings.Contains(rt.template, "/qemu/"):
		pathVals["vmid"] = "101"
	}
	p := rt.template
	for k, v := range pathVals {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	vals := url.Values{}
	for _, ps := range rt.params.list {
		if !ps.optional && !ps.inPath && ps.famMax == 0 {
			vals.Set(ps.name, sampleValue(ps))
		}
	}
	for k, v := range routeExtras[rt.method+" "+rt.template] {
		vals[k] = v
	}
	return p, vals
}

// violation returns a value breaking p's enum, pattern or range, and the
// error text expected for it.
func violation(p *paramSpec) (value, want string, ok bool) {
	switch {
	case len(p.enum) > 0 && p.typ == tString:
		return "pvesim-bad", fmt.Sprintf("value 'pvesim-bad' does not have a value in the enumeration '%s'", strings.Join(p.enum, ", ")), true
	case p.pattern != "" && p.format == "":
		return "\x01 \x01", "value does not match the regex pattern", true
	case p.min != nil && (p.typ == tInteger || p.typ == tNumber) && p.format == "":
		return perlNum(*p.min - 1), "value must have a minimum value of " + perlNum(*p.min), true
	case p.max != nil && (p.typ == tInteger || p.typ == tNumber) && p.format == "":
		return perlNum(*p.max + 1), "value must have a maximum value of " + perlNum(*p.max), true
	}
	return "", "", false
}

func TestSchemaConformanceCalls(t *testing.T) {
	schema := loadSchema(t)
	probe, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = probe.Close()
	var calls, shapes, violations int
	for _, rt := range probe.routes {
		key := rt.method + " " + rt.template
		se, ok := schema[key]
		if !ok {
			continue // reported by TestSchemaConformance
		}
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			s, upid := conformanceServer(t)
			p, vals := minimalCall(rt, upid)
			// (c) the minimal call is accepted.
			code, body := inproc(s, rt.method, p, vals)
			calls++
			if code == http.StatusBadRequest {
				t.Fatalf("(c) minimal call %s %s %v refused: %s", rt.method, p, vals, body)
			}
			// (d) the answer has the schema's shape.
			if code == http.StatusOK {
				var env struct {
					Data any `json:"data"`
				}
				if err := json.Unmarshal([]byte(body), &env); err != nil {
					t.Fatalf("(d) decode %s: %v", body, err)
				}
				var ret map[string]any
				_ = json.Unmarshal(se.Returns, &ret)
				for _, d := range checkShape(key, "data", env.Data, ret) {
					t.Errorf("(d) %s", d)
				}
				shapes++
			} else {
				t.Logf("(d) minimal call answered %d, shape not checked: %s", code, body)
			}
			// (c) unknown parameter.
			bad := cloneVals(vals)
			bad.Set("pvesimbogus", "1")
			code, body = inproc(s, rt.method, p, bad)
			wantErr(t, "unknown parameter", code, body, "pvesimbogus",
				"property is not defined in schema and the schema does not allow additional properties")
			// (c) wrong type and violations, one parameter at a time.
			for _, ps := range rt.params.list {
				if ps.inPath || ps.famMax > 0 {
					continue
				}
				if ps.typ == tInteger || ps.typ == tBoolean || ps.typ == tNumber {
					bad := cloneVals(vals)
					bad.Set(ps.name, "abc")
					code, body := inproc(s, rt.method, p, bad)
					wantErr(t, "wrong type", code, body, ps.name, fmt.Sprintf("type check ('%s') failed - got 'abc'", ps.typ))
					violations++
				}
				if v, want, ok := violation(ps); ok {
					bad := cloneVals(vals)
					bad.Set(ps.name, v)
					code, body := inproc(s, rt.method, p, bad)
					wantErr(t, "violation", code, body, ps.name, want)
					violations++
				}
			}
			// A path parameter of the wrong type is refused too.
			if strings.Contains(rt.template, "{vmid}") {
				abc := regexp.MustCompile(`/(qemu|lxc)/\d+`).ReplaceAllString(p, "/$1/abc")
				code, body := inproc(s, rt.method, abc, vals)
				wantErr(t, "path vmid", code, body, "vmid", "type check ('integer') failed - got 'abc'")
			}
		})
	}
	t.Logf("schema conformance calls: %d routes called, %d answers shape-checked, %d invalid-parameter probes", calls, shapes, violations)
}

func cloneVals(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func wantErr(t *testing.T, what string, code int, body, param, want string) {
	t.Helper()
	if code != http.StatusBadRequest {
		t.Errorf("(c) %s %s: want 400, got %d %s", what, param, code, body)
		return
	}
	var env struct {
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Errorf("(c) %s: decode %s: %v", what, body, err)
		return
	}
	if env.Message != "Parameter verification failed.\n" || env.Errors[param] != want {
		t.Errorf("(c) %s %s: want errors[%s]=%q, got %s", what, param, param, want, body)
	}
}

// shapeQuirks are documented places where PVE's answers differ from its own
// schema and the simulator follows the real answer.
var shapeQuirks = map[string]string{
	// /cluster/nextid returns the VMID as a string.
	"GET /cluster/nextid data": "string-int",
	// disks/list sets osdid-list to null for disks without OSDs.
	"GET /nodes/{node}/disks/list data[].osdid-list": "null",
}

// checkShape compares a decoded JSON value with a schema "returns" node.
func checkShape(key, at string, v any, sch map[string]any) []string {
	if sch == nil {
		return nil
	}
	quirkAt := regexp.MustCompile(`\[\d+\]`).ReplaceAllString(at, "[]")
	quirk := shapeQuirks[key+" "+quirkAt]
	typ, _ := sch["type"].(string)
	if v == nil {
		if typ == "null" || quirk == "null" || truthyAny(sch["optional"]) {
			return nil
		}
		return []string{fmt.Sprintf("%s %s: null, schema type %s", key, at, typ)}
	}
	var diffs []string
	bad := func(what string) []string {
		return []string{fmt.Sprintf("%s %s: %s (value %v)", key, at, what, v)}
	}
	switch typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return bad("not an object")
		}
		props, _ := sch["properties"].(map[string]any)
		for name, raw := range props {
			ps, _ := raw.(map[string]any)
			if strings.HasSuffix(name, "[n]") {
				continue // indexed families are checked through their members below
			}
			val, present := obj[name]
			if !present {
				if !truthyAny(ps["optional"]) {
					diffs = append(diffs, fmt.Sprintf("%s %s: required property %q missing", key, at, name))
				}
				continue
			}
			diffs = append(diffs, checkShape(key, at+"."+name, val, ps)...)
		}
		for name, val := range obj {
			if _, known := props[name]; known {
				continue
			}
			if fam := strings.TrimRight(name, "0123456789"); fam != name {
				if ps, ok := props[fam+"[n]"].(map[string]any); ok {
					diffs = append(diffs, checkShape(key, at+"."+name, val, ps)...)
				}
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return bad("not an array")
		}
		items, _ := sch["items"].(map[string]any)
		for i, e := range arr {
			diffs = append(diffs, checkShape(key, fmt.Sprintf("%s[%d]", at, i), e, items)...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			return bad("not a string")
		}
		if enum, ok := sch["enum"].([]any); ok && len(enum) > 0 {
			found := false
			for _, e := range enum {
				found = found || fmt.Sprint(e) == v
			}
			if !found {
				return bad(fmt.Sprintf("not in enum %v", enum))
			}
		}
	case "integer":
		if s, ok := v.(string); ok && quirk == "string-int" && isInteger(s) {
			return nil
		}
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return bad("not an integer")
		}
	case "number":
		if _, ok := v.(float64); ok {
			return nil
		}
		// Perl keeps number-typed config values as the strings it parsed.
		if s, ok := v.(string); ok && isNumber(s) && strings.Contains(key, "/config") {
			return nil
		}
		return bad("not a number")
	case "boolean":
		// Perl booleans are the integers 0 and 1.
		if f, ok := v.(float64); !ok || (f != 0 && f != 1) {
			return bad("not a 0/1 boolean")
		}
	case "null":
		return bad("not null")
	}
	return diffs
}

func truthyAny(v any) bool {
	switch x := v.(type) {
	case float64:
		return x != 0
	case bool:
		return x
	case string:
		return x != "" && x != "0"
	}
	return false
}
