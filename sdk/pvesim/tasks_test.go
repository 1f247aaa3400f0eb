package pvesim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

type taskEntry struct {
	UPID      string `json:"upid"`
	Type      string `json:"type"`
	ID        string `json:"id"`
	User      string `json:"user"`
	TokenID   string `json:"tokenid"`
	Status    string `json:"status"`
	EndTime   *int64 `json:"endtime"`
	StartTime int64  `json:"starttime"`
}

func (h *harness) taskList(token string, params url.Values) ([]taskEntry, int) {
	h.t.Helper()
	var list []taskEntry
	r := h.do(token, http.MethodGet, "/nodes/pve/tasks", params).ok(h.t, &list)
	total := 0
	if r.total != nil {
		total = *r.total
	}
	return list, total
}

func TestUPIDEncoding(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	var upids []string
	for i := 0; i < 3; i++ {
		upids = append(upids, h.post("/nodes/pve/qemu/101/snapshot", m("snapname", "s"+strconv.Itoa(i))).upid(t))
	}
	var pids []uint64
	for i, u := range upids {
		parts := strings.Split(u, ":")
		if len(parts) != 9 || parts[0] != "UPID" || parts[1] != "pve" || parts[8] != "" {
			t.Fatalf("UPID %q", u)
		}
		if len(parts[2]) != 8 || len(parts[4]) != 8 || strings.ToUpper(parts[3]) != parts[3] {
			t.Errorf("UPID %q: pid/starttime not 8 uppercase hex digits", u)
		}
		// pstart crosses 2^32 after the first two tasks, as on a long-running host.
		if want := map[bool]int{true: 8, false: 9}[i < 2]; len(parts[3]) != want {
			t.Errorf("UPID %d %q: pstart has %d digits, want %d", i, u, len(parts[3]), want)
		}
		if parts[5] != "qmsnapshot" || parts[6] != "101" || parts[7] != "root@pam!admin" {
			t.Errorf("UPID %q: type/id/user", u)
		}
		start, _ := strconv.ParseInt(parts[4], 16, 64)
		if d := time.Since(time.Unix(start, 0)); d < 0 || d > time.Minute {
			t.Errorf("UPID %q: starttime %d is not now", u, start)
		}
		info, ok := decodeUPID(u)
		if !ok || encodeUPID(info) != u {
			t.Errorf("UPID %q does not round-trip", u)
		}
		pids = append(pids, info.pid)
	}
	if !(pids[0] < pids[1] && pids[1] < pids[2]) {
		t.Errorf("pids not increasing: %v", pids)
	}
}

func TestTaskLifecycle(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: time.Hour})
	upid := h.post("/nodes/pve/qemu/101/status/start", nil).upid(t)
	var st taskStatus
	h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/status", nil).ok(t, &st)
	if st.Status != "running" || st.ExitStatus != "" || st.User != "root@pam" || st.TokenID != "admin" ||
		st.Type != "qmstart" || st.ID != "101" || st.Node != "pve" || st.UPID != upid {
		t.Errorf("running status %+v", st)
	}
	var raw map[string]any
	h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/status", nil).ok(t, &raw)
	if _, ok := raw["exitstatus"]; ok {
		t.Error("running task has exitstatus")
	}
	// A running task with an empty log answers "no content".
	r := h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/log", nil)
	var lines []map[string]any
	r.ok(t, &lines)
	if len(lines) != 1 || lines[0]["n"] != float64(1) || lines[0]["t"] != "no content" || r.total == nil || *r.total != 1 {
		t.Errorf("empty log %s", r.body)
	}
	h.finish(upid)
	st = h.wait(upid)
	if st.ExitStatus != "OK" {
		t.Errorf("final %+v", st)
	}
	if log := h.taskLog(upid); len(log) != 1 || log[0] != "TASK OK" {
		t.Errorf("log %q", log)
	}
}

func TestTaskLogPaging(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	upid := h.post("/nodes/pve/vzdump", m("vmid", "100")).upid(t)
	all := h.taskLog(upid)
	if len(all) < 10 || all[len(all)-1] != "TASK OK" || !strings.HasPrefix(all[0], "INFO: starting new backup job: vzdump 100") {
		t.Fatalf("vzdump log %q", all)
	}
	var lines []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	r := h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/log", m("start", "2", "limit", "3")).ok(t, &lines)
	if len(lines) != 3 || lines[0].N != 3 || lines[0].T != all[2] || lines[2].N != 5 || *r.total != len(all) {
		t.Errorf("page: %+v total %v", lines, *r.total)
	}
	r = h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/log", nil).ok(t, &lines)
	if len(lines) != min(50, len(all)) {
		t.Errorf("default limit gave %d lines", len(lines))
	}
}

