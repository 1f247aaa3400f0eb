package plugintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/structpb"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/apiscope"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintls"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// Config says what to run and how.
type Config struct {
	// Binary is the path of a built plugin binary. Set Binary or Plugin.
	Binary string
	// Plugin runs the plugin in the test process instead.
	Plugin sdk.Plugin
	// Params are the invocation parameters per capability ID.
	Params map[string]map[string]any
	// SkipInvoke lists capabilities not to invoke (destructive ones the
	// simulator cannot back, or ones that need real hardware).
	SkipInvoke []string
	// PluginConfig is the plugin's config section passed to Configure.
	PluginConfig map[string]any
	// Sim is the Proxmox simulator to use; nil starts one with SimOptions
	// (seeded: LXC 100 running, QEMU 101 and LXC 9999 stopped).
	Sim *pvesim.Server
	// SimOptions configure the simulator the kit starts. Seed is forced on.
	SimOptions pvesim.Options
	// Timeout bounds each step (default 10s).
	Timeout time.Duration
}

// probe paths that no plugin may be granted: the kit makes the plugin call
// one of them and expects the proxy to refuse it.
var outsidePaths = []string{"/access/users", "/access/acl", "/cluster/firewall/rules", "/pools"}

// Run runs the conformance checks as subtests of t, in order: handshake,
// info, configure, health, selftest, report, invoke/<capability>,
// scope-refusal, shutdown. Each failure says what to fix. A failed
// handshake, info or configure stops the run.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if (cfg.Binary == "") == (cfg.Plugin == nil) {
		t.Fatal("plugintest.Config: set exactly one of Binary (a built plugin) or Plugin (in-process)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	k := &kit{cfg: cfg, parent: t}
	if cfg.Sim == nil {
		opts := cfg.SimOptions
		opts.Seed = true
		k.sim = pvesim.Start(t, opts)
	} else {
		k.sim = cfg.Sim
	}
	k.node = k.sim.Node()
	k.host = &simHost{sim: k.sim, client: k.sim.Client(t), token: k.sim.AdminToken()}

	steps := []struct {
		name  string
		fatal bool
		f     func(*testing.T)
	}{
		{"handshake", true, k.handshake},
		{"info", true, k.info},
		{"configure", true, k.configure},
		{"health", false, k.health},
		{"selftest", false, k.selfTest},
		{"report", false, k.report},
		{"invoke", false, k.invokeAll},
		{"scope-refusal", false, k.scopeRefusal},
		{"shutdown", false, k.shutdown},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.f) && s.fatal {
			t.Errorf("stopping: the %s step failed", s.name)
			return
		}
	}
}

type kit struct {
	cfg    Config
	parent *testing.T // the plugin lives until Run's test ends
	sim    *pvesim.Server
	node   string
	host   *simHost

	pc     *sdk.PluginClient
	inf    *pluginv1.InfoResponse
	caps   map[string]*pluginv1.Capability
	proc   *exec.Cmd   // nil in-process
	stderr *syncBuffer // plugin stderr (process)
	stream *sdk.HealthStream
}

func (k *kit) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// logStderr shows the plugin's stderr when a step failed.
func (k *kit) logStderr(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() && k.stderr != nil {
			t.Logf("plugin stderr:\n%s", k.stderr.tail(40))
		}
	})
}

func (k *kit) handshake(t *testing.T) {
	k.logStderr(t)
	if k.cfg.Plugin != nil {
		k.inProcess(t)
		return
	}
	k.process(t)
}

// inProcess connects to cfg.Plugin through go-plugin's in-memory harness.
func (k *kit) inProcess(t *testing.T) {
	set, stop, err := sdk.InProcess(k.cfg.Plugin, sdk.WithConformanceProbe())
	if err != nil {
		t.Fatalf("the plugin's Info is invalid: %v", err)
	}
	client, server := plugin.TestPluginGRPCConn(t, false, set)
	raw, err := client.Dispense(sdk.PluginSetKey)
	if err != nil {
		t.Fatalf("dispense %q: %v", sdk.PluginSetKey, err)
	}
	k.pc = raw.(*sdk.PluginClient)
	k.parent.Cleanup(func() {
		k.pc.Close()
		_ = client.Close()
		select {
		case <-server.DoneCh:
		case <-time.After(2 * time.Second):
			server.Stop()
		}
		stop()
	})
}

