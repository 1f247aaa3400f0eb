package pluginhost

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// phase is one step of bringing a plugin up. The durations show where a
// cold start spends its time: Start logs them at debug level and the
// benchmarks report them.
type phase int

const (
	phaseOpen      phase = iota // openat, fstat, owner/mode check
	phaseHash                   // SHA-256 of the descriptor, lock comparison (not marked on a cache hit)
	phasePrepare                // TLS pair, go-plugin client, socket dir, pipes; then the wait for the other plugins' hashes (hashGate)
	phaseExec                   // fork and exec of the descriptor
	phaseHandshake              // the plugin's runtime start, go-plugin handshake line, gRPC client
	phaseInfo                   // Dispense and the Info round trip, Info checks
	phaseConflict               // waiting for earlier plugins (name order) and the conflict check
	phaseConfigure              // scope guard, broker listener, Configure round trip
	phaseRegister               // registry swap
	numPhases
)

var phaseNames = [numPhases]string{"open", "hash", "prepare", "exec", "handshake", "info", "conflict", "configure", "register"}

// stamps records when a launch passed the end of each phase.
type stamps struct {
	begin time.Time
	at    [numPhases]time.Time
}

func newStamps() *stamps { return &stamps{begin: time.Now()} }

// mark records the end of phase p; a nil stamps records nothing.
func (s *stamps) mark(p phase) {
	if s != nil {
		s.at[p] = time.Now()
	}
}

// durations turns the marks into per-phase durations; a phase that was not
// marked (a cache hit has no hash, Inspect has no configure) takes 0 and
// the next phase counts from the last mark before it.
func (s *stamps) durations() [numPhases]time.Duration {
	var out [numPhases]time.Duration
	prev := s.begin
	for p := range numPhases {
		if s.at[p].IsZero() {
			continue
		}
		out[p] = s.at[p].Sub(prev)
		prev = s.at[p]
	}
	return out
}

// end is the last mark.
func (s *stamps) end() time.Time {
	e := s.begin
	for _, t := range s.at {
		if t.After(e) {
			e = t
		}
	}
	return e
}

// logArgs renders the durations as hclog key/value pairs ("hash", "9.6ms").
func (s *stamps) logArgs() []any {
	d := s.durations()
	args := make([]any, 0, 2*numPhases)
	for p := range numPhases {
		args = append(args, phaseNames[p], fmtDur(d[p]))
	}
	return args
}

// startTrace is the timing of one Start: when it began, when the plugin dir
// was scanned, and each plugin's phases (the launch that succeeded).
type startTrace struct {
	mu      sync.Mutex
	begin   time.Time
	scan    time.Time
	plugins map[string]*stamps
	done    time.Time
}

func (t *startTrace) set(name string, s *stamps) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.plugins == nil {
		t.plugins = map[string]*stamps{}
	}
	t.plugins[name] = s
}

// log writes one debug line per registered plugin with its phases, and
// one for the whole Start.
func (t *startTrace) log(l hclog.Logger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.plugins))
	for n := range t.plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := t.plugins[n]
		l.Debug("plugin start phases", append([]any{"plugin", n, "ready_at", fmtDur(s.end().Sub(t.begin))}, s.logArgs()...)...)
	}
	l.Debug("plugin host started", "total", fmtDur(t.done.Sub(t.begin)), "scan", fmtDur(t.scan.Sub(t.begin)),
		"plugins", strings.Join(names, ","))
}

func fmtDur(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
