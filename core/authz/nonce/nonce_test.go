package nonce

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a helper that records op
// IDs in a loop; see TestCrashNeverLosesAcknowledgedOps.
const (
	helperEnv     = "FELHOM_NONCE_HELPER_STORE"
	helperRunEnv  = "FELHOM_NONCE_HELPER_RUN"
	helperPrefix  = "ack "
	helperCompact = 7 // the helper compacts every this many records
)

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(runHelper(path, os.Getenv(helperRunEnv)))
	}
	os.Exit(m.Run())
}

// runHelper records until killed, printing each op ID after Record
// returned.
func runHelper(path, run string) int {
	s, err := Open(path, Options{CompactAfter: 5})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 3
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%06d", run, i)
		now := time.Now()
		if err := s.Record(id, now.Add(10*time.Minute), now); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 4
		}
		// os.Stdout is unbuffered: the line is out when Write returns.
		fmt.Fprintln(os.Stdout, helperPrefix+id)
		if i%helperCompact == helperCompact-1 {
			if err := s.Compact(); err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				return 5
			}
		}
	}
}

// TestCrashNeverLosesAcknowledgedOps kills a recording process with
// SIGKILL at random points, many times, and checks after each restart
// that every op ID it acknowledged is refused as a replay and that the
// store loads.
func TestCrashNeverLosesAcknowledgedOps(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary many times")
	}
	checkGoroutines(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nonces")
	const iterations = 60
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acked []string
	deadline := time.Now().Add(20 * time.Second)
	for it := 0; it < iterations && time.Now().Before(deadline); it++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path, helperRunEnv+"="+strconv.Itoa(it))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return // a line without its newline was not fully acknowledged
				}
				lines = append(lines, strings.TrimSuffix(line, "\n"))
			}
		}()
		time.Sleep(time.Duration(rng.IntN(60_000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("iteration %d: helper ended with %v before the kill: %s", it, err, stderr.String())
		}
		for _, l := range lines {
			id, ok := strings.CutPrefix(l, helperPrefix)
			if !ok {
				t.Fatalf("helper printed %q", l)
			}
			acked = append(acked, id)
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("iteration %d: reopen after kill: %v", it, err)
		}
		for _, id := range acked {
			now := time.Now()
			if err := s.Record(id, now.Add(time.Minute), now); !errors.Is(err, ErrReplay) {
				s.Close()
				t.Fatalf("iteration %d: acknowledged op %s: Record = %v, want ErrReplay", it, id, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) < iterations {
		t.Fatalf("only %d ops acknowledged in total; the kills came too early to test anything", len(acked))
	}
	t.Logf("%d acknowledged ops survived SIGKILLs", len(acked))
}

// checkGoroutines fails the test if it leaves goroutines behind.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for range 100 {
			if runtime.NumGoroutine() <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
	})
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type recorder interface {
	Record(opID string, expiresAt, issuedAt time.Time) error
	CheckClock(now time.Time) error
	Seen(opID string) bool
}

// TestSemantics runs the shared rules on both implementations.
func TestSemantics(t *testing.T) {
	impls := map[string]func(t *testing.T, o Options) recorder{
		"durable": func(t *testing.T, o Options) recorder {
			s, err := Open(filepath.Join(t.TempDir(), "n"), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"memory": func(t *testing.T, o Options) recorder { return NewMemory(o) },
	}
	for name, open := range impls {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: t0}
			r := open(t, Options{Now: clock.Now, Skew: 30 * time.Second})
			if err := r.Record("a", t0.Add(time.Minute), t0); err != nil {
				t.Fatal(err)
			}
			if !r.Seen("a") {
				t.Error("a not seen")
			}
			if err := r.Record("a", t0.Add(time.Minute), t0); !errors.Is(err, ErrReplay) {
				t.Errorf("replay: %v", err)
			}
			for _, bad := range []struct {
				id       string
				exp, iss time.Time
			}{
				{"", t0.Add(time.Minute), t0},
				{strings.Repeat("x", MaxOpIDLen+1), t0.Add(time.Minute), t0},
				{"b", t0, t0},
				{"b", time.Time{}, t0},
				{"b", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), t0},
			} {
				if err := r.Record(bad.id, bad.exp, bad.iss); err == nil || errors.Is(err, ErrReplay) {
					t.Errorf("Record(%q, %v, %v) = %v, want a validation error", bad.id, bad.exp, bad.iss, err)
				}
			}
			// An op issued ahead of the clock raises the high-water mark.
			if err := r.Record("ahead", t0.Add(2*time.Minute), t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			clock.Set(t0.Add(31 * time.Second)) // 29s behind: within the skew
			if err := r.CheckClock(clock.Now()); err != nil {
				t.Errorf("within skew: %v", err)
			}
			if err := r.Record("c", t0.Add(5*time.Minute), t0); err != nil {
				t.Errorf("within skew: %v", err)
			}
			clock.Set(t0.Add(29 * time.Second)) // 31s behind
			if err := r.CheckClock(clock.Now()); !errors.Is(err, ErrClockRollback) {
				t.Errorf("CheckClock after rollback: %v", err)
			}
			if err := r.Record("d", t0.Add(5*time.Minute), t0); !errors.Is(err, ErrClockRollback) {
				t.Errorf("Record after rollback: %v", err)
			}
		})
	}
}

