package pvestorage

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// simAPI is a bare Proxmox HTTP client for tests: it speaks to pvesim as the
// core's proxy would speak to a real node (token header, form bodies,
// {"data":...} envelope, error status with message and errors).
type simAPI struct {
	base, token string
	hc          *http.Client
	calls       []string
}

func (a *simAPI) Call(ctx context.Context, method, path string, params url.Values) (json.RawMessage, error) {
	a.calls = append(a.calls, method+" "+path)
	u := a.base + "/api2/json" + path
	var body io.Reader
	if method == "POST" || method == "PUT" {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "PVEAPIToken="+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	_ = json.Unmarshal(raw, &env)
	if resp.StatusCode != http.StatusOK {
		msg := env.Message
		if msg == "" {
			_, msg, _ = strings.Cut(resp.Status, " ")
		}
		return nil, &APIError{Status: resp.StatusCode, Message: msg, Errors: env.Errors}
	}
	return env.Data, nil
}

func newSim(t *testing.T) (*Service, *simAPI, *pvesim.Server) {
	t.Helper()
	sim := pvesim.Start(t, pvesim.Options{Node: "pve1", TaskDuration: -1})
	api := &simAPI{base: sim.URL(), token: sim.AdminToken(), hc: sim.Client(t)}
	return &Service{API: api, Node: "pve1"}, api, sim
}

func wantCode(t *testing.T, err error, code Code, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want %v", err, err, code)
	}
	if e.Code != code || e.Field != field {
		t.Fatalf("got %v field %q (%v), want %v field %q", e.Code, e.Field, err, code, field)
	}
}

