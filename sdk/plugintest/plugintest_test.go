package plugintest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/internal/demoplugin"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

var demoParams = map[string]map[string]any{
	"demo.slow":      {"ms": 10},
	"demo.vm.status": {"vmid": 101},
	"demo.vm.start":  {"vmid": 101},
	"demo.state":     {"capability": "demo.echo", "state": "available"},
}

var demoSkip = []string{"demo.fail", "demo.panic"} // they fail on purpose

func TestDemoInProcess(t *testing.T) {
	checkGoroutines(t)
	Run(t, Config{Plugin: demoplugin.New(), Params: demoParams, SkipInvoke: demoSkip,
		PluginConfig: map[string]any{"greeting": "szia"}, SimOptions: pvesim.Options{TaskDuration: 20 * time.Millisecond}})
}

func buildDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "felhom-plugin-demo_v1.0.0")
	build := exec.Command("go", "build", "-o", bin, "../testdata/demoplugin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build demo plugin: %v\n%s", err, out)
	}
	return bin
}

func TestDemoBinary(t *testing.T) {
	bin := buildDemo(t)
	t.Run("Run", func(t *testing.T) {
		checkGoroutines(t)
		Run(t, Config{Binary: bin, Params: demoParams, SkipInvoke: demoSkip,
			SimOptions: pvesim.Options{TaskDuration: 20 * time.Millisecond}})
	})
	t.Run("Check", func(t *testing.T) {
		checkGoroutines(t)
		rep, err := Check(context.Background(), Config{Binary: bin, Params: demoParams, SkipInvoke: demoSkip,
			SimOptions: pvesim.Options{TaskDuration: 20 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.StoppedAt != "" || rep.Plugin != "demo" {
			t.Errorf("the demo plugin did not pass: plugin %q, stopped at %q\n%s", rep.Plugin, rep.StoppedAt, rep)
		}
		// The plugin logs at debug under the kit: its stderr comes back
		// decoded, not as JSON.
		if len(rep.PluginLog) == 0 {
			t.Fatal("Report.PluginLog is empty")
		}
		for _, l := range rep.PluginLog {
			if strings.HasPrefix(l, "{") || strings.Contains(l, `\u00`) || strings.Contains(l, "@level") {
				t.Errorf("plugin log line not decoded: %s", l)
			}
		}
	})
}

// badID is an in-process plugin whose Info breaks the ID rule.
type badID struct{ sneaky }

func (badID) Info() sdk.Info {
	i := sneaky{}.Info()
	i.Capabilities[0].ID = "SneakyVersion"
	return i
}

func TestCheckStopsAtInvalidInfo(t *testing.T) {
	checkGoroutines(t)
	rep, err := Check(context.Background(), Config{Plugin: badID{}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.StoppedAt != PhaseHandshake || len(rep.Problems) != 1 {
		t.Fatalf("want one handshake problem and a stop; got stopped at %q:\n%s", rep.StoppedAt, rep)
	}
	if p := rep.Problems[0]; p.Phase != PhaseHandshake || !strings.Contains(p.Message, `capability "SneakyVersion": IDs must be lowercase`) {
		t.Errorf("problem = %+v", p)
	}
}

func TestCheckRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"neither": {},
		"both":    {Binary: "/bin/true", Plugin: sneaky{}},
	} {
		if _, err := Check(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "set exactly one of Binary") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestCheckReportsCanceledContext(t *testing.T) {
	checkGoroutines(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Check(ctx, Config{Plugin: sneaky{}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if rep == nil || rep.OK() {
		t.Errorf("a run whose context ended reported no problems: %v", rep)
	}
}

func TestCheckInfoSaysWhatToFix(t *testing.T) {
	info := &pluginv1.InfoResponse{Name: "My_Plugin", Version: "v1.2.0", ProtocolMajor: 1, SdkVersion: "0.1.0",
		Capabilities: []*pluginv1.Capability{
			{Id: "Storage.List", SchemaVersion: 1, Class: pluginv1.CapabilityClass_CAPABILITY_CLASS_READ, Description: "x"},
			{Id: "storage.sneaky", SchemaVersion: 1, Class: pluginv1.CapabilityClass_CAPABILITY_CLASS_READ, Description: "x",
				Api: []*pluginv1.APIScope{{Method: "POST", Path: "/nodes/{node}/qemu/{vmid}/status/start"}}},
			{Id: "storage.wide", SchemaVersion: 1, Class: pluginv1.CapabilityClass_CAPABILITY_CLASS_READ, Description: "x",
				Api: []*pluginv1.APIScope{{Method: "GET", Path: "/nodes/{node}/**"}}},
			{Id: "storage.nuke", SchemaVersion: 1, Class: pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE, Description: "x",
				Api: []*pluginv1.APIScope{{Method: "GET", Path: "/storage"}}},
			{Id: "storage.nuke", SchemaVersion: 0, Description: ""},
		}}
	got := joinProblems(checkInfo(info))
	for _, want := range []string{
		`plugin name "My_Plugin"`,
		`version "v1.2.0": drop the leading "v" (1.2.0)`,
		`capability "Storage.List": IDs must be lowercase <namespace>.<name>, e.g. storage.list`,
		`capability "storage.sneaky": class read but scope POST /nodes/{node}/qemu/{vmid}/status/start changes state`,
		`capability "storage.wide": scope GET /nodes/{node}/** grants a whole API subtree`,
		`capability "storage.nuke": class destructive but it neither changes anything`,
		`capability "storage.nuke" is declared twice`,
		`capability "storage.nuke": SchemaVersion must be at least 1`,
		`capability "storage.nuke": Class must be`,
		`capability "storage.nuke": Description is empty`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("checkInfo lacks %q; got:\n%s", want, got)
		}
	}
	ok := &pluginv1.InfoResponse{Name: "demo", Version: "1.0.0", ProtocolMajor: 1, SdkVersion: "0.1.0",
		Capabilities: []*pluginv1.Capability{{Id: "usb.unmount", SchemaVersion: 1, NeedsRoot: true, Description: "unmount",
			Class: pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE}}}
	if p := checkInfo(ok); len(p) != 0 {
		t.Errorf("a root-only destructive capability was refused: %v", p)
	}
}

func TestCheckStatesAndSelfTest(t *testing.T) {
	caps := []*pluginv1.Capability{{Id: "a.b"}, {Id: "a.c"}}
	states := []*pluginv1.CapabilityState{
		{Id: "a.b", State: pluginv1.State_STATE_AVAILABLE},
		{Id: "a.x", State: pluginv1.State_STATE_AVAILABLE},
		{Id: "a.b", State: pluginv1.State_STATE_UNSPECIFIED},
	}
	got := joinProblems(checkStates(PhaseHealth, caps, states))
	for _, want := range []string{`undeclared capability "a.x"`, `capability "a.b" has two states`, `"a.b" has no valid state`, `no state for capability "a.c"`} {
		if !strings.Contains(got, want) {
			t.Errorf("checkStates lacks %q; got:\n%s", want, got)
		}
	}
	st := &pluginv1.SelfTestResponse{Checks: []*pluginv1.CheckResult{
		{Name: "", Status: pluginv1.CheckStatus_CHECK_STATUS_PASS},
		{Name: "x", Status: pluginv1.CheckStatus_CHECK_STATUS_FAIL, Detail: "no route"},
		{Name: "x", Status: pluginv1.CheckStatus_CHECK_STATUS_UNSPECIFIED, Capability: "z.z"},
	}}
	got = joinProblems(checkSelfTest(caps, st))
	for _, want := range []string{"check #1 has no name", `check "x" failed against the simulator: no route`,
		`check "x" appears twice`, `check "x" has no status`, `names capability "z.z"`} {
		if !strings.Contains(got, want) {
			t.Errorf("checkSelfTest lacks %q; got:\n%s", want, got)
		}
	}
}

// sneaky reads a path that only its sibling capability declares.
type sneaky struct{}

func (sneaky) Info() sdk.Info {
	return sdk.Info{Name: "sneaky", Version: "0.1.0", Capabilities: []sdk.Capability{
		{ID: "sneaky.version", SchemaVersion: 1, Class: sdk.Read, Description: "declares /version",
			API:     []sdk.APIScope{{Method: "GET", Path: "/version"}},
			Handler: func(context.Context, *sdk.Call) (any, error) { return nil, nil }},
		{ID: "sneaky.peek", SchemaVersion: 1, Class: sdk.Read, Description: "reads /version without declaring it",
			Handler: func(ctx context.Context, c *sdk.Call) (any, error) {
				_, err := c.Host.API().Get(ctx, "/version", nil)
				return nil, err
			}},
		{ID: "sneaky.escape", SchemaVersion: 1, Class: sdk.Read, Description: "reads a path nobody declares",
			Handler: func(ctx context.Context, c *sdk.Call) (any, error) {
				_, err := c.Host.API().Get(ctx, "/access/users", nil)
				return nil, err
			}},
	}}
}

func (sneaky) Configure(context.Context, sdk.Host, sdk.Config) error { return nil }

func TestInvokeFindsUndeclaredCalls(t *testing.T) {
	checkGoroutines(t)
	rep, err := Check(context.Background(), Config{Plugin: sneaky{}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	peek := rep.Find(PhaseInvoke, "sneaky.peek")
	if len(peek) != 1 || peek[0].Message != `capability "sneaky.peek" called GET /version, which is not in its own API scopes` ||
		!strings.Contains(peek[0].Hint, `add {Method: "GET", Path: ...} to its Capability.API`) {
		t.Errorf("peek: %+v", peek)
	}
	escape := rep.Find(PhaseInvoke, "sneaky.escape")
	if len(escape) != 1 || !strings.Contains(escape[0].Message, `capability "sneaky.escape" called the API outside the plugin's declared scopes`) ||
		!strings.Contains(escape[0].Message, `"/access/users"`) || escape[0].Hint == "" {
		t.Errorf("escape: %+v", escape)
	}
	if p := rep.Find(PhaseInvoke, "sneaky.version"); len(p) != 0 {
		t.Errorf("a well-declared capability was flagged: %v", p)
	}
	if rep.StoppedAt != "" || len(rep.Find(PhaseShutdown, "")) != 0 {
		t.Errorf("the run did not go through to a clean shutdown:\n%s", rep)
	}
}

func joinProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

// checkGoroutines fails t when goroutines started during the test outlive
// it (go-plugin's broker timeoutWait parks up to 5 s by design and is not
// counted).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for goroutines() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, goroutines(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func goroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "(*GRPCBroker).timeoutWait") {
			n++
		}
	}
	return n
}
