package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/structpb"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// simHost is the core's side for tests: it forwards the plugin's API calls
// to pvesim over HTTPS with the admin token, as the core's proxy does with
// a real node, and records audit events.
type simHost struct {
	sim *pvesim.Server
	hc  *http.Client

	mu     sync.Mutex
	calls  []string
	events []*pluginv1.EventRequest
}

func (h *simHost) ProxmoxCall(ctx context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error) {
	h.mu.Lock()
	h.calls = append(h.calls, req.GetMethod()+" "+req.GetPath())
	h.mu.Unlock()
	q := url.Values{}
	for _, p := range req.GetParams() {
		q[p.GetKey()] = p.GetValues()
	}
	u := h.sim.URL() + "/api2/json" + req.GetPath()
	var body io.Reader
	if m := req.GetMethod(); m == "POST" || m == "PUT" {
		body = strings.NewReader(q.Encode())
	} else if len(q) > 0 {
		u += "?" + q.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.GetMethod(), u, body)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Authorization", "PVEAPIToken="+h.sim.AdminToken())
	if body != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := h.hc.Do(hr)
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
		_, reason, _ := strings.Cut(resp.Status, " ")
		return &pluginv1.CallResponse{Error: &pluginv1.APIError{Status: int32(resp.StatusCode), Reason: reason,
			Message: env.Message, Errors: env.Errors}}, nil
	}
	return &pluginv1.CallResponse{Data: env.Data}, nil
}

func (h *simHost) WaitTask(context.Context, string) (*pluginv1.WaitResponse, error) {
	return nil, errors.New("the storage plugin starts no tasks")
}

func (h *simHost) Event(_ context.Context, req *pluginv1.EventRequest) error {
	h.mu.Lock()
	h.events = append(h.events, req)
	h.mu.Unlock()
	return nil
}

// start serves the plugin in-process against a fresh pvesim, configured
// like the core does it (Info, scope guard, Configure).
func start(t *testing.T) (*sdk.PluginClient, *simHost) {
	t.Helper()
	pc, host, _ := startWith(t, nil)
	return pc, host
}

// startWith is start with a hook that runs on the simulator before
// Configure (to inject faults); it also returns Configure's answer.
func startWith(t *testing.T, before func(*pvesim.Server)) (*sdk.PluginClient, *simHost, *pluginv1.ConfigureResponse) {
	t.Helper()
	checkGoroutines(t)
	sim := pvesim.Start(t, pvesim.Options{Node: "pve1", TaskDuration: -1})
	host := &simHost{sim: sim, hc: sim.Client(t)}
	set, stop, err := sdk.InProcess(newPlugin())
	if err != nil {
		t.Fatal(err)
	}
	client, server := goplugin.TestPluginGRPCConn(t, false, set)
	raw, err := client.Dispense(sdk.PluginSetKey)
	if err != nil {
		t.Fatal(err)
	}
	pc := raw.(*sdk.PluginClient)
	t.Cleanup(func() {
		pc.Close()
		_ = client.Close()
		select {
		case <-server.DoneCh:
		case <-time.After(2 * time.Second):
			server.Stop()
		}
		stop()
	})
	ctx := context.Background()
	info, err := pc.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	guarded, err := sdk.ScopeGuard(info.GetName(), "pve1", info.GetCapabilities(), host)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(sim)
	}
	resp, err := pc.Configure(ctx, sdk.ConfigureArgs{Node: "pve1", HostID: "h1",
		Config: map[string]any{"health_interval": "5s"}}, guarded)
	if err != nil {
		t.Fatal(err)
	}
	host.mu.Lock()
	host.calls = nil // Configure's health check
	host.mu.Unlock()
	return pc, host, resp
}

func invoke(t *testing.T, pc *sdk.PluginClient, id string, params map[string]any) (map[string]any, error) {
	t.Helper()
	st, err := structpb.NewStruct(params)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pc.Invoke(context.Background(), &pluginv1.InvokeRequest{Capability: id, SchemaVersion: 1,
		Params: st, OpId: "op-1", Principal: "ops@example.net"})
	if err != nil {
		return nil, err
	}
	return resp.GetResult().AsMap(), nil
}

func wantPluginError(t *testing.T, err error, code sdk.ErrorCode, field string) {
	t.Helper()
	var pe *sdk.PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a %v plugin error", err, code)
	}
	if pe.Code != code || pe.Field != field {
		t.Fatalf("got %v field %q (%s), want %v field %q", pe.Code, pe.Field, pe.Message, code, field)
	}
}

