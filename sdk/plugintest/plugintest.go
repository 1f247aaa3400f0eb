package plugintest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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

// pluginLogLines is how much of a plugin's stderr a Report keeps.
const pluginLogLines = 200

// Run runs the conformance checks as subtests of t, in order: handshake,
// info, configure, health, selftest, report, invoke/<capability>,
// scope-refusal, shutdown. Each problem fails its subtest with a message
// saying what to fix. Problems in handshake, info or configure stop the
// run. Run is Check reported through t.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	k, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := k.close(); err != nil {
			t.Error(err)
		}
	}()
	k.drive(&testRunner{t: t, k: k})
}

// Check runs the same checks as Run and returns what it found, without
// failing any test: use it to assert that the kit rejects a plugin, or to
// report problems your own way. The error is for what kept the checks
// from running (a bad Config, the simulator not starting, ctx ending);
// the plugin's problems are in the Report.
func Check(ctx context.Context, cfg Config) (*Report, error) {
	k, err := start(cfg)
	if err != nil {
		return nil, err
	}
	r := &reportRunner{ctx: ctx, k: k, rep: &Report{}}
	k.drive(r)
	err = k.close()
	if k.inf != nil {
		r.rep.Plugin = k.inf.GetName()
	}
	if k.stderr != nil {
		r.rep.PluginLog = k.stderr.lines(pluginLogLines)
	}
	if ctx.Err() != nil {
		err = errors.Join(fmt.Errorf("plugintest: %w", ctx.Err()), err)
	}
	return r.rep, err
}

// runner runs one phase (or one capability of the invoke phase) and
// reports its problems: through a *testing.T (Run) or into a Report
// (Check). It returns whether the phase found no problem.
type runner interface {
	run(name string, f func(ctx context.Context, r runner) []Problem) bool
	stop(phase string)
}

type testRunner struct {
	t *testing.T
	k *kit
}

func (r *testRunner) run(name string, f func(context.Context, runner) []Problem) bool {
	return r.t.Run(name, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), r.k.cfg.Timeout)
		defer cancel()
		problems := f(ctx, &testRunner{t: t, k: r.k})
		for _, p := range problems {
			t.Error(p.String())
		}
		if len(problems) > 0 && r.k.stderr != nil {
			t.Logf("plugin stderr (end):\n%s", strings.Join(r.k.stderr.lines(40), "\n"))
		}
	})
}

func (r *testRunner) stop(phase string) { r.t.Errorf("stopping: the %s step failed", phase) }

type reportRunner struct {
	ctx context.Context
	k   *kit
	rep *Report
}

func (r *reportRunner) run(name string, f func(context.Context, runner) []Problem) bool {
	ctx, cancel := context.WithTimeout(r.ctx, r.k.cfg.Timeout)
	defer cancel()
	before := len(r.rep.Problems)
	problems := f(ctx, r)
	r.rep.Problems = append(r.rep.Problems, problems...)
	return len(r.rep.Problems) == before
}

func (r *reportRunner) stop(phase string) { r.rep.StoppedAt = phase }

type kit struct {
	cfg    Config
	sim    *pvesim.Server
	ownSim bool
	http   *http.Transport
	node   string
	host   *simHost

	pc       *sdk.PluginClient
	inf      *pluginv1.InfoResponse
	caps     map[string]*pluginv1.Capability
	proc     *exec.Cmd  // nil in-process
	stderr   *logBuffer // plugin stderr (process)
	stream   *sdk.HealthStream
	cleanups []func() // run last first by close
}

