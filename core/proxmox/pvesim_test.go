package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// These tests run the client against sdk/pvesim, the faithful simulator,
// so that every typed error and the waiter's API use are checked against
// the texts and behaviour a real node produces.

func startSim(t *testing.T, opts pvesim.Options) *pvesim.Server {
	t.Helper()
	opts.Seed = true
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 100 * time.Millisecond
	}
	sim, err := pvesim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func simClient(t *testing.T, sim *pvesim.Server, token string, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL:     sim.URL(),
		Node:        sim.Node(),
		Token:       Token(token),
		Fingerprint: sim.Fingerprint(),
		Retry:       RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

var (
	ct100 = GuestRef{Kind: LXC, VMID: 100}
	vm101 = GuestRef{Kind: QEMU, VMID: 101}
)

func TestPVESimPinning(t *testing.T) {
	sim := startSim(t, pvesim.Options{})
	c := simClient(t, sim, sim.AdminToken())
	if _, err := c.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("AA:", 31) + "AA"
	bad := simClient(t, sim, sim.AdminToken(), func(cfg *Config) { cfg.Fingerprint = wrong })
	_, err := bad.Version(context.Background())
	var pe *PinMismatchError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), sim.Fingerprint()) {
		t.Fatalf("err = %v; want a pin mismatch naming both fingerprints", err)
	}
}

