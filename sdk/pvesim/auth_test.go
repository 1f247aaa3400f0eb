package pvesim

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAuthMissingAndBadTokens(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	r := h.do("", http.MethodGet, "/version", nil).fails(t, 401, "No ticket")
	if len(r.body) != 0 {
		t.Errorf("401 body = %q, want empty", r.body)
	}
	tokenID, secret, _ := strings.Cut(h.tok, "=")
	for name, tok := range map[string]string{
		"wrong secret":   tokenID + "=00000000-0000-0000-0000-000000000000",
		"unknown token":  "root@pam!nope=" + secret,
		"unknown user":   "nobody@pve!admin=" + secret,
		"no secret":      tokenID,
		"bad token name": "root@pam!1x=" + secret,
		"empty secret":   tokenID + "=",
	} {
		t.Run(name, func(t *testing.T) {
			h.do(tok, http.MethodGet, "/version", nil).fails(t, 401, "Authentication failed!")
		})
	}
	req, _ := http.NewRequest(http.MethodGet, h.s.URL()+apiBase+"/version", nil)
	req.Header.Set("Authorization", "Bearer "+h.tok)
	h.send(req).fails(t, 401, "No ticket")
}

func TestAuthHeaderParsing(t *testing.T) {
	h := newHarness(t, Options{})
	tokenID, secret, _ := strings.Cut(h.tok, "=")
	for name, header := range map[string]string{
		"space separator":   "PVEAPIToken " + h.tok,
		"cookie-like tail":  "PVEAPIToken=" + h.tok + "; Path=/",
		"uri-escaped value": "PVEAPIToken=" + url.QueryEscape(tokenID) + "%3D" + secret,
		"after other auth":  "Foo bar PVEAPIToken=" + h.tok,
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.s.URL()+apiBase+"/version", nil)
			req.Header.Set("Authorization", header)
			h.send(req).ok(t, nil)
		})
	}
}

func TestAuthFailDelay(t *testing.T) {
	h := newHarness(t, Options{AuthFailDelay: 80 * time.Millisecond})
	start := time.Now()
	h.do("root@pam!admin=wrong", http.MethodGet, "/version", nil).fails(t, 401, "Authentication failed!")
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("401 came after %v, want the configured delay", d)
	}
}

func TestAuditTokenIsReadOnly(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	audit := h.s.AuditToken()
	if !strings.HasPrefix(audit, "root@pam!audit=") {
		t.Fatalf("audit token %q", audit)
	}
	h.do(audit, http.MethodGet, "/nodes/pve/lxc/100/config", nil).ok(t, nil)
	h.do(audit, http.MethodGet, "/cluster/status", nil).ok(t, nil)
	cases := []struct {
		method, path string
		params       url.Values
		what         string
	}{
		{http.MethodPut, "/nodes/pve/lxc/100/config", m("memory", "2048"),
			"/vms/100, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options"},
		{http.MethodPost, "/nodes/pve/qemu/101/snapshot", m("snapname", "s1"), "/vms/101, VM.Snapshot"},
		{http.MethodPost, "/nodes/pve/qemu/101/snapshot/s1/rollback", nil, "/vms/101, VM.Snapshot|VM.Snapshot.Rollback"},
		{http.MethodPost, "/nodes/pve/lxc/100/status/stop", nil, "/vms/100, VM.PowerMgmt"},
		{http.MethodDelete, "/nodes/pve/qemu/101", nil, "/vms/101, VM.Allocate"},
		{http.MethodGet, "/nodes/pve/hardware/usb", nil, "/, Sys.Modify"},
		{http.MethodPost, "/storage", m("storage", "x1", "type", "dir", "path", "/x"), "/storage, Datastore.Allocate"},
		{http.MethodGet, "/storage/local", nil, "/storage/local, Datastore.Allocate"},
		{http.MethodPost, "/nodes/pve/lxc", m("vmid", "200", "ostemplate", "local:vztmpl/x.tar.zst"), "/vms/200, VM.Allocate"},
		{http.MethodPost, "/nodes/pve/vzdump", m("vmid", "100"), "/storage/local, Datastore.AllocateSpace"},
	}
	for _, c := range cases {
		t.Run(c.method+c.path, func(t *testing.T) {
			want := "Permission check failed (" + c.what + ")"
			r := h.do(audit, c.method, c.path, c.params).fails(t, 403, want)
			if r.message == nil || *r.message != want+"\n" || string(r.data) != "null" {
				t.Errorf("body %s", r.body)
			}
		})
	}
}

func TestPermissionCheckedBeforeValidation(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	// PVE checks permissions before it validates parameters.
	h.do(h.s.AuditToken(), http.MethodPut, "/nodes/pve/lxc/100/config", m("memory", "abc")).
		fails(t, 403, "Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)")
	// "or" checks fail with the bare message.
	tok, err := h.s.AddToken("eve@pve", "tk", true, map[string][]string{"/vms": {"VM.Audit"}})
	if err != nil {
		t.Fatal(err)
	}
	h.do(tok, http.MethodGet, "/nodes/pve/disks/list", nil).fails(t, 403, "Permission check failed")
}

