// Package nonce keeps the op IDs of accepted signed operations, durably,
// so that an op is never run twice: not after a restart, not after a
// crash at any point.
//
// [Store.Record] returns only after the op ID is on disk (write + fdatasync
// of an append-only log); the caller runs the op only after Record
// returned nil. So an op that ran is always found again after a crash, and
// a record that was torn by a crash was never acknowledged, so dropping it
// on load is safe.
//
// Log format: a 16-byte header, then records framed as uint32 length,
// uint32 CRC-32C of the payload, payload. Only the last record can be
// torn (one writer, one record in flight, each fsynced before the next),
// so on load an invalid frame within one maximal frame of the end is
// dropped and the file truncated; an invalid frame earlier is corruption
// and fails the load.
//
// Pruning: entries whose expiry is older than now minus the clock skew
// are dropped when the log is compacted (temp file, fsync, rename, fsync
// of the directory). The store remembers the newest pruned expiry as its
// floor and refuses any op expiring at or before it, so a pruned op can
// never come back, whatever the clock says. It also remembers the newest
// accepted issued_at (the high-water mark) and refuses to record while
// the clock is more than the skew behind it ([ErrClockRollback]).
//
// A clock that jumped far ahead and was then set right leaves a floor or
// high-water mark in the future, and signed ops are refused until the
// clock catches up or an operator removes the store file while the agent
// is stopped; failing closed is the point.
//
// An exclusive flock on PATH.lock keeps two agents off one store.
package nonce

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors returned by Record and CheckClock, matched with errors.Is.
var (
	// ErrReplay: the op ID was recorded before.
	ErrReplay = errors.New("op id already used")
	// ErrClockRollback: the clock is behind an op already accepted.
	ErrClockRollback = errors.New("clock moved back past the newest accepted op")
	// ErrExpired: the op expires at or before an op the store already
	// pruned, so it can no longer be told apart from a replay.
	ErrExpired = errors.New("op expired before the store's retention floor")
	// ErrLocked: another process holds the store.
	ErrLocked = errors.New("nonce store is in use by another process")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("nonce store is closed")
)

// DefaultSkew is the clock tolerance when Options.Skew is zero.
const DefaultSkew = 30 * time.Second

// defaultCompactAfter is the least number of records between compactions.
const defaultCompactAfter = 1024

// MaxOpIDLen is the longest op ID the log can hold.
const MaxOpIDLen = 255

// Options tune a store; the zero value is usable.
type Options struct {
	// Skew is the clock tolerance: entries are kept until expiry + Skew,
	// and the clock may trail the high-water mark by Skew. Default 30s.
	Skew time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// CompactAfter is the least number of records Record appends between
	// two compactions (more when many entries are live). Default 1024.
	CompactAfter int
}

func (o *Options) fill() {
	if o.Skew <= 0 {
		o.Skew = DefaultSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CompactAfter <= 0 {
		o.CompactAfter = defaultCompactAfter
	}
}

// Store is the durable op-ID set. It is safe for concurrent use.
type Store struct {
	path string
	opts Options

	mu      sync.Mutex
	lock    *os.File // holds the flock
	log     *os.File // O_APPEND
	st      state
	records int // records in the current log file
	// compactAt is the record count at which Record compacts: after
	// max(CompactAfter, live entries) more records, so rewriting the live
	// set costs O(1) a record on average.
	compactAt int
	broken    error // set when the on-disk state is unknown; Record refuses
	closed    bool
}

// Open opens (creating if needed) the store at path; its directory must
// exist. PATH.lock and PATH.tmp are used beside it.
func Open(path string, opts Options) (*Store, error) {
	opts.fill()
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open nonce store: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("open nonce store %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open nonce store %s: lock: %w", path, err)
	}
	s := &Store{path: path, opts: opts, lock: lock}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open nonce store %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) load() error {
	// A temp file is a compaction that never reached its rename.
	if err := os.Remove(s.path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale temp file: %w", err)
	}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.st = newState()
		if err := s.writeAtomically(s.st); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		s.records = 1
	case err != nil:
		return fmt.Errorf("read: %w", err)
	default:
		st, good, err := decodeLog(data)
		if err != nil {
			return err
		}
		s.st, s.records = st, st.records
		if good < len(data) {
			if err := truncate(s.path, good); err != nil {
				return fmt.Errorf("drop torn record at offset %d: %w", good, err)
			}
		}
	}
	if s.log, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	if s.st.prunable(s.opts.Now(), s.opts.Skew) || s.records > len(s.st.entries)+1 {
		return s.compact()
	}
	s.scheduleCompaction()
	return nil
}

func (s *Store) scheduleCompaction() {
	s.compactAt = s.records + max(s.opts.CompactAfter, len(s.st.entries))
}

