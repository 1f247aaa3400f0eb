package proxmox

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// WaiterOptions tunes a [Waiter]. Zero values take the defaults shown.
type WaiterOptions struct {
	// MinInterval is the first poll delay after a task is added (50ms).
	MinInterval time.Duration
	// MaxInterval caps the poll delay as it backs off (2s).
	MaxInterval time.Duration
	// NoSuchTaskGrace is how long after a Wait starts a 400 "no such task"
	// counts as "not visible yet" rather than an error (10s).
	NoSuchTaskGrace time.Duration
	// ListGrace is how long a task may be missing from the node's task
	// list before it is polled by a direct status call (2s).
	ListGrace time.Duration
	// LogTailLines is how many last log lines a [TaskFailedError] carries (20).
	LogTailLines int
	// PageSize is the task-list page size (500); a tick reads at most 5
	// pages, and tasks beyond them are polled by status calls.
	PageSize int
	// Logger defaults to the client's.
	Logger hclog.Logger
}

func (o WaiterOptions) withDefaults() WaiterOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MinInterval, 50*time.Millisecond)
	def(&o.MaxInterval, 2*time.Second)
	def(&o.NoSuchTaskGrace, 10*time.Second)
	def(&o.ListGrace, 2*time.Second)
	if o.MaxInterval < o.MinInterval {
		o.MaxInterval = o.MinInterval
	}
	if o.LogTailLines <= 0 {
		o.LogTailLines = 20
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	return o
}

// maxListPages bounds the task-list reads of one tick; watches not found
// in them fall back to direct status calls.
const maxListPages = 5

// TaskResult is a task that ended successfully, possibly with warnings.
type TaskResult struct {
	UPID UPID
	// ExitStatus is "OK" or "WARNINGS: n" on success, else the error text.
	ExitStatus string
	// Warnings is n from "WARNINGS: n": the work was done, with warnings.
	Warnings int
	// EndTime is when the task ended (from the task list; the time it was
	// observed when only the status call saw it).
	EndTime time.Time
	// Duration is EndTime minus the task's start (second resolution).
	Duration time.Duration
}

// TaskFailedError is a task that ended with an error exit status. It
// unwraps to the error class its text implies (e.g. [ErrLockTimeout],
// [ErrNotFound], [ErrAlreadyExists]), if any.
type TaskFailedError struct {
	UPID       UPID
	ExitStatus string
	// LogTail holds the last lines of the task log (empty if unreadable).
	LogTail []string

	class, detail error
}

func newTaskFailedError(u UPID, exit string, tail []string) *TaskFailedError {
	e := &TaskFailedError{UPID: u, ExitStatus: exit, LogTail: tail}
	e.class, e.detail = classifyText(exit)
	return e
}

func (e *TaskFailedError) Error() string {
	what := e.UPID.Type
	if e.UPID.ID != "" {
		what += " " + e.UPID.ID
	}
	return fmt.Sprintf("task %s (%s on %s) failed: %s", e.UPID, what, e.UPID.Node, e.ExitStatus)
}

// Unwrap exposes the error class implied by the exit status.
func (e *TaskFailedError) Unwrap() []error {
	var errs []error
	if e.class != nil {
		errs = append(errs, e.class)
	}
	if e.detail != nil {
		errs = append(errs, e.detail)
	}
	return errs
}

// WaiterStats counts a waiter's API use since it was created.
type WaiterStats struct {
	// Ticks counts poll rounds; each reads a node's task list once
	// (more only when it spans several pages).
	Ticks uint64
	// ListCalls counts GET /nodes/{node}/tasks.
	ListCalls uint64
	// StatusCalls counts direct GET .../tasks/{upid}/status fallbacks.
	StatusCalls uint64
	// LogCalls counts task log reads for failed tasks.
	LogCalls uint64
	// Pollers is the number of node pollers running now.
	Pollers int
}

// Waiter waits for PVE tasks to end. Concurrent waits on one node share
// one poller goroutine that reads the node's task list once per tick, so
// the API cost of a tick does not grow with the number of tasks. A poller
// starts with the first wait on its node and ends with the last. A Waiter
// is safe for use by many goroutines.
type Waiter struct {
	c    *Client
	opts WaiterOptions
	log  hclog.Logger

	mu      sync.Mutex
	pollers map[string]*nodePoller

	ticks, listCalls, statusCalls, logCalls atomic.Uint64
}

// NewWaiter returns a waiter that polls through c.
func NewWaiter(c *Client, opts WaiterOptions) *Waiter {
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = c.log
	}
	return &Waiter{c: c, opts: opts, log: log.Named("waiter"), pollers: map[string]*nodePoller{}}
}

