package pvesim

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var sha1HexRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestConfigRepresentation(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	ct := h.config("lxc", "100")
	if ct["cores"] != float64(2) || ct["memory"] != float64(1024) || ct["onboot"] != float64(1) || ct["unprivileged"] != float64(1) {
		t.Errorf("LXC ints/booleans not numbers: %v", ct)
	}
	if ct["description"] != "Seeded container\n" {
		t.Errorf("LXC description %q, want trailing newline", ct["description"])
	}
	if ct["hostname"] != "ct100" || !sha1HexRE.MatchString(ct["digest"].(string)) {
		t.Errorf("LXC config %v", ct)
	}
	vm := h.config("qemu", "101")
	if vm["description"] != "Seeded VM" {
		t.Errorf("QEMU description %q, want no trailing newline", vm["description"])
	}
	if vm["memory"] != "2048" || vm["cores"] != float64(2) || vm["numa"] != float64(0) {
		t.Errorf("QEMU memory is a property string, cores an int: %v", vm)
	}
	// Multi-line descriptions: LXC keeps one trailing newline, QEMU strips it.
	h.put("/nodes/pve/lxc/100/config", m("description", "line 1\nline: 2\n\n")).ok(t, nil)
	h.put("/nodes/pve/qemu/101/config", m("description", "line 1\nline: 2\n\n")).ok(t, nil)
	if d := h.config("lxc", "100")["description"]; d != "line 1\nline: 2\n" {
		t.Errorf("LXC description %q", d)
	}
	if d := h.config("qemu", "101")["description"]; d != "line 1\nline: 2" {
		t.Errorf("QEMU description %q", d)
	}
	h.get("/nodes/pve/qemu/100/config", nil).fails(t, 500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist")
	h.get("/nodes/pve/lxc/555/config", nil).fails(t, 500, "Configuration file 'nodes/pve/lxc/555.conf' does not exist")
}

func TestConfigUpdateSyncAndDigest(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	before := h.config("lxc", "100")["digest"].(string)
	r := h.put("/nodes/pve/lxc/100/config", m("memory", "2048", "delete", "tags,features", "digest", before)).ok(t, nil)
	if string(r.data) != "null" {
		t.Errorf("PUT data = %s, want null", r.data)
	}
	c := h.config("lxc", "100")
	if c["memory"] != float64(2048) {
		t.Errorf("memory = %v", c["memory"])
	}
	if _, ok := c["tags"]; ok {
		t.Error("deleted key tags still present")
	}
	after := c["digest"].(string)
	if after == before {
		t.Error("digest did not change on write")
	}
	// A stale digest is refused.
	h.put("/nodes/pve/lxc/100/config", m("memory", "512", "digest", before)).
		fails(t, 500, "detected modified configuration - file changed by other user? Try again.")
	// Same content, same digest: the digest is a hash of the config file.
	h.put("/nodes/pve/lxc/100/config", m("memory", "2048")).ok(t, nil)
	if d := h.config("lxc", "100")["digest"]; d != after {
		t.Errorf("digest changed by a no-op write: %v -> %v", after, d)
	}
	r = h.put("/nodes/pve/lxc/100/config", m("memory", "512", "delete", "memory")).fails(t, 400, "Parameter verification failed.")
	if r.errors["delete"] != "you can't use '-memory' and -delete memory' at the same time" {
		t.Errorf("errors = %v", r.errors)
	}
	r = h.put("/nodes/pve/lxc/100/config", m("delete", "bogus")).fails(t, 400, "Parameter verification failed.")
	if r.errors["delete"] != "unknown option 'bogus'" {
		t.Errorf("errors = %v", r.errors)
	}
	h.put("/nodes/pve/lxc/100/config", m()).fails(t, 500, "no options specified")
	h.put("/nodes/pve/qemu/101/config", m("cores", "4")).ok(t, nil)
	if c := h.config("qemu", "101"); c["cores"] != float64(4) {
		t.Errorf("QEMU PUT not applied synchronously: %v", c["cores"])
	}
}

func TestQemuPostConfigIsATask(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: time.Hour})
	upid := h.post("/nodes/pve/qemu/101/config", m("cores", "8", "delete", "numa")).upid(t)
	if info, _ := decodeUPID(upid); info.typ != "qmconfig" || info.id != "101" {
		t.Errorf("UPID %s", upid)
	}
	// Until the worker runs, the change is pending: GET config shows it
	// applied, current=1 the values in force.
	c := h.config("qemu", "101")
	if _, ok := c["numa"]; c["cores"] != float64(8) || ok {
		t.Errorf("config with pending applied: cores %v numa present %v", c["cores"], ok)
	}
	h.get("/nodes/pve/qemu/101/config", m("current", "1")).ok(t, &c)
	if c["cores"] != float64(2) || c["numa"] != float64(0) {
		t.Errorf("current config changed before the task ran: %v", c)
	}
	var pending []map[string]any
	h.get("/nodes/pve/qemu/101/pending", nil).ok(t, &pending)
	found := map[string]map[string]any{}
	for _, p := range pending {
		found[p["key"].(string)] = p
	}
	if found["cores"]["pending"] != "8" || found["numa"]["delete"] != float64(1) {
		t.Errorf("pending = %v", pending)
	}
	h.finish(upid)
	if st := h.wait(upid); st.ExitStatus != "OK" {
		t.Fatalf("qmconfig task: %+v", st)
	}
	c = nil
	h.get("/nodes/pve/qemu/101/config", m("current", "1")).ok(t, &c)
	if _, ok := c["numa"]; c["cores"] != float64(8) || ok {
		t.Errorf("after task: cores %v numa present %v", c["cores"], ok)
	}
	pending = nil
	h.get("/nodes/pve/qemu/101/pending", nil).ok(t, &pending)
	for _, p := range pending {
		if _, ok := p["pending"]; ok {
			t.Errorf("pending left after the task: %v", p)
		}
	}
	// background_delay waits for the task and returns null on success.
	h.s.Faults().SlowTasks("qmconfig", 10*time.Millisecond)
	r := h.post("/nodes/pve/qemu/101/config", m("cores", "2", "background_delay", "5")).ok(t, nil)
	if string(r.data) != "null" {
		t.Errorf("background_delay data = %s", r.data)
	}
	h.s.Faults().FailTasks("qmconfig", "hotplug problem")
	h.post("/nodes/pve/qemu/101/config", m("cores", "3", "background_delay", "5")).
		fails(t, 500, "failed to update VM 101: hotplug problem")
}

