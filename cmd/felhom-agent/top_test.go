package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/version"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// simConfig writes an agent config pointing at a fresh simulator.
func simConfig(t *testing.T) (string, *pvesim.Server) {
	t.Helper()
	s := pvesim.Start(t, pvesim.Options{Seed: true, TaskDuration: 20 * time.Millisecond})
	dir := t.TempDir()
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
		if strings.Contains(out+errs, strings.SplitN(s.AdminToken(), "=", 2)[1]) {
			t.Fatalf("token secret printed")
		}
	}
}

func TestSelftestFailureExitsNonZero(t *testing.T) {
	cfg, s := simConfig(t)
	s.Faults().FailTasks("vzsnapshot", "snapshot feature is not available")
	code, out, _ := runCLI("--config", cfg, "--selftest=task", "-vmid", "9999")
	if code != 1 || !strings.Contains(out, "FAIL  task.snapshot_create") {
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
