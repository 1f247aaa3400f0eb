package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"gitea.dooplex.hu/admin/felhom-agent/core/registry"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// Result is a successful invocation.
type Result struct {
	// Plugin and Version served the call.
	Plugin  string
	Version string
	// Data is the capability's result object (nil when it returned none).
	Data map[string]any
	// UPIDs are the Proxmox tasks the invocation started.
	UPIDs []string
}

// Invoke runs a capability on the plugin generation that serves it now.
// Errors: registry.ErrUnknownCapability, ErrNotApplicable, ErrQuarantined,
// ErrPluginUnavailable (restarting or stopping), *CrashError
// (errors.Is ErrPluginCrashed) when the process died during the call, a
// wrapped *sdk.PluginError when the plugin refused or failed the call, or
// the ctx's error.
func (h *Host) Invoke(ctx context.Context, capID string, params map[string]any, opID, principal string) (*Result, error) {
	e, ok := h.reg.Lookup(registry.CapabilityID(capID))
	if !ok {
		return nil, fmt.Errorf("invoke %s: %w", capID, registry.ErrUnknownCapability)
	}
	inst := e.Generation.Handle.(*instance)
	switch st := e.Status(); st.State {
	case registry.StateQuarantined:
		return nil, fmt.Errorf("invoke %s: plugin %s: %w: %s", capID, inst.m.name, ErrQuarantined, st.Detail)
	case registry.StateNotApplicable:
		return nil, fmt.Errorf("invoke %s: %w: %s", capID, ErrNotApplicable, st.Detail)
	}
	if !inst.enter() {
		return nil, fmt.Errorf("invoke %s: plugin %s: %w (%s)", capID, inst.m.name, ErrPluginUnavailable, e.Status().Detail)
	}
	defer inst.leave()
	req := &pluginv1.InvokeRequest{Capability: capID, SchemaVersion: e.Capability.SchemaVersion, OpId: opID, Principal: principal}
	if params != nil {
		s, err := structpb.NewStruct(params)
		if err != nil {
			return nil, fmt.Errorf("invoke %s: params: %w", capID, err)
		}
		req.Params = s
	}
	resp, err := inst.pc.Invoke(ctx, req)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, sdk.ErrPluginCrashed) {
			return nil, fmt.Errorf("invoke %s: %w", capID, ctx.Err())
		}
		return nil, fmt.Errorf("invoke %s (plugin %s): %w", capID, inst.m.name, h.crashError(ctx, inst, err))
	}
	out := &Result{Plugin: inst.m.name, Version: inst.cand.Version.String(), UPIDs: resp.GetUpids()}
	if r := resp.GetResult(); r != nil {
		out.Data = r.AsMap()
	}
	return out, nil
}

// Check is one self-test result.
type Check struct {
	Name       string        `json:"name"`
	Status     string        `json:"status"` // pass, fail, skip, not_applicable
	Detail     string        `json:"detail,omitempty"`
	Duration   time.Duration `json:"duration"`
	Capability string        `json:"capability,omitempty"`
}

// SelfTest runs one running plugin's self-test.
func (h *Host) SelfTest(ctx context.Context, plugin string, mode pluginv1.SelfTestMode, scratchVMID int64) ([]Check, error) {
	inst, err := h.running(plugin)
	if err != nil {
		return nil, err
	}
	if !inst.enter() {
		return nil, fmt.Errorf("selftest %s: %w", plugin, ErrPluginUnavailable)
	}
	defer inst.leave()
	resp, err := inst.pc.SelfTest(ctx, mode, scratchVMID)
	if err != nil {
		return nil, fmt.Errorf("selftest %s: %w", plugin, h.crashError(ctx, inst, err))
	}
	out := make([]Check, 0, len(resp.GetChecks()))
	for _, c := range resp.GetChecks() {
		st := "unspecified"
		switch c.GetStatus() {
		case pluginv1.CheckStatus_CHECK_STATUS_PASS:
			st = "pass"
		case pluginv1.CheckStatus_CHECK_STATUS_FAIL:
			st = "fail"
		case pluginv1.CheckStatus_CHECK_STATUS_SKIP:
			st = "skip"
		case pluginv1.CheckStatus_CHECK_STATUS_NOT_APPLICABLE:
			st = "not_applicable"
		}
		out = append(out, Check{Name: c.GetName(), Status: st, Detail: c.GetDetail(),
			Duration: time.Duration(c.GetDurationUs()) * time.Microsecond, Capability: c.GetCapability()})
	}
	return out, nil
}

// running returns the plugin's live instance.
func (h *Host) running(plugin string) (*instance, error) {
	h.mu.Lock()
	m := h.plugins[plugin]
	h.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("plugin %s: %w", plugin, ErrUnknownPlugin)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || m.state != StateRunning {
		reason := m.state
		if m.reason != "" {
			reason += ": " + m.reason
		}
		return nil, fmt.Errorf("plugin %s is not running (%s): %w", plugin, reason, ErrPluginUnavailable)
	}
	return m.cur, nil
}