func TestInfo(t *testing.T) {
	pc, _ := start(t)
	info, err := pc.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "storage" || info.GetVersion() != Version {
		t.Fatalf("info %s %s", info.GetName(), info.GetVersion())
	}
	want := map[string]pluginv1.CapabilityClass{
		"storage.list": pluginv1.CapabilityClass_CAPABILITY_CLASS_READ, "storage.status": pluginv1.CapabilityClass_CAPABILITY_CLASS_READ,
		"storage.content": pluginv1.CapabilityClass_CAPABILITY_CLASS_READ, "storage.define": pluginv1.CapabilityClass_CAPABILITY_CLASS_BENIGN,
		"storage.remove": pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE,
	}
	for _, c := range info.GetCapabilities() {
		if c.GetNeedsRoot() {
			t.Errorf("%s needs root; the storage plugin must not", c.GetId())
		}
		if want[c.GetId()] != c.GetClass() {
			t.Errorf("%s class %v, want %v", c.GetId(), c.GetClass(), want[c.GetId()])
		}
		delete(want, c.GetId())
		for _, s := range c.GetApi() {
			if c.GetClass() == pluginv1.CapabilityClass_CAPABILITY_CLASS_READ && s.GetMethod() != "GET" {
				t.Errorf("read capability %s declares %s %s", c.GetId(), s.GetMethod(), s.GetPath())
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("capabilities missing: %v", want)
	}
	if pc.Storage() == nil {
		t.Error("no StorageService: Info did not report storage.v1")
	}
}

func TestInvokeLifecycle(t *testing.T) {
	pc, host := start(t)

	list, err := invoke(t, pc, "storage.list", map[string]any{"content": "backup"})
	if err != nil {
		t.Fatal(err)
	}
	storages := list["storages"].([]any)
	if len(storages) != 1 || storages[0].(map[string]any)["id"] != "local" {
		t.Fatalf("list content=backup: %v", list)
	}

	def, err := invoke(t, pc, "storage.define", map[string]any{"id": "nas", "type": "nfs",
		"content": []any{"backup"}, "options": map[string]any{"server": "192.0.2.10", "export": "/srv/backup"}})
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := def["digest"].(string)
	if def["id"] != "nas" || def["shared"] != true || digest == "" {
		t.Fatalf("define result %v", def)
	}
	upd, err := invoke(t, pc, "storage.define", map[string]any{"id": "nas", "update": true, "digest": digest,
		"content": "backup,iso"})
	if err != nil {
		t.Fatal(err)
	}
	if upd["digest"] == digest {
		t.Error("digest unchanged by an update")
	}
	_, err = invoke(t, pc, "storage.define", map[string]any{"id": "nas", "update": true, "digest": digest, "content": "iso"})
	wantPluginError(t, err, sdk.CodeConflict, "digest")

	st, err := invoke(t, pc, "storage.status", map[string]any{"id": "nas"})
	if err != nil {
		t.Fatal(err)
	}
	if c := st["content"].([]any); len(c) != 2 {
		t.Errorf("status after update: %v", st)
	}

	if _, err := invoke(t, pc, "storage.remove", map[string]any{"id": "nas"}); err != nil {
		t.Fatal(err)
	}
	_, err = invoke(t, pc, "storage.status", map[string]any{"id": "nas"})
	wantPluginError(t, err, sdk.CodeNotFound, "")

	host.mu.Lock()
	defer host.mu.Unlock()
	var kinds []string
	for _, e := range host.events {
		kinds = append(kinds, e.GetKind())
		if e.GetFields()["op_id"] != "op-1" || e.GetFields()["principal"] != "ops@example.net" || e.GetFields()["storage"] != "nas" {
			t.Errorf("audit event %v lacks op, principal or storage", e)
		}
	}
	if strings.Join(kinds, ",") != "storage.define,storage.define,storage.remove" {
		t.Errorf("audit events %v", kinds)
	}
}

func TestInvokeBadParams(t *testing.T) {
	pc, host := start(t)
	cases := []struct {
		id     string
		params map[string]any
		field  string
	}{
		{"storage.status", map[string]any{}, "id"},
		{"storage.status", map[string]any{"id": "../../etc"}, "id"},
		{"storage.content", map[string]any{"id": "local", "vmid": 7}, "vmid"},
		{"storage.list", map[string]any{"contnet": "iso"}, "contnet"},
		{"storage.define", map[string]any{"id": "nas", "type": "nfs", "options": map[string]any{"server": "nas:/x", "export": "/x"}}, "options.server"},
		{"storage.define", map[string]any{"id": "d1", "type": "dir"}, "options.path"},
		{"storage.remove", map[string]any{"id": 5}, "id"},
	}
	for _, c := range cases {
		_, err := invoke(t, pc, c.id, c.params)
		wantPluginError(t, err, sdk.CodeInvalidParams, c.field)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	if len(host.calls) != 0 {
		t.Errorf("bad params reached Proxmox: %v", host.calls)
	}
}

func TestStorageService(t *testing.T) {
	pc, _ := start(t)
	ctx := context.Background()
	sc := pc.Storage()
	info, err := sc.DefineStorage(ctx, &pluginv1.DefineStorageRequest{Spec: &pluginv1.StorageSpec{Id: "bk", Type: "dir",
		Content: []string{"backup"}, Options: map[string]string{"path": "/srv/bk"}}})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetId() != "bk" || info.GetType() != "dir" || !info.GetActive() {
		t.Fatalf("defined %v", info)
	}
	list, err := sc.ListStorages(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list %v %v", list, err)
	}
	items, err := sc.ListContent(ctx, &pluginv1.ListContentRequest{Id: "local", Content: "iso"})
	if err != nil || len(items) != 1 || items[0].GetContent() != "iso" {
		t.Fatalf("content %v %v", items, err)
	}
	_, err = sc.DefineStorage(ctx, &pluginv1.DefineStorageRequest{Spec: &pluginv1.StorageSpec{Id: "bk", Type: "dir",
		Options: map[string]string{"path": "/srv/elsewhere"}}, Update: true})
	wantPluginError(t, err, sdk.CodeInvalidParams, "options.path")
	if err := sc.RemoveStorage(ctx, "bk"); err != nil {
		t.Fatal(err)
	}
	_, err = sc.StorageStatus(ctx, "bk")
	wantPluginError(t, err, sdk.CodeNotFound, "")
}

func TestReportSelfTestHealth(t *testing.T) {
	pc, _ := start(t)
	ctx := context.Background()
	rep, err := pc.Report(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.GetSections()) != 1 || rep.GetSections()[0].GetName() != "storage" {
		t.Fatalf("report %v", rep)
	}
	data := rep.GetSections()[0].GetData().AsMap()
	if data["node"] != "pve1" || len(data["storages"].([]any)) != 2 {
		t.Errorf("storage section %v", data)
	}

	for _, mode := range []pluginv1.SelfTestMode{pluginv1.SelfTestMode_SELF_TEST_MODE_READ, pluginv1.SelfTestMode_SELF_TEST_MODE_TASK} {
		res, err := pc.SelfTest(ctx, mode, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.GetChecks() {
			if c.GetStatus() != pluginv1.CheckStatus_CHECK_STATUS_PASS {
				t.Errorf("%v check %q: %v %s", mode, c.GetName(), c.GetStatus(), c.GetDetail())
			}
		}
		if mode == pluginv1.SelfTestMode_SELF_TEST_MODE_TASK && len(res.GetChecks()) < 8 {
			t.Errorf("task mode ran only %d checks", len(res.GetChecks()))
		}
	}

	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs, err := pc.Health(hctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := hs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.GetCapabilities()) != 5 {
		t.Fatalf("health %v", first)
	}
	for _, c := range first.GetCapabilities() {
		if c.GetState() != pluginv1.State_STATE_AVAILABLE {
			t.Errorf("%s: %v %s", c.GetId(), c.GetState(), c.GetDetail())
		}
	}
}

func TestConfigureStates(t *testing.T) {
	_, _, up := startWith(t, nil)
	_, _, down := startWith(t, func(sim *pvesim.Server) { sim.Faults().ProxyError("/nodes/pve1/storage", 596) })
	for _, c := range []struct {
		resp *pluginv1.ConfigureResponse
		want pluginv1.State
	}{{up, pluginv1.State_STATE_AVAILABLE}, {down, pluginv1.State_STATE_UNHEALTHY}} {
		if len(c.resp.GetStates()) != 5 {
			t.Fatalf("states %v", c.resp.GetStates())
		}
		for _, st := range c.resp.GetStates() {
			if st.GetState() != c.want || st.GetDetail() == "" {
				t.Errorf("%s: %v %q, want %v with a detail", st.GetId(), st.GetState(), st.GetDetail(), c.want)
			}
		}
	}
}

func TestConfigureRejectsBadSettings(t *testing.T) {
	p := newPlugin()
	for cfg, field := range map[string]string{`{"health_interval":"soon"}`: "health_interval",
		`{"health_interval":"1s"}`: "health_interval", `{"interval":"1m"}`: "interval"} {
		var m map[string]any
		_ = json.Unmarshal([]byte(cfg), &m)
		err := p.Configure(context.Background(), nil, sdk.Config(m))
		wantPluginError(t, err, sdk.CodeInvalidParams, field)
	}
}

// goroutines counts goroutines, leaving out go-plugin's broker timeoutWait
// (it parks for up to 5 s by design, after the broker is gone).
func goroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "(*GRPCBroker).timeoutWait") {
			n++
		}
	}
	return n, string(buf)
}

func checkGoroutines(t *testing.T) {
	t.Helper()
	before, _ := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n, stacks := goroutines()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, stacks)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
