package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/registry"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "felhom-agent", Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newHost(t *testing.T, opts Options) *Host {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Node == "" {
		opts.Node = "pve1"
	}
	if opts.HostID == "" {
		opts.HostID = "host-1"
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func startHost(t *testing.T, opts Options) *Host {
	t.Helper()
	h := newHost(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	return h
}

func statusOf(t *testing.T, h *Host, name string) PluginStatus {
	t.Helper()
	for _, st := range h.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for %s", name)
	return PluginStatus{}
}

func mustInvoke(t *testing.T, h *Host, capID string, params map[string]any) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := h.Invoke(ctx, capID, params, "op-1", "alice")
	if err != nil {
		t.Fatalf("Invoke(%s) = %v", capID, err)
	}
	return r
}

// fakeAPI is the APIBackend: it records calls and answers from a func.
type fakeAPI struct {
	mu     sync.Mutex
	calls  []string
	answer func(method, path string) (json.RawMessage, *int, error)
}

func (f *fakeAPI) Raw(ctx context.Context, method, path string, params url.Values) (json.RawMessage, *int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, method+" "+path+"?"+params.Encode())
	f.mu.Unlock()
	return f.answer(method, path)
}

func (f *fakeAPI) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func TestHostRunsPluginsUnprivilegedWithCleanEnv(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	checkGoroutines(t)
	t.Setenv("FELHOM_AGENT_SECRET_FOR_TEST", "must-not-leak")
	tp := bin(t, testBin)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": tp, "felhom-plugin-beta_v1.2.0": tp})
	pin(t, dir)
	h := startHost(t, Options{Dir: dir})

	st := statusOf(t, h, "alpha")
	if st.State != StateRunning || st.Version != "1.0.0" || st.Protocol != "1.0" || st.User != "nobody" || st.PID == 0 || len(st.SHA256) != 64 {
		t.Fatalf("alpha status = %+v", st)
	}
	if uid, err := procStatus(st.PID, "Uid"); err != nil || uid != "65534\t65534\t65534\t65534" {
		t.Errorf("/proc/%d/status Uid = %q, %v; want nobody", st.PID, uid, err)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID)); string(cmdline) != "felhom-plugin-alpha_v1.0.0\x00" {
		t.Errorf("argv = %q, want the file name", cmdline)
	}
	// Without the sdk's PR_SET_NAME ps would show the fd number exec'd.
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.PID)); string(comm) != "fp-alpha\n" {
		t.Errorf("comm = %q, want the plugin's name", comm)
	}
	if pgid, err := syscall.Getpgid(st.PID); err != nil || pgid != st.PID {
		t.Errorf("pgid = %d, %v; want its own group %d", pgid, err, st.PID)
	}

	r := mustInvoke(t, h, "alpha.echo", map[string]any{"x": 1.5})
	if r.Plugin != "alpha" || r.Data["uid"] != float64(65534) || r.Data["pid"] != float64(st.PID) ||
		r.Data["op_id"] != "op-1" || r.Data["principal"] != "alice" || r.Data["node"] != "pve1" || r.Data["host_id"] != "host-1" {
		t.Errorf("echo = %+v", r)
	}
	if p, _ := r.Data["params"].(map[string]any); p["x"] != 1.5 {
		t.Errorf("params did not round-trip: %v", r.Data["params"])
	}

	env := mustInvoke(t, h, "beta.env", nil).Data["env"].([]any)
	var names []string
	for _, e := range env {
		k, v, _ := strings.Cut(e.(string), "=")
		names = append(names, k)
		if strings.Contains(v, "must-not-leak") {
			t.Errorf("host environment leaked into the plugin: %s", e)
		}
	}
	slices.Sort(names)
	want := []string{"FELHOM_PLUGIN", "FELHOM_PLUGIN_LOG_LEVEL", "FELHOM_PLUGIN_TLS_FD", "PATH", "PLUGIN_MAX_PORT", "PLUGIN_MIN_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP"}
	if !slices.Equal(names, want) {
		t.Errorf("plugin environment = %v\nwant %v", names, want)
	}

	// Registry: class for the authz gate, not-applicable as a state.
	if c, err := h.Registry().Class("alpha.api"); err != nil || c != registry.ClassBenign {
		t.Errorf("Class(alpha.api) = %v, %v", c, err)
	}
	var naState string
	for _, c := range st.Capabilities {
		if c.ID == "alpha.na" {
			naState = c.State + ": " + c.Detail
		}
	}
	if naState != "not_applicable: no such hardware here" {
		t.Errorf("alpha.na = %q", naState)
	}
	ctx := context.Background()
	if _, err := h.Invoke(ctx, "alpha.na", nil, "", ""); !errors.Is(err, ErrNotApplicable) || !strings.Contains(err.Error(), "no such hardware here") {
		t.Errorf("Invoke(alpha.na) = %v", err)
	}
	if _, err := h.Invoke(ctx, "gamma.echo", nil, "", ""); !errors.Is(err, registry.ErrUnknownCapability) {
		t.Errorf("Invoke(gamma.echo) = %v", err)
	}
	_, err := h.Invoke(ctx, "beta.fail", nil, "", "")
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || pe.Code != sdk.CodeNotFound || pe.Field != "what" || !strings.Contains(err.Error(), "plugin beta") {
		t.Errorf("Invoke(beta.fail) = %v", err)
	}

	// The health stream moves registry states.
	mustInvoke(t, h, "alpha.sethealth", map[string]any{"capability": "alpha.echo", "unhealthy": true, "detail": "disk gone"})
	echo, _ := h.Registry().Lookup("alpha.echo")
	waitFor(t, 5*time.Second, "alpha.echo unhealthy", func() bool {
		s := echo.Status()
		return s.State == registry.StateUnhealthy && s.Detail == "disk gone"
	})
	mustInvoke(t, h, "alpha.sethealth", map[string]any{"capability": "alpha.echo"})
	waitFor(t, 5*time.Second, "alpha.echo available again", func() bool { return echo.Status().State == registry.StateAvailable })

	// HostLog events land in the audit ring.
	mustInvoke(t, h, "beta.event", nil)
	ev := h.Audit()
	if len(ev) != 1 || ev[0].Plugin != "beta" || ev[0].Kind != "test.event" || ev[0].Message != "hello from beta" || ev[0].Fields["op"] != "op-1" {
		t.Errorf("audit = %+v", ev)
	}

	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "plugins to exit after Stop", func() bool { return !alive(st.PID) })
	if got := statusOf(t, h, "alpha").State; got != StateStopped {
		t.Errorf("state after Stop = %s", got)
	}
	if _, err := h.Invoke(ctx, "alpha.echo", nil, "", ""); !errors.Is(err, ErrPluginUnavailable) {
		t.Errorf("Invoke after Stop = %v", err)
	}
}

