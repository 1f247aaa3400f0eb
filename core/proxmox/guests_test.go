package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNormalizeDescription(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"web server", "web server"},
		{"web server\n", "web server"},         // LXC
		{"line 1\nline 2\n", "line 1\nline 2"}, // LXC, multi-line
		{"line 1\r\nline 2\r\n", "line 1\nline 2"},
		{"trailing spaces  \n\n", "trailing spaces"}, // QEMU strips trailing whitespace
		{"  leading kept", "  leading kept"},
	}
	for _, tt := range tests {
		if got := NormalizeDescription(tt.in); got != tt.want {
			t.Errorf("NormalizeDescription(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGuestConfigAndChanges(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /nodes/pve/lxc/100/config", func(w http.ResponseWriter, r *http.Request) {
		pveData(w, map[string]any{
			"hostname": "ct100", "cores": 2, "memory": "1024", "onboot": 1, "unprivileged": true,
			"description": "managed by felhom\n", "digest": "0123456789abcdef0123456789abcdef01234567",
			"cpulimit": 1.5, "nameserver": nil,
		})
	})
	c := f.client(t)
	gc, err := c.GuestConfig(context.Background(), GuestRef{Kind: LXC, VMID: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"hostname": "ct100", "cores": "2", "memory": "1024", "onboot": "1", "unprivileged": "1",
		"description": "managed by felhom\n", "cpulimit": "1.5"}
	if len(gc.Values) != len(want) {
		t.Errorf("Values = %v", gc.Values)
	}
	for k, v := range want {
		if gc.Values[k] != v {
			t.Errorf("Values[%q] = %q, want %q", k, gc.Values[k], v)
		}
	}
	if gc.Digest != "0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("Digest = %q", gc.Digest)
	}
	if gc.Description() != "managed by felhom" {
		t.Errorf("Description() = %q", gc.Description())
	}
	changes := gc.Changes(map[string]string{"description": "managed by felhom", "cores": "2", "memory": "2048", "swap": "0"})
	if len(changes) != 2 || changes["memory"] != "2048" || changes["swap"] != "0" {
		t.Errorf("Changes = %v; the LXC trailing newline must not count as a change", changes)
	}
}

func TestSetGuestConfig(t *testing.T) {
	f := newFakePVE(t)
	var mu sync.Mutex
	var seen []string
	const digest = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	f.handle("PUT /nodes/pve/lxc/100/config", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, "PUT lxc "+r.PostForm.Encode())
		mu.Unlock()
		if r.PostForm.Get("digest") != digest {
			pveError(w, 500, "detected modified configuration - file changed by other user? Try again.", nil)
			return
		}
		pveData(w, nil)
	})
	f.handle("POST /nodes/pve/qemu/101/config", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, "POST qemu "+r.PostForm.Encode())
		mu.Unlock()
		pveData(w, f.addTask("qmconfig", "101", 30*time.Millisecond, "OK"))
	})
	f.handle("PUT /nodes/pve/qemu/101/config", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, "PUT qemu "+r.PostForm.Encode())
		mu.Unlock()
		pveData(w, nil)
	})
	c := f.client(t)
	ctx := context.Background()

	res, err := c.SetGuestConfig(ctx, GuestRef{Kind: LXC, VMID: 100}, ConfigUpdate{
		Set: map[string]string{"memory": "2048"}, Delete: []string{"swap", "cpulimit"}, Digest: digest,
	})
	if err != nil || res.Task != nil || string(res.Data) != "null" {
		t.Fatalf("LXC update = %+v, %v; want synchronous success", res, err)
	}
	_, err = c.SetGuestConfig(ctx, GuestRef{Kind: LXC, VMID: 100}, ConfigUpdate{Set: map[string]string{"memory": "512"}, Digest: "stale"})
	if !errors.Is(err, ErrConfigChanged) {
		t.Fatalf("stale digest: err = %v, want ErrConfigChanged", err)
	}

	res, err = c.SetGuestConfig(ctx, GuestRef{Kind: QEMU, VMID: 101}, ConfigUpdate{Set: map[string]string{"description": "x"}})
	if err != nil || res.Task == nil || res.Task.UPID.Type != "qmconfig" || res.UPID() == "" {
		t.Fatalf("QEMU update = %+v, %v; want the qmconfig task waited for", res, err)
	}
	if _, err = c.SetGuestConfig(ctx, GuestRef{Kind: QEMU, VMID: 101}, ConfigUpdate{Set: map[string]string{"cores": "4"}, Synchronous: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(seen, "\n")
	mu.Unlock()
	want := "PUT lxc delete=cpulimit%2Cswap&digest=" + digest + "&memory=2048\n" +
		"PUT lxc digest=stale&memory=512\n" +
		"POST qemu description=x\n" +
		"PUT qemu cores=4"
	if got != want {
		t.Errorf("requests:\n%s\nwant:\n%s", got, want)
	}

	// Bad input is refused before any request, naming what is wrong.
	for _, tc := range []struct {
		g      GuestRef
		u      ConfigUpdate
		errHas string
	}{
		{GuestRef{Kind: "vm", VMID: 100}, ConfigUpdate{Set: map[string]string{"a": "1"}}, `guest kind "vm"`},
		{GuestRef{Kind: LXC, VMID: 99}, ConfigUpdate{Set: map[string]string{"a": "1"}}, "vmid 99"},
		{GuestRef{Kind: LXC, VMID: 100}, ConfigUpdate{Set: map[string]string{"digest": "x"}}, `key "digest"`},
		{GuestRef{Kind: LXC, VMID: 100}, ConfigUpdate{Set: map[string]string{"Bad Key": "x"}}, `key "Bad Key"`},
		{GuestRef{Kind: LXC, VMID: 100}, ConfigUpdate{Set: map[string]string{"a": "1"}, Delete: []string{"a"}}, "both set and deleted"},
	} {
		if _, err := c.SetGuestConfig(ctx, tc.g, tc.u); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("SetGuestConfig(%v, %+v) = %v, want error containing %q", tc.g, tc.u, err, tc.errHas)
		}
	}
	if res, err := c.SetGuestConfig(ctx, GuestRef{Kind: LXC, VMID: 100}, ConfigUpdate{}); err != nil || res.Task != nil || res.Data != nil {
		t.Errorf("empty update = %+v, %v; want a no-op", res, err)
	}
}