func TestPrivsepIntersection(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	s := h.s
	// A new user gets the ACL too, so its first privsep token holds exactly it.
	a, err := s.AddToken("bob@pve", "ta", true, map[string][]string{"/vms/100": {"VM.Audit", "VM.PowerMgmt"}})
	if err != nil {
		t.Fatal(err)
	}
	h.do(a, http.MethodGet, "/nodes/pve/lxc/100/config", nil).ok(t, nil)
	h.do(a, http.MethodGet, "/nodes/pve/qemu/101/config", nil).fails(t, 403, "Permission check failed (/vms/101, VM.Audit)")

	// A second privsep token gets token ACL ∩ user privileges.
	b, err := s.AddToken("bob@pve", "tb", true, map[string][]string{
		"/":        {"VM.Audit"},
		"/vms/100": {"VM.Audit", "VM.Snapshot"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.do(b, http.MethodGet, "/nodes/pve/lxc/100/config", nil).ok(t, nil)
	h.do(b, http.MethodPost, "/nodes/pve/lxc/100/snapshot", m("snapname", "x1")).fails(t, 403, "Permission check failed (/vms/100, VM.Snapshot)")
	h.do(b, http.MethodGet, "/nodes/pve/qemu/101/config", nil).fails(t, 403, "Permission check failed (/vms/101, VM.Audit)")

	// privsep=0 tokens get exactly the user's privileges.
	c, err := s.AddToken("bob@pve", "tc", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.do(c, http.MethodPost, "/nodes/pve/lxc/100/status/stop", nil).upid(t)
	h.do(c, http.MethodGet, "/nodes/pve/qemu/101/config", nil).fails(t, 403, "Permission check failed (/vms/101, VM.Audit)")

	// Changing the user's ACL changes what every token of it can do.
	if err := s.SetUserACL("bob@pve", map[string][]string{"/vms": {"@PVEVMAdmin"}}); err != nil {
		t.Fatal(err)
	}
	h.do(c, http.MethodGet, "/nodes/pve/qemu/101/config", nil).ok(t, nil)
	h.do(a, http.MethodGet, "/nodes/pve/qemu/101/config", nil).fails(t, 403, "Permission check failed (/vms/101, VM.Audit)")
	if err := s.SetUserACL(rootUser, nil); err == nil {
		t.Error("SetUserACL(root@pam) succeeded")
	}
	if _, err := s.AddToken("bob@pve", "td", true, map[string][]string{"/": {"VM.Fly"}}); err == nil || !strings.Contains(err.Error(), "VM.Fly") {
		t.Errorf("unknown privilege: err = %v", err)
	}
	if _, err := s.AddToken("bad user", "td", true, nil); err == nil {
		t.Error("AddToken accepted an invalid user ID")
	}
}

func TestACLResolution(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	// A deeper path replaces what is inherited from above.
	tok, err := h.s.AddToken("carol@pve", "tk", true, map[string][]string{
		"/":        {"@PVEAuditor"},
		"/vms/100": {"VM.PowerMgmt"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.do(tok, http.MethodGet, "/nodes/pve/lxc/100/config", nil).fails(t, 403, "Permission check failed (/vms/100, VM.Audit)")
	h.do(tok, http.MethodGet, "/nodes/pve/qemu/101/config", nil).ok(t, nil)
	// NoAccess cancels everything on its path.
	tok2, err := h.s.AddToken("dave@pve", "tk", true, map[string][]string{
		"/":        {"@Administrator"},
		"/vms/101": {"@NoAccess"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.do(tok2, http.MethodGet, "/nodes/pve/qemu/101/config", nil).fails(t, 403, "Permission check failed (/vms/101, VM.Audit)")
	h.do(tok2, http.MethodGet, "/nodes/pve/lxc/100/config", nil).ok(t, nil)
}

func TestCompileACLPropagation(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.users["u@pve"] = &user{id: "u@pve", enabled: true}
	s.acl = append(s.acl,
		aclEntry{path: "/vms", ugid: "u@pve", role: "PVEAuditor", propagate: false},
		aclEntry{path: "/storage", ugid: "u@pve", role: "PVEDatastoreAdmin", propagate: true},
	)
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.permissions("u@pve", "/vms"); !got["VM.Audit"] && len(got) == 0 {
		t.Errorf("/vms: %v", got)
	}
	if p, ok := s.permissions("u@pve", "/vms")["VM.Audit"]; !ok || p {
		t.Errorf("/vms VM.Audit: present %v propagate %v, want present and not propagating", ok, p)
	}
	if got := s.permissions("u@pve", "/vms/100"); len(got) != 0 {
		t.Errorf("non-propagating ACL leaked to /vms/100: %v", got)
	}
	if p, ok := s.permissions("u@pve", "/storage/local")["Datastore.Allocate"]; !ok || !p {
		t.Errorf("propagating ACL missing on /storage/local")
	}
	if got := s.permissions("u@pve", "//storage///local/"); !got["Datastore.Audit"] {
		t.Errorf("path not normalized: %v", got)
	}
	if len(s.permissions(rootUser, "/anything")) != len(allPrivileges) {
		t.Error("root@pam lacks privileges")
	}
}

func TestAccessPermissions(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	var perms map[string]map[string]int
	h.do(h.s.AuditToken(), http.MethodGet, "/access/permissions", nil).ok(t, &perms)
	if perms["/"]["Sys.Audit"] != 1 || perms["/vms"]["VM.Audit"] != 1 {
		t.Errorf("audit permissions: %v", perms)
	}
	if _, ok := perms["/"]["Sys.Modify"]; ok {
		t.Errorf("auditor has Sys.Modify: %v", perms["/"])
	}
	perms = nil
	h.do(h.s.AuditToken(), http.MethodGet, "/access/permissions", m("path", "/vms/100")).ok(t, &perms)
	if len(perms) != 1 || perms["/vms/100"]["VM.Audit"] != 1 {
		t.Errorf("path permissions: %v", perms)
	}
	tok, _ := h.s.AddToken("frank@pve", "tk", true, map[string][]string{"/vms/100": {"VM.Audit"}})
	h.do(tok, http.MethodGet, "/access/permissions", m("userid", "root@pam!admin")).
		fails(t, 403, "Permission check failed (/access, Sys.Audit)")
	perms = nil
	h.do(tok, http.MethodGet, "/access/permissions", nil).ok(t, &perms)
	if len(perms) != 1 || perms["/vms/100"]["VM.Audit"] != 1 {
		t.Errorf("own permissions: %v", perms)
	}
	// The auditor may read others' permissions (Sys.Audit on /access).
	perms = nil
	h.do(h.s.AuditToken(), http.MethodGet, "/access/permissions", m("userid", "frank@pve!tk")).ok(t, &perms)
	if perms["/vms/100"]["VM.Audit"] != 1 {
		t.Errorf("frank's permissions seen by auditor: %v", perms)
	}
}

func TestRootOnlyOptions(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	h.put("/nodes/pve/qemu/101/config", m("cores", "4", "skiplock", "1")).
		fails(t, 400, "Parameter verification failed.")
	r := h.put("/nodes/pve/qemu/101/config", m("args", "-foo"))
	r.fails(t, 500, "only root can set 'args' config")
	h.put("/nodes/pve/lxc/100/config", m("features", "nesting=1,keyctl=1")).
		fails(t, 403, "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)")
	h.put("/nodes/pve/lxc/100/config", m("dev0", "/dev/ttyUSB0")).
		fails(t, 403, "Permission check failed (configuring device passthrough is only allowed for root@pam)")
	// Nesting alone needs VM.Allocate, which the admin token has.
	h.put("/nodes/pve/lxc/100/config", m("features", "nesting=0")).ok(t, nil)
	// startup needs Sys.Modify on / besides VM.Config.Options.
	tok, _ := h.s.AddToken("gina@pve", "tk", true, map[string][]string{"/vms": {"@PVEVMAdmin"}})
	h.do(tok, http.MethodPut, "/nodes/pve/qemu/101/config", m("startup", "order=1")).
		fails(t, 403, "Permission check failed (/, Sys.Modify)")
	h.do(tok, http.MethodPut, "/nodes/pve/qemu/101/config", m("scsi1", "local-lvm:4")).
		fails(t, 403, "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)")
	h.do(tok, http.MethodPut, "/nodes/pve/qemu/101/config", m("onboot", "1")).ok(t, nil)
}

func FuzzExtractAuthValue(f *testing.F) {
	f.Add("PVEAPIToken=root@pam!admin=0b7a")
	f.Add("PVEAPIToken root%40pam!admin=x; y")
	f.Add("xPVEAPIToken=a PVEAPIToken=b")
	f.Add("PVEAPIToken")
	f.Add("PVEAPIToken=%zz%4")
	f.Fuzz(func(t *testing.T, header string) {
		v, ok := extractAuthValue(header, "PVEAPIToken")
		if ok && (v == "" || strings.Contains(v, ";") && !strings.Contains(header, "%3B") && !strings.Contains(header, "%3b")) {
			t.Errorf("extractAuthValue(%q) = %q", header, v)
		}
		if id, secret, ok := parseTokenValue(v); ok {
			if id+"="+secret != v || !tokenIDRE.MatchString(id) {
				t.Errorf("parseTokenValue(%q) = %q, %q", v, id, secret)
			}
		}
	})
}