func TestLockKeyDuringTasks(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: time.Hour})
	upid := h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "before")).upid(t)
	if l := h.config("lxc", "100")["lock"]; l != "snapshot" {
		t.Errorf("lock during snapshot = %v", l)
	}
	h.put("/nodes/pve/lxc/100/config", m("memory", "256")).fails(t, 500, "CT is locked (snapshot)")
	var st map[string]any
	h.get("/nodes/pve/lxc/100/status/current", nil).ok(t, &st)
	if st["lock"] != "snapshot" {
		t.Errorf("status lock = %v", st["lock"])
	}
	// A second snapshot started meanwhile fails inside its task.
	upid2 := h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "other")).upid(t)
	if st := h.wait(upid2); st.ExitStatus != "CT is locked (snapshot)" {
		t.Errorf("second snapshot: %+v", st)
	}
	h.finish(upid)
	if st := h.wait(upid); st.ExitStatus != "OK" {
		t.Fatalf("snapshot: %+v", st)
	}
	if _, ok := h.config("lxc", "100")["lock"]; ok {
		t.Error("lock left after the task")
	}
	upid = h.post("/nodes/pve/qemu/101/snapshot", m("snapname", "s1")).upid(t)
	h.put("/nodes/pve/qemu/101/config", m("cores", "1")).fails(t, 500, "VM is locked (snapshot)")
	h.finish(upid)
	h.wait(upid)
}