// start checks cfg and starts the simulator.
func start(cfg Config) (*kit, error) {
	if (cfg.Binary == "") == (cfg.Plugin == nil) {
		return nil, errors.New("plugintest.Config: set exactly one of Binary (a built plugin) or Plugin (in-process)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	k := &kit{cfg: cfg, sim: cfg.Sim}
	if k.sim == nil {
		opts := cfg.SimOptions
		opts.Seed = true
		sim, err := pvesim.New(opts)
		if err != nil {
			return nil, fmt.Errorf("plugintest: start the simulator: %w", err)
		}
		if err := sim.Listen("127.0.0.1:0"); err != nil {
			_ = sim.Close()
			return nil, fmt.Errorf("plugintest: start the simulator: %w", err)
		}
		k.sim, k.ownSim = sim, true
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(k.sim.CertPEM()) {
		_ = k.close()
		return nil, errors.New("plugintest: the simulator's certificate does not parse")
	}
	// pveproxy speaks HTTP/1.1 only.
	k.http = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	k.node = k.sim.Node()
	k.host = &simHost{sim: k.sim, client: &http.Client{Transport: k.http, Timeout: 30 * time.Second}, token: k.sim.AdminToken()}
	return k, nil
}

// close stops the plugin and everything the kit started.
func (k *kit) close() error {
	if k.stream != nil {
		k.stream.Close()
	}
	for i := len(k.cleanups) - 1; i >= 0; i-- {
		k.cleanups[i]()
	}
	k.cleanups = nil
	var err error
	if k.ownSim {
		if cerr := k.sim.Close(); cerr != nil {
			err = fmt.Errorf("plugintest: close the simulator: %w", cerr)
		}
	}
	if k.http != nil {
		k.http.CloseIdleConnections()
	}
	return err
}

// drive runs the phases in order.
func (k *kit) drive(r runner) {
	phases := []struct {
		name  string
		fatal bool
		f     func(context.Context, runner) []Problem
	}{
		{PhaseHandshake, true, k.handshake},
		{PhaseInfo, true, k.info},
		{PhaseConfigure, true, k.configure},
		{PhaseHealth, false, k.health},
		{PhaseSelfTest, false, k.selfTest},
		{PhaseReport, false, k.report},
		{PhaseInvoke, false, k.invokeAll},
		{PhaseScopeRefusal, false, k.scopeRefusal},
		{PhaseShutdown, false, k.shutdown},
	}
	for _, p := range phases {
		if !r.run(p.name, p.f) && p.fatal {
			r.stop(p.name)
			return
		}
	}
}

func (k *kit) handshake(context.Context, runner) []Problem {
	if k.cfg.Plugin != nil {
		return k.inProcess()
	}
	return k.process()
}

// inProcess connects to cfg.Plugin through go-plugin's in-memory harness.
func (k *kit) inProcess() []Problem {
	set, stop, err := sdk.InProcess(k.cfg.Plugin, sdk.WithConformanceProbe())
	if err != nil {
		return []Problem{problem(PhaseHandshake, "", "", "the plugin's Info is invalid: %v", err)}
	}
	k.cleanups = append(k.cleanups, stop)
	// TestPluginGRPCConn takes a testing.TB only to fail on setup errors;
	// setupTB turns those into an error, outside any test.
	tb := &setupTB{}
	var client *plugin.GRPCClient
	var server *plugin.GRPCServer
	done := make(chan struct{})
	go func() {
		defer close(done)
		client, server = plugin.TestPluginGRPCConn(tb, false, set)
	}()
	<-done
	if tb.err != nil {
		return []Problem{problem(PhaseHandshake, "", "", "connect to the plugin in-process: %v", tb.err)}
	}
	k.cleanups = append(k.cleanups, func() {
		if k.pc != nil {
			k.pc.Close()
		}
		_ = client.Close() // asks the server to stop (go-plugin's controller)
		select {
		case <-server.DoneCh:
		case <-time.After(2 * time.Second):
			server.Stop()
		}
	})
	raw, err := client.Dispense(sdk.PluginSetKey)
	if err != nil {
		return []Problem{problem(PhaseHandshake, "", "", "dispense %q: %v", sdk.PluginSetKey, err)}
	}
	k.pc = raw.(*sdk.PluginClient)
	return nil
}

// setupTB is the testing.TB go-plugin's TestPluginGRPCConn needs; that
// helper calls only Helper, Fatal and Fatalf (the embedded nil TB panics
// on anything else, so a go-plugin change shows at once).
type setupTB struct {
	testing.TB
	err error
}

func (*setupTB) Helper() {}

func (s *setupTB) Fatal(args ...any) {
	s.err = errors.New(strings.TrimSuffix(fmt.Sprintln(args...), "\n"))
	runtime.Goexit()
}

func (s *setupTB) Fatalf(format string, args ...any) {
	s.err = fmt.Errorf(format, args...)
	runtime.Goexit()
}

// process launches cfg.Binary the way felhom-agent does.
func (k *kit) process() []Problem {
	fail := func(hint, format string, args ...any) []Problem {
		return []Problem{problem(PhaseHandshake, "", hint, format, args...)}
	}
	creds, err := plugintls.Issue()
	if err != nil {
		return fail("", "issue the plugin's TLS identity: %v", err)
	}
	// go-plugin leaves the plugin's unix socket behind when the process is
	// killed or exits without closing it (the agent gone: status 3), so
	// the plugin gets a socket directory of its own, removed after it
	// exited, as go-plugin does for the runners it manages.
	sockDir, err := os.MkdirTemp("", "felhom-plugintest-")
	if err != nil {
		return fail("", "create the plugin's socket directory: %v", err)
	}
	k.cleanups = append(k.cleanups, func() { _ = os.RemoveAll(sockDir) })
	cmd := exec.Command(k.cfg.Binary)
	cmd.Env = []string{sdk.EnvPluginTest + "=1", sdk.EnvLogLevel + "=debug", plugin.EnvUnixSocketDir + "=" + sockDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pipe, err := creds.Attach(cmd)
	if err != nil {
		return fail("", "pass the TLS identity: %v", err)
	}
	k.proc, k.stderr = cmd, &logBuffer{}
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
	k.cleanups = append(k.cleanups, func() {
		if k.pc != nil {
			k.pc.Close()
		}
		pipe.Close() // the plugin exits at once if still running
		client.Kill()
	})
	rpc, err := client.Client()
	pipe.Started()
	if err != nil {
		pipe.Close()
		client.Kill() // waits until the plugin's stderr is read
		err = sdk.ClassifyStartError(filepath.Base(k.cfg.Binary), err)
		var ve *sdk.VersionError
		said := k.errorLines(5)
		switch {
		case errors.As(err, &ve):
			return fail("", "%v", err)
		case len(said) > 0:
			// go-plugin's own text only guesses why; the plugin knows.
			return fail("fix what the plugin said", "%s did not start; it said: %s", filepath.Base(k.cfg.Binary), strings.Join(said, "; "))
		}
		return fail("the binary must call sdk.Serve and write nothing to stdout", "start %s: %v", k.cfg.Binary, err)
	}
	raw, err := rpc.Dispense(sdk.PluginSetKey)
	if err != nil {
		return fail("", "dispense %q: %v", sdk.PluginSetKey, err)
	}
	pc, ok := raw.(*sdk.PluginClient)
	if !ok {
		return fail("", "dispense returned %T", raw)
	}
	k.pc = pc
	return nil
}

// errorLines returns the last n error lines (or lines that are not log
// entries, such as a panic) of the plugin's stderr, readable.
func (k *kit) errorLines(n int) []string {
	var out []string
	for _, l := range k.stderr.lines(pluginLogLines) {
		level, _, _ := strings.Cut(l, " ")
		switch level {
		case "TRACE", "DEBUG", "INFO", "WARN":
		default:
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func (k *kit) info(ctx context.Context, _ runner) []Problem {
	info, err := k.pc.Info(ctx)
	if err != nil {
		return []Problem{problem(PhaseInfo, "", "", "Info: %v", err)}
	}
	k.inf = info
	k.caps = map[string]*pluginv1.Capability{}
	var out []Problem
	for _, c := range info.GetCapabilities() {
		k.caps[c.GetId()] = c
		if c.GetId() == sdk.ProbeCapability {
			out = append(out, problem(PhaseInfo, c.GetId(), "", "Info lists %q: that capability is the SDK's hidden probe", sdk.ProbeCapability))
		}
	}
	out = append(out, checkInfo(info)...)
	for id := range k.cfg.Params {
		if k.caps[id] == nil {
			out = append(out, problem(PhaseInfo, id, "", "Config.Params names capability %q, which the plugin does not declare", id))
		}
	}
	for _, id := range k.cfg.SkipInvoke {
		if k.caps[id] == nil {
			out = append(out, problem(PhaseInfo, id, "", "Config.SkipInvoke names capability %q, which the plugin does not declare", id))
		}
	}
	if !slices.Contains(info.GetFeatures(), sdk.FeatureHealthStream) {
		out = append(out, problem(PhaseInfo, "", "serve the plugin with sdk.Serve", "Info.features lacks %q", sdk.FeatureHealthStream))
	}
	return out
}

func (k *kit) configure(ctx context.Context, _ runner) []Problem {
	guarded, err := sdk.ScopeGuard(k.inf.GetName(), k.node, k.inf.GetCapabilities(), k.host)
	if err != nil {
		return []Problem{problem(PhaseConfigure, "", "", "scope guard: %v", err)}
	}
	resp, err := k.pc.Configure(ctx, sdk.ConfigureArgs{Config: k.cfg.PluginConfig, HostID: "plugintest", Node: k.node}, guarded)
	if err != nil {
		return []Problem{problem(PhaseConfigure, "", "", "Configure with Config.PluginConfig %v: %v", k.cfg.PluginConfig, err)}
	}
	k.host.takeCalls()
	return checkStates(PhaseConfigure, k.inf.GetCapabilities(), resp.GetStates())
}

func (k *kit) health(ctx context.Context, _ runner) []Problem {
	// The stream lives until shutdown (or close), not just this phase.
	hs, err := k.pc.Health(context.WithoutCancel(ctx))
	if err != nil {
		return []Problem{problem(PhaseHealth, "", "", "Health: %v", err)}
	}
	k.stream = hs
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
			return []Problem{problem(PhaseHealth, "", "", "Health: first message: %v", err)}
		}
	case <-time.After(2 * time.Second):
		hs.Close()
		<-first
		k.stream = nil
		return []Problem{problem(PhaseHealth, "", "the first one must come at once", "Health sent no first message within 2s")}
	}
	k.host.takeCalls()
	return checkStates(PhaseHealth, k.inf.GetCapabilities(), msg.GetCapabilities())
}

func (k *kit) selfTest(ctx context.Context, _ runner) []Problem {
	resp, err := k.pc.SelfTest(ctx, pluginv1.SelfTestMode_SELF_TEST_MODE_READ, 0)
	if err != nil {
		return []Problem{problem(PhaseSelfTest, "", "", "SelfTest(read): %v", err)}
	}
	var out []Problem
	if len(resp.GetChecks()) == 0 {
		out = append(out, problem(PhaseSelfTest, "", "return at least one named check (or do not implement sdk.SelfTester)", "SelfTest(read) returned no checks"))
	}
	out = append(out, checkSelfTest(k.inf.GetCapabilities(), resp)...)
	for _, c := range k.host.takeCalls() {
		if m, _, _ := strings.Cut(c, " "); m != "GET" {
			out = append(out, problem(PhaseSelfTest, "", "read self-tests must not change anything", "SelfTest(read) called %s", c))
		}
	}
	return out
}

func (k *kit) report(ctx context.Context, _ runner) []Problem {
	const budget = 2 * time.Second
	start := time.Now()
	resp, err := k.pc.Report(ctx, budget)
	if err != nil {
		return []Problem{problem(PhaseReport, "", "", "Report(budget %s): %v", budget, err)}
	}
	var out []Problem
	if took := time.Since(start); took > budget {
		out = append(out, problem(PhaseReport, "", "return what you have when ctx's deadline nears", "Report took %s, over its %s budget", took, budget))
	}
	names := map[string]bool{}
	for _, s := range resp.GetSections() {
		switch {
		case strings.TrimSpace(s.GetName()) == "":
			out = append(out, problem(PhaseReport, "", "", "a report section has no name"))
		case names[s.GetName()]:
			out = append(out, problem(PhaseReport, "", "", "report section %q appears twice", s.GetName()))
		}
		names[s.GetName()] = true
	}
	for _, c := range k.host.takeCalls() {
		if m, _, _ := strings.Cut(c, " "); m != "GET" {
			out = append(out, problem(PhaseReport, "", "reports must not change anything", "Report called %s", c))
		}
	}
	return out
}

func (k *kit) invokeAll(_ context.Context, r runner) []Problem {
	for _, c := range k.inf.GetCapabilities() {
		if slices.Contains(k.cfg.SkipInvoke, c.GetId()) {
			continue
		}
		r.run(c.GetId(), func(ctx context.Context, _ runner) []Problem { return k.invokeOne(ctx, c) })
	}
	return nil
}

// invokeOne invokes c with its configured params and returns problems.
// Every API call that reaches the proxy while the call runs is charged
// to c (see the package doc).
func (k *kit) invokeOne(ctx context.Context, c *pluginv1.Capability) []Problem {
	id := c.GetId()
	fail := func(hint, format string, args ...any) Problem { return problem(PhaseInvoke, id, hint, format, args...) }
	req := &pluginv1.InvokeRequest{Capability: id, SchemaVersion: c.GetSchemaVersion(), OpId: "plugintest-" + id}
	if p := k.cfg.Params[id]; p != nil {
		s, err := structpb.NewStruct(p)
		if err != nil {
			return []Problem{fail("", "Config.Params[%q] cannot be sent: %v", id, err)}
		}
		req.Params = s
	}
	k.host.takeCalls() // calls made between phases are nobody's
	resp, err := k.pc.Invoke(ctx, req)
	problems := checkCallsInScope(c, k.node, k.host.takeCalls())
	var pe *sdk.PluginError
	switch {
	case errors.As(err, &pe) && pe.Code == sdk.CodePermissionDenied && strings.Contains(pe.Message, "declared API scopes"):
		problems = append(problems, fail("add the path to its Capability.API (the agent refuses it too)",
			"capability %q called the API outside the plugin's declared scopes (%s)", id, pe.Message))
	case errors.As(err, &pe) && pe.Code == sdk.CodeNotApplicable:
		// Fine when the capability says so in its state.
		if !k.notApplicable(ctx, id) {
			problems = append(problems, fail(fmt.Sprintf("call host.SetState(%q, sdk.StateNotApplicable, why)", id),
				"capability %q answered not-applicable, but its state is not STATE_NOT_APPLICABLE", id))
		}
	case errors.As(err, &pe) && pe.Code == sdk.CodeInvalidParams:
		problems = append(problems, fail(fmt.Sprintf("set Config.Params[%q] (or SkipInvoke it)", id), "capability %q refused its params (%v)", id, pe))
	case err != nil:
		problems = append(problems, fail("", "invoke %q against the simulator: %v", id, err))
	default:
		for _, u := range resp.GetUpids() {
			if !strings.HasPrefix(u, "UPID:") {
				problems = append(problems, fail("", "capability %q reported task %q, which is not a UPID", id, u))
			}
		}
	}
	return problems
}

func (k *kit) notApplicable(ctx context.Context, id string) bool {
	// Configure's states are not kept; ask again through a fresh stream.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs, err := k.pc.Health(ctx)
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
func (k *kit) scopeRefusal(ctx context.Context, _ runner) []Problem {
	fail := func(hint, format string, args ...any) Problem {
		return problem(PhaseScopeRefusal, "", hint, format, args...)
	}
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
		return []Problem{fail("no capability should need those", "the plugin's scopes cover all of %v", outsidePaths)}
	}
	var out []Problem
	k.host.takeCalls()
	for _, path := range []string{outside, "/nodes/" + k.node + "/../.." + outside} {
		req := &pluginv1.InvokeRequest{Capability: sdk.ProbeCapability, SchemaVersion: 1}
		req.Params, _ = structpb.NewStruct(map[string]any{"method": "GET", "path": path})
		_, err := k.pc.Invoke(ctx, req)
		var pe *sdk.PluginError
		switch {
		case errors.As(err, &pe) && pe.Code == sdk.CodeUnknownCapability:
			return append(out, fail("build it with this felhom sdk", "the plugin does not serve %q with %s=1", sdk.ProbeCapability, sdk.EnvPluginTest))
		case err == nil:
			out = append(out, fail("the API proxy must refuse paths outside the declared scopes", "GET %s went through", path))
		case !errors.As(err, &pe) || pe.Code != sdk.CodePermissionDenied:
			out = append(out, fail("", "GET %s: err = %v, want permission denied", path, err))
		case !strings.Contains(pe.Message, fmt.Sprintf("%q", path)) || !strings.Contains(pe.Message, "plugin "+k.inf.GetName()):
			out = append(out, fail("", "GET %s: refusal %q does not name the path and the plugin", path, pe.Message))
		}
	}
	if calls := k.host.takeCalls(); len(calls) > 0 {
		out = append(out, fail("", "refused calls reached the simulator: %v", calls))
	}
	return out
}

func (k *kit) shutdown(ctx context.Context, _ runner) []Problem {
	fail := func(hint, format string, args ...any) []Problem {
		return []Problem{problem(PhaseShutdown, "", hint, format, args...)}
	}
	const grace = 2 * time.Second
	if err := k.pc.Shutdown(ctx, grace); err != nil {
		return fail("", "Shutdown: %v", err)
	}
	var out []Problem
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
				out = append(out, problem(PhaseShutdown, "", "", "health stream after Shutdown ended with %v, want end of stream", err))
			}
		case <-time.After(grace):
			out = append(out, problem(PhaseShutdown, "", "the SDK ends it; is the plugin's Close blocking?", "health stream still open after Shutdown"))
			k.stream.Close()
			<-ended
		}
	}
	if k.proc == nil {
		return out
	}
	select {
	case <-k.pc.Exited():
	case <-time.After(grace + time.Second):
		return append(out, fail("", "the plugin process did not exit within %s of Shutdown", grace+time.Second)...)
	}
	if code := k.proc.ProcessState.ExitCode(); code != 0 {
		out = append(out, problem(PhaseShutdown, "", "", "the plugin exited with status %d after Shutdown, want 0", code))
	}
	return out
}