// Stats returns the waiter's counters.
func (w *Waiter) Stats() WaiterStats {
	w.mu.Lock()
	n := len(w.pollers)
	w.mu.Unlock()
	return WaiterStats{
		Ticks:       w.ticks.Load(),
		ListCalls:   w.listCalls.Load(),
		StatusCalls: w.statusCalls.Load(),
		LogCalls:    w.logCalls.Load(),
		Pollers:     n,
	}
}

// Wait blocks until the task upid ends or ctx is done. A task ending "OK"
// or "WARNINGS: n" returns its [TaskResult]; any other exit status returns
// a [*TaskFailedError] with the log tail. When ctx ends first, Wait returns
// ctx.Err() and the task keeps running on the server.
func (w *Waiter) Wait(ctx context.Context, upid string) (TaskResult, error) {
	u, err := ParseUPID(upid)
	if err != nil {
		return TaskResult{}, fmt.Errorf("wait for task: %w", err)
	}
	return w.WaitUPID(ctx, u)
}

// WaitUPID is [Waiter.Wait] for a parsed UPID.
func (w *Waiter) WaitUPID(ctx context.Context, u UPID) (TaskResult, error) {
	if err := ctx.Err(); err != nil {
		return TaskResult{UPID: u}, err
	}
	if !nodeNameRe.MatchString(u.Node) {
		return TaskResult{UPID: u}, fmt.Errorf("wait for task %s: node %q: not a PVE node name", u, u.Node)
	}
	wt := &watch{upid: u, key: u.String(), registered: time.Now(), done: make(chan outcome, 1)}
	w.register(wt)
	select {
	case <-ctx.Done():
		w.unregister(wt)
		return TaskResult{UPID: u}, ctx.Err()
	case o := <-wt.done:
		return w.finish(ctx, wt, o)
	}
}

type watch struct {
	upid       UPID
	key        string
	registered time.Time
	done       chan outcome // buffered; receives exactly one outcome
	p          *nodePoller

	// Owned by the poller goroutine.
	direct bool // missing from the list: poll its status directly
}

type outcome struct {
	exitStatus string
	endTime    int64
	err        error
}

type nodePoller struct {
	node    string
	watches map[*watch]struct{}
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
}

func (w *Waiter) register(wt *watch) {
	w.mu.Lock()
	p := w.pollers[wt.upid.Node]
	if p == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p = &nodePoller{node: wt.upid.Node, watches: map[*watch]struct{}{}, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
		w.pollers[p.node] = p
		go w.run(p)
	}
	p.watches[wt] = struct{}{}
	wt.p = p
	w.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// unregister drops a watch whose waiter gave up; the last one stops the poller.
func (w *Waiter) unregister(wt *watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(wt.p.watches, wt)
	w.stopIfIdleLocked(wt.p)
}

func (w *Waiter) stopIfIdleLocked(p *nodePoller) bool {
	if len(p.watches) > 0 {
		return false
	}
	if w.pollers[p.node] == p {
		delete(w.pollers, p.node)
	}
	p.cancel()
	return true
}

func (w *Waiter) resolve(wt *watch, o outcome) {
	w.mu.Lock()
	delete(wt.p.watches, wt)
	w.mu.Unlock()
	wt.done <- o
}

// run is a node poller: one task-list read per tick serves every watch on
// the node. The delay starts at MinInterval, grows by half each tick up to
// MaxInterval, and drops back when a new watch arrives.
func (w *Waiter) run(p *nodePoller) {
	interval := w.opts.MinInterval
	next := time.Now().Add(interval)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
			// A new task is most likely to end soon; look again quickly,
			// but never sooner than MinInterval from now, so a burst of
			// new waits still costs one read per tick.
			interval = w.opts.MinInterval
			if time.Until(next) > interval {
				timer.Reset(interval)
				next = time.Now().Add(interval)
			}
			continue
		case <-timer.C:
		}
		w.tick(p)
		w.mu.Lock()
		stopped := p.ctx.Err() != nil || w.stopIfIdleLocked(p)
		w.mu.Unlock()
		if stopped {
			return
		}
		interval = min(interval+interval/2, w.opts.MaxInterval)
		timer.Reset(interval)
		next = time.Now().Add(interval)
	}
}

func (w *Waiter) tick(p *nodePoller) {
	w.mu.Lock()
	ws := make([]*watch, 0, len(p.watches))
	since := int64(-1)
	for wt := range p.watches {
		ws = append(ws, wt)
		if since < 0 || wt.upid.StartTime < since {
			since = wt.upid.StartTime
		}
	}
	w.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	w.ticks.Add(1)
	now := time.Now()

	entries, err := w.listTasks(p, since-1)
	var direct []*watch
	switch {
	case p.ctx.Err() != nil:
		return
	case err != nil && isTransient(err):
		// The node is briefly unreachable; status calls would fail too.
		w.log.Debug("task list read failed, retrying next tick", "node", p.node, "error", err)
		return
	case err != nil:
		w.log.Warn("task list read failed, polling task status directly", "node", p.node, "error", err)
		direct = ws
	default:
		for _, wt := range ws {
			e, ok := entries[wt.key]
			switch {
			case ok && !e.Running():
				exit := e.Status
				if exit == "" {
					exit = "unexpected status"
				}
				w.resolve(wt, outcome{exitStatus: exit, endTime: e.EndTime})
			case ok:
				wt.direct = false
			case wt.direct || now.Sub(wt.registered) >= w.opts.ListGrace:
				direct = append(direct, wt)
			}
		}
	}
	for _, wt := range direct {
		w.pollStatus(p, wt, now)
		if p.ctx.Err() != nil {
			return
		}
	}
}

