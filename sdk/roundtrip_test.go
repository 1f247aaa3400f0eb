package sdk_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

func TestRoundTripInProcess(t *testing.T) {
	for _, mux := range []bool{false, true} {
		name := "broker"
		if mux {
			name = "broker-multiplex"
		}
		t.Run(name, func(t *testing.T) {
			checkGoroutines(t)
			demo := newDemo()
			pc := inProcess(t, demo, mux)
			roundTrip(t, pc, func() bool { return demo.Closed() })
		})
	}
}

// roundTrip drives every RPC of a configured demo plugin; closed reports
// whether the plugin's Close ran (nil for a process).
func roundTrip(t *testing.T, pc *sdk.PluginClient, closed func() bool) {
	ctx := context.Background()
	fh := &fakeHost{}

	info, err := pc.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.GetName() != "demo" || info.GetVersion() != "1.0.0" || info.GetProtocolMajor() != sdk.ProtocolMajor {
		t.Errorf("Info = %s %s major %d, want demo 1.0.0 major %d", info.GetName(), info.GetVersion(), info.GetProtocolMajor(), sdk.ProtocolMajor)
	}
	if !slices.Contains(info.GetFeatures(), sdk.FeatureStorageV1) || !slices.Contains(info.GetFeatures(), sdk.FeatureHealthStream) {
		t.Errorf("features = %v, want storage.v1 and health.stream", info.GetFeatures())
	}
	for _, c := range info.GetCapabilities() {
		if c.GetId() == sdk.ProbeCapability {
			t.Errorf("Info lists the hidden probe capability")
		}
	}

	// Invoke before Configure is refused.
	if _, err := pc.Invoke(ctx, invokeReq(t, "demo.noop", nil)); err == nil || !strings.Contains(err.Error(), "Configure first") {
		t.Errorf("Invoke before Configure: err = %v, want a 'Configure first' error", err)
	}

	cr := configured(t, pc, fh)
	if got := stateOf(cr.GetStates(), "demo.usb"); got != "STATE_NOT_APPLICABLE no USB disks on this host" {
		t.Errorf("configure state of demo.usb = %q", got)
	}
	if got := stateOf(cr.GetStates(), "demo.echo"); got != "STATE_AVAILABLE " {
		t.Errorf("configure state of demo.echo = %q", got)
	}
	if pc.Storage() == nil {
		t.Fatal("Storage() = nil for a plugin reporting storage.v1")
	}

	// Health: the first message comes at once, with every capability.
	hs, err := pc.Health(ctx)
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	defer hs.Close()
	first, err := hs.Recv()
	if err != nil {
		t.Fatalf("Health first Recv: %v", err)
	}
	if len(first.GetCapabilities()) != len(info.GetCapabilities()) {
		t.Errorf("health lists %d capabilities, Info %d", len(first.GetCapabilities()), len(info.GetCapabilities()))
	}

	// Echo carries params, op ID and the configured greeting.
	req := invokeReq(t, "demo.echo", map[string]any{"a": "b", "n": 3})
	req.OpId = "op-1"
	resp, err := pc.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke echo: %v", err)
	}
	res := resp.GetResult().AsMap()
	if res["greeting"] != "szia" || res["op_id"] != "op-1" || res["params"].(map[string]any)["n"] != 3.0 {
		t.Errorf("echo result = %v", res)
	}

	// The API path goes plugin -> broker -> scope guard -> fake host.
	resp, err = pc.Invoke(ctx, invokeReq(t, "demo.vm.status", map[string]any{"vmid": 100}))
	if err != nil {
		t.Fatalf("Invoke vm.status: %v", err)
	}
	if resp.GetResult().AsMap()["status"] != "running" {
		t.Errorf("vm.status result = %v", resp.GetResult().AsMap())
	}

	// A Proxmox error comes back structured.
	_, err = pc.Invoke(ctx, invokeReq(t, "demo.vm.status", map[string]any{"vmid": 404}))
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || pe.Code != sdk.CodeInternal || !strings.Contains(pe.Message, "404.conf' does not exist") || pe.Details["status"] != "500" {
		t.Errorf("vm.status 404: err = %#v", err)
	}

	// A task: POST, UPID recorded, waited through the host, event sent.
	resp, err = pc.Invoke(ctx, invokeReq(t, "demo.vm.start", map[string]any{"vmid": 100}))
	if err != nil {
		t.Fatalf("Invoke vm.start: %v", err)
	}
	if !slices.Equal(resp.GetUpids(), []string{testUPID}) || resp.GetResult().AsMap()["exitstatus"] != "OK" {
		t.Errorf("vm.start: upids %v result %v", resp.GetUpids(), resp.GetResult().AsMap())
	}
	calls, waits, events := fh.snapshot()
	if !slices.Contains(calls, "POST /nodes/pve/qemu/100/status/start") || !slices.Equal(waits, []string{testUPID}) || events != 1 {
		t.Errorf("host saw calls %v waits %v events %d", calls, waits, events)
	}

	// Structured failure with the field at fault.
	_, err = pc.Invoke(ctx, invokeReq(t, "demo.fail", nil))
	if !errors.As(err, &pe) || pe.Code != sdk.CodeInvalidParams || pe.Field != "x" {
		t.Errorf("demo.fail: err = %v, want invalid params on x", err)
	}
	// Missing parameter names the parameter.
	_, err = pc.Invoke(ctx, invokeReq(t, "demo.vm.status", nil))
	if !errors.As(err, &pe) || pe.Field != "vmid" || !strings.Contains(pe.Message, `missing parameter "vmid"`) {
		t.Errorf("vm.status without vmid: err = %v", err)
	}
	// A panic is an internal error; the plugin keeps serving.
	_, err = pc.Invoke(ctx, invokeReq(t, "demo.panic", nil))
	if !errors.As(err, &pe) || pe.Code != sdk.CodeInternal || !strings.Contains(pe.Message, "demo panic") {
		t.Errorf("demo.panic: err = %v", err)
	}
	for _, id := range []string{"demo.nope", sdk.ProbeCapability} {
		_, err = pc.Invoke(ctx, invokeReq(t, id, nil))
		if !errors.As(err, &pe) || pe.Code != sdk.CodeUnknownCapability || !strings.Contains(pe.Message, id) {
			t.Errorf("Invoke %s: err = %v, want unknown capability", id, err)
		}
	}
	// A caller needing a newer schema is told to upgrade the plugin.
	newer := invokeReq(t, "demo.noop", nil)
	newer.SchemaVersion = 2
	if _, err = pc.Invoke(ctx, newer); err == nil || !strings.Contains(err.Error(), "upgrade plugin demo") {
		t.Errorf("schema 2: err = %v", err)
	}

	// A state change reaches the open health stream.
	if _, err := pc.Invoke(ctx, invokeReq(t, "demo.state", map[string]any{"capability": "demo.echo", "state": "unhealthy"})); err != nil {
		t.Fatalf("demo.state: %v", err)
	}
	next, err := hs.Recv()
	if err != nil {
		t.Fatalf("Health Recv after change: %v", err)
	}
	if got := stateOf(next.GetCapabilities(), "demo.echo"); got != "STATE_UNHEALTHY set by demo.state" {
		t.Errorf("health after change: demo.echo = %q", got)
	}

	st, err := pc.SelfTest(ctx, pluginv1.SelfTestMode_SELF_TEST_MODE_READ, 0)
	if err != nil {
		t.Fatalf("SelfTest: %v", err)
	}
	if len(st.GetChecks()) != 2 || st.GetChecks()[1].GetName() != "api.version" || st.GetChecks()[1].GetStatus() != pluginv1.CheckStatus_CHECK_STATUS_PASS {
		t.Errorf("SelfTest checks = %v", st.GetChecks())
	}

	rep, err := pc.Report(ctx, 500*time.Millisecond)
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	if len(rep.GetSections()) != 1 || rep.GetSections()[0].GetData().AsMap()["node"] != "pve" {
		t.Errorf("Report = %v", rep.GetSections())
	}

	storageRoundTrip(t, pc.Storage())

	// Shutdown drains an in-flight call and refuses new ones.
	slow := make(chan error, 1)
	go func() {
		_, err := pc.Invoke(ctx, invokeReq(t, "demo.slow", map[string]any{"ms": 400}))
		slow <- err
	}()
	for { // the health stream says when the slow call is running
		m, err := hs.Recv()
		if err != nil {
			t.Fatalf("Health Recv waiting for demo.slow: %v", err)
		}
		if stateOf(m.GetCapabilities(), "demo.slow") == "STATE_UNHEALTHY sleeping" {
			break
		}
	}
	shut := make(chan error, 1)
	go func() { shut <- pc.Shutdown(ctx, 5*time.Second) }()
	refused := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		_, err = pc.Invoke(ctx, invokeReq(t, "demo.noop", nil))
		if errors.As(err, &pe) && pe.Code == sdk.CodeUnavailable {
			refused = true
			break
		}
		if err != nil {
			t.Fatalf("Invoke while shutdown starts: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	if !refused {
		t.Error("Invoke during shutdown was not refused as unavailable")
	}
	if err := <-slow; err != nil {
		t.Errorf("in-flight call during shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if closed != nil && !closed() {
		t.Error("plugin Close did not run")
	}
	for { // the stream ends after the last state changes
		_, err := hs.Recv()
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, sdk.ErrPluginCrashed) {
			t.Errorf("health stream after shutdown: err = %v, want EOF", err)
		}
		break
	}
}

