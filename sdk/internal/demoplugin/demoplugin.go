// Package demoplugin is a small plugin that exercises every part of the
// SDK. The SDK's own tests run it in-process and as a process
// (sdk/testdata/demoplugin), and sdk/plugintest runs its conformance kit
// against it.
package demoplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// Plugin is the demo plugin. The zero value is not usable; call New.
type Plugin struct {
	mu       sync.Mutex
	host     sdk.Host
	greeting string
	storages map[string]sdk.StorageInfo
	closed   bool
}

// New returns a demo plugin.
func New() *Plugin {
	return &Plugin{storages: map[string]sdk.StorageInfo{}}
}

var (
	_ sdk.Plugin         = (*Plugin)(nil)
	_ sdk.SelfTester     = (*Plugin)(nil)
	_ sdk.Reporter       = (*Plugin)(nil)
	_ sdk.Closer         = (*Plugin)(nil)
	_ sdk.StorageBackend = (*Plugin)(nil)
)

// Info declares the demo capabilities.
func (p *Plugin) Info() sdk.Info {
	return sdk.Info{
		Name:    "demo",
		Version: "1.0.0",
		Capabilities: []sdk.Capability{
			{ID: "demo.noop", SchemaVersion: 1, Class: sdk.Read, Description: "does nothing (benchmarks)",
				Handler: func(context.Context, *sdk.Call) (any, error) { return nil, nil }},
			{ID: "demo.echo", SchemaVersion: 1, Class: sdk.Read, Description: "returns its params and the greeting",
				Handler: p.echo},
			{ID: "demo.fail", SchemaVersion: 1, Class: sdk.Read, Description: "fails with invalid params on field x",
				Handler: func(context.Context, *sdk.Call) (any, error) {
					return nil, sdk.Errorf(sdk.CodeInvalidParams, "x", "x must be positive")
				}},
			{ID: "demo.panic", SchemaVersion: 1, Class: sdk.Read, Description: "panics",
				Handler: func(context.Context, *sdk.Call) (any, error) { panic("demo panic") }},
			{ID: "demo.slow", SchemaVersion: 1, Class: sdk.Read, Description: "sleeps ms milliseconds, unhealthy meanwhile",
				Handler: slow},
			{ID: "demo.vm.status", SchemaVersion: 1, Class: sdk.Read, Description: "reads a VM's status",
				API:     []sdk.APIScope{{Method: "GET", Path: "/nodes/{node}/qemu/{vmid}/status/current"}},
				Handler: p.vmStatus},
			{ID: "demo.vm.start", SchemaVersion: 1, Class: sdk.Benign, Description: "starts a VM and waits for the task",
				API:     []sdk.APIScope{{Method: "POST", Path: "/nodes/{node}/qemu/{vmid}/status/start"}},
				Handler: p.vmStart},
			{ID: "demo.state", SchemaVersion: 1, Class: sdk.Benign, Description: "sets a capability's state (health stream tests)",
				Handler: p.setState},
			{ID: "demo.usb", SchemaVersion: 1, Class: sdk.Read, Description: "not applicable on hosts without USB",
				Handler: func(context.Context, *sdk.Call) (any, error) {
					return nil, sdk.Errorf(sdk.CodeNotApplicable, "", "no USB disks on this host")
				}},
			{ID: "demo.version", SchemaVersion: 1, Class: sdk.Read, Description: "reads the Proxmox version",
				API:     []sdk.APIScope{{Method: "GET", Path: "/version"}},
				Handler: p.version},
		},
	}
}

type config struct {
	Greeting string `json:"greeting"`
}

// Configure reads {"greeting": "..."} and marks demo.usb not applicable.
func (p *Plugin) Configure(ctx context.Context, host sdk.Host, cfg sdk.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.Greeting == "" {
		c.Greeting = "hello"
	}
	p.mu.Lock()
	p.host, p.greeting = host, c.Greeting
	p.mu.Unlock()
	host.SetState("demo.usb", sdk.StateNotApplicable, "no USB disks on this host")
	return nil
}

func (p *Plugin) echo(_ context.Context, call *sdk.Call) (any, error) {
	p.mu.Lock()
	g := p.greeting
	p.mu.Unlock()
	return map[string]any{"greeting": g, "params": call.Params.Map(), "op_id": call.OpID}, nil
}

