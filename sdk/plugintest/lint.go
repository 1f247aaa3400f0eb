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
func checkInfo(info *pluginv1.InfoResponse) []Problem {
	var out []Problem
	add := func(capability, hint, format string, args ...any) {
		out = append(out, problem(PhaseInfo, capability, hint, format, args...))
	}
	if err := sdk.CheckPluginName(info.GetName()); err != nil {
		add("", "", "Info.Name: %v", err)
	}
	if err := sdk.CheckVersion(info.GetVersion()); err != nil {
		add("", "", "Info.Version: %v", err)
	}
	if info.GetProtocolMajor() != sdk.ProtocolMajor {
		add("", "build the plugin with a matching felhom sdk", "protocol major %d, this kit speaks %d", info.GetProtocolMajor(), sdk.ProtocolMajor)
	}
	if info.GetMinCoreProtocolMinor() > info.GetProtocolMinor() {
		add("", "", "Info.MinCoreMinor %d is above the plugin's own protocol minor %d", info.GetMinCoreProtocolMinor(), info.GetProtocolMinor())
	}
	if info.GetSdkVersion() == "" {
		add("", "serve the plugin with sdk.Serve", "Info carries no sdk_version")
	}
	if len(info.GetCapabilities()) == 0 {
		add("", "add at least one to Info.Capabilities", "the plugin declares no capabilities")
	}
	seen := map[string]bool{}
	for _, c := range info.GetCapabilities() {
		id := c.GetId()
		if err := sdk.CheckCapabilityID(id); err != nil {
			add(id, "", "%v", err)
		}
		if seen[id] {
			add(id, "IDs must be unique", "capability %q is declared twice", id)
		}
		seen[id] = true
		out = append(out, checkCapability(c)...)
	}
	return out
}

func checkCapability(c *pluginv1.Capability) []Problem {
	var out []Problem
	add := func(hint, format string, args ...any) {
		out = append(out, problem(PhaseInfo, c.GetId(), hint, "capability %q: %s", c.GetId(), fmt.Sprintf(format, args...)))
	}
	if c.GetSchemaVersion() == 0 {
		add("", "SchemaVersion must be at least 1")
	}
	class := c.GetClass()
	if class == pluginv1.CapabilityClass_CAPABILITY_CLASS_UNSPECIFIED || pluginv1.CapabilityClass_name[int32(class)] == "" {
		add("", "Class must be sdk.Read, sdk.Benign or sdk.Destructive")
	}
	if strings.TrimSpace(c.GetDescription()) == "" {
		add("say in one line what the capability does (operators see it)", "Description is empty")
	}
	mutates := false
	for _, s := range c.GetApi() {
		scope := apiscope.Scope{Method: s.GetMethod(), Path: s.GetPath()}
		if err := apiscope.Validate(scope); err != nil {
			add("", "%v", err)
			continue
		}
		if s.GetMethod() != "GET" {
			mutates = true
		}
		if prefix, deep := strings.CutSuffix(s.GetPath(), "/**"); deep {
			if n := strings.Count(prefix, "/"); n < minDeepPrefix {
				add(fmt.Sprintf("declare the paths the capability calls (a /** needs at least %d segments before it)", minDeepPrefix),
					"scope %s grants a whole API subtree", scope)
			}
		}
		if class == pluginv1.CapabilityClass_CAPABILITY_CLASS_READ && s.GetMethod() != "GET" {
			add("a read capability changes nothing; make it benign or destructive, or drop the scope", "class read but scope %s changes state", scope)
		}
	}
	if class == pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE && !mutates && !c.GetNeedsRoot() {
		add("if it only reads, make it sdk.Read; otherwise declare the API calls it makes",
			"class destructive but it neither changes anything through the API (only GET scopes) nor needs root")
	}
	return out
}

// checkStates checks per-capability states (from Configure or Health):
// every declared capability once, no unknown ones, a real state each.
func checkStates(phase string, declared []*pluginv1.Capability, states []*pluginv1.CapabilityState) []Problem {
	var out []Problem
	where := phaseCall[phase]
	want := map[string]bool{}
	for _, c := range declared {
		want[c.GetId()] = true
	}
	got := map[string]bool{}
	for _, s := range states {
		id := s.GetId()
		switch {
		case !want[id]:
			out = append(out, problem(phase, id, "report states only for capabilities in Info", "%s: state for undeclared capability %q", where, id))
		case got[id]:
			out = append(out, problem(phase, id, "", "%s: capability %q has two states", where, id))
		}
		got[id] = true
		if s.GetState() == pluginv1.State_STATE_UNSPECIFIED || pluginv1.State_name[int32(s.GetState())] == "" {
			out = append(out, problem(phase, id, "use sdk.Available, sdk.StateNotApplicable or sdk.Unhealthy", "%s: capability %q has no valid state", where, id))
		}
	}
	for _, c := range declared {
		if !got[c.GetId()] {
			out = append(out, problem(phase, c.GetId(), "", "%s: no state for capability %q", where, c.GetId()))
		}
	}
	return out
}

// phaseCall names the plugin method a phase calls, for messages.
var phaseCall = map[string]string{PhaseConfigure: "Configure", PhaseHealth: "Health"}

// checkSelfTest checks a self-test answer is structured and passes.
func checkSelfTest(declared []*pluginv1.Capability, resp *pluginv1.SelfTestResponse) []Problem {
	var out []Problem
	ids := map[string]bool{}
	for _, c := range declared {
		ids[c.GetId()] = true
	}
	names := map[string]bool{}
	for i, c := range resp.GetChecks() {
		name, cp := c.GetName(), c.GetCapability()
		add := func(hint, format string, args ...any) {
			out = append(out, problem(PhaseSelfTest, cp, hint, format, args...))
		}
		switch {
		case strings.TrimSpace(name) == "":
			add(`name every check (e.g. "api.reach")`, "self-test check #%d has no name", i+1)
		case names[name]:
			add("check names must be unique", "self-test check %q appears twice", name)
		}
		names[name] = true
		if c.GetStatus() == pluginv1.CheckStatus_CHECK_STATUS_UNSPECIFIED || pluginv1.CheckStatus_name[int32(c.GetStatus())] == "" {
			add("use sdk.Pass, sdk.Fail, sdk.Skip or sdk.NotApplicable", "self-test check %q has no status", name)
		}
		if c.GetStatus() == pluginv1.CheckStatus_CHECK_STATUS_FAIL {
			add("", "self-test check %q failed against the simulator: %s", name, c.GetDetail())
		}
		if cp != "" && !ids[cp] {
			add("", "self-test check %q names capability %q, which the plugin does not declare", name, cp)
		}
	}
	return out
}

// checkCallsInScope reports API calls made while capability c ran that
// lie outside c's own scopes (the core enforces the plugin-wide union; a
// capability reaching into another's scopes is still a declaration bug).
func checkCallsInScope(c *pluginv1.Capability, node string, calls []string) []Problem {
	set, err := apiscope.Compile(apiscope.FromProto(c.GetApi()))
	if err != nil {
		return nil // reported by checkInfo
	}
	var out []Problem
	for _, call := range calls {
		method, path, _ := strings.Cut(call, " ")
		if !set.Allows(node, method, path) {
			out = append(out, problem(PhaseInvoke, c.GetId(),
				fmt.Sprintf("add {Method: %q, Path: ...} to its Capability.API (calls from other goroutines of the plugin, such as a HealthWatcher, while it ran count too: see the package doc)", method),
				"capability %q called %s, which is not in its own API scopes", c.GetId(), call))
		}
	}
	return out
}