func TestServiceReads(t *testing.T) {
	svc, api, _ := newSim(t)
	ctx := context.Background()

	list, err := svc.List(ctx, ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, st := range list {
		ids = append(ids, st.ID)
	}
	if !reflect.DeepEqual(ids, []string{"local", "local-lvm"}) {
		t.Fatalf("storages %v, want the seeded local and local-lvm", ids)
	}
	local := list[0]
	if local.Type != "dir" || !local.Active || !local.Enabled || local.Total == 0 || local.Used+local.Avail != local.Total ||
		!reflect.DeepEqual(local.Content, []string{"backup", "iso", "vztmpl"}) {
		t.Fatalf("local decoded as %+v", local)
	}
	if api.calls[0] != "GET /nodes/pve1/storage" {
		t.Errorf("list called %v", api.calls)
	}

	onlyISO, err := svc.List(ctx, ListFilter{Content: "iso"})
	if err != nil || len(onlyISO) != 1 || onlyISO[0].ID != "local" {
		t.Fatalf("content=iso filter: %v, %v", onlyISO, err)
	}
	lvm, err := svc.List(ctx, ListFilter{Type: "lvmthin"})
	if err != nil || len(lvm) != 1 || lvm[0].ID != "local-lvm" {
		t.Fatalf("type filter: %v, %v", lvm, err)
	}

	st, err := svc.Status(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, local) {
		t.Errorf("status %+v differs from list entry %+v", st, local)
	}
	_, err = svc.Status(ctx, "nope")
	wantCode(t, err, CodeNotFound, "")

	items, err := svc.Content(ctx, "local", ContentFilter{Content: "iso"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Content != "iso" || !strings.HasPrefix(items[0].VolID, "local:iso/") || items[0].Size == 0 {
		t.Fatalf("iso content %+v", items)
	}
	_, err = svc.Content(ctx, "local", ContentFilter{VMID: 5})
	wantCode(t, err, CodeInvalidParams, "vmid")
}

func TestDefineUpdateRemove(t *testing.T) {
	svc, api, _ := newSim(t)
	ctx := context.Background()
	spec := Spec{ID: "nas", Type: "nfs", Content: []string{"backup"}, Nodes: []string{"pve1"},
		Options: map[string]string{"server": "192.0.2.10", "export": "/srv/backup", "options": "vers=4.2"}}

	st, err := svc.Define(ctx, spec, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "nas" || st.Type != "nfs" || !st.Shared || !st.Enabled {
		t.Fatalf("defined storage reads %+v", st)
	}
	cfg, err := svc.Config(ctx, "nas")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Options["server"] != "192.0.2.10" || cfg.Options["export"] != "/srv/backup" || cfg.Digest == "" ||
		!reflect.DeepEqual(cfg.Nodes, []string{"pve1"}) {
		t.Fatalf("config %+v", cfg)
	}

	// A retried create with the same spec succeeds and writes nothing more.
	api.calls = nil
	if _, err := svc.Define(ctx, spec, false, ""); err != nil {
		t.Fatalf("identical create refused: %v", err)
	}
	if calls(api, "POST /storage") != 1 || calls(api, "PUT /storage/nas") != 0 {
		t.Errorf("retried create made calls %v", api.calls)
	}
	other := spec
	other.Options = map[string]string{"server": "192.0.2.99", "export": "/srv/backup"}
	_, err = svc.Define(ctx, other, false, "")
	wantCode(t, err, CodeConflict, "id")
	if !strings.Contains(err.Error(), "options.server differs") {
		t.Errorf("conflict does not say what differs: %v", err)
	}

	// Update under the digest: fixed export repeated unchanged is fine.
	upd := Spec{ID: "nas", Content: []string{"backup", "iso"}, Disable: true,
		Options: map[string]string{"export": "/srv/backup", "options": "vers=4.2,soft"}}
	api.calls = nil
	if _, err := svc.Define(ctx, upd, true, cfg.Digest); err != nil {
		t.Fatal(err)
	}
	after, err := svc.Config(ctx, "nas")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Disable || after.Options["options"] != "vers=4.2,soft" || !reflect.DeepEqual(after.Content, []string{"backup", "iso"}) {
		t.Fatalf("after update %+v", after)
	}
	if after.Digest == cfg.Digest {
		t.Error("digest unchanged by an update")
	}
	// The old digest is now stale: refused before any write.
	_, err = svc.Define(ctx, Spec{ID: "nas", Content: []string{"iso"}}, true, cfg.Digest)
	wantCode(t, err, CodeConflict, "digest")
	// Proxmox itself refuses a stale digest too (the race our check cannot see).
	_, err = svc.API.Call(ctx, "PUT", "/storage/nas", url.Values{"content": {"iso"}, "digest": {cfg.Digest}})
	wantCode(t, classify(err, "put"), CodeConflict, "digest")

	// A no-op update writes nothing.
	api.calls = nil
	if _, err := svc.Define(ctx, upd, true, ""); err != nil {
		t.Fatal(err)
	}
	if calls(api, "PUT /storage/nas") != 0 {
		t.Errorf("no-op update wrote: %v", api.calls)
	}
	_, err = svc.Define(ctx, Spec{ID: "nas", Options: map[string]string{"export": "/srv/other"}}, true, "")
	wantCode(t, err, CodeInvalidParams, "options.export")
	_, err = svc.Define(ctx, Spec{ID: "nas", Type: "dir"}, true, "")
	wantCode(t, err, CodeInvalidParams, "type")
	_, err = svc.Define(ctx, Spec{ID: "ghost", Content: []string{"iso"}}, true, "")
	wantCode(t, err, CodeNotFound, "id")

	if err := svc.Remove(ctx, "nas"); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Config(ctx, "nas")
	wantCode(t, err, CodeNotFound, "")
	wantCode(t, svc.Remove(ctx, "nas"), CodeNotFound, "")
}

func calls(a *simAPI, call string) int {
	n := 0
	for _, c := range a.calls {
		if c == call {
			n++
		}
	}
	return n
}

func TestPermissionDenied(t *testing.T) {
	svc, api, sim := newSim(t)
	api.token = sim.AuditToken() // PVEAuditor: may read, may not define
	_, err := svc.Define(context.Background(), Spec{ID: "scratch2", Type: "dir",
		Options: map[string]string{"path": "/srv/x"}}, false, "")
	wantCode(t, err, CodePermissionDenied, "")
	if _, err := svc.List(context.Background(), ListFilter{}); err != nil {
		t.Fatalf("auditor cannot list: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	svc, _, sim := newSim(t)
	sim.Faults().ProxyError("/nodes/pve1/storage", 596)
	_, err := svc.List(context.Background(), ListFilter{})
	wantCode(t, err, CodeUnavailable, "")
}

func TestReport(t *testing.T) {
	svc, _, _ := newSim(t)
	m, err := svc.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m["node"] != "pve1" {
		t.Errorf("report node %v", m["node"])
	}
	list, _ := m["storages"].([]any)
	if len(list) != 2 {
		t.Fatalf("report storages %v", m["storages"])
	}
	first := list[0].(map[string]any)
	if first["id"] != "local" || first["active"] != true || first["total_bytes"].(float64) <= 0 {
		t.Errorf("report entry %v", first)
	}
	// The section must survive JSON as the HostReport carries it.
	if _, err := json.Marshal(m); err != nil {
		t.Fatal(err)
	}
}

func checkMap(checks []Check) map[string]Check {
	m := map[string]Check{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

func TestSelfTestRead(t *testing.T) {
	svc, api, _ := newSim(t)
	checks := checkMap(svc.SelfTestRead(context.Background()))
	for _, name := range []string{"storage list reachable", "status of storage local", "status of storage local-lvm",
		"backup storage content listable"} {
		c, ok := checks[name]
		if !ok || c.Status != Pass || c.Capability == "" {
			t.Errorf("check %q: %+v (present %v)", name, c, ok)
		}
	}
	for _, c := range api.calls {
		if !strings.HasPrefix(c, "GET ") {
			t.Errorf("read selftest made a write: %s", c)
		}
	}
}

func TestSelfTestReadListDown(t *testing.T) {
	svc, _, sim := newSim(t)
	sim.Faults().ProxyError("/nodes/pve1/storage", 595)
	checks := checkMap(svc.SelfTestRead(context.Background()))
	if checks["storage list reachable"].Status != Fail {
		t.Errorf("list check with proxy down: %+v", checks["storage list reachable"])
	}
	if checks["backup storage content listable"].Status != Skip {
		t.Errorf("content check: %+v", checks["backup storage content listable"])
	}
}

func TestSelfTestTask(t *testing.T) {
	svc, _, _ := newSim(t)
	ctx := context.Background()
	checks := svc.SelfTestTask(ctx)
	for _, c := range checks {
		if c.Status != Pass {
			t.Errorf("check %q: %v %s", c.Name, c.Status, c.Detail)
		}
	}
	m := checkMap(checks)
	for _, name := range []string{"define scratch storage " + ScratchID, "update scratch storage under its digest",
		"stale digest refused", "remove scratch storage " + ScratchID} {
		if _, ok := m[name]; !ok {
			t.Errorf("missing check %q", name)
		}
	}
	if _, err := svc.Config(ctx, ScratchID); CodeOf(err) != CodeNotFound {
		t.Fatalf("scratch storage left behind: %v", err)
	}
}

func TestSelfTestTaskLeftoverAndForeign(t *testing.T) {
	svc, _, _ := newSim(t)
	ctx := context.Background()
	// A leftover of an interrupted run on this node is cleared first.
	if _, err := svc.Define(ctx, ScratchSpec("pve1"), false, ""); err != nil {
		t.Fatal(err)
	}
	m := checkMap(svc.SelfTestTask(ctx))
	def := m["define scratch storage "+ScratchID]
	if def.Status != Pass || !strings.Contains(def.Detail, "leftover") {
		t.Fatalf("leftover run: %+v", def)
	}
	// Another node's scratch storage is left alone.
	if _, err := svc.Define(ctx, ScratchSpec("pve2"), false, ""); err != nil {
		t.Fatal(err)
	}
	m = checkMap(svc.SelfTestTask(ctx))
	if c := m["define scratch storage "+ScratchID]; c.Status != Skip || !strings.Contains(c.Detail, "pve2") {
		t.Fatalf("foreign scratch: %+v", c)
	}
	if _, ok := m["remove scratch storage "+ScratchID]; ok {
		t.Error("tried to remove another node's scratch storage")
	}
	if cfg, err := svc.Config(ctx, ScratchID); err != nil || cfg.Nodes[0] != "pve2" {
		t.Fatalf("pve2's scratch storage touched: %+v %v", cfg, err)
	}
	// Any other storage under that name is refused, not touched.
	if err := svc.Remove(ctx, ScratchID); err != nil {
		t.Fatal(err)
	}
	foreign := Spec{ID: ScratchID, Type: "dir", Options: map[string]string{"path": "/srv/important"}}
	if _, err := svc.Define(ctx, foreign, false, ""); err != nil {
		t.Fatal(err)
	}
	m = checkMap(svc.SelfTestTask(ctx))
	if c := m["define scratch storage "+ScratchID]; c.Status != Fail || !strings.Contains(c.Detail, "not touching") {
		t.Fatalf("foreign storage: %+v", c)
	}
	if cfg, err := svc.Config(ctx, ScratchID); err != nil || cfg.Options["path"] != "/srv/important" {
		t.Fatalf("foreign storage touched: %+v %v", cfg, err)
	}
}

// TestSelfTestTaskCleansUpAfterCancel: when ctx ends after the scratch
// storage was defined, it is still removed.
func TestSelfTestTaskCleansUpAfterCancel(t *testing.T) {
	svc, _, _ := newSim(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancelling := &cancelAfter{API: svc.API, after: "POST /storage", cancel: cancel}
	svc.API = cancelling
	checks := checkMap(svc.SelfTestTask(ctx))
	if c := checks["remove scratch storage "+ScratchID]; c.Status != Pass {
		t.Fatalf("remove after cancel: %+v", c)
	}
	if _, err := svc.Config(context.Background(), ScratchID); CodeOf(err) != CodeNotFound {
		t.Fatalf("scratch storage left behind after cancel: %v", err)
	}
}

// cancelAfter cancels a context once a given call has gone through.
type cancelAfter struct {
	API
	after  string
	cancel context.CancelFunc
}

func (c *cancelAfter) Call(ctx context.Context, method, path string, params url.Values) (json.RawMessage, error) {
	data, err := c.API.Call(ctx, method, path, params)
	if method+" "+path == c.after {
		c.cancel()
	}
	return data, err
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("sim", func(t *testing.T) {
		svc, _, _ := newSim(t)
		svc.SelfTestTask(context.Background())
	})
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
