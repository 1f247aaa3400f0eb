package pvesim

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestStorageConfigCRUD(t *testing.T) {
	h := newHarness(t, Options{})
	var list []map[string]any
	h.get("/storage", nil).ok(t, &list)
	if len(list) != 2 || list[0]["storage"] != "local" || list[0]["type"] != "dir" || list[0]["content"] != "backup,iso,vztmpl" ||
		list[1]["storage"] != "local-lvm" || list[1]["type"] != "lvmthin" || list[1]["content"] != "images,rootdir" {
		t.Fatalf("seeded storages %v", list)
	}
	digest := list[0]["digest"].(string)
	if !sha1HexRE.MatchString(digest) {
		t.Errorf("digest %q", digest)
	}
	creates := []struct {
		params []string
		want   string // error reason, "" for success
	}{
		{[]string{"storage", "backups", "type", "dir", "path", "/mnt/backups", "content", "backup"}, ""},
		{[]string{"storage", "nas", "type", "nfs", "server", "10.0.0.2", "export", "/srv/pve", "content", "backup,iso"}, ""},
		{[]string{"storage", "smb", "type", "cifs", "server", "10.0.0.3", "share", "pve", "username", "u", "password", "secret"}, ""},
		{[]string{"storage", "pbs1", "type", "pbs", "server", "10.0.0.4", "datastore", "store1", "username", "backup@pbs!agent",
			"password", "token-secret", "fingerprint", FingerprintOf([]byte("x"))}, ""},
		{[]string{"storage", "nopath", "type", "dir"}, "missing value for required option 'path'"},
		{[]string{"storage", "bad", "type", "dir", "path", "/x", "export", "/y"}, "unexpected property 'export'"},
		{[]string{"storage", "local", "type", "dir", "path", "/x"}, "storage ID 'local' already defined"},
	}
	for _, c := range creates {
		r := h.post("/storage", m(c.params...))
		if c.want != "" {
			r.fails(t, 500, c.want)
			continue
		}
		var res map[string]any
		r.ok(t, &res)
		if res["storage"] != c.params[1] || res["type"] != c.params[3] {
			t.Errorf("create %v = %v", c.params, res)
		}
	}
	var cfg map[string]any
	h.get("/storage/pbs1", nil).ok(t, &cfg)
	if _, ok := cfg["password"]; ok || cfg["datastore"] != "store1" || cfg["content"] != "backup" || cfg["shared"] != float64(1) {
		t.Errorf("pbs config %v", cfg)
	}
	h.get("/storage/smb", nil).ok(t, &cfg)
	if _, ok := cfg["password"]; ok || cfg["path"] != "/mnt/pve/smb" {
		t.Errorf("cifs config %v", cfg)
	}
	h.get("/storage/nothere", nil).fails(t, 500, "storage 'nothere' does not exist")
	h.get("/storage", m("type", "nfs")).ok(t, &list)
	if len(list) != 1 || list[0]["storage"] != "nas" {
		t.Errorf("type filter %v", list)
	}
	// Updates check the digest of storage.cfg and fixed properties.
	h.put("/storage/nas", m("content", "backup", "digest", digest)).
		fails(t, 500, "detected modified configuration - file changed by other user? Try again.")
	h.put("/storage/pbs1", m("server", "10.0.0.9")).fails(t, 500, "unable to change fixed property 'server'")
	h.put("/storage/nas", m("delete", "server")).fails(t, 500, "cannot delete required option 'server'")
	var res map[string]any
	h.put("/storage/nas", m("content", "backup", "disable", "1")).ok(t, &res)
	if res["storage"] != "nas" || res["type"] != "nfs" {
		t.Errorf("update result %v", res)
	}
	h.get("/storage/nas", nil).ok(t, &cfg)
	if cfg["content"] != "backup" || cfg["disable"] != float64(1) {
		t.Errorf("updated config %v", cfg)
	}
	r := h.del("/storage/nas", nil).ok(t, nil)
	if string(r.data) != "null" {
		t.Errorf("delete data %s", r.data)
	}
	h.del("/storage/nas", nil).fails(t, 500, "storage 'nas' does not exist")
}

