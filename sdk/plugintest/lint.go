package plugintest

import (
	"fmt"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/apiscope"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// minDeepPrefix is how many segments must precede a final "/**": a subtree
// like /nodes/{node}/disks/** is specific, /nodes/{node}/** is not.
const minDeepPrefix = 3

// checkInfo returns what is wrong with a plugin's Info, each problem with
// what to do about it. Empty means conformant.
func checkInfo(info *pluginv1.InfoResponse) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if err := sdk.CheckPluginName(info.GetName()); err != nil {
		add("Info.Name: %v", err)
	}
	if err := sdk.CheckVersion(info.GetVersion()); err != nil {
		add("Info.Version: %v", err)
	}
	if info.GetProtocolMajor() != sdk.ProtocolMajor {
		add("protocol major %d, this kit speaks %d: build the plugin with a matching felhom sdk", info.GetProtocolMajor(), sdk.ProtocolMajor)
	}
	if info.GetMinCoreProtocolMinor() > info.GetProtocolMinor() {
		add("Info.MinCoreMinor %d is above the plugin's own protocol minor %d", info.GetMinCoreProtocolMinor(), info.GetProtocolMinor())
	}
	if info.GetSdkVersion() == "" {
		add("Info carries no sdk_version: serve the plugin with sdk.Serve")
	}
	if len(info.GetCapabilities()) == 0 {
		add("the plugin declares no capabilities: add at least one to Info.Capabilities")
	}
	seen := map[string]bool{}
	for _, c := range info.GetCapabilities() {
		id := c.GetId()
		if err := sdk.CheckCapabilityID(id); err != nil {
			add("%v", err)
		}
		if seen[id] {
			add("capability %q is declared twice: IDs must be unique", id)
		}
		seen[id] = true
		out = append(out, checkCapability(c)...)
	}
	return out
}

func checkCapability(c *pluginv1.Capability) []string {
	var out []string
	add := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("capability %q: ", c.GetId())+fmt.Sprintf(format, args...))
	}
	if c.GetSchemaVersion() == 0 {
		add("SchemaVersion must be at least 1")
	}
	class := c.GetClass()
	if class == pluginv1.CapabilityClass_CAPABILITY_CLASS_UNSPECIFIED || pluginv1.CapabilityClass_name[int32(class)] == "" {
		add("Class must be sdk.Read, sdk.Benign or sdk.Destructive")
	}
	if strings.TrimSpace(c.GetDescription()) == "" {
		add("Description is empty: say in one line what the capability does (operators see it)")
	}
	mutates := false
	for _, s := range c.GetApi() {
		scope := apiscope.Scope{Method: s.GetMethod(), Path: s.GetPath()}
		if err := apiscope.Validate(scope); err != nil {
			add("%v", err)
			continue
		}
		if s.GetMethod() != "GET" {
			mutates = true
		}
		if prefix, deep := strings.CutSuffix(s.GetPath(), "/**"); deep {
			if n := strings.Count(prefix, "/"); n < minDeepPrefix {
				add("scope %s grants a whole API subtree; declare the paths the capability calls (a /** needs at least %d segments before it)", scope, minDeepPrefix)
			}
		}
		if class == pluginv1.CapabilityClass_CAPABILITY_CLASS_READ && s.GetMethod() != "GET" {
			add("class read but scope %s changes state: a read capability changes nothing; make it benign or destructive, or drop the scope", scope)
		}
	}
	if class == pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE && !mutates && !c.GetNeedsRoot() {
		add("class destructive but it neither changes anything through the API (only GET scopes) nor needs root: if it only reads, make it sdk.Read; otherwise declare the API calls it makes")
	}
	return out
}

// checkStates checks per-capability states (from Configure or Health):
// every declared capability once, no unknown ones, a real state each.
func checkStates(where string, declared []*pluginv1.Capability, states []*pluginv1.CapabilityState) []string {
	var out []string
	want := map[string]bool{}
	for _, c := range declared {
		want[c.GetId()] = true
	}
	got := map[string]bool{}
	for _, s := range states {
		id := s.GetId()
		switch {
		case !want[id]:
			out = append(out, fmt.Sprintf("%s: state for undeclared capability %q: report states only for capabilities in Info", where, id))
		case got[id]:
			out = append(out, fmt.Sprintf("%s: capability %q has two states", where, id))
		}
		got[id] = true
		if s.GetState() == pluginv1.State_STATE_UNSPECIFIED || pluginv1.State_name[int32(s.GetState())] == "" {
			out = append(out, fmt.Sprintf("%s: capability %q has no valid state: use sdk.Available, sdk.StateNotApplicable or sdk.Unhealthy", where, id))
		}
	}
	for _, c := range declared {
		if !got[c.GetId()] {
			out = append(out, fmt.Sprintf("%s: no state for capability %q", where, c.GetId()))
		}
	}
	return out
}

// checkSelfTest checks a self-test answer is structured and passes.
func checkSelfTest(declared []*pluginv1.Capability, resp *pluginv1.SelfTestResponse) []string {
	var out []string
	ids := map[string]bool{}
	for _, c := range declared {
		ids[c.GetId()] = true
	}
	names := map[string]bool{}
	for i, c := range resp.GetChecks() {
		name := c.GetName()
		switch {
		case strings.TrimSpace(name) == "":
			out = append(out, fmt.Sprintf("self-test check #%d has no name: name every check (e.g. \"api.reach\")", i+1))
		case names[name]:
			out = append(out, fmt.Sprintf("self-test check %q appears twice: check names must be unique", name))
		}
		names[name] = true
		if c.GetStatus() == pluginv1.CheckStatus_CHECK_STATUS_UNSPECIFIED || pluginv1.CheckStatus_name[int32(c.GetStatus())] == "" {
			out = append(out, fmt.Sprintf("self-test check %q has no status: use sdk.Pass, sdk.Fail, sdk.Skip or sdk.NotApplicable", name))
		}
		if c.GetStatus() == pluginv1.CheckStatus_CHECK_STATUS_FAIL {
			out = append(out, fmt.Sprintf("self-test check %q failed against the simulator: %s", name, c.GetDetail()))
		}
		if cp := c.GetCapability(); cp != "" && !ids[cp] {
			out = append(out, fmt.Sprintf("self-test check %q names capability %q, which the plugin does not declare", name, cp))
		}
	}
	return out
}

// checkCallsInScope reports API calls made while capability c ran that
// lie outside c's own scopes (the core enforces the plugin-wide union; a
// capability reaching into another's scopes is still a declaration bug).
func checkCallsInScope(c *pluginv1.Capability, node string, calls []string) []string {
	set, err := apiscope.Compile(apiscope.FromProto(c.GetApi()))
	if err != nil {
		return nil // reported by checkInfo
	}
	var out []string
	for _, call := range calls {
		method, path, _ := strings.Cut(call, " ")
		if !set.Allows(node, method, path) {
			out = append(out, fmt.Sprintf("capability %q called %s, which is not in its own API scopes: add {Method: %q, Path: ...} to its Capability.API", c.GetId(), call, method))
		}
	}
	return out
}
