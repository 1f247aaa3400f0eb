package plugintest

import (
	"context"
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

func TestDemoBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "felhom-plugin-demo_v1.0.0")
	build := exec.Command("go", "build", "-o", bin, "../testdata/demoplugin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build demo plugin: %v\n%s", err, out)
	}
	checkGoroutines(t)
	Run(t, Config{Binary: bin, Params: demoParams, SkipInvoke: demoSkip,
		SimOptions: pvesim.Options{TaskDuration: 20 * time.Millisecond}})
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
	got := strings.Join(checkInfo(info), "\n")
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
	got := strings.Join(checkStates("Health", caps, states), "\n")
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
	got = strings.Join(checkSelfTest(caps, st), "\n")
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
	k := &kit{cfg: Config{Plugin: sneaky{}, Timeout: 5 * time.Second}, parent: t}
	k.sim = pvesim.Start(t, pvesim.Options{Seed: true})
	k.node = k.sim.Node()
	k.host = &simHost{sim: k.sim, client: k.sim.Client(t), token: k.sim.AdminToken()}
	for _, step := range []func(*testing.T){k.handshake, k.info, k.configure} {
		step(t)
	}
	ctx := context.Background()
	got := strings.Join(k.invokeOne(ctx, k.caps["sneaky.peek"]), "\n")
	if !strings.Contains(got, `capability "sneaky.peek" called GET /version, which is not in its own API scopes`) {
		t.Errorf("peek: %q", got)
	}
	got = strings.Join(k.invokeOne(ctx, k.caps["sneaky.escape"]), "\n")
	if !strings.Contains(got, `capability "sneaky.escape" called the API outside the plugin's declared scopes`) ||
		!strings.Contains(got, `"/access/users"`) {
		t.Errorf("escape: %q", got)
	}
	if p := k.invokeOne(ctx, k.caps["sneaky.version"]); len(p) != 0 {
		t.Errorf("a well-declared capability was flagged: %v", p)
	}
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