func TestHoldLock(t *testing.T) {
	h := newHarness(t, Options{Seed: true, LockTimeout: 50 * time.Millisecond, TaskDuration: 20 * time.Millisecond})
	f := h.s.Faults()
	release := f.HoldLock(100)
	h.put("/nodes/pve/lxc/100/config", m("memory", "256")).
		fails(t, 500, "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout")
	// Inside a task the timeout ends the task instead.
	upid := h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "s1")).upid(t)
	if st := h.wait(upid); st.ExitStatus != "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout" {
		t.Errorf("snapshot under held lock: %+v", st)
	}
	release()
	h.put("/nodes/pve/lxc/100/config", m("memory", "256")).ok(t, nil)

	rel := f.HoldLock(101)
	h.put("/nodes/pve/qemu/101/config", m("cores", "1")).
		fails(t, 500, "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout")
	f.Clear() // releases held locks
	h.put("/nodes/pve/qemu/101/config", m("cores", "1")).ok(t, nil)
	rel() // releasing twice is harmless
}

type snapItem struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Parent      string `json:"parent"`
	SnapTime    *int64 `json:"snaptime"`
	Running     *int   `json:"running"`
	Digest      string `json:"digest"`
	VMState     *int   `json:"vmstate"`
}

func (h *harness) snapshots(kind, vmid string) []snapItem {
	h.t.Helper()
	var list []snapItem
	h.get("/nodes/pve/"+kind+"/"+vmid+"/snapshot", nil).ok(h.t, &list)
	return list
}

func TestSnapshots(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	list := h.snapshots("lxc", "100")
	if len(list) != 1 || list[0].Name != "current" || list[0].Description != "You are here!" ||
		list[0].Running == nil || *list[0].Running != 1 || !sha1HexRE.MatchString(list[0].Digest) || list[0].Parent != "" {
		t.Fatalf("initial list %+v", list)
	}
	// Reserved names are refused synchronously.
	h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "current")).fails(t, 500, "unable to use snapshot name 'current' (reserved name)")
	h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "vzdump")).fails(t, 500, "unable to use snapshot name 'vzdump' (reserved name)")
	h.post("/nodes/pve/qemu/101/snapshot", m("snapname", "Pending")).fails(t, 500, "unable to use snapshot name 'Pending' (reserved name)")

	upid := h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "s1", "description", "first")).upid(t)
	if st := h.wait(upid); st.ExitStatus != "OK" || st.Type != "vzsnapshot" || st.ID != "100" {
		t.Fatalf("vzsnapshot %+v", st)
	}
	h.put("/nodes/pve/lxc/100/config", m("memory", "4096", "description", "changed")).ok(t, nil)
	h.wait(h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "s2")).upid(t))
	list = h.snapshots("lxc", "100")
	if len(list) != 3 || list[0].Name != "s1" || list[0].Description != "first\n" || list[0].Parent != "" ||
		list[1].Name != "s2" || list[1].Parent != "s1" || list[2].Name != "current" || list[2].Parent != "s2" {
		t.Fatalf("list %+v", list)
	}
	// "already used" appears inside the task.
	st := h.wait(h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "s1")).upid(t))
	if st.ExitStatus != "snapshot name 's1' already used" {
		t.Errorf("duplicate: %+v", st)
	}
	log := h.taskLog(st.UPID)
	if log[len(log)-1] != "TASK ERROR: snapshot name 's1' already used" {
		t.Errorf("log %q", log)
	}
	// Rollback restores the snapshot config but keeps the description.
	st = h.wait(h.post("/nodes/pve/lxc/100/snapshot/s1/rollback", nil).upid(t))
	if st.ExitStatus != "OK" || st.Type != "vzrollback" {
		t.Fatalf("rollback %+v", st)
	}
	c := h.config("lxc", "100")
	if c["memory"] != float64(1024) || c["parent"] != "s1" || c["description"] != "changed\n" {
		t.Errorf("after rollback: %v", c)
	}
	var status map[string]any
	h.get("/nodes/pve/lxc/100/status/current", nil).ok(t, &status)
	if status["status"] != "stopped" {
		t.Errorf("rollback should stop the container: %v", status["status"])
	}
	// Snapshot config.
	var sc map[string]any
	h.get("/nodes/pve/lxc/100/snapshot/s2/config", nil).ok(t, &sc)
	if sc["memory"] != float64(4096) || sc["parent"] != "s1" {
		t.Errorf("snapshot config %v", sc)
	}
	h.get("/nodes/pve/lxc/100/config", m("snapshot", "s2")).ok(t, &sc)
	if sc["memory"] != float64(4096) {
		t.Errorf("config?snapshot=s2 %v", sc)
	}
	// Deleting reparents children; deleting the unknown fails in the task.
	st = h.wait(h.del("/nodes/pve/lxc/100/snapshot/s1", nil).upid(t))
	if st.ExitStatus != "OK" || st.Type != "vzdelsnapshot" {
		t.Fatalf("delete %+v", st)
	}
	list = h.snapshots("lxc", "100")
	if len(list) != 2 || list[0].Name != "s2" || list[0].Parent != "" || list[1].Parent != "" {
		t.Errorf("after delete %+v", list)
	}
	st = h.wait(h.del("/nodes/pve/lxc/100/snapshot/nope", nil).upid(t))
	if st.ExitStatus != "snapshot 'nope' does not exist" {
		t.Errorf("delete unknown %+v", st)
	}
	st = h.wait(h.post("/nodes/pve/qemu/101/snapshot/nope/rollback", nil).upid(t))
	if st.ExitStatus != "snapshot 'nope' does not exist" || st.Type != "qmrollback" {
		t.Errorf("rollback unknown %+v", st)
	}
	// QEMU entries carry vmstate; the task logs each disk.
	st = h.wait(h.post("/nodes/pve/qemu/101/snapshot", m("snapname", "q1")).upid(t))
	if log := h.taskLog(st.UPID); log[0] != "snapshotting 'drive-scsi0' (local-lvm:vm-101-disk-0)" {
		t.Errorf("qmsnapshot log %q", log)
	}
	list = h.snapshots("qemu", "101")
	if len(list) != 2 || list[0].VMState == nil || *list[0].VMState != 0 || *list[1].Running != 0 {
		t.Errorf("qemu list %+v", list)
	}
}