func TestPVESimTypedCalls(t *testing.T) {
	sim := startSim(t, pvesim.Options{TaskDuration: 20 * time.Millisecond})
	c := simClient(t, sim, sim.AdminToken())
	ctx := context.Background()

	if st, err := c.NodeStatus(ctx, ""); err != nil || st.MemoryTotal == 0 {
		t.Fatalf("NodeStatus = %+v, %v", st, err)
	}
	rs, err := c.ClusterResources(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[int]GuestKind{}
	for _, r := range rs {
		kinds[r.VMID] = r.GuestKind()
	}
	if kinds[100] != LXC || kinds[101] != QEMU {
		t.Fatalf("ClusterResources = %+v", rs)
	}

	// LXC: description comes back with a trailing newline; PUT is synchronous.
	gc, err := c.GuestConfig(ctx, ct100)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.SetGuestConfig(ctx, ct100, ConfigUpdate{Set: map[string]string{"description": "managed by felhom"}, Digest: gc.Digest})
	if err != nil || res.Task != nil {
		t.Fatalf("LXC set config = %+v, %v", res, err)
	}
	gc, err = c.GuestConfig(ctx, ct100)
	if err != nil {
		t.Fatal(err)
	}
	if gc.Values["description"] != "managed by felhom\n" {
		t.Errorf("LXC description = %q; the simulator should add the trailing newline", gc.Values["description"])
	}
	if ch := gc.Changes(map[string]string{"description": "managed by felhom"}); len(ch) != 0 {
		t.Errorf("Changes = %v; want none after normalising", ch)
	}
	// A write with the old digest is refused.
	_, err = c.SetGuestConfig(ctx, ct100, ConfigUpdate{Set: map[string]string{"description": "x"}, Digest: strings.Repeat("0", 40)})
	if !errors.Is(err, ErrConfigChanged) {
		t.Errorf("stale digest: %v", err)
	}

	// QEMU: POST config runs a qmconfig task that Mutate waits for.
	gq, err := c.GuestConfig(ctx, vm101)
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.SetGuestConfig(ctx, vm101, ConfigUpdate{Set: map[string]string{"description": "vm"}, Digest: gq.Digest})
	if err != nil || res.Task == nil || res.Task.UPID.Type != "qmconfig" {
		t.Fatalf("QEMU set config = %+v, %v", res, err)
	}

	// Snapshots: create, list, rollback, delete, each a waited task.
	if _, err := c.CreateSnapshot(ctx, ct100, "before", "pre-change", false); err != nil {
		t.Fatal(err)
	}
	snaps, err := c.Snapshots(ctx, ct100)
	if err != nil || len(snaps) != 1 || snaps[0].Name != "before" {
		t.Fatalf("Snapshots = %+v, %v", snaps, err)
	}
	if _, err := c.CreateSnapshot(ctx, ct100, "before", "", false); !IsTaskFailed(err) || !strings.Contains(err.Error(), "already used") {
		t.Errorf("duplicate snapshot: %v; want a failed task", err)
	}
	if _, err := c.Stop(ctx, ct100); err != nil {
		t.Fatal(err)
	}
	if st, err := c.GuestStatus(ctx, ct100); err != nil || st.Running() {
		t.Fatalf("GuestStatus after stop = %+v, %v", st, err)
	}
	if _, err := c.RollbackSnapshot(ctx, ct100, "before"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSnapshot(ctx, ct100, "before", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSnapshot(ctx, ct100, "gone", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete missing snapshot: %v; want ErrNotFound (inside the task)", err)
	}
	if _, err := c.Start(ctx, ct100); err != nil {
		t.Fatal(err)
	}
	if st, err := c.GuestStatus(ctx, ct100); err != nil || !st.Running() {
		t.Fatalf("GuestStatus after start = %+v, %v", st, err)
	}
}

func TestPVESimTypedErrors(t *testing.T) {
	sim := startSim(t, pvesim.Options{})
	admin := simClient(t, sim, sim.AdminToken(), func(cfg *Config) { cfg.Retry.MaxAttempts = 1 })
	audit := simClient(t, sim, sim.AuditToken())
	ctx := context.Background()

	t.Run("permission", func(t *testing.T) {
		_, err := audit.CreateSnapshot(ctx, ct100, "s1", "", false)
		var pe *PermissionError
		if !errors.Is(err, ErrPermission) || !errors.As(err, &pe) || pe.Path != "/vms/100" || strings.Join(pe.Privileges, ",") != "VM.Snapshot" {
			t.Fatalf("err = %v, detail %+v", err, pe)
		}
		_, err = audit.RollbackSnapshot(ctx, ct100, "s1")
		if !errors.As(err, &pe) || !pe.AnyOf || strings.Join(pe.Privileges, "|") != "VM.Snapshot|VM.Snapshot.Rollback" {
			t.Fatalf("rollback err = %v, detail %+v", err, pe)
		}
	})
	t.Run("params", func(t *testing.T) {
		err := admin.Do(ctx, "GET", "/cluster/resources", map[string]any{"type": "bogus"}, nil)
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Errors["type"] == "" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, err := admin.GuestConfig(ctx, GuestRef{Kind: QEMU, VMID: 999})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not implemented", func(t *testing.T) {
		_, err := admin.Mutate(ctx, "POST", "/nodes/"+sim.Node()+"/lxc/100/config", map[string]any{"cores": 2})
		if !errors.Is(err, ErrNotImplemented) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("lock timeout", func(t *testing.T) {
		release := sim.Faults().HoldLock(100)
		defer release()
		_, err := admin.SetGuestConfig(ctx, ct100, ConfigUpdate{Set: map[string]string{"cores": "2"}})
		var le *LockTimeoutError
		if !errors.As(err, &le) || le.File != "/run/lock/lxc/pve-config-100.lock" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		sim.Faults().ProxyError("/nodes/"+sim.Node()+"/status", 596)
		defer sim.Faults().Clear()
		_, err := admin.NodeStatus(ctx, "")
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("auth", func(t *testing.T) {
		bad := simClient(t, sim, "root@pam!nosuch=00000000-0000-0000-0000-000000000000")
		_, err := bad.Version(ctx)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPVESimRetries(t *testing.T) {
	sim := startSim(t, pvesim.Options{TaskDuration: -1})
	c := simClient(t, sim, sim.AdminToken())
	ctx := context.Background()
	node := sim.Node()

	sim.ResetStats()
	sim.Faults().Transient("/nodes/"+node+"/status", 2, 503)
	if _, err := c.NodeStatus(ctx, ""); err != nil {
		t.Fatalf("GET with 2 transient failures: %v", err)
	}
	if n := sim.Stats().Requests["GET /nodes/{node}/status"]; n != 3 {
		t.Errorf("GET made %d requests, want 3", n)
	}

	sim.ResetStats()
	sim.Faults().Transient("/nodes/"+node+"/lxc/100/snapshot", 1, 503)
	if _, err := c.CreateSnapshot(ctx, ct100, "once", "", false); err == nil {
		t.Fatal("snapshot succeeded despite the 503")
	}
	if n := sim.Stats().Requests["POST /nodes/{node}/lxc/{vmid}/snapshot"]; n != 1 {
		t.Errorf("POST made %d requests; mutations must not be retried", n)
	}
}

func TestPVESimWaiter(t *testing.T) {
	checkNoGoroutineLeak(t)
	sim := startSim(t, pvesim.Options{TaskDuration: 50 * time.Millisecond, NoSuchTaskFor: 200 * time.Millisecond})
	c := simClient(t, sim, sim.AdminToken())
	w := fastWaiter(c, func(o *WaiterOptions) { o.ListGrace = 50 * time.Millisecond })
	ctx := context.Background()
	node := sim.Node()
	snap := func(name string) string {
		var upid string
		if err := c.Do(ctx, "POST", "/nodes/"+node+"/qemu/101/snapshot", url.Values{"snapname": {name}}, &upid); err != nil {
			t.Fatal(err)
		}
		return upid
	}

	// Success, tolerating the early "no such task".
	if res, err := w.Wait(ctx, snap("s1")); err != nil || res.ExitStatus != "OK" {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
	sim.Faults().WarnTasks("qmdelsnapshot", 2)
	var upid string
	if err := c.Do(ctx, "DELETE", "/nodes/"+node+"/qemu/101/snapshot/s1", nil, &upid); err != nil {
		t.Fatal(err)
	}
	if res, err := w.Wait(ctx, upid); err != nil || res.Warnings != 2 {
		t.Fatalf("warnings: %+v, %v", res, err)
	}
	sim.Faults().FailTasks("qmsnapshot", "storage 'local-lvm' is full")
	_, err := w.Wait(ctx, snap("s2"))
	var tf *TaskFailedError
	if !errors.As(err, &tf) || tf.ExitStatus != "storage 'local-lvm' is full" || len(tf.LogTail) == 0 ||
		tf.LogTail[len(tf.LogTail)-1] != "TASK ERROR: storage 'local-lvm' is full" {
		t.Fatalf("failure: %v, tail %q", err, tf.LogTail)
	}
	sim.Faults().Clear()

	// Cancellation returns at once and leaves the task running.
	sim.Faults().SlowTasks("qmsnapshot", time.Hour)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := w.Wait(cctx, snap("s3")); err != context.DeadlineExceeded {
		t.Fatalf("err = %v", err)
	}
	if n := sim.Stats().Requests["DELETE /nodes/{node}/tasks/{upid}"]; n != 0 {
		t.Errorf("cancel sent %d task stops", n)
	}
	sim.Faults().Clear()
}

// TestPVESim100ConcurrentWaits checks the key property at the simulator:
// a hundred concurrent waits read the node's task list at most once per
// waiter tick and never poll a task's status.
func TestPVESim100ConcurrentWaits(t *testing.T) {
	checkNoGoroutineLeak(t)
	sim := startSim(t, pvesim.Options{TaskDuration: 300 * time.Millisecond})
	c := simClient(t, sim, sim.AdminToken())
	w := fastWaiter(c)
	ctx := context.Background()
	const n = 100
	upids := make([]string, n)
	for i := range upids {
		if err := c.Do(ctx, "POST", "/nodes/"+sim.Node()+"/qemu", map[string]any{"vmid": 200 + i, "name": fmt.Sprintf("vm%d", 200+i)}, &upids[i]); err != nil {
			t.Fatal(err)
		}
	}
	sim.ResetStats()
	var wg sync.WaitGroup
	for _, u := range upids {
		wg.Go(func() {
			if res, err := w.Wait(ctx, u); err != nil || res.ExitStatus != "OK" {
				t.Errorf("wait %s: %+v, %v", u, res, err)
			}
		})
	}
	wg.Wait()
	st := w.Stats()
	reqs := sim.Stats().Requests
	lists := reqs["GET /nodes/{node}/tasks"]
	if lists == 0 || uint64(lists) > st.Ticks {
		t.Errorf("simulator saw %d task-list reads for %d waiter ticks; want 1..ticks", lists, st.Ticks)
	}
	if s := reqs["GET /nodes/{node}/tasks/{upid}/status"]; s != 0 {
		t.Errorf("simulator saw %d per-task status calls; want 0", s)
	}
	t.Logf("%d waits: %d ticks, %d list reads, requests %v", n, st.Ticks, lists, reqs)
}
