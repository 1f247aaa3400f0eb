package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/structpb"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/internal/demoplugin"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// fakeHost is a HostServices that answers a few Proxmox paths.
type fakeHost struct {
	mu     sync.Mutex
	calls  []string
	events []*pluginv1.EventRequest
	waits  []string
}

const testUPID = "UPID:pve:0000A1B2:0001C3D4:65A1B2C3:qmstart:100:root@pam:"

func (f *fakeHost) ProxmoxCall(_ context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req.GetMethod()+" "+req.GetPath())
	f.mu.Unlock()
	key := req.GetMethod() + " " + req.GetPath()
	switch {
	case key == "GET /version":
		return &pluginv1.CallResponse{Data: []byte(`{"version":"8.2.4","release":"8.2"}`)}, nil
	case key == "GET /nodes/pve/qemu/100/status/current":
		return &pluginv1.CallResponse{Data: []byte(`{"status":"running","vmid":100}`)}, nil
	case key == "GET /nodes/pve/qemu/404/status/current":
		return &pluginv1.CallResponse{Error: &pluginv1.APIError{Status: 500, Message: "Configuration file 'nodes/pve/qemu-server/404.conf' does not exist"}}, nil
	case strings.HasSuffix(key, "/status/start"):
		b, _ := json.Marshal(testUPID)
		return &pluginv1.CallResponse{Data: b}, nil
	}
	return &pluginv1.CallResponse{Error: &pluginv1.APIError{Status: 501, Message: "Method '" + key + "' not implemented"}}, nil
}

func (f *fakeHost) WaitTask(_ context.Context, upid string) (*pluginv1.WaitResponse, error) {
	f.mu.Lock()
	f.waits = append(f.waits, upid)
	f.mu.Unlock()
	return &pluginv1.WaitResponse{Upid: upid, ExitStatus: "OK", Ok: true, DurationMs: 12}, nil
}

func (f *fakeHost) Event(_ context.Context, req *pluginv1.EventRequest) error {
	f.mu.Lock()
	f.events = append(f.events, req)
	f.mu.Unlock()
	return nil
}

func (f *fakeHost) snapshot() (calls []string, waits []string, events int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), append([]string(nil), f.waits...), len(f.events)
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

// checkGoroutines fails t when goroutines started during the test are
// still running at cleanup (after a settle period).
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

// inProcess serves p in-process and returns the host's client; cleanup is
// registered on t.
func inProcess(t *testing.T, p sdk.Plugin, multiplex bool, opts ...sdk.Option) *sdk.PluginClient {
	t.Helper()
	set, stop, err := sdk.InProcess(p, opts...)
	if err != nil {
		t.Fatalf("InProcess: %v", err)
	}
	// With multiplexing, go-plugin's server muxer never closes the unix
	// listener it wraps, so TestPluginGRPCConn's socket stays behind. Make
	// it in a directory of this test's own and remove that at cleanup;
	// anything else left there is a leak.
	var sockDir, muxSocket string
	if multiplex {
		var err error
		if sockDir, err = os.MkdirTemp("", "mux-"); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TMPDIR", sockDir)
	}
	client, server := plugin.TestPluginGRPCConn(t, multiplex, set)
	if multiplex {
		if s := sockets(t, sockDir); len(s) == 1 {
			muxSocket = s[0]
		} else {
			t.Fatalf("want TestPluginGRPCConn's one socket in %s, found %v", sockDir, s)
		}
	}
	raw, err := client.Dispense(sdk.PluginSetKey)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	pc, ok := raw.(*sdk.PluginClient)
	if !ok {
		t.Fatalf("Dispense returned %T, want *sdk.PluginClient", raw)
	}
	t.Cleanup(func() {
		pc.Close()
		_ = client.Close() // asks the server to stop (go-plugin's controller)
		select {
		case <-server.DoneCh:
		case <-time.After(2 * time.Second):
			server.Stop()
		}
		stop()
		if sockDir != "" {
			if left := slices.DeleteFunc(sockets(t, sockDir), func(s string) bool { return s == muxSocket }); len(left) > 0 {
				t.Errorf("sockets left behind: %v", left)
			}
			_ = os.RemoveAll(sockDir)
		}
	})
	return pc
}

// sockets lists the unix sockets in dir.
func sockets(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatalf("read socket dir: %v", err)
	}
	var out []string
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 {
			out = append(out, e.Name())
		}
	}
	return out
}

// configured runs Info and Configure with a scope-guarded fake host.
func configured(t *testing.T, pc *sdk.PluginClient, fh *fakeHost) *pluginv1.ConfigureResponse {
	t.Helper()
	ctx := context.Background()
	info, err := pc.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	guarded, err := sdk.ScopeGuard(info.GetName(), "pve", info.GetCapabilities(), fh)
	if err != nil {
		t.Fatalf("ScopeGuard: %v", err)
	}
	resp, err := pc.Configure(ctx, sdk.ConfigureArgs{Config: map[string]any{"greeting": "szia"}, HostID: "host-1", Node: "pve"}, guarded)
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return resp
}

func newDemo() *demoplugin.Plugin { return demoplugin.New() }

func params(t testing.TB, m map[string]any) *pluginv1.InvokeRequest {
	t.Helper()
	req := &pluginv1.InvokeRequest{}
	if m != nil {
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		req.Params = s
	}
	return req
}

func invokeReq(t testing.TB, id string, m map[string]any) *pluginv1.InvokeRequest {
	r := params(t, m)
	r.Capability = id
	r.SchemaVersion = 1
	return r
}

func stateOf(states []*pluginv1.CapabilityState, id string) string {
	for _, s := range states {
		if s.GetId() == id {
			return fmt.Sprintf("%s %s", s.GetState(), s.GetDetail())
		}
	}
	return "missing"
}