func TestNodeStorageStatusAndContent(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	h.post("/storage", m("storage", "off", "type", "dir", "path", "/off", "content", "iso", "disable", "1")).ok(t, nil)
	var list []map[string]any
	h.get("/nodes/pve/storage", nil).ok(t, &list)
	if len(list) != 3 {
		t.Fatalf("node storages %v", list)
	}
	for _, st := range list {
		if st["storage"] == "off" {
			if st["active"] != float64(0) || st["enabled"] != float64(0) || st["total"] != nil {
				t.Errorf("disabled storage %v", st)
			}
			continue
		}
		total, used, avail := st["total"].(float64), st["used"].(float64), st["avail"].(float64)
		if st["active"] != float64(1) || st["enabled"] != float64(1) || total <= 0 || used+avail != total {
			t.Errorf("storage %v", st)
		}
	}
	h.get("/nodes/pve/storage", m("enabled", "1", "content", "backup")).ok(t, &list)
	if len(list) != 1 || list[0]["storage"] != "local" {
		t.Errorf("filtered %v", list)
	}
	var status map[string]any
	h.get("/nodes/pve/storage/local-lvm/status", nil).ok(t, &status)
	if status["type"] != "lvmthin" || status["content"] != "images,rootdir" || status["active"] != float64(1) {
		t.Errorf("status %v", status)
	}
	h.get("/nodes/pve/storage/nope/status", nil).fails(t, 500, "storage 'nope' does not exist")
	var content []map[string]any
	h.get("/nodes/pve/storage/local-lvm/content", nil).ok(t, &content)
	if len(content) != 3 || content[0]["volid"] != "local-lvm:vm-100-disk-0" || content[0]["size"] != float64(8<<30) || content[0]["vmid"] != float64(100) {
		t.Errorf("local-lvm content %v", content)
	}
	h.get("/nodes/pve/storage/local/content", m("content", "vztmpl")).ok(t, &content)
	if len(content) != 1 || content[0]["volid"] != "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst" {
		t.Errorf("templates %v", content)
	}
	h.do(h.s.AuditToken(), http.MethodGet, "/nodes/pve/storage/local/content", nil).ok(t, nil)
}

var localBackupRE = regexp.MustCompile(`^local:backup/vzdump-lxc-100-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.tar\.zst$`)