func storageRoundTrip(t *testing.T, sc *sdk.StorageClient) {
	t.Helper()
	ctx := context.Background()
	def := &pluginv1.DefineStorageRequest{Spec: &pluginv1.StorageSpec{Id: "nfs1", Type: "nfs", Content: []string{"backup"}}}
	got, err := sc.DefineStorage(ctx, def)
	if err != nil || got.GetId() != "nfs1" || !got.GetEnabled() {
		t.Fatalf("DefineStorage = %v, %v", got, err)
	}
	_, err = sc.DefineStorage(ctx, def)
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || pe.Code != sdk.CodeConflict {
		t.Errorf("DefineStorage twice: err = %v, want conflict", err)
	}
	list, err := sc.ListStorages(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("ListStorages = %v, %v", list, err)
	}
	if _, err := sc.ListContent(ctx, &pluginv1.ListContentRequest{Id: "nfs1"}); err != nil {
		t.Errorf("ListContent: %v", err)
	}
	if err := sc.RemoveStorage(ctx, "nfs1"); err != nil {
		t.Errorf("RemoveStorage: %v", err)
	}
	_, err = sc.StorageStatus(ctx, "nfs1")
	if !errors.As(err, &pe) || pe.Code != sdk.CodeNotFound || pe.Field != "id" {
		t.Errorf("StorageStatus after remove: err = %v, want not found", err)
	}
}

