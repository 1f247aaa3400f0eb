package pvesim

import (
	"context"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Faults injects failures into a running [Server]. All methods are safe for
// concurrent use; path prefixes are API paths such as "/nodes/pve/status"
// (an "/api2/json" prefix is accepted and ignored).
type Faults struct {
	s *Server

	mu        sync.Mutex
	fail      []taskFault
	warn      []taskFault
	slow      []taskFault
	proxy     []prefixFault
	hangs     []*hangFault
	transient []*prefixFault
	locks     []*heldLock
}

type taskFault struct {
	match string
	text  string
	n     int
	d     time.Duration
}

type prefixFault struct {
	prefix string
	code   int
	left   int
}

type hangFault struct {
	prefix  string
	release chan struct{}
	once    sync.Once
}

type heldLock struct {
	vmid    int
	release func()
}

func newFaults(s *Server) *Faults { return &Faults{s: s} }

// matchTask reports whether a task type matches a fault pattern: the exact
// type, or a path.Match glob such as "qm*" or "*".
func matchTask(pattern, typ string) bool {
	if pattern == typ {
		return true
	}
	ok, err := path.Match(pattern, typ)
	return err == nil && ok
}

// FailTasks makes tasks whose type matches (e.g. "qmsnapshot", or a glob
// like "vz*") end with "TASK ERROR: errText" without doing their work.
func (f *Faults) FailTasks(match string, errText string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, taskFault{match: match, text: errText})
}

// WarnTasks makes matching tasks do their work, log n "WARN: ..." lines and
// end with "TASK WARNINGS: n".
func (f *Faults) WarnTasks(match string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.warn = append(f.warn, taskFault{match: match, n: n})
}

// SlowTasks makes matching tasks run for d instead of the task duration.
func (f *Faults) SlowTasks(match string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slow = append(f.slow, taskFault{match: match, d: d})
}

// taskFaults returns the faults that apply to a task type (latest wins).
func (f *Faults) taskFaults(typ string) (failText string, fail bool, warnN int, dur time.Duration, slow bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tf := range f.fail {
		if matchTask(tf.match, typ) {
			failText, fail = tf.text, true
		}
	}
	for _, tf := range f.warn {
		if matchTask(tf.match, typ) {
			warnN = tf.n
		}
	}
	for _, tf := range f.slow {
		if matchTask(tf.match, typ) {
			dur, slow = tf.d, true
		}
	}
	return
}

// HoldLock holds the config lock of a guest, as another process holding the
// flock would. Overlapping writes fail with 500 "can't lock file
// '/var/lock/qemu-server/lock-<vmid>.conf' - got timeout" (LXC:
// /run/lock/lxc/pve-config-<vmid>.lock) after Options.LockTimeout; tasks
// that need the lock fail the same way inside the task. It waits while a
// request holds the lock and returns early (holding nothing) if the server
// closes. Call release once done; Clear releases it too.
func (f *Faults) HoldLock(vmid int) (release func()) {
	unlock, err := f.s.acquireFlock(context.Background(), vmid, 0)
	if err != nil {
		return func() {}
	}
	h := &heldLock{vmid: vmid}
	var once sync.Once
	h.release = func() {
		once.Do(func() {
			unlock()
			f.mu.Lock()
			defer f.mu.Unlock()
			for i, l := range f.locks {
				if l == h {
					f.locks = append(f.locks[:i], f.locks[i+1:]...)
					break
				}
			}
		})
	}
	f.mu.Lock()
	f.locks = append(f.locks, h)
	f.mu.Unlock()
	return h.release
}

// ProxyError makes requests under pathPrefix fail the way pveproxy reports a
// failed proxied call: 595 ("Connection refused") or 596 ("Connection timed
// out"), with an empty body. It lasts until Clear.
func (f *Faults) ProxyError(pathPrefix string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proxy = append(f.proxy, prefixFault{prefix: normPrefix(pathPrefix), code: code})
}

// Hang makes requests under pathPrefix block until release is called, the
// request's context ends, Clear is called or the server closes; released
// requests then proceed normally.
func (f *Faults) Hang(pathPrefix string) (release func()) {
	h := &hangFault{prefix: normPrefix(pathPrefix), release: make(chan struct{})}
	f.mu.Lock()
	f.hangs = append(f.hangs, h)
	f.mu.Unlock()
	return func() { f.releaseHang(h) }
}

func (f *Faults) releaseHang(h *hangFault) {
	h.once.Do(func() { close(h.release) })
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.hangs {
		if x == h {
			f.hangs = append(f.hangs[:i], f.hangs[i+1:]...)
			break
		}
	}
}

// Transient makes the next n requests under pathPrefix fail with code (e.g.
// 500, 502, 503); later requests succeed.
func (f *Faults) Transient(pathPrefix string, n int, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transient = append(f.transient, &prefixFault{prefix: normPrefix(pathPrefix), code: code, left: n})
}

// Clear removes all faults, releasing held locks and hung requests.
func (f *Faults) Clear() {
	f.mu.Lock()
	hangs := f.hangs
	locks := f.locks
	f.fail, f.warn, f.slow, f.proxy, f.transient = nil, nil, nil, nil, nil
	f.mu.Unlock()
	for _, h := range hangs {
		f.releaseHang(h)
	}
	for _, l := range locks {
		l.release()
	}
}

func normPrefix(p string) string {
	if rest, ok := strings.CutPrefix(p, apiBase); ok {
		p = rest
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// apply runs the request-level faults for an API path: hangs first, then
// proxy errors, then transient failures.
func (f *Faults) apply(ctx context.Context, rel string) *apiError {
	f.mu.Lock()
	var hangs []*hangFault
	for _, h := range f.hangs {
		if strings.HasPrefix(rel, h.prefix) {
			hangs = append(hangs, h)
		}
	}
	f.mu.Unlock()
	for _, h := range hangs {
		select {
		case <-h.release:
		case <-ctx.Done():
			return rawError(596, "Connection timed out")
		case <-f.s.done:
			return rawError(http.StatusServiceUnavailable, "server closing")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.proxy {
		if strings.HasPrefix(rel, p.prefix) {
			reason := "Connection timed out"
			if p.code == 595 {
				reason = "Connection refused"
			}
			return rawError(p.code, "%s", reason)
		}
	}
	for _, t := range f.transient {
		if t.left > 0 && strings.HasPrefix(rel, t.prefix) {
			t.left--
			text := http.StatusText(t.code)
			if text == "" {
				text = "transient failure"
			}
			return &apiError{code: t.code, msg: text + "\n"}
		}
	}
	return nil
}
