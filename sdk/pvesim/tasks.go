package pvesim

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// upidRE is PVE's UPID decoding pattern (pve-common UPID.pm).
var upidRE = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$`)

// upidInfo is a decoded UPID.
type upidInfo struct {
	node      string
	pid       uint64
	pstart    uint64
	starttime int64
	typ       string
	id        string
	user      string
}

func encodeUPID(u upidInfo) string {
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", u.node, u.pid, u.pstart, u.starttime, u.typ, u.id, u.user)
}

func decodeUPID(s string) (upidInfo, bool) {
	m := upidRE.FindStringSubmatch(s)
	if m == nil {
		return upidInfo{}, false
	}
	pid, err1 := strconv.ParseUint(m[3], 16, 64)
	pstart, err2 := strconv.ParseUint(m[4], 16, 64)
	start, err3 := strconv.ParseInt(m[5], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return upidInfo{}, false
	}
	return upidInfo{node: m[1], pid: pid, pstart: pstart, starttime: start, typ: m[6], id: m[7], user: m[8]}, true
}

// task is one worker task with its log.
type task struct {
	info      upidInfo
	upid      string
	seq       int
	lines     []string
	running   bool
	finishing bool // finishTask has started; guards against running twice
	exit      string
	endtime   int64
	visibleAt time.Time
	spec      taskSpec
	ctx       context.Context
	cancel    context.CancelFunc
}

// taskSpec describes the work of a task.
type taskSpec struct {
	typ, id string
	// lines are logged at dispatch.
	lines []string
	// run does the work when the task's time is up, without s.mu held; it
	// logs through tc and returns the task error.
	run func(tc *taskCtx) error
	// undo reverts what dispatch did (e.g. a config lock) when the task is
	// made to fail by Faults.FailTasks; called with s.mu held.
	undo func()
}

// taskCtx is what a running task's work sees.
type taskCtx struct {
	s        *Server
	t        *task
	ctx      context.Context
	warnings int
}

// logLocked appends a line with s.mu held.
func (tc *taskCtx) logLocked(format string, args ...any) {
	tc.t.lines = append(tc.t.lines, fmt.Sprintf(format, args...))
}

// warnLocked logs a counted warning, as log_warn does (s.mu held).
func (tc *taskCtx) warnLocked(format string, args ...any) {
	tc.warnings++
	tc.logLocked("WARN: "+format, args...)
}

// startTask registers a task and schedules its completion. It returns the
// UPID. With a negative task duration the task finishes before returning.
func (s *Server) startTask(auth *authInfo, spec taskSpec) (string, error) {
	_, _, _, slowD, slow := s.faults.taskFaults(spec.typ)
	dur := s.opts.TaskDuration
	if slow {
		dur = slowD
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", die("server is shutting down")
	}
	s.pid += 1 + uint64(len(s.tasks)%3)
	s.pstart += 4
	now := time.Now()
	info := upidInfo{node: s.node, pid: s.pid, pstart: s.pstart, starttime: now.Unix(), typ: spec.typ, id: spec.id, user: auth.authID}
	ctx, cancel := context.WithCancel(context.Background())
	t := &task{
		info:      info,
		upid:      encodeUPID(info),
		seq:       len(s.tasks),
		lines:     append([]string(nil), spec.lines...),
		running:   true,
		visibleAt: now.Add(s.opts.NoSuchTaskFor),
		spec:      spec,
		ctx:       ctx,
		cancel:    cancel,
	}
	s.tasks = append(s.tasks, t)
	s.taskByUPID[t.upid] = t
	if dur >= 0 {
		s.bg.Add(1)
		s.timers[t] = time.AfterFunc(dur, func() {
			defer s.bg.Done()
			s.finishTask(t)
		})
	}
	s.mu.Unlock()
	s.log.Debug("task started", "upid", t.upid)
	if dur < 0 {
		s.finishTask(t)
	}
	return t.upid, nil
}

// finishTask runs the task's work and writes its final log line.
func (s *Server) finishTask(t *task) {
	s.mu.Lock()
	delete(s.timers, t)
	if !t.running || t.finishing {
		s.mu.Unlock()
		return
	}
	t.finishing = true
	s.mu.Unlock()

	failText, fail, warnN, _, _ := s.faults.taskFaults(t.info.typ)
	tc := &taskCtx{s: s, t: t, ctx: t.ctx}
	var err error
	if fail {
		s.mu.Lock()
		if t.spec.undo != nil {
			t.spec.undo()
		}
		s.mu.Unlock()
		err = errors.New(failText)
	} else if t.spec.run != nil {
		err = t.spec.run(tc)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !t.running {
		return // interrupted while working
	}
	if err == nil {
		for i := 1; i <= warnN; i++ {
			tc.warnLocked("simulated warning %d of %d", i, warnN)
		}
	}
	switch {
	case err != nil:
		msg := strings.ReplaceAll(strings.TrimRight(err.Error(), "\n"), "\n", " ")
		t.lines = append(t.lines, "TASK ERROR: "+msg)
		t.exit = msg
	case tc.warnings > 0:
		t.lines = append(t.lines, fmt.Sprintf("TASK WARNINGS: %d", tc.warnings))
		t.exit = fmt.Sprintf("WARNINGS: %d", tc.warnings)
	default:
		t.lines = append(t.lines, "TASK OK")
		t.exit = "OK"
	}
	t.running = false
	t.endtime = time.Now().Unix()
	t.cancel()
	s.log.Debug("task finished", "upid", t.upid, "exitstatus", t.exit)
}

// interruptTask stops a running task as SIGTERM to the worker does (s.mu held).
func (s *Server) interruptTask(t *task) {
	if !t.running {
		return
	}
	if tm, ok := s.timers[t]; ok {
		if tm.Stop() {
			s.bg.Done()
		}
		delete(s.timers, t)
	}
	t.cancel()
	t.lines = append(t.lines, "TASK ERROR: received interrupt")
	t.exit = "received interrupt"
	t.running = false
	t.endtime = time.Now().Unix()
}

// lookupTask resolves the upid parameter of the task endpoints and checks
// the caller may see the task: its own (or its tokens'), else priv on
// /nodes/<node> (s.mu held).
func (s *Server) lookupTask(q *request, priv string) (*task, *apiError) {
	raw := q.str("upid")
	if _, ok := decodeUPID(raw); !ok {
		return nil, paramError1("upid", "unable to parse worker upid")
	}
	t, ok := s.taskByUPID[raw]
	if !ok || time.Now().Before(t.visibleAt) {
		return nil, paramError1("upid", "no such task")
	}
	if !canSeeTask(q.auth, t.info.user) {
		if err := s.check(q.auth.authID, "/nodes/"+q.str("node"), priv); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// taskUserFields splits a task's user into user and tokenid as the task
// endpoints report it.
func taskUserFields(m map[string]any, authID string) {
	u, tok, isTok := strings.Cut(authID, "!")
	m["user"] = u
	if isTok {
		m["tokenid"] = tok
	}
}

func (t *task) baseFields() map[string]any {
	m := map[string]any{
		"upid":      t.upid,
		"node":      t.info.node,
		"pid":       t.info.pid,
		"pstart":    t.info.pstart,
		"starttime": t.info.starttime,
		"type":      t.info.typ,
		"id":        t.info.id,
	}
	taskUserFields(m, t.info.user)
	return m
}

func (s *Server) handleTaskStatus(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupTask(q, "Sys.Audit")
	if err != nil {
		return nil, err
	}
	m := t.baseFields()
	if t.running {
		m["status"] = "running"
	} else {
		m["status"] = "stopped"
		m["exitstatus"] = t.exit
	}
	return m, nil
}

func (s *Server) handleTaskLog(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupTask(q, "Sys.Audit")
	if err != nil {
		return nil, err
	}
	if q.bool("download") {
		if q.has("start") || q.has("limit") {
			return nil, paramError1("download", "option 'download' is not allowed together with 'start' or 'limit'")
		}
	}
	start := int(q.int("start", 0))
	limit := int(q.int("limit", 50))
	lines := []map[string]any{}
	total := len(t.lines)
	for i, l := range t.lines {
		if i < start {
			continue
		}
		if limit > 0 && len(lines) >= limit {
			break
		}
		lines = append(lines, map[string]any{"n": i + 1, "t": l})
	}
	if total == 0 {
		total = 1
		lines = append(lines, map[string]any{"n": 1, "t": "no content"})
	}
	q.setTotal(total)
	return lines, nil
}

func (s *Server) handleTaskStop(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupTask(q, "Sys.Modify")
	if err != nil {
		return nil, err
	}
	s.interruptTask(t)
	return nil, nil
}

// taskStatusType is upid_normalize_status_type: ok, warning, error or unknown.
func taskStatusType(exit string) string {
	switch {
	case exit == "OK":
		return "ok"
	case strings.HasPrefix(exit, "WARNINGS: "):
		return "warning"
	case exit == "" || exit == "unexpected status":
		return "unknown"
	default:
		return "error"
	}
}

func (s *Server) handleTaskList(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	auditor := s.has(q.auth.authID, "/nodes/"+q.str("node"), "Sys.Audit")
	source := q.str("source")
	if source == "" {
		source = "archive"
	}
	var statusFilter map[string]bool
	if q.has("statusfilter") {
		statusFilter = map[string]bool{}
		for _, st := range splitList(q.str("statusfilter")) {
			statusFilter[strings.ToLower(st)] = true
		}
	}
	userFilter := strings.ToLower(q.str("userfilter"))
	sorted := append([]*task(nil), s.tasks...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].info.starttime != sorted[j].info.starttime {
			return sorted[i].info.starttime > sorted[j].info.starttime
		}
		return sorted[i].seq > sorted[j].seq
	})
	var matched []*task
	for _, t := range sorted {
		switch source {
		case "archive":
			if t.running {
				continue
			}
		case "active":
			if !t.running {
				continue
			}
		}
		if !auditor && !canSeeTask(q.auth, t.info.user) {
			continue
		}
		if userFilter != "" && !strings.Contains(strings.ToLower(t.info.user), userFilter) {
			continue
		}
		if q.has("typefilter") && t.info.typ != q.str("typefilter") {
			continue
		}
		if q.bool("errors") && t.exit == "OK" {
			continue
		}
		if q.has("vmid") && t.info.id != q.str("vmid") {
			continue
		}
		if q.has("since") && t.info.starttime < q.int("since", 0) {
			continue
		}
		if q.has("until") && t.info.starttime > q.int("until", 0) {
			continue
		}
		if statusFilter != nil && (t.running || !statusFilter[taskStatusType(t.exit)]) {
			continue
		}
		matched = append(matched, t)
	}
	start := int(q.int("start", 0))
	limit := int(q.int("limit", 50))
	res := []map[string]any{}
	for i, t := range matched {
		if i < start {
			continue
		}
		// As pve-manager's task filter: limit <= 0 yields no entries (only
		// the total), unlike the task log where limit=0 reads to the end.
		if limit <= 0 || len(res) >= limit {
			break
		}
		m := t.baseFields()
		if t.running {
			m["status"] = "RUNNING"
		} else {
			m["status"] = t.exit
			m["endtime"] = t.endtime
		}
		res = append(res, m)
	}
	q.setTotal(len(matched))
	return res, nil
}

// waitTask waits up to d for a task, as background_delay and delay do: it
// returns nil data if the task ended without error, onFail's error if it
// failed, and the UPID if it is still running.
func (s *Server) waitTask(q *request, upid string, d time.Duration, onFail func(exit string) error) (any, error) {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		t := s.taskByUPID[upid]
		running, exit := t.running, t.exit
		s.mu.Unlock()
		if !running {
			if st := taskStatusType(exit); st == "ok" || st == "warning" {
				return nil, nil
			}
			return nil, onFail(exit)
		}
		if !time.Now().Before(deadline) || !s.sleepCtx(q.ctx, 20*time.Millisecond) {
			return upid, nil
		}
	}
}