func TestVzdump(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: 10 * time.Millisecond})
	h.s.Faults().SlowTasks("vzdump", time.Hour)
	upid := h.post("/nodes/pve/vzdump", m("vmid", "100", "storage", "local", "compress", "zstd",
		"notes-template", "{{guestname}} on {{node}}", "protected", "1")).upid(t)
	if info, _ := decodeUPID(upid); info.typ != "vzdump" || info.id != "100" {
		t.Errorf("UPID %s", upid)
	}
	if l := h.config("lxc", "100")["lock"]; l != "backup" {
		t.Errorf("lock during backup = %v", l)
	}
	h.s.Faults().Clear()
	h.finish(upid)
	if st := h.wait(upid); st.ExitStatus != "OK" {
		t.Fatalf("vzdump %+v", st)
	}
	var content []map[string]any
	h.get("/nodes/pve/storage/local/content", m("content", "backup")).ok(t, &content)
	if len(content) != 1 || !localBackupRE.MatchString(content[0]["volid"].(string)) || content[0]["format"] != "tar.zst" ||
		content[0]["notes"] != "ct100 on pve" || content[0]["protected"] != float64(1) || content[0]["subtype"] != "lxc" {
		t.Fatalf("backup content %v", content)
	}
	if _, ok := h.config("lxc", "100")["lock"]; ok {
		t.Error("backup lock left")
	}
	// Several guests: the task id is empty; QEMU archives are .vma.
	st := h.wait(h.post("/nodes/pve/vzdump", m("vmid", "101,9999", "compress", "gzip")).upid(t))
	if st.ID != "" || st.ExitStatus != "OK" {
		t.Errorf("multi vzdump %+v", st)
	}
	h.get("/nodes/pve/storage/local/content", m("content", "backup", "vmid", "101")).ok(t, &content)
	if len(content) != 1 || !regexp.MustCompile(`^local:backup/vzdump-qemu-101-.*\.vma\.gz$`).MatchString(content[0]["volid"].(string)) {
		t.Errorf("qemu backup %v", content)
	}
	// PBS targets use the snapshot path.
	h.post("/storage", m("storage", "pbs1", "type", "pbs", "server", "10.0.0.4", "datastore", "d1")).ok(t, nil)
	h.wait(h.post("/nodes/pve/vzdump", m("vmid", "100", "storage", "pbs1")).upid(t))
	h.get("/nodes/pve/storage/pbs1/content", nil).ok(t, &content)
	if len(content) != 1 || !regexp.MustCompile(`^pbs1:backup/ct/100/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`).MatchString(content[0]["volid"].(string)) ||
		content[0]["format"] != "pbs-ct" {
		t.Errorf("pbs backup %v", content)
	}
	// A failed job adds nothing; a locked guest fails the job.
	h.s.Faults().FailTasks("vzdump", "job errors")
	h.wait(h.post("/nodes/pve/vzdump", m("vmid", "9999", "storage", "pbs1")).upid(t))
	h.get("/nodes/pve/storage/pbs1/content", nil).ok(t, &content)
	if len(content) != 1 {
		t.Errorf("failed vzdump added content %v", content)
	}
	h.s.Faults().Clear()
	h.s.Faults().SlowTasks("vzsnapshot", time.Hour)
	h.post("/nodes/pve/lxc/9999/snapshot", m("snapname", "busy")).upid(t)
	st = h.wait(h.post("/nodes/pve/vzdump", m("vmid", "9999")).upid(t))
	log := h.taskLog(st.UPID)
	if st.ExitStatus != "job errors" || log[1] != "ERROR: Backup of VM 9999 failed - CT is locked (snapshot)" {
		t.Errorf("locked guest %+v %q", st, log)
	}
	// Parameter-level refusals.
	r := h.post("/nodes/pve/vzdump", m("storage", "local")).fails(t, 400, "Parameter verification failed.")
	if r.errors["vmid"] != "property is missing and it is not optional" {
		t.Errorf("errors %v", r.errors)
	}
	r = h.post("/nodes/pve/vzdump", m("all", "1", "vmid", "100")).fails(t, 400, "Parameter verification failed.")
	if r.errors["all"] != "option conflicts with option 'vmid'" {
		t.Errorf("errors %v", r.errors)
	}
	r = h.post("/nodes/pve/vzdump", m("vmid", "100", "dumpdir", "/tmp")).fails(t, 400, "Parameter verification failed.")
	if r.errors["dumpdir"] != "Only root may set this option." {
		t.Errorf("errors %v", r.errors)
	}
	h.post("/nodes/pve/vzdump", m("vmid", "100", "storage", "local-lvm")).fails(t, 500, "storage 'local-lvm' does not support backups")
}