func TestTaskFaults(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	f := h.s.Faults()
	f.FailTasks("qmsnapshot", "snapshot feature is not available\non this storage")
	st := h.wait(h.post("/nodes/pve/qemu/101/snapshot", m("snapname", "s1")).upid(t))
	if st.ExitStatus != "snapshot feature is not available on this storage" {
		t.Errorf("failed task %+v", st)
	}
	if log := h.taskLog(st.UPID); log[len(log)-1] != "TASK ERROR: snapshot feature is not available on this storage" {
		t.Errorf("log %q", log)
	}
	// The failed task's work is undone: no snapshot, no lock.
	if list := h.snapshots("qemu", "101"); len(list) != 1 {
		t.Errorf("snapshots after failure %+v", list)
	}
	if _, ok := h.config("qemu", "101")["lock"]; ok {
		t.Error("lock left after failed task")
	}
	f.Clear()
	f.WarnTasks("vz*", 2)
	st = h.wait(h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "w1")).upid(t))
	if st.ExitStatus != "WARNINGS: 2" {
		t.Errorf("warned task %+v", st)
	}
	log := h.taskLog(st.UPID)
	if len(log) < 3 || !strings.HasPrefix(log[len(log)-2], "WARN: ") || !strings.HasPrefix(log[len(log)-3], "WARN: ") || log[len(log)-1] != "TASK WARNINGS: 2" {
		t.Errorf("warn log %q", log)
	}
	if list := h.snapshots("lxc", "100"); len(list) != 2 {
		t.Errorf("a task with warnings still does its work: %+v", list)
	}
	f.Clear()
	f.SlowTasks("qmstart", time.Hour)
	upid := h.post("/nodes/pve/qemu/101/status/start", nil).upid(t)
	var st2 taskStatus
	h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/status", nil).ok(t, &st2)
	if st2.Status != "running" {
		t.Errorf("slow task finished: %+v", st2)
	}
	// Stopping a task ends it with "received interrupt".
	h.del("/nodes/pve/tasks/"+url.PathEscape(upid), nil).ok(t, nil)
	st = h.wait(upid)
	if st.ExitStatus != "received interrupt" {
		t.Errorf("stopped task %+v", st)
	}
	if log := h.taskLog(upid); log[len(log)-1] != "TASK ERROR: received interrupt" {
		t.Errorf("log %q", log)
	}
	var cur map[string]any
	h.get("/nodes/pve/qemu/101/status/current", nil).ok(t, &cur)
	if cur["status"] != "stopped" {
		t.Errorf("interrupted start still started the VM")
	}
}

func TestNoSuchTask(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1, NoSuchTaskFor: 150 * time.Millisecond})
	upid := h.post("/nodes/pve/lxc/100/status/stop", nil).upid(t)
	start := time.Now()
	r := h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/status", nil)
	if time.Since(start) < 150*time.Millisecond {
		r.fails(t, 400, "Parameter verification failed.")
		if r.errors["upid"] != "no such task" {
			t.Errorf("errors %v", r.errors)
		}
		h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/log", nil).fails(t, 400, "Parameter verification failed.")
	}
	if st := h.wait(upid); st.ExitStatus != "OK" {
		t.Errorf("after the window: %+v", st)
	}
	r = h.get("/nodes/pve/tasks/"+url.PathEscape("UPID:pve:00001234:00ABCDEF:5F000000:qmstart:101:root@pam:")+"/status", nil)
	r.fails(t, 400, "Parameter verification failed.")
	if r.errors["upid"] != "no such task" {
		t.Errorf("unknown UPID errors %v", r.errors)
	}
	r = h.get("/nodes/pve/tasks/garbage/status", nil).fails(t, 400, "Parameter verification failed.")
	if r.errors["upid"] != "unable to parse worker upid" {
		t.Errorf("garbage UPID errors %v", r.errors)
	}
}

func TestTaskList(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	f := h.s.Faults()
	done1 := h.post("/nodes/pve/lxc/100/snapshot", m("snapname", "a1")).upid(t)
	f.FailTasks("qmstart", "boom")
	failed := h.post("/nodes/pve/qemu/101/status/start", nil).upid(t)
	f.Clear()
	f.WarnTasks("vzdump", 1)
	warned := h.post("/nodes/pve/vzdump", m("vmid", "9999")).upid(t)
	f.Clear()
	f.SlowTasks("vzstart", time.Hour)
	running := h.post("/nodes/pve/lxc/9999/status/start", nil).upid(t)

	list, total := h.taskList(h.tok, nil)
	if total != 3 || len(list) != 3 || list[0].UPID != warned || list[2].UPID != done1 {
		t.Fatalf("archive list (total %d): %+v", total, list)
	}
	if list[0].Status != "WARNINGS: 1" || list[1].Status != "boom" || list[2].Status != "OK" || list[2].EndTime == nil {
		t.Errorf("statuses %+v", list)
	}
	if list[0].User != "root@pam" || list[0].TokenID != "admin" || list[0].ID != "9999" {
		t.Errorf("user split %+v", list[0])
	}
	list, _ = h.taskList(h.tok, m("source", "active"))
	if len(list) != 1 || list[0].UPID != running || list[0].Status != "RUNNING" || list[0].EndTime != nil {
		t.Errorf("active list %+v", list)
	}
	list, total = h.taskList(h.tok, m("source", "all", "limit", "2"))
	if total != 4 || len(list) != 2 || list[0].UPID != running {
		t.Errorf("all list total %d %+v", total, list)
	}
	list, _ = h.taskList(h.tok, m("source", "all", "start", "3"))
	if len(list) != 1 || list[0].UPID != done1 {
		t.Errorf("paged list %+v", list)
	}
	// pve-manager's filter stops adding at limit <= 0: no entries, the
	// total still counted (the task log differs: limit=0 reads to the end).
	list, total = h.taskList(h.tok, m("limit", "0"))
	if len(list) != 0 || total != 3 {
		t.Errorf("limit=0 list total %d %+v", total, list)
	}
	filters := []struct {
		params url.Values
		want   []string
	}{
		{m("typefilter", "qmstart"), []string{failed}},
		{m("vmid", "100"), []string{done1}},
		{m("errors", "1"), []string{warned, failed}},
		{m("statusfilter", "ok,warning"), []string{warned, done1}},
		{m("statusfilter", "error"), []string{failed}},
		{m("userfilter", "ADMIN"), []string{warned, failed, done1}},
		{m("userfilter", "nobody"), nil},
		{m("since", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)), nil},
		{m("until", strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)), nil},
	}
	for _, fc := range filters {
		list, total := h.taskList(h.tok, fc.params)
		var got []string
		for _, e := range list {
			got = append(got, e.UPID)
		}
		if strings.Join(got, " ") != strings.Join(fc.want, " ") || total != len(fc.want) {
			t.Errorf("filter %v: got %v (total %d), want %v", fc.params, got, total, fc.want)
		}
	}
}