func TestPowerOperations(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	// LXC checks synchronously.
	h.post("/nodes/pve/lxc/100/status/start", nil).fails(t, 500, "CT 100 already running")
	h.post("/nodes/pve/lxc/9999/status/stop", nil).fails(t, 500, "CT 9999 not running")
	h.post("/nodes/pve/lxc/9999/status/shutdown", nil).fails(t, 500, "CT 9999 not running")
	st := h.wait(h.post("/nodes/pve/lxc/9999/status/start", nil).upid(t))
	if st.Type != "vzstart" || st.ExitStatus != "OK" {
		t.Errorf("vzstart %+v", st)
	}
	var cur map[string]any
	h.get("/nodes/pve/lxc/9999/status/current", nil).ok(t, &cur)
	if cur["status"] != "running" || cur["type"] != "lxc" || cur["vmid"] != float64(9999) || cur["name"] != "scratch" {
		t.Errorf("status/current %v", cur)
	}
	// QEMU fails inside the task.
	h.wait(h.post("/nodes/pve/qemu/101/status/start", nil).upid(t))
	st = h.wait(h.post("/nodes/pve/qemu/101/status/start", nil).upid(t))
	if st.ExitStatus != "VM 101 already running" || st.Type != "qmstart" {
		t.Errorf("second qmstart %+v", st)
	}
	h.get("/nodes/pve/qemu/101/status/current", nil).ok(t, &cur)
	if cur["status"] != "running" || cur["qmpstatus"] != "running" || cur["maxmem"] != float64(2048<<20) || cur["cpus"] != float64(2) {
		t.Errorf("qemu status %v", cur)
	}
	if st := h.wait(h.post("/nodes/pve/qemu/101/status/shutdown", nil).upid(t)); st.Type != "qmshutdown" || st.ExitStatus != "OK" {
		t.Errorf("qmshutdown %+v", st)
	}
	// Stopping a stopped VM is a no-op task; rebooting it is refused.
	if st := h.wait(h.post("/nodes/pve/qemu/101/status/stop", nil).upid(t)); st.ExitStatus != "OK" {
		t.Errorf("qmstop of stopped VM %+v", st)
	}
	h.post("/nodes/pve/qemu/101/status/reboot", nil).fails(t, 500, "VM 101 not running")
}