// process launches cfg.Binary the way felhom-agent does.
func (k *kit) process(t *testing.T) {
	creds, err := plugintls.Issue()
	if err != nil {
		t.Fatalf("issue tls identity: %v", err)
	}
	cmd := exec.Command(k.cfg.Binary)
	cmd.Env = []string{sdk.EnvPluginTest + "=1", sdk.EnvLogLevel + "=debug"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pipe, err := creds.Attach(cmd)
	if err != nil {
		t.Fatal(err)
	}
	k.proc, k.stderr = cmd, &syncBuffer{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		TLSConfig:        creds.Host,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     k.cfg.Timeout,
		Stderr:           k.stderr,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
	})
	k.parent.Cleanup(func() {
		if k.pc != nil {
			k.pc.Close()
		}
		pipe.Close() // the plugin exits at once if still running
		client.Kill()
	})
	rpc, err := client.Client()
	pipe.Started()
	if err != nil {
		t.Fatalf("start %s: %v\n(the binary must call sdk.Serve and write nothing to stdout)", k.cfg.Binary, sdk.ClassifyStartError(k.cfg.Binary, err))
	}
	raw, err := rpc.Dispense(sdk.PluginSetKey)
	if err != nil {
		t.Fatalf("dispense %q: %v", sdk.PluginSetKey, err)
	}
	pc, ok := raw.(*sdk.PluginClient)
	if !ok {
		t.Fatalf("dispense returned %T", raw)
	}
	k.pc = pc
}

func (k *kit) info(t *testing.T) {
	k.logStderr(t)
	info, err := k.pc.Info(k.ctx(t))
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	k.inf = info
	k.caps = map[string]*pluginv1.Capability{}
	for _, c := range info.GetCapabilities() {
		k.caps[c.GetId()] = c
		if c.GetId() == sdk.ProbeCapability {
			t.Errorf("Info lists %q: that capability is the SDK's hidden probe", sdk.ProbeCapability)
		}
	}
	for _, p := range checkInfo(info) {
		t.Error(p)
	}
	for id := range k.cfg.Params {
		if k.caps[id] == nil {
			t.Errorf("Config.Params names capability %q, which the plugin does not declare", id)
		}
	}
	for _, id := range k.cfg.SkipInvoke {
		if k.caps[id] == nil {
			t.Errorf("Config.SkipInvoke names capability %q, which the plugin does not declare", id)
		}
	}
	if !slices.Contains(info.GetFeatures(), sdk.FeatureHealthStream) {
		t.Errorf("Info.features lacks %q: serve the plugin with sdk.Serve", sdk.FeatureHealthStream)
	}
}

func (k *kit) configure(t *testing.T) {
	k.logStderr(t)
	guarded, err := sdk.ScopeGuard(k.inf.GetName(), k.node, k.inf.GetCapabilities(), k.host)
	if err != nil {
		t.Fatalf("scope guard: %v", err)
	}
	resp, err := k.pc.Configure(k.ctx(t), sdk.ConfigureArgs{Config: k.cfg.PluginConfig, HostID: "plugintest", Node: k.node}, guarded)
	if err != nil {
		t.Fatalf("Configure with Config.PluginConfig %v: %v", k.cfg.PluginConfig, err)
	}
	for _, p := range checkStates("Configure", k.inf.GetCapabilities(), resp.GetStates()) {
		t.Error(p)
	}
	k.host.takeCalls()
}

func (k *kit) health(t *testing.T) {
	k.logStderr(t)
	hs, err := k.pc.Health(context.Background())
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	k.stream = hs
	k.parent.Cleanup(hs.Close)
	first := make(chan error, 1)
	var msg *pluginv1.HealthResponse
	go func() {
		var err error
		msg, err = hs.Recv()
		first <- err
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("Health: first message: %v", err)
		}
	case <-time.After(2 * time.Second):
		hs.Close()
		t.Fatal("Health sent no first message within 2s: the first one must come at once")
	}
	for _, p := range checkStates("Health", k.inf.GetCapabilities(), msg.GetCapabilities()) {
		t.Error(p)
	}
	k.host.takeCalls()
}