func truncate(path string, size int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		return err
	}
	return f.Sync()
}

// Record stores opID durably, or fails: ErrReplay when it is already
// there, ErrClockRollback when the clock is behind the high-water mark,
// ErrExpired when the op expires at or before the floor, another error
// when the disk failed (then the store refuses every later Record, since
// the log's tail is unknown until it is reopened).
func (s *Store) Record(opID string, expiresAt, issuedAt time.Time) error {
	if opID == "" || len(opID) > MaxOpIDLen {
		return fmt.Errorf("record op id: length %d not in 1..%d", len(opID), MaxOpIDLen)
	}
	exp, iss, err := nanos(expiresAt, issuedAt)
	if err != nil {
		return fmt.Errorf("record op %s: %w", opID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("record op %s: store failed earlier: %w", opID, s.broken)
	}
	now := s.opts.Now()
	if err := s.st.checkClock(now, s.opts.Skew); err != nil {
		return err
	}
	if s.records >= s.compactAt {
		if err := s.compact(); err != nil {
			return fmt.Errorf("record op %s: %w", opID, err)
		}
	}
	if err := s.st.admit(opID, exp); err != nil {
		return err
	}
	frame := appendFrame(nil, encodeOp(opID, iss, exp))
	if n, err := s.log.Write(frame); err != nil || n != len(frame) {
		s.broken = fmt.Errorf("append: wrote %d of %d bytes: %w", n, len(frame), err)
		return fmt.Errorf("record op %s: %w", opID, s.broken)
	}
	// fdatasync also flushes the file size, which is what an append needs.
	if err := unix.Fdatasync(int(s.log.Fd())); err != nil {
		s.broken = fmt.Errorf("fdatasync: %w", err)
		return fmt.Errorf("record op %s: %w", opID, s.broken)
	}
	s.st.add(opID, iss, exp)
	s.records++
	return nil
}

// CheckClock returns ErrClockRollback when now is more than the skew
// behind the newest accepted op's issued_at, or behind the floor.
func (s *Store) CheckClock(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.checkClock(now, s.opts.Skew)
}

// Seen reports whether opID is recorded.
func (s *Store) Seen(opID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.st.entries[opID]
	return ok
}

// Len is the number of live entries.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.st.entries)
}

// HighWater is the newest issued_at accepted (zero when none).
func (s *Store) HighWater() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fromNanos(s.st.highWater)
}

// Floor is the newest pruned expiry: ops expiring at or before it are
// refused (zero when nothing was pruned).
func (s *Store) Floor() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fromNanos(s.st.floor)
}

// Compact prunes expired entries and rewrites the log with only the live
// ones.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("compact: store failed earlier: %w", s.broken)
	}
	return s.compact()
}

func (s *Store) compact() error {
	next := s.st.pruned(s.opts.Now(), s.opts.Skew)
	if err := s.writeAtomically(next); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	// The new file is in place and durable; the old descriptor points at
	// the replaced inode.
	s.log.Close()
	log, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		s.broken = fmt.Errorf("reopen log after compaction: %w", err)
		return s.broken
	}
	s.log = log
	s.st = next
	s.records = len(next.entries) + 1
	s.scheduleCompaction()
	return nil
}

// writeAtomically replaces the log with st: temp file, fsync, rename,
// fsync of the directory. A failure before the rename leaves the old log
// as it was; a failure after it marks the store broken.
func (s *Store) writeAtomically(st state) (err error) {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(st.encode()); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if derr := syncDir(filepath.Dir(s.path)); derr != nil {
		// The rename may or may not survive a crash: appending to the new
		// file now could lose acknowledged records with it.
		s.broken = fmt.Errorf("fsync directory after rename: %w", derr)
		return s.broken
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close releases the store and its lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.log.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("close nonce store: %w", err)
	}
	return nil
}

// Times are kept as Unix nanoseconds, which cover 1678..2262.
func nanos(expiresAt, issuedAt time.Time) (exp, iss int64, err error) {
	lo := time.Unix(0, math.MinInt64)
	hi := time.Unix(0, math.MaxInt64)
	for _, t := range []time.Time{expiresAt, issuedAt} {
		if t.IsZero() || t.Before(lo) || t.After(hi) {
			return 0, 0, fmt.Errorf("time %s out of range", t.Format(time.RFC3339))
		}
	}
	if !expiresAt.After(issuedAt) {
		return 0, 0, fmt.Errorf("expires_at %s is not after issued_at %s", expiresAt.Format(time.RFC3339), issuedAt.Format(time.RFC3339))
	}
	return expiresAt.UnixNano(), issuedAt.UnixNano(), nil
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