func slow(ctx context.Context, call *sdk.Call) (any, error) {
	ms, err := call.Params.Int("ms")
	if err != nil {
		return nil, err
	}
	// The state change tells tests (through the health stream) that the
	// call is in flight.
	call.Host.SetState("demo.slow", sdk.Unhealthy, "sleeping")
	defer call.Host.SetState("demo.slow", sdk.Available, "")
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return map[string]any{"slept_ms": ms}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func vmPath(call *sdk.Call, suffix string) (string, error) {
	vmid, err := call.Params.Int("vmid")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/nodes/%s/qemu/%d/%s", call.Host.Node(), vmid, suffix), nil
}

func (p *Plugin) vmStatus(ctx context.Context, call *sdk.Call) (any, error) {
	path, err := vmPath(call, "status/current")
	if err != nil {
		return nil, err
	}
	raw, err := call.Host.API().Get(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode vm status: %w", err)
	}
	return map[string]any{"status": st["status"]}, nil
}

func (p *Plugin) vmStart(ctx context.Context, call *sdk.Call) (any, error) {
	path, err := vmPath(call, "status/start")
	if err != nil {
		return nil, err
	}
	raw, err := call.Host.API().Post(ctx, path, url.Values{})
	if err != nil {
		return nil, err
	}
	var upid string
	if err := json.Unmarshal(raw, &upid); err != nil {
		return nil, fmt.Errorf("decode start answer %s: %w", raw, err)
	}
	call.AddTask(upid)
	res, err := call.Host.WaitTask(ctx, upid)
	if err != nil {
		return nil, err
	}
	if err := call.Host.Event(ctx, "demo.vm.start", "started a VM", map[string]string{"upid": upid}); err != nil {
		return nil, err
	}
	return map[string]any{"upid": upid, "exitstatus": res.ExitStatus}, nil
}

func (p *Plugin) version(ctx context.Context, call *sdk.Call) (any, error) {
	raw, err := call.Host.API().Get(ctx, "/version", nil)
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode version: %w", err)
	}
	return v, nil
}

var states = map[string]sdk.State{"available": sdk.Available, "not_applicable": sdk.StateNotApplicable, "unhealthy": sdk.Unhealthy}

func (p *Plugin) setState(_ context.Context, call *sdk.Call) (any, error) {
	id, err := call.Params.String("capability")
	if err != nil {
		return nil, err
	}
	name, err := call.Params.String("state")
	if err != nil {
		return nil, err
	}
	st, ok := states[name]
	if !ok {
		return nil, sdk.Errorf(sdk.CodeInvalidParams, "state", "state must be available, not_applicable or unhealthy")
	}
	call.Host.SetState(id, st, "set by demo.state")
	return nil, nil
}

// SelfTest checks that the API is reachable.
func (p *Plugin) SelfTest(ctx context.Context, mode sdk.SelfTestMode, _ int64) []sdk.Check {
	start := time.Now()
	p.mu.Lock()
	h := p.host
	p.mu.Unlock()
	checks := []sdk.Check{{Name: "demo.config", Status: sdk.Pass}}
	if _, err := h.API().Get(ctx, "/version", nil); err != nil {
		checks = append(checks, sdk.Check{Name: "api.version", Status: sdk.Fail, Detail: err.Error(), Duration: time.Since(start), Capability: "demo.version"})
	} else {
		checks = append(checks, sdk.Check{Name: "api.version", Status: sdk.Pass, Duration: time.Since(start), Capability: "demo.version"})
	}
	if mode == sdk.SelfTestTask {
		checks = append(checks, sdk.Check{Name: "demo.task", Status: sdk.Skip, Detail: "demo runs no tasks"})
	}
	return checks
}

// Report returns one section.
func (p *Plugin) Report(ctx context.Context) ([]sdk.ReportSection, error) {
	p.mu.Lock()
	h := p.host
	p.mu.Unlock()
	return []sdk.ReportSection{{Name: "demo", Data: map[string]any{"node": h.Node(), "host_id": h.HostID()}}}, nil
}

// Close records that shutdown ran.
func (p *Plugin) Close(context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

// Closed reports whether Close ran.
func (p *Plugin) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// DefineStorage keeps storages in memory.
func (p *Plugin) DefineStorage(_ context.Context, spec sdk.StorageSpec, update bool, _ string) (sdk.StorageInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if spec.ID == "" {
		return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeInvalidParams, "spec.id", "storage ID is empty")
	}
	_, exists := p.storages[spec.ID]
	if exists && !update {
		return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeConflict, "spec.id", "storage %q already exists", spec.ID)
	}
	if !exists && update {
		return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeNotFound, "spec.id", "storage %q does not exist", spec.ID)
	}
	info := sdk.StorageInfo{ID: spec.ID, Type: spec.Type, Content: spec.Content, Enabled: !spec.Disable, Active: true}
	p.storages[spec.ID] = info
	return info, nil
}

// ListStorages lists the in-memory storages.
func (p *Plugin) ListStorages(context.Context) ([]sdk.StorageInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]sdk.StorageInfo, 0, len(p.storages))
	for _, s := range p.storages {
		out = append(out, s)
	}
	return out, nil
}

// StorageStatus returns one storage.
func (p *Plugin) StorageStatus(_ context.Context, id string) (sdk.StorageInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.storages[id]
	if !ok {
		return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeNotFound, "id", "storage %q does not exist", id)
	}
	return s, nil
}

// RemoveStorage deletes one storage.
func (p *Plugin) RemoveStorage(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.storages[id]; !ok {
		return sdk.Errorf(sdk.CodeNotFound, "id", "storage %q does not exist", id)
	}
	delete(p.storages, id)
	return nil
}

// ListContent has no volumes.
func (p *Plugin) ListContent(_ context.Context, id, _ string, _ uint32) ([]sdk.ContentItem, error) {
	if _, err := p.StorageStatus(context.Background(), id); err != nil {
		return nil, err
	}
	return []sdk.ContentItem{}, nil
}