func TestDestroy(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	h.del("/nodes/pve/lxc/100", nil).fails(t, 500, "unable to destroy CT 100 - container is running")
	h.wait(h.post("/nodes/pve/qemu/101/status/start", nil).upid(t))
	h.del("/nodes/pve/qemu/101", nil).fails(t, 500, "VM 101 is running - destroy failed")
	h.put("/nodes/pve/lxc/9999/config", m("protection", "1")).ok(t, nil)
	h.del("/nodes/pve/lxc/9999", nil).fails(t, 500, "can't remove CT 9999 - protection mode enabled")
	h.put("/nodes/pve/lxc/9999/config", m("delete", "protection")).ok(t, nil)
	st := h.wait(h.del("/nodes/pve/lxc/9999", nil).upid(t))
	if st.Type != "vzdestroy" || st.ExitStatus != "OK" {
		t.Fatalf("vzdestroy %+v", st)
	}
	if log := h.taskLog(st.UPID); log[0] != `  Logical volume "vm-9999-disk-0" successfully removed.` {
		t.Errorf("log %q", log)
	}
	h.get("/nodes/pve/lxc/9999/config", nil).fails(t, 500, "Configuration file 'nodes/pve/lxc/9999.conf' does not exist")
	var content []map[string]any
	h.get("/nodes/pve/storage/local-lvm/content", m("vmid", "9999")).ok(t, &content)
	if len(content) != 0 {
		t.Errorf("volumes left after destroy: %v", content)
	}
	// force stops a running container first.
	if st := h.wait(h.del("/nodes/pve/lxc/100", m("force", "1")).upid(t)); st.ExitStatus != "OK" {
		t.Errorf("forced destroy %+v", st)
	}
}

func TestCreateAndRestore(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: 10 * time.Millisecond})
	h.post("/nodes/pve/lxc", m("vmid", "100", "ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")).
		fails(t, 500, "unable to create CT 100 - CT 100 already exists on node 'pve'")
	h.post("/nodes/pve/lxc", m("vmid", "101", "ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")).
		fails(t, 500, "unable to create CT 101 - VM 101 already exists on node 'pve'")
	h.s.Faults().SlowTasks("vzcreate", time.Hour)
	upid := h.post("/nodes/pve/lxc", m("vmid", "200", "hostname", "web", "ostemplate",
		"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", "rootfs", "local-lvm:8", "memory", "256",
		"net0", "name=eth0,bridge=vmbr0,ip=dhcp", "start", "1")).upid(t)
	if l := h.config("lxc", "200")["lock"]; l != "create" {
		t.Errorf("lock during create = %v", l)
	}
	h.s.Faults().Clear()
	h.finish(upid)
	st := h.wait(upid)
	if st.Type != "vzcreate" || st.ExitStatus != "OK" {
		t.Fatalf("vzcreate %+v %q", st, h.taskLog(upid))
	}
	c := h.config("lxc", "200")
	if c["hostname"] != "web" || c["memory"] != float64(256) || c["rootfs"] != "local-lvm:vm-200-disk-0,size=8G" {
		t.Errorf("created config %v", c)
	}
	if _, ok := c["lock"]; ok {
		t.Error("lock left after create")
	}
	// Failures inside the task remove the half-created guest.
	st = h.wait(h.post("/nodes/pve/lxc", m("vmid", "201", "ostemplate", "local:vztmpl/nope.tar.zst")).upid(t))
	if st.ExitStatus != "volume 'local:vztmpl/nope.tar.zst' does not exist" {
		t.Errorf("bad template %+v", st)
	}
	h.get("/nodes/pve/lxc/201/config", nil).fails(t, 500, "Configuration file 'nodes/pve/lxc/201.conf' does not exist")
	st = h.wait(h.post("/nodes/pve/lxc", m("vmid", "202", "ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst")).upid(t))
	if st.ExitStatus != "storage 'local' does not support container directories" {
		t.Errorf("default rootfs on local %+v", st)
	}
	// Back up 200, then restore it as 300.
	st = h.wait(h.post("/nodes/pve/vzdump", m("vmid", "200", "storage", "local", "compress", "zstd")).upid(t))
	if st.ExitStatus != "OK" {
		t.Fatalf("vzdump %+v", st)
	}
	var backups []map[string]any
	h.get("/nodes/pve/storage/local/content", m("content", "backup", "vmid", "200")).ok(t, &backups)
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	volid := backups[0]["volid"].(string)
	st = h.wait(h.post("/nodes/pve/lxc", m("vmid", "300", "ostemplate", volid, "restore", "1", "storage", "local-lvm")).upid(t))
	if st.Type != "vzrestore" || st.ExitStatus != "OK" {
		t.Fatalf("vzrestore %+v %q", st, h.taskLog(st.UPID))
	}
	if c := h.config("lxc", "300"); c["hostname"] != "web" || c["rootfs"] != "local-lvm:vm-300-disk-0,size=8G" {
		t.Errorf("restored config %v", c)
	}
	// Restoring over an existing guest needs force.
	h.post("/nodes/pve/lxc", m("vmid", "300", "ostemplate", volid, "restore", "1")).
		fails(t, 500, "unable to create CT 300 - CT 300 already exists on node 'pve'")
	// QEMU create.
	st = h.wait(h.post("/nodes/pve/qemu", m("vmid", "400", "name", "db", "scsi0", "local-lvm:16", "memory", "4096")).upid(t))
	if st.Type != "qmcreate" || st.ExitStatus != "OK" {
		t.Fatalf("qmcreate %+v", st)
	}
	if c := h.config("qemu", "400"); c["scsi0"] != "local-lvm:vm-400-disk-0,size=16G" || c["memory"] != "4096" || !strings.HasPrefix(c["smbios1"].(string), "uuid=") {
		t.Errorf("qemu config %v", c)
	}
	var next string
	h.get("/cluster/nextid", nil).ok(t, &next)
	if next != "102" {
		t.Errorf("nextid = %q", next)
	}
	r := h.get("/cluster/nextid", m("vmid", "400")).fails(t, 400, "Parameter verification failed.")
	if r.errors["vmid"] != "VM 400 already exists" {
		t.Errorf("errors %v", r.errors)
	}
}