// TestRefusals puts one binary per refusal reason in the plugin dir and
// checks that each is refused with a reason `plugins list` can show.
func TestRefusals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	tp, fp := bin(t, testBin), bin(t, fakeBin)
	dir := pluginDir(t, map[string]string{
		"felhom-plugin-good_v1.0.0":     tp,
		"felhom-plugin-garbage_v1.0.0":  fp,
		"felhom-plugin-exits_v1.0.0":    fp,
		"felhom-plugin-silent_v1.0.0":   fp,
		"felhom-plugin-cookie_v1.0.0":   fp,
		"felhom-plugin-proto2_v1.0.0":   fp,
		"felhom-plugin-future_v1.0.0":   fp,
		"felhom-plugin-liar_v1.0.0":     tp,
		"felhom-plugin-impostor_v1.0.0": tp,
		"felhom-plugin-rooty_v1.0.0":    tp,
		"felhom-plugin-writable_v1.0.0": tp,
		"felhom-plugin-changed_v1.0.0":  tp,
	})
	pin(t, dir)
	// After pinning: a new file, a changed file, a wrong name inside.
	copyFile(t, tp, filepath.Join(dir, "felhom-plugin-unpinned_v1.0.0"), 0o755)
	f, err := os.OpenFile(filepath.Join(dir, "felhom-plugin-changed_v1.0.0"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	if err := os.Chmod(filepath.Join(dir, "felhom-plugin-writable_v1.0.0"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "felhom-plugin-BadName_v1"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "plugins.lock")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sts, err := Inspect(ctx, Options{Dir: dir, Logger: testLogger(t), HandshakeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		code   RefusalCode
		reason string
	}{
		"garbage":                  {RefusedNotAPlugin, "Unrecognized remote plugin message: hello, I am not a plugin"},
		"exits":                    {RefusedNotAPlugin, "fakeplugin: exiting at once"},
		"silent":                   {RefusedHandshakeTimeout, "did not finish the go-plugin handshake within 1s"},
		"cookie":                   {RefusedNotAPlugin, "This binary is a plugin"},
		"proto2":                   {RefusedProtocol, "plugin proto2 speaks protocol 2, this agent speaks 1: upgrade felhom-agent"},
		"future":                   {RefusedProtocol, "needs core protocol >= 1.99, this agent speaks 1.0: upgrade felhom-agent"},
		"liar":                     {RefusedInfoMismatch, "felhom-plugin-liar_v1.0.0 says it is liar 9.9.9: the file name says liar 1.0.0"},
		"impostor":                 {RefusedInfoMismatch, "felhom-plugin-impostor_v1.0.0 says it is someone-else 1.0.0: the file name says impostor 1.0.0"},
		"rooty":                    {RefusedNeedsRoot, `capability rooty.mount needs root: add "rooty" to plugins.allow_root`},
		"writable":                 {RefusedUnsafeFile, "writable by group or others (mode 0777)"},
		"changed":                  {RefusedHashMismatch, "the file changed since it was pinned"},
		"unpinned":                 {RefusedNotPinned, "is not pinned in " + lock},
		"felhom-plugin-BadName_v1": {RefusedBadName, "plugin name \"BadName\""},
	}
	for _, st := range sts {
		if st.Name == "good" {
			if st.State != StateOK || st.Version != "1.0.0" || st.Protocol != "1.0" || len(st.Capabilities) != 9 || st.Capabilities[0].State != "ok" || st.Stderr[0] != "testplugin good starting, pid "+strconv.Itoa(st.PID) {
				t.Errorf("good = %+v", st)
			}
			continue
		}
		w, ok := want[st.Name]
		if !ok {
			t.Errorf("unexpected plugin %s: %+v", st.Name, st)
			continue
		}
		delete(want, st.Name)
		if st.State != StateRefused || len(st.Refused) == 0 {
			t.Errorf("%s: state %s, refused %v; want refused", st.Name, st.State, st.Refused)
			continue
		}
		r := st.Refused[0]
		if r.Code != w.code || !strings.Contains(r.Reason, w.reason) || st.Reason != r.Reason {
			t.Errorf("%s refused (%s): %s\nwant (%s) containing %q", st.Name, r.Code, r.Reason, w.code, w.reason)
		}
	}
	for name := range want {
		t.Errorf("no status for %s", name)
	}
}

func TestUnsafeLockAndDirRefuseEverything(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tp := bin(t, testBin)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": tp})
	lock := pin(t, dir)
	if err := os.Chmod(lock, 0o666); err != nil {
		t.Fatal(err)
	}
	sts, err := Inspect(context.Background(), Options{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || sts[0].State != StateRefused || sts[0].Refused[0].Code != RefusedUnsafeLock || !strings.Contains(sts[0].Reason, "lock file "+lock+" is writable by group or others") {
		t.Fatalf("status = %+v", sts)
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	sts, _ = Inspect(context.Background(), Options{Dir: dir, Logger: testLogger(t)})
	if sts[0].Refused[0].Code != RefusedNotPinned || !strings.Contains(sts[0].Reason, "no lock file") {
		t.Fatalf("missing lock: %+v", sts[0])
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(context.Background(), Options{Dir: dir, Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "is writable by group or others (mode 0775)") {
		t.Fatalf("group-writable dir: %v", err)
	}
}

func TestSocketDirMustBeReachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := pluginDir(t, map[string]string{})
	closed := filepath.Join(t.TempDir(), "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(closed, "sock")
	if err := os.Mkdir(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, Options{Dir: dir, SocketDir: sock})
	err := h.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), closed+" (mode 0700, uid 0) is not searchable by uid 65534") || !strings.Contains(err.Error(), "user nobody could not create its socket") {
		t.Fatalf("Start = %v", err)
	}
}

func TestFallsBackToNewestAllowedVersion(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	tp, fp := bin(t, testBin), bin(t, fakeBin)
	dir := pluginDir(t, map[string]string{
		"felhom-plugin-alpha_v2.1.0-rc.1": fp, // not a plugin
		"felhom-plugin-alpha_v2.0.0":      tp, // made world-writable below
		"felhom-plugin-alpha_v1.10.0":     tp, // the newest allowed one
		"felhom-plugin-alpha_v1.9.0":      tp,
	})
	pin(t, dir)
	copyFile(t, tp, filepath.Join(dir, "felhom-plugin-alpha_v2.1.0"), 0o755) // not pinned
	if err := os.Chmod(filepath.Join(dir, "felhom-plugin-alpha_v2.0.0"), 0o777); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, Options{Dir: dir})
	st := statusOf(t, h, "alpha")
	if st.State != StateRunning || st.Version != "1.10.0" {
		t.Fatalf("alpha = %s %s; want running 1.10.0", st.State, st.Version)
	}
	var got []string
	for _, r := range st.Refused {
		got = append(got, r.Version+":"+string(r.Code))
	}
	if strings.Join(got, " ") != "2.1.0:not_pinned 2.1.0-rc.1:not_a_plugin 2.0.0:unsafe_file" {
		t.Errorf("refused = %v", got)
	}
	if r := mustInvoke(t, h, "alpha.echo", nil); r.Version != "1.10.0" {
		t.Errorf("served by %s", r.Version)
	}
}

func TestConflictsAndOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	tp := bin(t, testBin)
	dir := pluginDir(t, map[string]string{"felhom-plugin-dupa_v1.0.0": tp, "felhom-plugin-dupb_v1.0.0": tp, "felhom-plugin-off_v1.0.0": tp})
	pin(t, dir)

	// dupa answers Info well after dupb: the earlier name still wins,
	// whatever the launch order.
	h := newHost(t, Options{Dir: dir, Disabled: []string{"off"}})
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	h.testHookBeforeExec = func(file string) {
		if strings.Contains(file, "dupa") {
			time.Sleep(300 * time.Millisecond)
		}
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := statusOf(t, h, "dupa"), statusOf(t, h, "dupb")
	if a.State != StateRunning || b.State != StateRefused || b.Refused[0].Code != RefusedConflict {
		t.Fatalf("dupa %s, dupb %s %+v", a.State, b.State, b.Refused)
	}
	want := `capability shared.cap is offered by plugins dupa and dupb: disable one in plugins.disabled or set plugins.owners["shared.cap"]`
	if !strings.Contains(b.Reason, want) {
		t.Errorf("reason %q\nwant %q", b.Reason, want)
	}
	if b.PID != 0 {
		t.Errorf("refused plugin still has a process %d", b.PID)
	}
	if off := statusOf(t, h, "off"); off.State != StateDisabled || off.Reason != "listed in plugins.disabled" {
		t.Errorf("off = %+v", off)
	}
	if r := mustInvoke(t, h, "shared.cap", nil); r.Plugin != "dupa" {
		t.Errorf("shared.cap served by %s", r.Plugin)
	}
	_ = h.Stop(context.Background())

	h = startHost(t, Options{Dir: dir, Disabled: []string{"off"}, Owners: map[string]string{"shared.cap": "dupb"}})
	if a, b := statusOf(t, h, "dupa"), statusOf(t, h, "dupb"); a.State != StateRunning || b.State != StateRunning {
		t.Fatalf("with owners: dupa %s %s, dupb %s %s", a.State, a.Reason, b.State, b.Reason)
	}
	if r := mustInvoke(t, h, "shared.cap", nil); r.Plugin != "dupb" {
		t.Errorf("shared.cap served by %s, want the configured owner dupb", r.Plugin)
	}
	for _, c := range statusOf(t, h, "dupa").Capabilities {
		if c.ID == "shared.cap" && (c.State != "shadowed" || !strings.Contains(c.Detail, "dupb")) {
			t.Errorf("dupa's shared.cap = %+v", c)
		}
	}
}

func TestConfigureFailureRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": bin(t, testBin)})
	pin(t, dir)
	h := startHost(t, Options{Dir: dir, PluginSettings: map[string]map[string]any{"alpha": {"fail_configure": true}}})
	st := statusOf(t, h, "alpha")
	if st.State != StateRefused || st.Refused[0].Code != RefusedConfigure || !strings.Contains(st.Reason, "configure refused by test setting") {
		t.Fatalf("alpha = %+v", st)
	}
	if _, ok := h.Registry().Lookup("alpha.echo"); ok {
		t.Error("a plugin whose Configure failed is registered")
	}
}

// TestSwappedFileIsNotWhatRuns renames another binary over the plugin's path
// after the checks and before exec: the checked descriptor is what runs.
func TestSwappedFileIsNotWhatRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	const file = "felhom-plugin-alpha_v1.0.0"
	dir := pluginDir(t, map[string]string{file: bin(t, testBin)})
	pin(t, dir)
	h := newHost(t, Options{Dir: dir, Restart: RestartPolicy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxCrashes: 2}})
	swapped := false
	h.testHookBeforeExec = func(f string) {
		if f != file || swapped {
			return
		}
		swapped = true
		// The fake binary exits 42 when run under this name.
		copyFile(t, bin(t, fakeBin), filepath.Join(dir, "swap.tmp"), 0o755)
		if err := os.Rename(filepath.Join(dir, "swap.tmp"), filepath.Join(dir, file)); err != nil {
			t.Error(err)
		}
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	if !swapped {
		t.Fatal("hook did not run")
	}
	st := statusOf(t, h, "alpha")
	if st.State != StateRunning {
		t.Fatalf("alpha = %s %s: the swapped file ran instead of the checked one", st.State, st.Reason)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID)); !strings.HasSuffix(exe, file+" (deleted)") {
		t.Errorf("/proc/%d/exe = %q, want the replaced (deleted) original", st.PID, exe)
	}
	mustInvoke(t, h, "alpha.echo", nil)
	// A restart verifies again: the file now on disk is not the pinned one.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "quarantine", func() bool { return statusOf(t, h, "alpha").State == StateQuarantined })
	if st := statusOf(t, h, "alpha"); !strings.Contains(st.LastExit, "restart failed: SHA-256 of "+file) {
		t.Errorf("last exit = %q", st.LastExit)
	}
}

func TestRootPluginOnlyWhenAllowed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	dir := pluginDir(t, map[string]string{"felhom-plugin-rooty_v1.0.0": bin(t, testBin), "felhom-plugin-plain_v1.0.0": bin(t, testBin)})
	pin(t, dir)
	h := startHost(t, Options{Dir: dir, AllowRoot: []string{"rooty", "plain"}})
	st := statusOf(t, h, "rooty")
	if st.State != StateRunning || st.User != "root" {
		t.Fatalf("rooty = %s as %q (%s)", st.State, st.User, st.Reason)
	}
	if uid, _ := procStatus(st.PID, "Uid"); uid != "0\t0\t0\t0" {
		t.Errorf("rooty Uid = %q, want root", uid)
	}
	// Allowed but not needing root: stays unprivileged.
	pl := statusOf(t, h, "plain")
	if uid, _ := procStatus(pl.PID, "Uid"); pl.User != "nobody" || uid != "65534\t65534\t65534\t65534" {
		t.Errorf("plain runs as %q (Uid %q); it needs no root", pl.User, uid)
	}
}

func TestAPIScopes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": bin(t, testBin)})
	pin(t, dir)
	var refuse atomic.Bool
	api := &fakeAPI{answer: func(method, path string) (json.RawMessage, *int, error) {
		if refuse.Load() {
			return nil, nil, &APIError{Status: 403, Reason: "Permission check failed", Message: "Permission check failed (/storage, Datastore.Audit)"}
		}
		return json.RawMessage(`[{"storage":"local"}]`), nil, nil
	}}
	h := startHost(t, Options{Dir: dir, API: api})

	r := mustInvoke(t, h, "alpha.api", map[string]any{"path": "/nodes/pve1/storage"})
	if r.Data["data"] != `[{"storage":"local"}]` {
		t.Errorf("api data = %v", r.Data)
	}
	if got := api.seen(); len(got) != 1 || got[0] != "GET /nodes/pve1/storage?x=1" {
		t.Fatalf("backend saw %v", got)
	}
	for _, path := range []string{"/nodes/pve1/qemu", "/nodes/other/storage", "/nodes/pve1/storage/../qemu", "/access/users"} {
		_, err := h.Invoke(context.Background(), "alpha.api", map[string]any{"path": path}, "", "")
		var pe *sdk.PluginError
		if !errors.As(err, &pe) || pe.Code != sdk.CodePermissionDenied || !strings.Contains(err.Error(), "plugin alpha may not call GET") || !strings.Contains(err.Error(), path) {
			t.Errorf("path %s: %v; want permission denied naming plugin and path", path, err)
		}
	}
	if got := api.seen(); len(got) != 1 {
		t.Errorf("refused calls reached the backend: %v", got)
	}
	var denied []string
	for _, e := range h.Audit() {
		if e.Kind == "api.denied" {
			denied = append(denied, e.Fields["path"])
		}
	}
	if len(denied) != 4 || denied[0] != "/nodes/pve1/qemu" {
		t.Errorf("audit api.denied = %v", denied)
	}
	// A Proxmox error answer reaches the plugin as an API error (which the
	// sdk classifies), not as a transport failure.
	refuse.Store(true)
	_, err := h.Invoke(context.Background(), "alpha.api", map[string]any{"path": "/nodes/pve1/storage"}, "", "")
	var pe *sdk.PluginError
	if !errors.As(err, &pe) || pe.Code != sdk.CodePermissionDenied || pe.Details["status"] != "403" || !strings.Contains(pe.Message, "Datastore.Audit") {
		t.Errorf("403 from Proxmox = %v (%+v)", err, pe)
	}
}

