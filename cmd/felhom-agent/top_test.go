package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/pluginhost"
	"gitea.dooplex.hu/admin/felhom-agent/internal/version"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

var (
	storagePluginOnce sync.Once
	storagePluginDir  string
	storagePluginErr  error
)

// buildStoragePlugin builds the bundled storage plugin once per test run,
// stripped as scripts/build.sh builds it.
func buildStoragePlugin(t *testing.T) string {
	t.Helper()
	storagePluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "felhom-agent-test-plugin")
		if err != nil {
			storagePluginErr = err
			return
		}
		storagePluginDir = dir
		out := filepath.Join(dir, "felhom-plugin-storage_v"+storageVersion(t))
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "../../plugins/storage")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			storagePluginErr = fmt.Errorf("go build plugins/storage: %v\n%s", err, b)
		}
	})
	if storagePluginErr != nil {
		t.Fatal(storagePluginErr)
	}
	m, _ := filepath.Glob(filepath.Join(storagePluginDir, "felhom-plugin-storage_v*"))
	return m[0]
}

func storageVersion(t *testing.T) string {
	b, err := os.ReadFile("../../plugins/storage/main.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const Version = "([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("plugins/storage/main.go has no const Version")
	}
	return string(m[1])
}

func TestMain(m *testing.M) {
	code := m.Run()
	if storagePluginDir != "" {
		os.RemoveAll(storagePluginDir)
	}
	os.Exit(code)
}

// simConfig writes an agent config pointing at a fresh simulator, with the
// bundled storage plugin installed and pinned in a root-owned 0755 dir.
func simConfig(t *testing.T) (string, *pvesim.Server) {
	t.Helper()
	s := pvesim.Start(t, pvesim.Options{Seed: true, TaskDuration: 20 * time.Millisecond})
	dir := t.TempDir()
	pdir := filepath.Join(dir, "plugins")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildStoragePlugin(t)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, filepath.Base(bin)), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pluginhost.Pin(pdir, filepath.Join(dir, "plugins.lock")); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"host_id":  "test-host",
		"data_dir": filepath.Join(dir, "data"),
		"proxmox": map[string]any{
			"url": s.URL(), "node": s.Node(), "token": s.AdminToken(), "fingerprint": s.Fingerprint(),
		},
		"plugins": map[string]any{"dir": filepath.Join(dir, "plugins"), "lock_file": filepath.Join(dir, "plugins.lock")},
		"authz":   map[string]any{"allowed_signers": filepath.Join(dir, "allowed_signers")},
	}
	b, _ := json.Marshal(cfg)
	p := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, s
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionFlag(t *testing.T) {
	code, out, _ := runCLI("--version")
	if code != 0 || strings.TrimSpace(out) != "felhom-agent "+version.Version {
		t.Fatalf("--version: %d %q", code, out)
	}
}

func TestSelftestModesAgainstSimulator(t *testing.T) {
	cfg, s := simConfig(t)
	for _, args := range [][]string{
		{"--config", cfg, "--selftest"},
		{"--config", cfg, "--selftest=read"},
		{"--config", cfg, "--selftest=task", "-vmid", "9999"},
	} {
		code, out, errs := runCLI(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			if !strings.HasPrefix(line, "PASS") && !strings.HasPrefix(line, "selftest:") {
				t.Errorf("%v: unexpected line %q", args, line)
			}
		}
		if args[len(args)-1] == "--selftest" && !regexp.MustCompile(`(?m)^PASS .* plugin\.storage\.`).MatchString(out) {
			t.Errorf("%v: the storage plugin's read selftest did not run:\n%s", args, out)
		}
		if strings.Contains(out+errs, strings.SplitN(s.AdminToken(), "=", 2)[1]) {
			t.Fatalf("token secret printed")
		}
	}
}

func TestSelftestFailureExitsNonZero(t *testing.T) {
	cfg, s := simConfig(t)
	s.Faults().FailTasks("vzsnapshot", "snapshot feature is not available")
	code, out, _ := runCLI("--config", cfg, "--selftest=task", "-vmid", "9999")
	if code != 1 || !regexp.MustCompile(`(?m)^FAIL .* task\.snapshot_create`).MatchString(out) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestSelftestUsageErrors(t *testing.T) {
	cfg, _ := simConfig(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", cfg, "--selftest=task"}, "needs -vmid"},
		{[]string{"--config", cfg, "--selftest=bogus"}, "unknown selftest mode"},
		{[]string{"--config", filepath.Join(t.TempDir(), "none.json"), "--selftest"}, "reading config"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		code, _, errs := runCLI(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
	}
}

// TestRunDaemonStartsAndStops runs the daemon against the simulator with
// the storage plugin, then stops it as SIGTERM would.
func TestRunDaemonStartsAndStops(t *testing.T) {
	cfg, _ := simConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuffer
	done := make(chan int)
	go func() { done <- runMain(ctx, []string{"run", "--config", cfg}, &out, &errb) }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(errb.String(), "agent running") {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("daemon did not come up:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
	logs := errb.String()
	if !strings.Contains(logs, "plugin running: plugin=storage") || !strings.Contains(logs, "plugins_running=1") || !strings.Contains(logs, "stopped") {
		t.Fatalf("daemon log lacks the plugin or the stop:\n%s", logs)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while the daemon writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
