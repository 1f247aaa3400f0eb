package nonce

import (
	"fmt"
	"sync"
	"time"
)

// Memory is the in-memory counterpart of [Store], with the same checks
// and pruning but nothing on disk: a restart forgets every op. It exists
// for tests and for measuring what durability costs; never use it to
// guard real operations.
type Memory struct {
	opts Options

	mu      sync.Mutex
	st      state
	pruneAt int
}

// NewMemory returns an empty in-memory set.
func NewMemory(opts Options) *Memory {
	opts.fill()
	return &Memory{opts: opts, st: newState(), pruneAt: opts.CompactAfter}
}

// Record is [Store.Record] without the disk.
func (m *Memory) Record(opID string, expiresAt, issuedAt time.Time) error {
	if opID == "" || len(opID) > MaxOpIDLen {
		return fmt.Errorf("record op id: length %d not in 1..%d", len(opID), MaxOpIDLen)
	}
	exp, iss, err := nanos(expiresAt, issuedAt)
	if err != nil {
		return fmt.Errorf("record op %s: %w", opID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	if err := m.st.checkClock(now, m.opts.Skew); err != nil {
		return err
	}
	if len(m.st.entries) >= m.pruneAt {
		m.st = m.st.pruned(now, m.opts.Skew)
		m.pruneAt = 2*len(m.st.entries) + m.opts.CompactAfter
	}
	if err := m.st.admit(opID, exp); err != nil {
		return err
	}
	m.st.add(opID, iss, exp)
	return nil
}

// CheckClock is [Store.CheckClock].
func (m *Memory) CheckClock(now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.checkClock(now, m.opts.Skew)
}

// Seen reports whether opID is recorded.
func (m *Memory) Seen(opID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.st.entries[opID]
	return ok
}
