package selftest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

func newClient(t *testing.T, s *pvesim.Server, token string) *proxmox.Client {
	t.Helper()
	c, err := proxmox.New(proxmox.Config{
		BaseURL:     s.URL(),
		Node:        s.Node(),
		Token:       proxmox.Token(token),
		Fingerprint: s.Fingerprint(),
		Timeout:     5 * time.Second,
		Retry:       proxmox.RetryPolicy{MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func run(t *testing.T, checks []Check) (string, []Result, bool) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, ok := Run(ctx, &out, checks)
	if len(res) != len(checks) {
		t.Fatalf("%d results for %d checks", len(res), len(checks))
	}
	return out.String(), res, ok
}

func TestReadSelftestPasses(t *testing.T) {
	s := pvesim.Start(t, pvesim.Options{Seed: true, TaskDuration: 20 * time.Millisecond})
	out, _, ok := run(t, ReadChecks(newClient(t, s, s.AdminToken()), s.Node()))
	if !ok {
		t.Fatalf("read selftest failed:\n%s", out)
	}
	if !strings.Contains(out, "1 qemu, 2 lxc") {
		t.Fatalf("cluster view not reported:\n%s", out)
	}
}

// TestTaskSelftestRoundTrip runs the reversible round trip on both guest
// kinds (LXC config writes are synchronous, QEMU's are tasks) and checks
// that the guest ends as it began.
func TestTaskSelftestRoundTrip(t *testing.T) {
	s := pvesim.Start(t, pvesim.Options{Seed: true, TaskDuration: 20 * time.Millisecond})
	c := newClient(t, s, s.AdminToken())
	for _, g := range []proxmox.GuestRef{{Kind: proxmox.LXC, VMID: 9999}, {Kind: proxmox.QEMU, VMID: 101}} {
		before, err := c.GuestConfig(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		out, _, ok := run(t, TaskChecks(c, s.Node(), g.VMID))
		if !ok {
			t.Fatalf("%s: task selftest failed:\n%s", g, out)
		}
		if g.Kind == proxmox.QEMU && !strings.Contains(out, "qmconfig OK") {
			t.Errorf("%s: config write was not waited on as a task:\n%s", g, out)
		}
		after, err := c.GuestConfig(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		if after.Description() != before.Description() {
			t.Errorf("%s: description %q after the selftest, %q before", g, after.Description(), before.Description())
		}
		snaps, err := c.Snapshots(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		for _, sn := range snaps {
			if strings.HasPrefix(sn.Name, "felhomselftest") {
				t.Errorf("%s: selftest snapshot %s left behind", g, sn.Name)
			}
		}
	}
}

func TestTaskSelftestReportsTaskFailure(t *testing.T) {
	s := pvesim.Start(t, pvesim.Options{Seed: true, TaskDuration: 20 * time.Millisecond})
	s.Faults().FailTasks("vzrollback", "rollback failed: simulated storage error")
	out, res, ok := run(t, TaskChecks(newClient(t, s, s.AdminToken()), s.Node(), 9999))
	if ok {
		t.Fatalf("selftest passed despite a failed rollback task:\n%s", out)
	}
	for _, r := range res {
		if r.Name == "task.snapshot_rollback" {
			if r.Status != Fail || !strings.Contains(r.Detail, "simulated storage error") {
				t.Fatalf("rollback result %+v", r)
			}
		}
		if r.Name == "task.snapshot_delete" && r.Status != Pass {
			t.Fatalf("cleanup after a failed rollback did not run: %+v", r)
		}
	}
}

func TestReadSelftestStopsOnAuthFailure(t *testing.T) {
	s := pvesim.Start(t, pvesim.Options{Seed: true})
	id, _, _ := strings.Cut(s.AdminToken(), "=")
	out, res, ok := run(t, ReadChecks(newClient(t, s, id+"=00000000-0000-0000-0000-000000000000"), s.Node()))
	if ok || res[0].Status != Fail || res[1].Status != Skip {
		t.Fatalf("want the API check to fail and the rest skipped:\n%s", out)
	}
}

func TestTaskSelftestUnknownGuest(t *testing.T) {
	s := pvesim.Start(t, pvesim.Options{Seed: true})
	out, res, ok := run(t, TaskChecks(newClient(t, s, s.AdminToken()), s.Node(), 4242))
	if ok || !strings.Contains(res[0].Detail, "guest 4242 not found") {
		t.Fatalf("unknown guest not reported:\n%s", out)
	}
}