func TestTaskVisibility(t *testing.T) {
	h := newHarness(t, Options{Seed: true, TaskDuration: -1})
	tok, _ := h.s.AddToken("ops@pve", "tk", true, map[string][]string{"/vms/9999": {"VM.PowerMgmt", "VM.Audit"}})
	own := h.do(tok, http.MethodPost, "/nodes/pve/lxc/9999/status/start", nil).upid(t)
	other := h.post("/nodes/pve/lxc/100/status/stop", nil).upid(t)
	if info, _ := decodeUPID(own); info.user != "ops@pve!tk" {
		t.Errorf("UPID user %q", info.user)
	}
	var st taskStatus
	h.do(tok, http.MethodGet, "/nodes/pve/tasks/"+url.PathEscape(own)+"/status", nil).ok(t, &st)
	if st.User != "ops@pve" || st.TokenID != "tk" {
		t.Errorf("own task %+v", st)
	}
	h.do(tok, http.MethodGet, "/nodes/pve/tasks/"+url.PathEscape(other)+"/status", nil).
		fails(t, 403, "Permission check failed (/nodes/pve, Sys.Audit)")
	h.do(tok, http.MethodGet, "/nodes/pve/tasks/"+url.PathEscape(other)+"/log", nil).
		fails(t, 403, "Permission check failed (/nodes/pve, Sys.Audit)")
	h.do(tok, http.MethodDelete, "/nodes/pve/tasks/"+url.PathEscape(other), nil).
		fails(t, 403, "Permission check failed (/nodes/pve, Sys.Modify)")
	list, total := h.taskList(tok, nil)
	if total != 1 || list[0].UPID != own {
		t.Errorf("token sees %+v", list)
	}
	// The auditor has Sys.Audit on /nodes and sees everything.
	if _, total := h.taskList(h.s.AuditToken(), nil); total != 2 {
		t.Errorf("auditor sees %d tasks", total)
	}
	h.do(h.s.AuditToken(), http.MethodGet, "/nodes/pve/tasks/"+url.PathEscape(own)+"/status", nil).ok(t, nil)
}

func TestStatsCounters(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	h.get("/nodes/pve/qemu/101/status/current", nil).ok(t, nil)
	h.get("/nodes/pve/lxc/100/status/current", nil).ok(t, nil)
	h.get("/nodes/pve/lxc/100/status/current", nil).ok(t, nil)
	h.get("/nowhere", nil)
	st := h.s.Stats()
	if st.Requests["GET /nodes/{node}/lxc/{vmid}/status/current"] != 2 || st.Requests["GET /nodes/{node}/qemu/{vmid}/status/current"] != 1 ||
		st.Requests["GET /nowhere"] != 1 {
		t.Errorf("stats %v", st.Requests)
	}
	h.s.ResetStats()
	if len(h.s.Stats().Requests) != 0 {
		t.Error("ResetStats left counters")
	}
}

func FuzzDecodeUPID(f *testing.F) {
	f.Add("UPID:pve:00001234:FFFFFFFC:67450000:qmstart:101:root@pam!admin:")
	f.Add("UPID:pve:00001234:100000000:67450000:vzdump::root@pam:")
	f.Add("UPID:pve:0000123:00000000:67450000:vzdump::root@pam:")
	f.Add("UPID:a-b:00000000:00000000:00000000:x:/:u:")
	f.Fuzz(func(t *testing.T, s string) {
		info, ok := decodeUPID(s)
		if !ok {
			return
		}
		// Everything that decodes re-encodes to the same UPID, up to hex case.
		if got := encodeUPID(info); !strings.EqualFold(got, s) {
			t.Errorf("decode(%q) re-encodes as %q", s, got)
		}
	})
}