func TestPersistenceAndPruning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n")
	clock := &fakeClock{t: t0}
	o := Options{Now: clock.Now, Skew: 30 * time.Second}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, o); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	for i := range 50 {
		if err := s.Record(fmt.Sprintf("short-%d", i), t0.Add(time.Minute), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Record("long", t0.Add(time.Hour), t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	sizeBefore := fileSize(t, path)
	s.Close()
	if err := s.Record("x", t0.Add(time.Minute), t0); !errors.Is(err, ErrClosed) {
		t.Errorf("record after close: %v", err)
	}

	// Reopen: everything is there, nothing pruned yet.
	s, err = Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 51 || !s.HighWater().Equal(t0.Add(10*time.Second)) {
		t.Errorf("after reopen: %d entries, high water %v", s.Len(), s.HighWater())
	}
	s.Close()

	// Past expiry + skew, opening prunes the short ones.
	clock.Set(t0.Add(time.Minute + 31*time.Second))
	s, err = Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 1 || !s.Seen("long") || s.Seen("short-0") {
		t.Errorf("after pruning: %d entries", s.Len())
	}
	if !s.Floor().Equal(t0.Add(time.Minute)) {
		t.Errorf("floor %v, want %v", s.Floor(), t0.Add(time.Minute))
	}
	if after := fileSize(t, path); after >= sizeBefore {
		t.Errorf("log did not shrink: %d -> %d bytes", sizeBefore, after)
	}
	// A pruned op can never come back, and neither can anything
	// expiring at or before it.
	if err := s.Record("short-0", t0.Add(time.Minute), t0); !errors.Is(err, ErrExpired) {
		t.Errorf("pruned op again: %v, want ErrExpired", err)
	}
	if err := s.Record("new-old", t0.Add(50*time.Second), t0); !errors.Is(err, ErrExpired) {
		t.Errorf("op expiring before the floor: %v, want ErrExpired", err)
	}
	// A clock set back before the floor is a rollback.
	if err := s.CheckClock(t0.Add(59 * time.Second)); !errors.Is(err, ErrClockRollback) {
		t.Errorf("clock before floor: %v", err)
	}
	if err := s.Record("new", t0.Add(5*time.Minute), clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left behind: %v", err)
	}
}

// TestAutomaticCompaction: the log stays small under a steady stream of
// short-lived ops.
func TestAutomaticCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n")
	clock := &fakeClock{t: t0}
	s, err := Open(path, Options{Now: clock.Now, Skew: time.Second, CompactAfter: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	maxSize := int64(0)
	for i := range 500 {
		now := t0.Add(time.Duration(i) * time.Second)
		clock.Set(now)
		if err := s.Record(fmt.Sprintf("op-%d", i), now.Add(5*time.Second), now); err != nil {
			t.Fatal(err)
		}
		maxSize = max(maxSize, fileSize(t, path))
	}
	// Live set is ~6 entries; the log holds at most CompactAfter more.
	if maxSize > int64(len(header)+40*(frameHeader+18+8)) {
		t.Errorf("log grew to %d bytes", maxSize)
	}
	if s.Len() > 30 {
		t.Errorf("%d live entries, want only the unexpired ones", s.Len())
	}
	for i := 490; i < 500; i++ {
		if !s.Seen(fmt.Sprintf("op-%d", i)) {
			t.Errorf("op-%d lost in compaction", i)
		}
	}
}

// TestTornTail truncates the log at every byte offset of its last record,
// and also appends junk, and checks that the store loads, keeps every
// earlier record, drops the torn one and stays writable.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 5 {
		if err := s.Record(fmt.Sprintf("op-%d", i), now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	lastStart := fileSize(t, path)
	if err := s.Record("last", now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	s.Close()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string][]byte{}
	for cut := int(lastStart); cut < len(full); cut++ {
		variants[fmt.Sprintf("cut at %d", cut)] = full[:cut]
	}
	variants["zeros"] = append(full[:lastStart:lastStart], make([]byte, maxFrame)...)
	variants["junk"] = append(full[:lastStart:lastStart], "\x00\x00\x00\x10garbage!"...)
	flipped := append([]byte(nil), full...)
	flipped[len(flipped)-1] ^= 0xff
	variants["bad crc"] = flipped
	for name, data := range variants {
		p := filepath.Join(dir, "v")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range 5 {
			if !s.Seen(fmt.Sprintf("op-%d", i)) {
				t.Errorf("%s: op-%d lost", name, i)
			}
		}
		if s.Seen("last") {
			t.Errorf("%s: torn record read as valid", name)
		}
		if got := fileSize(t, p); got != lastStart {
			t.Errorf("%s: file is %d bytes after load, want truncated to %d", name, got, lastStart)
		}
		if err := s.Record("after", now.Add(time.Hour), now); err != nil {
			t.Errorf("%s: record after repair: %v", name, err)
		}
		s.Close()
		s, err = Open(p, Options{})
		if err != nil {
			t.Fatalf("%s: reopen after repair: %v", name, err)
		}
		if !s.Seen("after") {
			t.Errorf("%s: record after repair lost", name)
		}
		s.Close()
	}
	// The complete file loads with the last record.
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Seen("last") {
		t.Error("complete last record not loaded")
	}
	s.Close()
}

// TestCorruptionFailsClosed: damage before the tail is not a torn write;
// loading must fail rather than forget ops.
func TestCorruptionFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 20 {
		if err := s.Record(fmt.Sprintf("op-%d", i), now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	data, _ := os.ReadFile(path)
	data[len(header)+frameHeader+30] ^= 0x01 // inside the first op record
	os.WriteFile(path, data, 0o600)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("open corrupt store: %v, want corruption error", err)
	}
	os.WriteFile(path, []byte("not a nonce store"), 0o600)
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("open foreign file: %v", err)
	}
	// A stale temp file from an interrupted compaction is removed.
	os.Remove(path)
	os.WriteFile(path+".tmp", []byte("partial"), 0o600)
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file kept: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func FuzzDecodeLog(f *testing.F) {
	st := newState()
	st.add("op-1", 1, 2)
	st.add("op-2", 3, 4)
	full := st.encode()
	f.Add(full, false)
	f.Add(full[:len(full)-3], false)
	f.Add([]byte(header), false)
	f.Add(append([]byte(header), 0, 0, 0, 1, 0, 0, 0, 0, 9), false)
	f.Add(append([]byte{18}, encodeOp("x", 1, 2)...), true)
	f.Add(append([]byte{17}, encodeState(5, 6)...), true)
	f.Fuzz(func(t *testing.T, data []byte, framed bool) {
		if framed {
			// Wrap chunks (a length byte, then that many bytes) in frames
			// with valid CRCs, so payload decoding is reached too.
			b := []byte(header)
			for len(data) > 0 {
				n := min(int(data[0]), len(data)-1)
				if n > 0 {
					b = appendFrame(b, data[1:1+n])
				}
				data = data[1+n:]
			}
			data = b
		}
		st, good, err := decodeLog(data)
		if err != nil {
			return
		}
		if good > len(data) || good < len(header) || len(data)-good > maxFrame {
			t.Fatalf("good prefix %d of %d bytes", good, len(data))
		}
		// The valid prefix decodes to the same state with nothing torn.
		again, good2, err := decodeLog(data[:good])
		if err != nil || good2 != good || len(again.entries) != len(st.entries) {
			t.Fatalf("prefix re-decode: %v, %d vs %d", err, good2, good)
		}
		enc := st.encode()
		round, g, err := decodeLog(enc)
		if err != nil || g != len(enc) || len(round.entries) != len(st.entries) || round.floor != st.floor || round.highWater != st.highWater {
			t.Fatalf("encode round trip: %v", err)
		}
	})
}

// BenchmarkRecord is the cost of one Record: write + fdatasync on the
// test's temp dir for the durable store, a map insert for Memory.
func BenchmarkRecord(b *testing.B) {
	for _, name := range []string{"durable", "memory"} {
		b.Run(name, func(b *testing.B) {
			var r recorder = NewMemory(Options{})
			if name == "durable" {
				s, err := Open(filepath.Join(b.TempDir(), "n"), Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				r = s
			}
			now := time.Now()
			i := 0
			for b.Loop() {
				if err := r.Record("op-"+strconv.Itoa(i), now.Add(10*time.Minute), now); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

var _ io.Closer = (*Store)(nil)