func TestHardwareEndpoints(t *testing.T) {
	h := newHarness(t, Options{})
	var disks []map[string]any
	h.get("/nodes/pve/disks/list", nil).ok(t, &disks)
	if len(disks) != 3 || disks[0]["devpath"] != "/dev/nvme0n1" || disks[2]["type"] != "usb" {
		t.Errorf("disks %v", disks)
	}
	h.get("/nodes/pve/disks/list", m("type", "unused")).ok(t, &disks)
	if len(disks) != 1 || disks[0]["devpath"] != "/dev/sdb" {
		t.Errorf("unused disks %v", disks)
	}
	var smart map[string]any
	h.get("/nodes/pve/disks/smart", m("disk", "/dev/sda")).ok(t, &smart)
	if smart["health"] != "PASSED" || smart["attributes"] == nil {
		t.Errorf("smart %v", smart)
	}
	var usb []map[string]any
	h.get("/nodes/pve/hardware/usb", nil).ok(t, &usb)
	if len(usb) != 4 || usb[2]["vendid"] != "0bc2" || usb[2]["product"] != "Expansion Desk" {
		t.Errorf("usb %v", usb)
	}
	h.do(h.s.AuditToken(), http.MethodGet, "/nodes/pve/disks/list", nil).ok(t, nil)
	h.do(h.s.AuditToken(), http.MethodGet, "/nodes/pve/hardware/usb", nil).fails(t, 403, "Permission check failed (/, Sys.Modify)")
	var status map[string]any
	h.get("/nodes/pve/status", nil).ok(t, &status)
	if status["pveversion"] != "pve-manager/9.1.3/e5010dce" || status["memory"] == nil || status["uptime"].(float64) <= 0 {
		t.Errorf("node status %v", status)
	}
	var cs []map[string]any
	h.get("/cluster/status", nil).ok(t, &cs)
	if len(cs) != 1 || cs[0]["type"] != "node" || cs[0]["name"] != "pve" || cs[0]["local"] != float64(1) {
		t.Errorf("cluster status %v", cs)
	}
}

func TestVolumeGetAndDelete(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	h.wait(h.post("/nodes/pve/vzdump", m("vmid", "100")).upid(t))
	h.wait(h.post("/nodes/pve/vzdump", m("vmid", "9999", "protected", "1", "storage", "local")).upid(t))
	var content []map[string]any
	h.get("/nodes/pve/storage/local/content", m("content", "backup")).ok(t, &content)
	if len(content) != 2 {
		t.Fatalf("backups %v", content)
	}
	volid := content[0]["volid"].(string)
	protected := content[1]["volid"].(string)
	var info map[string]any
	h.get("/nodes/pve/storage/local/content/"+url.PathEscape(volid), nil).ok(t, &info)
	if info["format"] != "tar" || info["protected"] != float64(0) || info["size"].(float64) <= 0 ||
		info["path"] != "/var/lib/vz/dump/"+strings.TrimPrefix(volid, "local:backup/") {
		t.Errorf("volume info %v", info)
	}
	// A volume name without storage prefix is taken relative to the path's storage.
	h.get("/nodes/pve/storage/local/content/"+url.PathEscape(strings.TrimPrefix(volid, "local:")), nil).ok(t, nil)
	r := h.get("/nodes/pve/storage/local-lvm/content/"+url.PathEscape(volid), nil).fails(t, 400, "Parameter verification failed.")
	if r.errors["volume"] != "storage ID mismatch (local != local-lvm)\n" {
		t.Errorf("errors %v", r.errors)
	}
	h.get("/nodes/pve/storage/local/content/"+url.PathEscape("local:backup/nope.tar"), nil).
		fails(t, 500, "volume 'local:backup/nope.tar' does not exist")
	info = nil
	h.get("/nodes/pve/storage/local-lvm/content/"+url.PathEscape("local-lvm:vm-101-disk-0"), nil).ok(t, &info)
	if info["path"] != "/dev/pve/vm-101-disk-0" || info["format"] != "raw" {
		t.Errorf("disk info %v", info)
	}
	// Deleting is an imgdel task named after the owner and storage.
	upid := h.del("/nodes/pve/storage/local/content/"+url.PathEscape(volid), nil).upid(t)
	st := h.wait(upid)
	if st.Type != "imgdel" || st.ID != "100@local" || st.ExitStatus != "OK" {
		t.Errorf("imgdel %+v", st)
	}
	if log := h.taskLog(upid); log[0] != "Removed volume '"+volid+"'" {
		t.Errorf("log %q", log)
	}
	st = h.wait(h.del("/nodes/pve/storage/local/content/"+url.PathEscape(protected), nil).upid(t))
	if !strings.Contains(st.ExitStatus, "protected") {
		t.Errorf("deleting a protected backup %+v", st)
	}
	h.get("/nodes/pve/storage/local/content", m("content", "backup")).ok(t, &content)
	if len(content) != 1 || content[0]["volid"] != protected {
		t.Errorf("content after delete %v", content)
	}
	// Backup volumes need VM.Backup on the owner plus Datastore.AllocateSpace.
	tok, _ := h.s.AddToken("bk@pve", "tk", true, map[string][]string{"/storage/local": {"Datastore.AllocateSpace", "Datastore.Audit"}})
	h.do(tok, http.MethodDelete, "/nodes/pve/storage/local/content/"+url.PathEscape(protected), nil).
		fails(t, 403, "Permission check failed (/vms/9999, VM.Backup)")
	h.do(tok, http.MethodDelete, "/nodes/pve/storage/local/content/"+url.PathEscape("local:iso/debian-12.8.0-amd64-netinst.iso"), nil).
		fails(t, 403, "Permission check failed (/storage/local, Datastore.Allocate)")
	// delay waits for the task: null on success, the error otherwise.
	r = h.del("/nodes/pve/storage/local/content/"+url.PathEscape("local:iso/debian-12.8.0-amd64-netinst.iso"), m("delay", "5")).ok(t, nil)
	if string(r.data) != "null" {
		t.Errorf("delete with delay: %s", r.data)
	}
	h.del("/nodes/pve/storage/local/content/"+url.PathEscape(protected), m("delay", "5")).
		fails(t, 500, "volume '"+protected+"' is protected")
}