// TestHostServicesWithoutBackendAndPanics checks the host services' own
// guards: no backend configured, and a backend that panics.
func TestHostServicesWithoutBackendAndPanics(t *testing.T) {
	h := newHost(t, Options{Dir: t.TempDir()})
	s := &hostServices{h: h, plugin: "alpha"}
	_, err := s.ProxmoxCall(context.Background(), &pluginv1.CallRequest{Method: "GET", Path: "/version"})
	if err == nil || !strings.Contains(err.Error(), "no Proxmox API configured") {
		t.Errorf("no backend: %v", err)
	}
	_, err = s.WaitTask(context.Background(), "UPID:x")
	if err == nil || !strings.Contains(err.Error(), "no Proxmox task waiter") {
		t.Errorf("no waiter: %v", err)
	}
	h.o.API = &fakeAPI{answer: func(string, string) (json.RawMessage, *int, error) { panic("backend bug") }}
	_, err = s.ProxmoxCall(context.Background(), &pluginv1.CallRequest{Method: "GET", Path: "/version"})
	if err == nil || !strings.Contains(err.Error(), "ProxmoxCall failed inside felhom-agent") {
		t.Errorf("panicking backend: %v", err)
	}
	total := 3
	h.o.API = &fakeAPI{answer: func(string, string) (json.RawMessage, *int, error) {
		return json.RawMessage(`[1,2,3]`), &total, nil
	}}
	resp, err := s.ProxmoxCall(context.Background(), &pluginv1.CallRequest{Method: "GET", Path: "/x", Params: []*pluginv1.APIParam{{Key: "a", Values: []string{"1", "2"}}}})
	if err != nil || string(resp.GetData()) != `[1,2,3]` || !resp.GetHasTotal() || resp.GetTotal() != 3 {
		t.Errorf("ProxmoxCall = %v, %v", resp, err)
	}
	if got := h.o.API.(*fakeAPI).seen(); got[0] != "GET /x?a=1&a=2" {
		t.Errorf("params = %v", got)
	}
	h.o.API = &fakeAPI{answer: func(string, string) (json.RawMessage, *int, error) {
		return nil, nil, fmt.Errorf("wrapped: %w", &APIError{Status: 500, Reason: "boom", Errors: map[string]string{"vmid": "bad"}})
	}}
	resp, err = s.ProxmoxCall(context.Background(), &pluginv1.CallRequest{Method: "GET", Path: "/x"})
	if err != nil || resp.GetError().GetStatus() != 500 || resp.GetError().GetErrors()["vmid"] != "bad" {
		t.Errorf("API error = %v, %v", resp, err)
	}
	h.o.Waiter = waiterFunc(func(ctx context.Context, upid string) (TaskResult, error) {
		return TaskResult{UPID: upid, ExitStatus: "WARNINGS: 2", OK: true, Warnings: 2, Duration: 1500 * time.Millisecond}, nil
	})
	w, err := s.WaitTask(context.Background(), "UPID:pve1:1")
	if err != nil || !w.GetOk() || w.GetWarnings() != 2 || w.GetDurationMs() != 1500 || w.GetUpid() != "UPID:pve1:1" {
		t.Errorf("WaitTask = %v, %v", w, err)
	}
	long := strings.Repeat("x", 5000)
	fields := map[string]string{}
	for i := 0; i < 100; i++ {
		fields[strconv.Itoa(i)] = long
	}
	if err := s.Event(context.Background(), &pluginv1.EventRequest{Kind: long, Message: long, Fields: fields}); err != nil {
		t.Fatal(err)
	}
	ev := h.Audit()[0]
	if len(ev.Kind) != maxEventKind || len(ev.Message) != maxEventMessage || len(ev.Fields) != maxEventFields || len(ev.Fields["0"]+ev.Fields["1"]) > 2*maxEventValue {
		t.Errorf("event not bounded: kind %d, message %d, fields %d", len(ev.Kind), len(ev.Message), len(ev.Fields))
	}
}