// listTasks reads the node's tasks started since `since`, active and
// archived, paging while the server reports more.
func (w *Waiter) listTasks(p *nodePoller, since int64) (map[string]TaskEntry, error) {
	m := map[string]TaskEntry{}
	start := 0
	for page := 0; page < maxListPages; page++ {
		w.listCalls.Add(1)
		entries, total, err := w.c.Tasks(p.ctx, p.node, TaskListOptions{
			Source: "all", Since: since, Start: start, Limit: w.opts.PageSize,
		})
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			m[e.UPID] = e
		}
		start += len(entries)
		if len(entries) == 0 || start >= total {
			break
		}
	}
	return m, nil
}

// pollStatus is the fallback for a task the list does not show.
func (w *Waiter) pollStatus(p *nodePoller, wt *watch, now time.Time) {
	wt.direct = true
	w.statusCalls.Add(1)
	st, err := w.c.TaskStatus(p.ctx, wt.upid)
	switch {
	case err == nil && st.Status == "stopped":
		exit := st.ExitStatus
		if exit == "" {
			exit = "unexpected status"
		}
		w.resolve(wt, outcome{exitStatus: exit})
	case err == nil:
		// Still running.
	case p.ctx.Err() != nil:
	case isNoSuchTask(err):
		if now.Sub(wt.registered) >= w.opts.NoSuchTaskGrace {
			w.resolve(wt, outcome{err: fmt.Errorf("wait for task %s: still unknown to node %s after %s: %w: %w",
				wt.key, p.node, w.opts.NoSuchTaskGrace, ErrNotFound, err)})
		}
	case isTransient(err):
		w.log.Debug("task status read failed, retrying next tick", "upid", wt.key, "error", err)
	default:
		w.resolve(wt, outcome{err: fmt.Errorf("wait for task %s: read status: %w", wt.key, err)})
	}
}

var warningsRe = regexp.MustCompile(`^WARNINGS: (\d+)$`)

// finish turns an observed end into Wait's result.
func (w *Waiter) finish(ctx context.Context, wt *watch, o outcome) (TaskResult, error) {
	u := wt.upid
	res := TaskResult{UPID: u, ExitStatus: o.exitStatus}
	if o.err != nil {
		return res, o.err
	}
	res.EndTime = time.Now()
	if o.endTime > 0 {
		res.EndTime = time.Unix(o.endTime, 0)
	}
	res.Duration = max(res.EndTime.Sub(u.Started()), 0)
	if o.exitStatus == "OK" {
		return res, nil
	}
	if m := warningsRe.FindStringSubmatch(o.exitStatus); m != nil {
		res.Warnings, _ = strconv.Atoi(m[1])
		return res, nil
	}
	return res, newTaskFailedError(u, o.exitStatus, w.logTail(ctx, wt))
}

// logTail reads the last LogTailLines lines of the task log: one call when
// the log is short, two otherwise. Within NoSuchTaskGrace a "no such task"
// answer is retried, as for the status.
func (w *Waiter) logTail(ctx context.Context, wt *watch) []string {
	u, n := wt.upid, w.opts.LogTailLines
	var (
		lines []TaskLogLine
		total int
		err   error
	)
	for delay := w.opts.MinInterval; ; delay = min(2*delay, w.opts.MaxInterval) {
		w.logCalls.Add(1)
		lines, total, err = w.c.TaskLog(ctx, u, 0, n)
		if err == nil || !isNoSuchTask(err) || time.Since(wt.registered)+delay > w.opts.NoSuchTaskGrace || !sleepCtx(ctx, delay) {
			break
		}
	}
	if err == nil && total > n {
		w.logCalls.Add(1)
		lines, _, err = w.c.TaskLog(ctx, u, total-n, n)
	}
	if err != nil {
		w.log.Debug("reading failed task's log", "upid", u.String(), "error", err)
		return nil
	}
	tail := make([]string, 0, len(lines))
	for _, l := range lines {
		tail = append(tail, l.T)
	}
	return tail
}

// IsTaskFailed reports whether err is a task that ran and failed (as
// opposed to a refused request or a wait that was cancelled).
func IsTaskFailed(err error) bool {
	var tf *TaskFailedError
	return errors.As(err, &tf)
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
