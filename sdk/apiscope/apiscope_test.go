package apiscope

import (
	"net/url"
	"strings"
	"testing"
)

var testScopes = []Scope{
	{"GET", "/version"},
	{"GET", "/nodes/{node}/qemu/{vmid}/status/current"},
	{"POST", "/nodes/{node}/qemu/{vmid}/status/start"},
	{"GET", "/nodes/{node}/storage/{storage}/content"},
	{"DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"},
	{"GET", "/nodes/{node}/tasks/{upid}/status"},
	{"GET", "/cluster/{any}"},
	{"GET", "/nodes/{node}/disks/**"},
}

func TestMatch(t *testing.T) {
	cases := []struct {
		method, path string
		want         bool
	}{
		{"GET", "/version", true},
		{"POST", "/version", false},
		{"GET", "/version/", false},
		{"GET", "/nodes/pve/qemu/100/status/current", true},
		{"GET", "/nodes/other/qemu/100/status/current", false}, // {node} is this host only
		{"GET", "/nodes/pve/qemu/0100/status/current", false},  // no leading zero
		{"GET", "/nodes/pve/qemu/abc/status/current", false},
		{"GET", "/nodes/pve/qemu/1000000000/status/current", false},
		{"POST", "/nodes/pve/qemu/100/status/start", true},
		{"POST", "/nodes/pve/qemu/100/status/stop", false},
		{"GET", "/nodes/pve/storage/local-lvm/content", true},
		{"GET", "/nodes/pve/storage/1bad/content", false},
		{"DELETE", "/nodes/pve/storage/pbs/content/pbs:backup%2Fvm%2F100%2F2024-01-01T00:00:00Z", true},
		{"DELETE", "/nodes/pve/storage/pbs/content/pbs:backup%2F..%2F..%2Fetc", false},
		{"DELETE", "/nodes/pve/storage/pbs/content/novolume", false},
		{"GET", "/nodes/pve/tasks/UPID:pve:0000A1B2:0001C3D4:65A1B2C3:qmstart:100:root@pam:/status", true},
		{"GET", "/nodes/pve/tasks/notaupid/status", false},
		{"GET", "/cluster/resources", true},
		{"GET", "/cluster/resources/x", false},
		{"GET", "/cluster/a%2Fb", false}, // {any} is one segment, no encoded slash
		{"GET", "/nodes/pve/disks/list", true},
		{"GET", "/nodes/pve/disks/smart/x", true},
		{"GET", "/nodes/pve/disks", false}, // /** needs at least one deeper segment
		// Traversal and smuggling tricks.
		{"GET", "/nodes/pve/qemu/100/status/current/../../../../access", false},
		{"GET", "/nodes/pve/disks/../../../access/users", false},
		{"GET", "/nodes/pve/disks/%2e%2e/%2e%2e/access", false},
		{"GET", "/nodes/pve/disks/list%3Fx=1", false},
		{"GET", "/nodes/pve/disks/list?x=1", false},
		{"GET", "/nodes/pve/disks/a%252Fb", false},
		{"GET", "/nodes/pve//disks/list", false},
		{"GET", "/nodes/pve/disks/a%00", false},
		{"GET", "/nodes/pve/disks/%zz", false},
		{"GET", "nodes/pve/disks/list", false},
	}
	set, err := Compile(testScopes)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if got := Match(testScopes, "pve", c.method, c.path); got != c.want {
			t.Errorf("Match(%s %s) = %v, want %v", c.method, c.path, got, c.want)
		}
		if got := set.Allows("pve", c.method, c.path); got != c.want {
			t.Errorf("Allows(%s %s) = %v, want %v", c.method, c.path, got, c.want)
		}
	}
	if Match(testScopes, "", "GET", "/nodes//qemu/100/status/current") {
		t.Error("an empty node matched {node}")
	}
}