func (k *kit) selfTest(t *testing.T) {
	k.logStderr(t)
	resp, err := k.pc.SelfTest(k.ctx(t), pluginv1.SelfTestMode_SELF_TEST_MODE_READ, 0)
	if err != nil {
		t.Fatalf("SelfTest(read): %v", err)
	}
	if len(resp.GetChecks()) == 0 {
		t.Error("SelfTest(read) returned no checks: return at least one named check (or do not implement sdk.SelfTester)")
	}
	for _, p := range checkSelfTest(k.inf.GetCapabilities(), resp) {
		t.Error(p)
	}
	if calls := k.host.takeCalls(); len(calls) > 0 {
		for _, c := range calls {
			if m, _, _ := strings.Cut(c, " "); m != "GET" {
				t.Errorf("SelfTest(read) called %s: read self-tests must not change anything", c)
			}
		}
	}
}

func (k *kit) report(t *testing.T) {
	k.logStderr(t)
	const budget = 2 * time.Second
	start := time.Now()
	resp, err := k.pc.Report(context.Background(), budget)
	if err != nil {
		t.Fatalf("Report(budget %s): %v", budget, err)
	}
	if took := time.Since(start); took > budget {
		t.Errorf("Report took %s, over its %s budget: return what you have when ctx's deadline nears", took, budget)
	}
	names := map[string]bool{}
	for _, s := range resp.GetSections() {
		switch {
		case strings.TrimSpace(s.GetName()) == "":
			t.Error("a report section has no name")
		case names[s.GetName()]:
			t.Errorf("report section %q appears twice", s.GetName())
		}
		names[s.GetName()] = true
	}
	for _, c := range k.host.takeCalls() {
		if m, _, _ := strings.Cut(c, " "); m != "GET" {
			t.Errorf("Report called %s: reports must not change anything", c)
		}
	}
}

func (k *kit) invokeAll(t *testing.T) {
	k.logStderr(t)
	for _, c := range k.inf.GetCapabilities() {
		if slices.Contains(k.cfg.SkipInvoke, c.GetId()) {
			continue
		}
		t.Run(c.GetId(), func(t *testing.T) {
			for _, p := range k.invokeOne(k.ctx(t), c) {
				t.Error(p)
			}
		})
	}
}

// invokeOne invokes c with its configured params and returns problems.
func (k *kit) invokeOne(ctx context.Context, c *pluginv1.Capability) []string {
	id := c.GetId()
	req := &pluginv1.InvokeRequest{Capability: id, SchemaVersion: c.GetSchemaVersion(), OpId: "plugintest-" + id}
	if p := k.cfg.Params[id]; p != nil {
		s, err := structpb.NewStruct(p)
		if err != nil {
			return []string{fmt.Sprintf("Config.Params[%q] cannot be sent: %v", id, err)}
		}
		req.Params = s
	}
	resp, err := k.pc.Invoke(ctx, req)
	calls := k.host.takeCalls()
	problems := checkCallsInScope(c, k.node, calls)
	var pe *sdk.PluginError
	switch {
	case errors.As(err, &pe) && pe.Code == sdk.CodePermissionDenied && strings.Contains(pe.Message, "declared API scopes"):
		problems = append(problems, fmt.Sprintf("capability %q called the API outside the plugin's declared scopes (%s): add the path to its Capability.API", id, pe.Message))
	case errors.As(err, &pe) && pe.Code == sdk.CodeNotApplicable:
		// Fine when the capability says so in its state.
		if !k.notApplicable(id) {
			problems = append(problems, fmt.Sprintf("capability %q answered not-applicable, but its state is not STATE_NOT_APPLICABLE: call host.SetState(%q, sdk.StateNotApplicable, why)", id, id))
		}
	case errors.As(err, &pe) && pe.Code == sdk.CodeInvalidParams:
		problems = append(problems, fmt.Sprintf("capability %q refused its params (%v): set Config.Params[%q] (or SkipInvoke it)", id, pe, id))
	case err != nil:
		problems = append(problems, fmt.Sprintf("invoke %q against the simulator: %v", id, err))
	default:
		for _, u := range resp.GetUpids() {
			if !strings.HasPrefix(u, "UPID:") {
				problems = append(problems, fmt.Sprintf("capability %q reported task %q, which is not a UPID", id, u))
			}
		}
	}
	return problems
}

