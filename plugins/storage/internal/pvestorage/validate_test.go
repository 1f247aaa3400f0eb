package pvestorage

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/internal/testenv"
)

// wantInvalid asserts err is an invalid-params *Error naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want *Error for field %q", err, err, field)
	}
	if e.Code != CodeInvalidParams || e.Field != field {
		t.Fatalf("got code %v field %q (%v), want invalid params on %q", e.Code, e.Field, err, field)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Fatalf("message %q does not start with the field name %q", err, field)
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"local", "local-lvm", "nas_1", "a1", "PBS.offsite", "felhom-selftest"} {
		if err := ValidateID("id", ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "1abc", "abc-", "a b", "a/b", "../x", "a;b", "local\n"} {
		wantInvalid(t, ValidateID("id", bad), "id")
	}
}

func TestValidateServer(t *testing.T) {
	for _, ok := range []string{"192.0.2.10", "2001:db8::1", "nas", "nas.example.com", "nas.example.com.", "x-1.lan"} {
		if err := ValidateServer("options.server", ok); err != nil {
			t.Errorf("ValidateServer(%q) = %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"":                        "required",
		"0.0.0.0":                 "unspecified",
		"[2001:db8::1]":           "without brackets",
		"fe80::1%eth0":            "zone",
		"192.0.2.300":             "not a valid IPv4",
		"nas_1.lan":               "bad label",
		"-nas":                    "bad label",
		"nas..lan":                "bad label",
		"nas.lan:2049":            "bad label",
		"nas/../x":                "bad label",
		strings.Repeat("a.", 130): "DNS limit",
	} {
		err := ValidateServer("options.server", bad)
		wantInvalid(t, err, "options.server")
		if !strings.Contains(err.Error(), why) {
			t.Errorf("ValidateServer(%q) = %q, want it to say %q", bad, err, why)
		}
	}
}

func TestValidatePath(t *testing.T) {
	for _, ok := range []string{"/", "/srv/nfs/backup", "/srv/nfs/backup/", "/mnt/a b"} {
		if err := ValidatePath("options.export", ok); err != nil {
			t.Errorf("ValidatePath(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "srv/nfs", "/srv/../etc", "/srv;rm", "/srv/(x)"} {
		wantInvalid(t, ValidatePath("options.export", bad), "options.export")
	}
}

func TestValidateSpec(t *testing.T) {
	good := Spec{ID: "nas", Type: "nfs", Content: []string{"backup"}, Nodes: []string{"pve1"},
		Options: map[string]string{"server": "192.0.2.10", "export": "/srv/backup", "options": "vers=4.2"}}
	if err := ValidateSpec(good, false); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	with := func(mut func(*Spec)) Spec {
		s := good
		s.Options = map[string]string{}
		for k, v := range good.Options {
			s.Options[k] = v
		}
		mut(&s)
		return s
	}
	cases := []struct {
		name   string
		spec   Spec
		update bool
		field  string
	}{
		{"bad id", with(func(s *Spec) { s.ID = "x" }), false, "id"},
		{"no type on create", with(func(s *Spec) { s.Type = "" }), false, "type"},
		{"unknown type", with(func(s *Spec) { s.Type = "floppy" }), true, "type"},
		{"bad content", with(func(s *Spec) { s.Content = []string{"backup", "movies"} }), false, "content[1]"},
		{"bad node", with(func(s *Spec) { s.Nodes = []string{"pve_1"} }), false, "nodes[0]"},
		{"missing export", with(func(s *Spec) { delete(s.Options, "export") }), false, "options.export"},
		{"bad server", with(func(s *Spec) { s.Options["server"] = "nas:/x" }), false, "options.server"},
		{"unknown option", with(func(s *Spec) { s.Options["sever"] = "x" }), false, "options.sever"},
		{"content as option", with(func(s *Spec) { s.Options["content"] = "iso" }), false, "options.content"},
		{"digest as option", with(func(s *Spec) { s.Options["digest"] = "ab" }), true, "options.digest"},
		{"bad bool", with(func(s *Spec) { s.Options["shared"] = "yes" }), false, "options.shared"},
		{"bad port", with(func(s *Spec) { s.Options["port"] = "70000" }), false, "options.port"},
		{"bad fingerprint", with(func(s *Spec) { s.Options["fingerprint"] = "AB:CD" }), false, "options.fingerprint"},
		{"newline", with(func(s *Spec) { s.Options["options"] = "vers=4\ndisable 0" }), false, "options.options"},
		{"empty value", with(func(s *Spec) { s.Options["options"] = "" }), false, "options.options"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantInvalid(t, ValidateSpec(c.spec, c.update), c.field) })
	}
	// An update may leave type and required options out.
	if err := ValidateSpec(Spec{ID: "nas", Content: []string{"iso"}}, true); err != nil {
		t.Errorf("partial update refused: %v", err)
	}
}

func TestSecretNotEchoed(t *testing.T) {
	const secret = "s3cr3t-value\nmore"
	err := ValidateSpec(Spec{ID: "esx", Type: "esxi", Options: map[string]string{
		"server": "192.0.2.1", "username": "root", "password": secret}}, false)
	wantInvalid(t, err, "options.password")
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %q echoes the secret", err)
	}
}

type schemaParam struct {
	Name string   `json:"name"`
	Type string   `json:"type"`
	Enum []string `json:"enum"`
}

type schemaEndpoint struct {
	Method     string        `json:"method"`
	Path       string        `json:"path"`
	Parameters []schemaParam `json:"parameters"`
}

// loadStorageSchema returns the parameters (name -> type) of POST /storage
// and PUT /storage/{storage}, and the storage type enumeration.
func loadStorageSchema(t *testing.T) (post, put map[string]string, types []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.SharedDir(t), "pve-api", "schema-subset.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Endpoints []schemaEndpoint `json:"endpoints"`
		Extra     []schemaEndpoint `json:"extra_endpoints"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	params := func(method, path string) map[string]string {
		for _, e := range append(doc.Endpoints, doc.Extra...) {
			if e.Method != method || e.Path != path {
				continue
			}
			m := map[string]string{}
			for _, p := range e.Parameters {
				m[p.Name] = p.Type
				if method == "POST" && p.Name == "type" {
					types = append([]string(nil), p.Enum...)
				}
			}
			return m
		}
		t.Fatalf("schema has no %s %s", method, path)
		return nil
	}
	return params("POST", "/storage"), params("PUT", "/storage/{storage}"), types
}

// TestOptionsMatchSchema keeps the option tables in step with the real
// PVE API schema: every POST /storage property is known, its kind fits its
// type, and the fixed ones are exactly those PUT does not take.
func TestOptionsMatchSchema(t *testing.T) {
	post, put, types := loadStorageSchema(t)
	own := map[string]bool{"storage": true, "type": true, "content": true, "nodes": true, "disable": true}
	for name, typ := range post {
		if own[name] {
			continue
		}
		kind, ok := options[name]
		if !ok {
			t.Errorf("POST /storage property %q missing from options", name)
			continue
		}
		if (typ == "boolean") != (kind == boolean) {
			t.Errorf("option %q: schema type %s, table kind %d", name, typ, kind)
		}
		_, inPut := put[name]
		if fixedOptions[name] == inPut {
			t.Errorf("option %q: fixed=%v but PUT takes it=%v", name, fixedOptions[name], inPut)
		}
	}
	for name := range options {
		if _, ok := post[name]; !ok {
			t.Errorf("options has %q, which POST /storage does not take", name)
		}
	}
	sort.Strings(types)
	if strings.Join(types, ",") != strings.Join(Types, ",") {
		t.Errorf("Types = %v, schema says %v", Types, types)
	}
}

func FuzzValidateServer(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "nas.lan", "2001:db8::1", "[::1]", "a..b", "fe80::1%1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateServer("options.server", s)
		if err == nil && (s == "" || strings.ContainsAny(s, "/[] \n;,@%")) {
			t.Fatalf("accepted %q with a character no host name or address has", s)
		}
	})
}
