package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// testHost is an sdk.Host whose API goes straight to pvesim (no scope
// guard: the conformance kit checks scopes). It records the calls made.
type testHost struct {
	sim *pvesim.Server
	hc  *http.Client

	mu    sync.Mutex
	calls []string
}

func (h *testHost) API() sdk.API                       { return h }
func (h *testHost) Node() string                       { return h.sim.Node() }
func (h *testHost) HostID() string                     { return "test-host" }
func (h *testHost) NegotiatedMinor() uint32            { return sdk.ProtocolMinor }
func (h *testHost) SetState(string, sdk.State, string) {}
func (h *testHost) WaitTask(context.Context, string) (*sdk.TaskResult, error) {
	return nil, errors.New("no tasks here")
}
func (h *testHost) Event(context.Context, string, string, map[string]string) error { return nil }

func (h *testHost) Get(ctx context.Context, p string, q url.Values) (json.RawMessage, error) {
	return h.data(ctx, "GET", p, q)
}
func (h *testHost) Post(ctx context.Context, p string, q url.Values) (json.RawMessage, error) {
	return h.data(ctx, "POST", p, q)
}
func (h *testHost) Put(ctx context.Context, p string, q url.Values) (json.RawMessage, error) {
	return h.data(ctx, "PUT", p, q)
}
func (h *testHost) Delete(ctx context.Context, p string, q url.Values) (json.RawMessage, error) {
	return h.data(ctx, "DELETE", p, q)
}

func (h *testHost) data(ctx context.Context, method, p string, q url.Values) (json.RawMessage, error) {
	r, err := h.Call(ctx, method, p, q)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

func (h *testHost) Call(ctx context.Context, method, p string, q url.Values) (*sdk.APIResponse, error) {
	h.mu.Lock()
	h.calls = append(h.calls, method+" "+p)
	h.mu.Unlock()
	u := h.sim.URL() + "/api2/json" + p
	var body io.Reader
	if method == "POST" || method == "PUT" {
		body = strings.NewReader(q.Encode())
	} else if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "PVEAPIToken="+h.sim.AdminToken())
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	_ = json.Unmarshal(raw, &env)
	if resp.StatusCode != http.StatusOK {
		_, reason, _ := strings.Cut(resp.Status, " ")
		return nil, &sdk.APIError{Method: method, Path: p, Status: resp.StatusCode, Reason: reason,
			Message: env.Message, Errors: env.Errors}
	}
	return &sdk.APIResponse{Data: env.Data}, nil
}

func (h *testHost) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func newTestPlugin(t *testing.T) (*nfsPlugin, *testHost) {
	t.Helper()
	sim := pvesim.Start(t, pvesim.Options{})
	h := &testHost{sim: sim, hc: sim.Client(t)}
	p := &nfsPlugin{}
	if err := p.Configure(context.Background(), h, nil); err != nil {
		t.Fatal(err)
	}
	if calls := h.take(); len(calls) != 1 || calls[0] != "GET /storage" {
		t.Fatalf("Configure's health check made calls %v", calls)
	}
	return p, h
}

func wantSDKError(t *testing.T, err error, code sdk.ErrorCode, field string) {
	t.Helper()
	var pe *sdk.PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want %v on %q", err, code, field)
	}
	if pe.Code != code || pe.Field != field {
		t.Fatalf("got %v field %q (%s), want %v field %q", pe.Code, pe.Field, pe.Message, code, field)
	}
}