func TestGuestListsAndResources(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	var lxc, qemu []map[string]any
	h.get("/nodes/pve/lxc", nil).ok(t, &lxc)
	h.get("/nodes/pve/qemu", nil).ok(t, &qemu)
	if len(lxc) != 2 || len(qemu) != 1 || lxc[0]["vmid"] != float64(100) || lxc[0]["status"] != "running" || qemu[0]["name"] != "vm101" {
		t.Errorf("lists lxc=%v qemu=%v", lxc, qemu)
	}
	var res []map[string]any
	h.get("/cluster/resources", nil).ok(t, &res)
	types := map[string]int{}
	for _, r := range res {
		types[r["type"].(string)]++
	}
	if types["lxc"] != 2 || types["qemu"] != 1 || types["node"] != 1 || types["storage"] != 2 {
		t.Errorf("resources by type %v", types)
	}
	h.get("/cluster/resources", m("type", "vm")).ok(t, &res)
	if len(res) != 3 || res[0]["id"] != "lxc/100" || res[0]["node"] != "pve" {
		t.Errorf("vm resources %v", res)
	}
	h.get("/cluster/resources", m("type", "storage")).ok(t, &res)
	if len(res) != 2 || res[0]["id"] != "storage/pve/local" || res[0]["plugintype"] != "dir" {
		t.Errorf("storage resources %v", res)
	}
	// Lists filter silently by privilege.
	tok, _ := h.s.AddToken("vic@pve", "tk", true, map[string][]string{"/vms/101": {"VM.Audit"}})
	h.do(tok, http.MethodGet, "/cluster/resources", nil).ok(t, &res)
	if len(res) != 1 || res[0]["vmid"] != float64(101) {
		t.Errorf("filtered resources %v", res)
	}
	h.do(tok, http.MethodGet, "/nodes/pve/lxc", nil).ok(t, &lxc)
	if len(lxc) != 0 {
		t.Errorf("filtered lxc list %v", lxc)
	}
}
