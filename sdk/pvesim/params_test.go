package pvesim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestValidationMessages(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	cases := []struct {
		name   string
		method string
		path   string
		params url.Values
		param  string
		want   string
	}{
		{"unknown", http.MethodGet, "/nodes/pve/tasks", m("bogus", "1"), "bogus",
			"property is not defined in schema and the schema does not allow additional properties"},
		{"integer", http.MethodGet, "/nodes/pve/tasks", m("limit", "abc"), "limit", "type check ('integer') failed - got 'abc'"},
		{"boolean", http.MethodGet, "/nodes/pve/tasks", m("errors", "true"), "errors", "type check ('boolean') failed - got 'true'"},
		{"minimum", http.MethodPut, "/nodes/pve/lxc/100/config", m("memory", "8"), "memory", "value must have a minimum value of 16"},
		// The pve-vmid format is checked before the range.
		{"vmid below range", http.MethodGet, "/nodes/pve/tasks", m("vmid", "99"), "vmid", "invalid format - value does not look like a valid VM ID\n"},
		{"maximum", http.MethodPut, "/nodes/pve/lxc/100/config", m("tty", "7"), "tty", "value must have a maximum value of 6"},
		{"pattern", http.MethodPut, "/nodes/pve/qemu/101/config", m("bootdisk", "floppy0"), "bootdisk", "value does not match the regex pattern"},
		{"enum", http.MethodGet, "/nodes/pve/tasks", m("source", "x"), "source", "value 'x' does not have a value in the enumeration 'archive, active, all'"},
		{"missing", http.MethodPost, "/nodes/pve/lxc/100/snapshot", m("description", "d"), "snapname", "property is missing and it is not optional"},
		{"maxLength", http.MethodPost, "/nodes/pve/lxc/100/snapshot", m("snapname", "a"+strings.Repeat("b", 40)), "snapname", "value may only be 40 characters long"},
		{"format", http.MethodPost, "/nodes/pve/lxc/100/snapshot", m("snapname", "1abc"), "snapname", "invalid format - invalid configuration ID '1abc'\n"},
		{"list format", http.MethodPut, "/nodes/pve/lxc/100/config", m("delete", "cores,-x"), "delete", "invalid format - invalid configuration ID '-x'\n"},
		{"requires", http.MethodPut, "/nodes/pve/qemu/101/config", m("force", "1", "cores", "2"), "delete", "missing property - 'force' requires this property"},
		{"path integer", http.MethodGet, "/nodes/pve/qemu/abc/status/current", nil, "vmid", "type check ('integer') failed - got 'abc'"},
		{"path format", http.MethodGet, "/nodes/pve/qemu/0100/status/current", nil, "vmid", "invalid format - value does not look like a valid VM ID\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(h.tok, c.method, c.path, c.params).fails(t, 400, "Parameter verification failed.")
			if r.message == nil || *r.message != "Parameter verification failed.\n" || string(r.data) != "null" {
				t.Errorf("body %s", r.body)
			}
			if got := r.errors[c.param]; got != c.want {
				t.Errorf("errors[%s] = %q, want %q (all: %v)", c.param, got, c.want, r.errors)
			}
		})
	}
}

