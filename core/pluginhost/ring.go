package pluginhost

import (
	"sync"
	"time"
)

// maxLineLen caps one kept stderr line; a plugin printing a megabyte
// without a newline must not grow the agent.
const maxLineLen = 1024

// lineRing keeps the last n lines written to it. It is the io.Writer
// go-plugin tees a plugin's raw stderr into (ClientConfig.Stderr), which
// writes a line and its newline in separate calls.
type lineRing struct {
	mu      sync.Mutex
	lines   []string
	next    int
	full    bool
	total   uint64 // lines ever pushed
	partial []byte
}

func newLineRing(n int) *lineRing {
	if n < 1 {
		n = 1
	}
	return &lineRing{lines: make([]string, n)}
}

func (r *lineRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range p {
		if c == '\n' {
			r.push(string(r.partial))
			r.partial = r.partial[:0]
			continue
		}
		if len(r.partial) < maxLineLen {
			r.partial = append(r.partial, c)
		}
	}
	return len(p), nil
}

func (r *lineRing) push(s string) {
	r.total++
	r.lines[r.next] = s
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// Lines returns the kept lines, oldest first, plus an unterminated last
// line if there is one.
func (r *lineRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.linesLocked()
}

func (r *lineRing) linesLocked() []string {
	var out []string
	if r.full {
		out = append(out, r.lines[r.next:]...)
	}
	out = append(out, r.lines[:r.next]...)
	if len(r.partial) > 0 {
		out = append(out, string(r.partial))
	}
	return out
}

// mark returns a position for since.
func (r *lineRing) mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// since returns the kept lines pushed after mark (plus a partial line),
// at most the last max of them.
func (r *lineRing) since(mark uint64, max int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := r.linesLocked()
	n := int(r.total - mark)
	if len(r.partial) > 0 {
		n++
	}
	n = min(n, len(all), max)
	return all[len(all)-n:]
}

// AuditEvent is one HostLog event a plugin sent (the audit trail).
type AuditEvent struct {
	Time    time.Time         `json:"time"`
	Plugin  string            `json:"plugin"`
	Kind    string            `json:"kind"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// auditRing keeps the last n audit events of all plugins.
type auditRing struct {
	mu     sync.Mutex
	events []AuditEvent
	next   int
	full   bool
}

func newAuditRing(n int) *auditRing {
	if n < 1 {
		n = 1
	}
	return &auditRing{events: make([]AuditEvent, n)}
}

func (a *auditRing) add(e AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events[a.next] = e
	a.next = (a.next + 1) % len(a.events)
	if a.next == 0 {
		a.full = true
	}
}

func (a *auditRing) list() []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditEvent
	if a.full {
		out = append(out, a.events[a.next:]...)
	}
	return append(out, a.events[:a.next]...)
}