func (k *kit) notApplicable(id string) bool {
	if k.stream == nil {
		return false
	}
	// Configure's states are not kept; ask again through a fresh stream.
	hs, err := k.pc.Health(context.Background())
	if err != nil {
		return false
	}
	defer hs.Close()
	m, err := hs.Recv()
	if err != nil {
		return false
	}
	for _, s := range m.GetCapabilities() {
		if s.GetId() == id {
			return s.GetState() == pluginv1.State_STATE_NOT_APPLICABLE
		}
	}
	return false
}

// scopeRefusal makes the plugin call paths outside its scopes through the
// real broker connection and checks the proxy refuses them, naming the
// path and the plugin.
func (k *kit) scopeRefusal(t *testing.T) {
	k.logStderr(t)
	var all []apiscope.Scope
	for _, c := range k.inf.GetCapabilities() {
		all = append(all, apiscope.FromProto(c.GetApi())...)
	}
	var outside string
	for _, p := range outsidePaths {
		if !apiscope.Match(all, k.node, "GET", p) {
			outside = p
			break
		}
	}
	if outside == "" {
		t.Fatalf("the plugin's scopes cover all of %v: no capability should need those", outsidePaths)
	}
	for _, path := range []string{outside, "/nodes/" + k.node + "/../.." + outside} {
		req := &pluginv1.InvokeRequest{Capability: sdk.ProbeCapability, SchemaVersion: 1}
		req.Params, _ = structpb.NewStruct(map[string]any{"method": "GET", "path": path})
		_, err := k.pc.Invoke(k.ctx(t), req)
		var pe *sdk.PluginError
		switch {
		case errors.As(err, &pe) && pe.Code == sdk.CodeUnknownCapability:
			t.Fatalf("the plugin does not serve %q with %s=1: build it with this felhom sdk", sdk.ProbeCapability, sdk.EnvPluginTest)
		case err == nil:
			t.Errorf("GET %s went through: the API proxy must refuse paths outside the declared scopes", path)
		case !errors.As(err, &pe) || pe.Code != sdk.CodePermissionDenied:
			t.Errorf("GET %s: err = %v, want permission denied", path, err)
		case !strings.Contains(pe.Message, fmt.Sprintf("%q", path)) || !strings.Contains(pe.Message, "plugin "+k.inf.GetName()):
			t.Errorf("GET %s: refusal %q does not name the path and the plugin", path, pe.Message)
		}
	}
	if calls := k.host.takeCalls(); len(calls) > 0 {
		t.Errorf("refused calls reached the simulator: %v", calls)
	}
}

func (k *kit) shutdown(t *testing.T) {
	k.logStderr(t)
	const grace = 2 * time.Second
	if err := k.pc.Shutdown(context.Background(), grace); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if k.stream != nil {
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := k.stream.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		select {
		case err := <-ended:
			if !errors.Is(err, io.EOF) && !errors.Is(err, sdk.ErrPluginCrashed) {
				t.Errorf("health stream after Shutdown ended with %v, want end of stream", err)
			}
		case <-time.After(grace):
			t.Error("health stream still open after Shutdown: the SDK ends it; is the plugin's Close blocking?")
			k.stream.Close()
		}
	}
	if k.proc == nil {
		return
	}
	select {
	case <-k.pc.Exited():
	case <-time.After(grace + time.Second):
		t.Fatalf("the plugin process did not exit within %s of Shutdown", grace+time.Second)
	}
	if code := k.proc.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the plugin exited with status %d after Shutdown, want 0", code)
	}
}

// syncBuffer collects a plugin's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