func TestCheckReturnsCleanPath(t *testing.T) {
	set, err := Compile(testScopes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := set.Check("pve", "DELETE", "/nodes/pve/storage/pbs/content/pbs%3Abackup%2Fvm%2F100")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/nodes/pve/storage/pbs/content/pbs:backup%2Fvm%2F100"; got != want {
		t.Errorf("clean path = %q, want %q", got, want)
	}
	if _, err := set.Check("pve", "GET", "/access/users"); err == nil || !strings.Contains(err.Error(), "GET /access/users is not in the declared API scopes") {
		t.Errorf("Check refused path: err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := map[Scope]string{
		{"GET", "/nodes/{node}/qemu"}:          "",
		{"PATCH", "/version"}:                  "method must be GET, POST, PUT or DELETE",
		{"get", "/version"}:                    "method must be",
		{"GET", "version"}:                     `must start with "/"`,
		{"GET", "/**"}:                         "would grant the whole API",
		{"GET", "/nodes/**/x"}:                 "only allowed as the last segment",
		{"GET", "/nodes/{host}"}:               "unknown wildcard",
		{"GET", "/nodes//x"}:                   "empty path segment",
		{"GET", "/nodes/a b"}:                  "characters outside",
		{"GET", "/nodes/.."}:                   "characters outside",
		{"GET", "/"}:                           "",
		{"DELETE", "/nodes/{node}/lxc/{vmid}"}: "",
	}
	for s, want := range cases {
		err := Validate(s)
		switch {
		case want == "" && err != nil:
			t.Errorf("Validate(%s) = %v, want nil", s, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("Validate(%s) = %v, want error containing %q", s, err, want)
		}
	}
	if _, err := Compile([]Scope{{"GET", "/ok"}, {"PUT", "x"}, {"GET", "/**"}}); err == nil ||
		!strings.Contains(err.Error(), `"PUT x"`) || !strings.Contains(err.Error(), `"GET /**"`) {
		t.Errorf("Compile should name every bad scope: %v", err)
	}
}

func TestClean(t *testing.T) {
	good := map[string]string{
		"/":                           "/",
		"/nodes/pve":                  "/nodes/pve",
		"/nodes/pve/tasks/UPID:pve:1": "/nodes/pve/tasks/UPID:pve:1",
		"/a%3Ab":                      "/a:b",
		"/x/a%2Fb":                    "/x/a%2Fb",
	}
	for in, want := range good {
		got, err := Clean(in)
		if err != nil || got != want {
			t.Errorf("Clean(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "//", "/a/", "/a/../b", "/a/./b", "/%2e%2e", "/a%2F..%2Fb", "/a%2F%2Fb",
		"/a?b", "/a#b", `/a\b`, "/a%5Cb", "/a%00", "/a%", "/a%252F", "/a b", "/" + strings.Repeat("a", MaxPathLen)} {
		if got, err := Clean(bad); err == nil {
			t.Errorf("Clean(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"/version", "/nodes/pve/qemu/100/status/current", "/nodes/pve/disks/%2e%2e/x",
		"/nodes/pve/storage/pbs/content/pbs:backup%2Fvm", "/a%2F..%2Fb", "//", "/nodes/pve/disks/a%252F"} {
		f.Add("GET", s)
	}
	set, err := Compile(testScopes)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		clean, err := set.Check("pve", method, path)
		if err != nil {
			return
		}
		// What passes must be canonical, decode to safe segments and
		// match again unchanged.
		again, err := Clean(clean)
		if err != nil || again != clean {
			t.Fatalf("allowed %q cleaned to %q, which re-cleans to %q, %v", path, clean, again, err)
		}
		if !set.Allows("pve", method, clean) {
			t.Fatalf("allowed %q but not its clean form %q", path, clean)
		}
		for _, seg := range strings.Split(clean[1:], "/") {
			dec, err := url.PathUnescape(seg)
			if err != nil {
				t.Fatalf("clean path %q has a bad escape", clean)
			}
			for _, part := range strings.Split(dec, "/") {
				if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "?#\\%\x00") {
					t.Fatalf("allowed %q holds unsafe segment %q", path, dec)
				}
			}
		}
	})
}