type waiterFunc func(ctx context.Context, upid string) (TaskResult, error)

func (f waiterFunc) Wait(ctx context.Context, upid string) (TaskResult, error) { return f(ctx, upid) }

// TestCrashMidCallRestartsThenQuarantines kills a plugin with SIGKILL while
// a call runs: the call fails with ErrPluginCrashed naming the plugin, the
// plugin comes back, and after MaxCrashes it is quarantined with its last
// stderr lines in the reason.
func TestCrashMidCallRestartsThenQuarantines(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": bin(t, testBin), "felhom-plugin-beta_v1.0.0": bin(t, testBin)})
	pin(t, dir)
	h := startHost(t, Options{Dir: dir, Restart: RestartPolicy{BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond, MaxCrashes: 3, Window: time.Minute}})

	st := statusOf(t, h, "alpha")
	errc := make(chan error, 1)
	go func() {
		_, err := h.Invoke(context.Background(), "alpha.sleep", nil, "", "")
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the call to be in flight", func() bool { return statusOf(t, h, "alpha").InFlight == 1 })
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	var ce *CrashError
	if !errors.Is(err, ErrPluginCrashed) || !errors.As(err, &ce) || ce.Plugin != "alpha" || ce.Exit != "signal: killed" {
		t.Fatalf("call during crash = %v; want *CrashError for alpha, signal: killed", err)
	}
	if !strings.Contains(err.Error(), "plugin alpha 1.0.0 crashed (signal: killed)") {
		t.Errorf("error text %q", err)
	}

	waitFor(t, 10*time.Second, "restart", func() bool {
		s := statusOf(t, h, "alpha")
		return s.State == StateRunning && s.Restarts == 1
	})
	st2 := statusOf(t, h, "alpha")
	if st2.PID == st.PID || st2.Generation <= st.Generation || st2.LastExit != "signal: killed" || st2.LastCrash == nil {
		t.Errorf("after restart: %+v", st2)
	}
	if r := mustInvoke(t, h, "alpha.echo", nil); r.Data["pid"] != float64(st2.PID) {
		t.Errorf("served by pid %v, want the new %d", r.Data["pid"], st2.PID)
	}
	if !alive(statusOf(t, h, "beta").PID) {
		t.Error("beta died with alpha")
	}

	// Two more crashes fill the window of 3.
	for i := 0; i < 2; i++ {
		s := statusOf(t, h, "alpha")
		if s.State == StateQuarantined {
			break
		}
		waitFor(t, 10*time.Second, "alpha running", func() bool { return statusOf(t, h, "alpha").State == StateRunning })
		s = statusOf(t, h, "alpha")
		_ = syscall.Kill(s.PID, syscall.SIGKILL)
		waitFor(t, 10*time.Second, "crash noticed", func() bool {
			n := statusOf(t, h, "alpha")
			return n.Generation != s.Generation || n.State == StateQuarantined
		})
	}
	waitFor(t, 10*time.Second, "quarantine", func() bool { return statusOf(t, h, "alpha").State == StateQuarantined })
	q := statusOf(t, h, "alpha")
	if !strings.Contains(q.Reason, "crashed 3 times within 1m0s (last: signal: killed); last stderr: ") || !strings.Contains(q.Reason, "testplugin alpha starting, pid") {
		t.Errorf("quarantine reason = %q", q.Reason)
	}
	if q.Restarts != 2 || q.PID != 0 || len(q.Stderr) < 3 {
		t.Errorf("quarantined status = %+v", q)
	}
	e, _ := h.Registry().Lookup("alpha.echo")
	if e.Status().State != registry.StateQuarantined {
		t.Errorf("registry state = %v", e.Status().State)
	}
	if _, err := h.Invoke(context.Background(), "alpha.echo", nil, "", ""); !errors.Is(err, ErrQuarantined) || !strings.Contains(err.Error(), "crashed 3 times") {
		t.Errorf("Invoke on quarantined = %v", err)
	}
	mustInvoke(t, h, "beta.echo", nil)
}

func TestStopDrainsInFlightCalls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": bin(t, testBin)})
	pin(t, dir)
	h := startHost(t, Options{Dir: dir})
	errc := make(chan error, 1)
	go func() {
		_, err := h.Invoke(context.Background(), "alpha.sleep", map[string]any{"ms": 300}, "", "")
		errc <- err
	}()
	waitFor(t, 5*time.Second, "in flight", func() bool { return statusOf(t, h, "alpha").InFlight == 1 })
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Errorf("in-flight call during Stop = %v, want it to finish", err)
	}
}

func TestBackoff(t *testing.T) {
	p := RestartPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for n, want := range map[int][2]time.Duration{
		1: {50 * time.Millisecond, 100 * time.Millisecond},
		2: {100 * time.Millisecond, 200 * time.Millisecond},
		4: {400 * time.Millisecond, 800 * time.Millisecond},
		9: {500 * time.Millisecond, time.Second},
	} {
		lo, hi := backoff(p, n, func() float64 { return 0 }), backoff(p, n, func() float64 { return 0.999999 })
		if lo != want[0] || hi < want[1]-time.Microsecond || hi > want[1] {
			t.Errorf("backoff(%d) in [%v, %v], want [%v, %v]", n, lo, hi, want[0], want[1])
		}
	}
}