func TestBackupJobs(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	h.post("/cluster/backup", m("id", "nightly", "vmid", "100,101", "storage", "local", "schedule", "02:30", "mode", "snapshot",
		"compress", "zstd", "comment", "nightly run")).ok(t, nil)
	h.post("/cluster/backup", m("all", "1", "exclude", "9999", "starttime", "03:00", "dow", "sat")).ok(t, nil)
	var jobs []map[string]any
	h.get("/cluster/backup", nil).ok(t, &jobs)
	if len(jobs) != 2 {
		t.Fatalf("jobs %v", jobs)
	}
	var nightly, weekly map[string]any
	for _, j := range jobs {
		if j["id"] == "nightly" {
			nightly = j
		} else {
			weekly = j
		}
	}
	if nightly["schedule"] != "02:30" || nightly["enabled"] != float64(1) || nightly["vmid"] != "100,101" || nightly["type"] != "vzdump" {
		t.Errorf("nightly %v", nightly)
	}
	if weekly["schedule"] != "sat 03:00" || weekly["all"] != float64(1) || !strings.HasPrefix(weekly["id"].(string), "backup-") {
		t.Errorf("weekly %v", weekly)
	}
	h.post("/cluster/backup", m("id", "nightly", "vmid", "100", "schedule", "daily")).fails(t, 500, "Job 'nightly' already exists")
	r := h.post("/cluster/backup", m("schedule", "daily")).fails(t, 400, "Parameter verification failed.")
	if r.errors["vmid"] != "property is missing and it is not optional" {
		t.Errorf("errors %v", r.errors)
	}
	h.post("/cluster/backup", m("vmid", "100", "schedule", "daily", "storage", "nowhere")).fails(t, 500, "storage 'nowhere' does not exist")
	h.put("/cluster/backup/nightly", m("all", "1", "delete", "comment", "enabled", "0")).ok(t, nil)
	var job map[string]any
	h.get("/cluster/backup/nightly", nil).ok(t, &job)
	if _, ok := job["vmid"]; ok || job["all"] != float64(1) || job["enabled"] != float64(0) || job["comment"] != nil {
		t.Errorf("updated job %v", job)
	}
	h.do(h.s.AuditToken(), http.MethodGet, "/cluster/backup", nil).ok(t, nil)
	h.do(h.s.AuditToken(), http.MethodDelete, "/cluster/backup/nightly", nil).fails(t, 403, "Permission check failed (/, Sys.Modify)")
	h.del("/cluster/backup/nightly", nil).ok(t, nil)
	h.get("/cluster/backup/nightly", nil).fails(t, 500, "Job 'nightly' does not exist")
}