func TestMutate(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	f.handle("POST /nodes/pve/lxc/100/snapshot", func(w http.ResponseWriter, r *http.Request) {
		name := r.PostForm.Get("snapname")
		if name == "dup" {
			pveData(w, f.addTask("vzsnapshot", "100", 10*time.Millisecond, "snapshot name 'dup' already used", "creating"))
			return
		}
		pveData(w, f.addTask("vzsnapshot", "100", 10*time.Millisecond, "OK"))
	})
	f.handle("POST /nodes/pve/storage/local/content", func(w http.ResponseWriter, r *http.Request) {
		pveData(w, "local:100/vm-100-disk-1.raw")
	})
	f.handle("POST /nodes/pve/lxc/100/status/start", func(w http.ResponseWriter, r *http.Request) {
		pveError(w, 500, "CT 100 already running", nil)
	})
	c := f.client(t)
	ctx := context.Background()
	g := GuestRef{Kind: LXC, VMID: 100}

	res, err := c.CreateSnapshot(ctx, g, "before-upgrade", "pre", false)
	if err != nil || res.Task == nil || res.Task.ExitStatus != "OK" {
		t.Fatalf("CreateSnapshot = %+v, %v", res, err)
	}
	res, err = c.CreateSnapshot(ctx, g, "dup", "", false)
	var tf *TaskFailedError
	if !errors.As(err, &tf) || tf.ExitStatus != "snapshot name 'dup' already used" || res.Task == nil || res.UPID() != tf.UPID.String() {
		t.Fatalf("failed task: res %+v err %v", res, err)
	}
	res, err = c.Mutate(ctx, "POST", "/nodes/pve/storage/local/content", map[string]any{"vmid": 100, "filename": "vm-100-disk-1.raw", "size": "1G"})
	var volid string
	if err != nil || res.Task != nil || json.Unmarshal(res.Data, &volid) != nil || volid != "local:100/vm-100-disk-1.raw" {
		t.Fatalf("sync call with data: %+v, %v", res, err)
	}
	if _, err := c.Start(ctx, g); err == nil || !strings.Contains(err.Error(), "CT 100 already running") {
		t.Fatalf("Start = %v", err)
	}
	if _, err := c.Mutate(ctx, "GET", "/version", nil); err == nil {
		t.Error("Mutate accepted GET")
	}
	if _, err := c.CreateSnapshot(ctx, g, "ram", "", true); err == nil || !strings.Contains(err.Error(), "vmstate is only for qemu") {
		t.Errorf("LXC vmstate: %v", err)
	}
	for _, bad := range []string{"", "1abc", "a", "has space", strings.Repeat("a", 41)} {
		if _, err := c.CreateSnapshot(ctx, g, bad, "", false); err == nil || !strings.Contains(err.Error(), "snapshot name") {
			t.Errorf("snapshot name %q: %v", bad, err)
		}
	}
	// Mutate waits with the client's shared waiter; it stops when idle.
	waitFor(t, func() bool { return c.Waiter().Stats().Pollers == 0 }, "shared waiter to go idle")
}