func TestDefineListRemove(t *testing.T) {
	p, h := newTestPlugin(t)
	ctx := context.Background()
	spec := nfsSpec{ID: "nas", Server: "nas.example.net", Export: "/srv/nfs", Content: []string{"backup"}, Options: "vers=4.2"}
	info, err := p.define(ctx, spec, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "nas" || info.Type != "nfs" || !info.Shared || !info.Active {
		t.Fatalf("defined %+v", info)
	}
	list, err := p.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []nfsStorage{{ID: "nas", Server: "nas.example.net", Export: "/srv/nfs", Path: "/mnt/pve/nas",
		Options: "vers=4.2", Content: []string{"backup"}, Enabled: true, Active: true}}
	if len(list) != 1 || list[0].TotalBytes == 0 {
		t.Fatalf("list %+v", list)
	}
	list[0].TotalBytes, list[0].UsedBytes, list[0].AvailBytes = 0, 0, 0
	if !reflect.DeepEqual(list, want) {
		t.Fatalf("list\n got %+v\nwant %+v", list, want)
	}

	// Retried create: fine. Different settings: a conflict naming the difference.
	if _, err := p.define(ctx, spec, false, ""); err != nil {
		t.Fatalf("identical create refused: %v", err)
	}
	other := spec
	other.Server = "192.0.2.1"
	_, err = p.define(ctx, other, false, "")
	wantSDKError(t, err, sdk.CodeConflict, "id")
	if !strings.Contains(err.Error(), "server is nas.example.net") {
		t.Errorf("conflict does not say what differs: %v", err)
	}

	// Update under the digest; a stale digest is refused.
	cfg, err := p.client().config(ctx, "nas")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.define(ctx, nfsSpec{ID: "nas", Content: []string{"backup", "iso"}, Disable: true}, true, cfg.Digest); err != nil {
		t.Fatal(err)
	}
	_, err = p.define(ctx, nfsSpec{ID: "nas", Content: []string{"iso"}}, true, cfg.Digest)
	wantSDKError(t, err, sdk.CodeConflict, "digest")
	_, err = p.define(ctx, nfsSpec{ID: "nas", Export: "/srv/other"}, true, "")
	wantSDKError(t, err, sdk.CodeInvalidParams, "export")
	h.take()
	if _, err := p.define(ctx, nfsSpec{ID: "nas", Content: []string{"iso", "backup"}, Disable: true}, true, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.take() {
		if strings.HasPrefix(c, "PUT") {
			t.Errorf("no-op update wrote: %s", c)
		}
	}

	// Not ours: the local dir storage cannot be removed or listed through this plugin.
	wantSDKError(t, p.RemoveStorage(ctx, "local"), sdk.CodeInvalidParams, "id")
	if _, err := p.StorageStatus(ctx, "local"); err == nil {
		t.Error("status of a dir storage served by the NFS plugin")
	}
	_, err = p.DefineStorage(ctx, sdk.StorageSpec{ID: "x1", Type: "dir"}, false, "")
	wantSDKError(t, err, sdk.CodeInvalidParams, "type")
	_, err = p.DefineStorage(ctx, sdk.StorageSpec{ID: "x1", Type: "nfs", Options: map[string]string{"server": "a", "export": "/b", "share": "c"}}, false, "")
	wantSDKError(t, err, sdk.CodeInvalidParams, "options.share")

	if err := p.RemoveStorage(ctx, "nas"); err != nil {
		t.Fatal(err)
	}
	wantSDKError(t, p.RemoveStorage(ctx, "nas"), sdk.CodeNotFound, "")
}

func TestDefineValidatesBeforeCalling(t *testing.T) {
	p, h := newTestPlugin(t)
	ctx := context.Background()
	for _, c := range []struct {
		spec  nfsSpec
		field string
	}{
		{nfsSpec{ID: "nas", Server: "nas:/srv", Export: "/srv"}, "server"},
		{nfsSpec{ID: "nas", Server: "nas", Export: "srv"}, "export"},
		{nfsSpec{ID: "nas", Server: "nas", Export: "/srv", Options: "soft;reboot"}, "options"},
		{nfsSpec{ID: "1nas", Server: "nas", Export: "/srv"}, "id"},
	} {
		_, err := p.define(ctx, c.spec, false, "")
		wantSDKError(t, err, sdk.CodeInvalidParams, c.field)
	}
	if calls := h.take(); len(calls) != 0 {
		t.Errorf("invalid specs reached Proxmox: %v", calls)
	}
}

func TestSelfTestTaskSkipsWithReason(t *testing.T) {
	p, h := newTestPlugin(t)
	checks := p.SelfTest(context.Background(), sdk.SelfTestTask, 0)
	last := checks[len(checks)-1]
	if last.Status != sdk.Skip || !strings.Contains(last.Detail, "mount") {
		t.Fatalf("task mode check %+v", last)
	}
	for _, c := range h.take() {
		if !strings.HasPrefix(c, "GET ") {
			t.Errorf("task selftest changed something: %s", c)
		}
	}
}