func TestConfigureRefusesBadConfig(t *testing.T) {
	checkGoroutines(t)
	pc := inProcess(t, newDemo(), false)
	ctx := context.Background()
	if _, err := pc.Info(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := pc.Configure(ctx, sdk.ConfigureArgs{Config: map[string]any{"greting": "typo"}, Node: "pve"}, nil)
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || pe.Field != "greting" || !strings.Contains(pe.Message, `unknown config key "greting"`) {
		t.Fatalf("Configure with unknown key: err = %v", err)
	}
	_, err = pc.Configure(ctx, sdk.ConfigureArgs{Config: map[string]any{"greeting": 7}, Node: "pve"}, nil)
	if !errors.As(err, &pe) || pe.Field != "greeting" || !strings.Contains(pe.Message, "must be string") {
		t.Fatalf("Configure with wrong type: err = %v", err)
	}
	// A failed Configure may be retried; a second success is refused.
	if _, err := pc.Configure(ctx, sdk.ConfigureArgs{Node: "pve"}, nil); err != nil {
		t.Fatalf("Configure retry: %v", err)
	}
	if _, err := pc.Configure(ctx, sdk.ConfigureArgs{Node: "pve"}, nil); err == nil || !strings.Contains(err.Error(), "already called") {
		t.Fatalf("second Configure: err = %v", err)
	}
	// Without host services the plugin is told so, not hung.
	_, err = pc.Invoke(ctx, invokeReq(t, "demo.version", nil))
	if !errors.As(err, &pe) || pe.Code != sdk.CodeUnavailable || !strings.Contains(pe.Message, "no host services") {
		t.Fatalf("API call without host services: err = %v", err)
	}
}

func TestConfigureNeedsInfo(t *testing.T) {
	checkGoroutines(t)
	pc := inProcess(t, newDemo(), false)
	if _, err := pc.Configure(context.Background(), sdk.ConfigureArgs{}, nil); err == nil || !strings.Contains(err.Error(), "call Info first") {
		t.Fatalf("Configure before Info: err = %v", err)
	}
}

func TestScopeGuardRefusesThroughProbe(t *testing.T) {
	checkGoroutines(t)
	pc := inProcess(t, newDemo(), false, sdk.WithConformanceProbe())
	fh := &fakeHost{}
	configured(t, pc, fh)
	ctx := context.Background()
	for _, path := range []string{"/access/users", "/nodes/other/qemu/100/status/current", "/nodes/pve/qemu/100/../../../access/users", "/nodes/pve/qemu/100%2F..%2F..%2Fx/status/current"} {
		_, err := pc.Invoke(ctx, invokeReq(t, sdk.ProbeCapability, map[string]any{"method": "GET", "path": path}))
		var pe *sdk.PluginError
		if !errors.As(err, &pe) || pe.Code != sdk.CodePermissionDenied || !strings.Contains(pe.Message, "plugin demo may not call GET") {
			t.Errorf("probe %s: err = %v, want permission denied naming plugin and path", path, err)
		}
	}
	// An allowed path passes, cleaned.
	resp, err := pc.Invoke(ctx, invokeReq(t, sdk.ProbeCapability, map[string]any{"method": "GET", "path": "/version"}))
	if err != nil || !strings.Contains(resp.GetResult().AsMap()["data"].(string), "8.2.4") {
		t.Errorf("probe /version: %v, %v", resp, err)
	}
	calls, _, _ := fh.snapshot()
	if !slices.Equal(calls, []string{"GET /version"}) {
		t.Errorf("host saw %v, want only GET /version", calls)
	}
}

func TestInProcessRefusesBadInfo(t *testing.T) {
	_, _, err := sdk.InProcess(badInfo{})
	if err == nil {
		t.Fatal("InProcess accepted an invalid Info")
	}
	for _, want := range []string{
		`plugin name "Demo"`,
		`version "v1.0": must be a semantic version`,
		`capability "Storage.List": IDs must be lowercase <namespace>.<name>, e.g. storage.list`,
		`capability "Storage.List": Class must be`,
		`capability "sdk.x": the "sdk" namespace is reserved`,
		`capability "a.b" is declared twice`,
		`capability "a.b": Handler is nil`,
		`"/**" would grant the whole API`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

type badInfo struct{}

func (badInfo) Info() sdk.Info {
	h := func(context.Context, *sdk.Call) (any, error) { return nil, nil }
	return sdk.Info{Name: "Demo", Version: "v1.0", Capabilities: []sdk.Capability{
		{ID: "Storage.List", SchemaVersion: 1, Handler: h},
		{ID: "sdk.x", SchemaVersion: 1, Class: sdk.Read, Handler: h},
		{ID: "a.b", SchemaVersion: 1, Class: sdk.Read, Handler: h, API: []sdk.APIScope{{Method: "GET", Path: "/**"}}},
		{ID: "a.b", SchemaVersion: 1, Class: sdk.Read},
	}}
}

func (badInfo) Configure(context.Context, sdk.Host, sdk.Config) error { return nil }