func TestSnapshotsStatusResources(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /nodes/pve/qemu/101/snapshot", func(w http.ResponseWriter, r *http.Request) {
		pveData(w, []map[string]any{
			{"name": "s1", "description": "first", "snaptime": 1700000000, "vmstate": 1},
			{"name": "s2", "description": "", "snaptime": "1700000100", "parent": "s1"},
			{"name": "current", "description": "You are here!", "parent": "s2", "running": 0, "digest": "abc"},
		})
	})
	f.handle("GET /nodes/pve/qemu/101/status/current", func(w http.ResponseWriter, r *http.Request) {
		pveData(w, map[string]any{"status": "running", "name": "vm101", "qmpstatus": "running", "uptime": 99,
			"cpus": 2, "maxmem": 2147483648, "mem": "1073741824", "pid": 4242, "ha": map[string]any{"managed": 0}})
	})
	f.handle("GET /cluster/resources", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("type") != "vm" {
			pveError(w, 400, "Parameter verification failed.", map[string]string{"type": "missing"})
			return
		}
		pveData(w, []map[string]any{
			{"id": "lxc/100", "type": "lxc", "node": "pve", "vmid": 100, "name": "ct100", "status": "running", "template": 0, "maxmem": 536870912},
			{"id": "qemu/101", "type": "qemu", "node": "pve", "vmid": "101", "name": "vm101", "status": "stopped", "template": "1", "lock": "backup"},
		})
	})
	c := f.client(t)
	ctx := context.Background()
	snaps, err := c.Snapshots(ctx, GuestRef{Kind: QEMU, VMID: 101})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[0].Name != "s1" || !snaps[0].VMState || snaps[1].Parent != "s1" || snaps[1].SnapTime != 1700000100 {
		t.Errorf("Snapshots = %+v; want s1, s2 without 'current'", snaps)
	}
	st, err := c.GuestStatus(ctx, GuestRef{Kind: QEMU, VMID: 101})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running() || st.Name != "vm101" || st.Mem != 1073741824 || st.PID != 4242 || st.CPUs != 2 {
		t.Errorf("GuestStatus = %+v", st)
	}
	rs, err := c.ClusterResources(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].GuestKind() != LXC || rs[1].VMID != 101 || !rs[1].Template || rs[1].Lock != "backup" || rs[0].MaxMem != 536870912 {
		t.Errorf("ClusterResources = %+v", rs)
	}
	if _, err := c.ClusterResources(ctx, "qemu"); err == nil || !strings.Contains(err.Error(), `type "qemu"`) {
		t.Errorf("bad type: %v", err)
	}
}