func TestJSONBodies(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	h.doJSON(h.tok, http.MethodPut, "/nodes/pve/lxc/100/config", map[string]any{"memory": 2048, "onboot": false, "description": "from json"}).ok(t, nil)
	c := h.config("lxc", "100")
	if c["memory"] != float64(2048) || c["onboot"] != float64(0) || c["description"] != "from json\n" {
		t.Errorf("config after JSON PUT: %v", c)
	}
	r := h.doJSON(h.tok, http.MethodPut, "/nodes/pve/lxc/100/config", map[string]any{"hostname": true, "cores": 1.5, "tags": []string{"a"}})
	r.fails(t, 400, "Parameter verification failed.")
	want := map[string]string{
		"hostname": "type check ('string') failed - got JSON::PP::Boolean",
		"cores":    "type check ('integer') failed - got '1.5'",
		"tags":     "type check ('string') failed - got ARRAY",
	}
	if !reflect.DeepEqual(r.errors, want) {
		t.Errorf("errors = %v", r.errors)
	}
	// null means "not given": a required parameter stays missing.
	r = h.doJSON(h.tok, http.MethodPost, "/nodes/pve/lxc/100/snapshot", map[string]any{"snapname": nil})
	r.fails(t, 400, "Parameter verification failed.")
	if r.errors["snapname"] != "property is missing and it is not optional" {
		t.Errorf("errors = %v", r.errors)
	}
	req, _ := http.NewRequest(http.MethodPut, h.s.URL()+apiBase+"/nodes/pve/lxc/100/config", strings.NewReader("{bad"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
	r = h.send(req)
	if r.code != 501 || !strings.HasPrefix(r.reason, "malformed JSON string") || len(r.body) != 0 {
		t.Errorf("malformed JSON: %q %q", r.status, r.body)
	}
}

func TestQueryAndURIParameters(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	// The query string is merged on top of the body.
	req, _ := http.NewRequest(http.MethodPut, h.s.URL()+apiBase+"/nodes/pve/lxc/100/config?memory=768",
		strings.NewReader("memory=640&swap=256"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
	h.send(req).ok(t, nil)
	if c := h.config("lxc", "100"); c["memory"] != float64(768) || c["swap"] != float64(256) {
		t.Errorf("config: memory %v swap %v", c["memory"], c["swap"])
	}
	// A path parameter repeated with another value is refused.
	r := h.get("/nodes/pve/qemu/101/config", m("vmid", "102")).fails(t, 400, "Parameter verification failed.")
	if r.errors["vmid"] != "duplicate parameter (already defined in URI) with conflicting values!" {
		t.Errorf("errors = %v", r.errors)
	}
	h.get("/nodes/pve/qemu/101/config", m("vmid", "101")).ok(t, nil)
	// _dc (ExtJS cache buster) is ignored.
	h.get("/nodes/pve/qemu/101/config", m("_dc", "12345")).ok(t, nil)
	// Another node name fails in the proxy step, before validation.
	h.get("/nodes/pve2/qemu/abc/config", nil).
		fails(t, 500, "hostname lookup 'pve2' failed - failed to get address info for: pve2: Name or service not known")
	// Unsupported body types.
	req, _ = http.NewRequest(http.MethodPost, h.s.URL()+apiBase+"/nodes/pve/lxc/100/snapshot", strings.NewReader("x"))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
	h.send(req).fails(t, 506, "upload 'Content-Type 'text/plain' not implemented")
}

func TestDecodeURLEncoded(t *testing.T) {
	got := decodeURLEncoded("a=1&b=x+y%21;c=%zz&a=2&d&e=&f=g=h")
	want := map[string]pval{
		"a": {s: "1\x002"},
		"b": {s: "x y!"},
		"c": {s: "%zz"},
		"d": {kind: kUndef},
		"e": {s: ""},
		"f": {s: "g"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeURLEncoded = %#v", got)
	}
	if len(decodeURLEncoded("")) != 0 {
		t.Error("empty input gave values")
	}
}

func TestSplitListAndFormats(t *testing.T) {
	if got := splitList(" a, b;c  d "); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("splitList = %q", got)
	}
	if got := splitList("a b\x00c"); !reflect.DeepEqual(got, []string{"a b", "c"}) {
		t.Errorf("splitList NUL = %q", got)
	}
	for _, c := range []struct{ format, value, want string }{
		{"pve-vmid", "100", ""},
		{"pve-vmid", "99", "value does not look like a valid VM ID\n"},
		{"pve-vmid-list", "100,101 102", ""},
		{"pve-vmid-list", "100,abc", "value does not look like a valid VM ID\n"},
		{"pve-storage-id", "local-lvm", ""},
		{"pve-storage-id", "a", "storage ID 'a' contains illegal characters\n"},
		{"pve-node", "pve-1", ""},
		{"pve-node", "-pve", "value does not look like a valid node name\n"},
		{"dns-name", "a.example.com", ""},
		{"dns-name", "a..b", "value does not look like a valid DNS name\n"},
		{"pve-tag-list", "a;b+c", ""},
		{"pve-tag-list", "a;b c;!", "invalid characters in tag\n"},
		{"pve-startup-order", "order=1,up=30,down=60", ""},
		{"pve-startup-order", "fast", "unable to parse startup options\n"},
		{"pve-storage-content-list", "backup,iso", ""},
		{"pve-storage-content-list", "backup,movies", "invalid content type 'movies'\n"},
		{"pve-task-status-type-list", "ok,Error", ""},
		{"pve-volume-id", "local:iso/x.iso", ""},
		{"pve-volume-id", "x.iso", "unable to parse volume ID 'x.iso'\n"},
		{"pve-cpuset", "anything", ""},
		{"never-heard-of", "x", ""},
	} {
		if got := checkFormat(c.format, c.value); got != c.want {
			t.Errorf("checkFormat(%s, %q) = %q, want %q", c.format, c.value, got, c.want)
		}
	}
}

func TestFamilyLookup(t *testing.T) {
	e := params(qemuOptions())
	for name, want := range map[string]bool{"net0": true, "net31": true, "net32": false, "net01": false, "net": false, "scsi30": true, "unused255": true, "neta": false} {
		if got := e.lookup(name) != nil; got != want {
			t.Errorf("lookup(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestParamTablesAreWellFormed(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, rt := range s.routes {
		pathParams := map[string]bool{}
		for _, seg := range rt.segs {
			if strings.HasPrefix(seg, "{") {
				pathParams[seg[1:len(seg)-1]] = true
			}
		}
		for name := range pathParams {
			p, ok := rt.params.byName[name]
			if !ok || !p.inPath {
				t.Errorf("%s %s: path parameter %s not declared in_path", rt.method, rt.template, name)
			}
		}
		for _, p := range rt.params.list {
			if p.inPath && !pathParams[p.name] {
				t.Errorf("%s %s: %s declared in_path but not in the template", rt.method, rt.template, p.name)
			}
			if p.format != "" && !knownFormat(p.format) && !strings.HasSuffix(p.format, "-list") {
				t.Errorf("%s %s: %s has unknown format %s", rt.method, rt.template, p.name, p.format)
			}
		}
	}
}

// FuzzDecodeParams feeds arbitrary bodies and query strings through the
// parameter extraction and validation of a busy endpoint.
func FuzzDecodeParams(f *testing.F) {
	f.Add("memory=512&delete=cores", "digest=abc", "application/x-www-form-urlencoded")
	f.Add(`{"memory":512,"onboot":true,"net0":"name=eth0"}`, "", "application/json")
	f.Add(`[1,2]`, "", "application/json")
	f.Add(`{"a":{"b":1}}`, "x=%zz;y", "application/json")
	f.Add("a=%00&a=1&&=", "vmid=100", "")
	table := lxcConfigPutParams()
	f.Fuzz(func(t *testing.T, body, query, ctype string) {
		req := httptest.NewRequest(http.MethodPut, "/api2/json/nodes/pve/lxc/100/config", strings.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", ctype)
		params, err := extractParams(req)
		if err != nil {
			if err.code < 400 || err.code > 599 {
				t.Fatalf("bad error code %d", err.code)
			}
			return
		}
		errs := table.validate(params)
		for k, v := range errs {
			if v == "" {
				t.Fatalf("empty error for %q", k)
			}
		}
		if _, err := json.Marshal(errs); err != nil {
			t.Fatalf("errors not encodable: %v", err)
		}
	})
}

// FuzzServeHTTP sends arbitrary requests through the whole handler.
func FuzzServeHTTP(f *testing.F) {
	f.Add("GET", "/api2/json/nodes/pve/qemu/101/config", "", "")
	f.Add("PUT", "/api2/json/nodes/pve/lxc/100/config", "memory=512&delete=swap", "application/x-www-form-urlencoded")
	f.Add("POST", "/api2/json/nodes/pve/qemu/101/snapshot", `{"snapname":"s1"}`, "application/json")
	f.Add("DELETE", "/api2/json/nodes/pve/tasks/UPID:pve:00000001:FFFFFFFC:00000000:x::root@pam!admin:", "", "")
	f.Add("GET", "/api2/json/nodes/pve/storage/local/content?content=backup", "", "")
	f.Add("POST", "/api2/json/nodes/pve/vzdump", "vmid=100,101&storage=local", "")
	s, err := New(Options{Seed: true, TaskDuration: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, method, target, body, ctype string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || method == "" || strings.ContainsAny(method, " \t\r\n") {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
		req.Method = method
		req.URL = u
		req.RequestURI = target
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "PVEAPIToken="+s.AdminToken())
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code == 0 {
			t.Fatal("no status written")
		}
		if rec.Code == http.StatusOK {
			var env map[string]json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("200 body is not JSON: %v", err)
			}
			if _, ok := env["data"]; !ok {
				t.Fatalf("200 body without data: %s", rec.Body)
			}
		}
	})
}
