package pluginhost

import (
	"context"
	"sync"
	"time"
)

// hashGate holds the plugins of one Start back from fork until every one
// of them is hashed (or failed before hashing). Hashing is the largest CPU
// cost of a cold start (~10 ms per 13 MB binary on the reference VM) and
// the last hash gates the last plugin: a plugin process started early
// competes for the CPUs with the hashes still running and delays them,
// while forking all plugins once hashing is done keeps the CPUs just as
// busy. On 2 vCPUs with 5 plugins, fork-when-all-hashed beat
// fork-when-own-hash-is-done by 5-10 ms in every round (BenchmarkColdStart5).
// Everything a plugin can do before its fork (TLS pair, go-plugin client,
// socket dir, pipes) is done while the others hash, and everything after
// it runs per plugin, except for the conflict order.
type hashGate struct {
	mu   sync.Mutex
	left int
	open chan struct{} // closed when left reaches 0
}

// gateMax bounds the wait at the gate. The gate only orders CPU work: a
// hash that takes this long is waiting for a slow disk, and holding the
// other plugins back behind it gains nothing. It is far above a CPU-bound
// hash of a plugin-sized binary and far below the handshake timeout. A
// variable for tests only.
var gateMax = 500 * time.Millisecond

func newHashGate(n int) *hashGate {
	g := &hashGate{left: n, open: make(chan struct{})}
	if n == 0 {
		close(g.open)
	}
	return g
}

// member is one plugin's place at the gate.
func (g *hashGate) member() *gateMember { return &gateMember{g: g} }

// gateMember is one plugin's place at a hashGate. A nil *gateMember (a
// restart, a relaunch as root) neither waits nor counts.
type gateMember struct {
	g    *hashGate
	once sync.Once
}

// hashed says this plugin is done hashing (or will not hash); later calls
// do nothing, so a fallback to an older version is not held back again.
func (m *gateMember) hashed() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		m.g.mu.Lock()
		defer m.g.mu.Unlock()
		m.g.left--
		if m.g.left == 0 {
			close(m.g.open)
		}
	})
}

// wait marks this plugin hashed and waits until the others are, gateMax
// has passed or ctx ends, whichever comes first. It never fails: the gate
// is an ordering, not a check.
func (m *gateMember) wait(ctx context.Context) {
	if m == nil {
		return
	}
	m.hashed()
	t := time.NewTimer(gateMax)
	defer t.Stop()
	select {
	case <-m.g.open:
	case <-t.C:
	case <-ctx.Done():
	}
}
