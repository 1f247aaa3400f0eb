package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// setVar sets *p to v for the test.
func setVar[T any](t *testing.T, p *T, v T) {
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}

// verifyFile opens file in dir and verifies it against lock with cache.
func verifyFile(t *testing.T, dir, file string, lock map[string]string, cache *hashCache) (*binary, error) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := openBinary(d, file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return b, b.verify(lock, "plugins.lock", cache)
}

func refusalCode(err error) RefusalCode {
	return asRefusal(candidate{}, err).Code
}

// TestVerifyRemembersOnlySettledUnchangedFiles: the hash cache answers only
// for the very file state it hashed, and only once the file had been left
// alone for hashSettle; any change means hashing again.
func TestVerifyRemembersOnlySettledUnchangedFiles(t *testing.T) {
	setVar(t, &hashSettle, 50*time.Millisecond)
	const file = "felhom-plugin-alpha_v1.0.0"
	dir := t.TempDir()
	path := filepath.Join(dir, file)
	content := bytes.Repeat([]byte("plugin-a"), 1<<16)
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	lock := map[string]string{file: hex.EncodeToString(sum[:])}
	var cache hashCache

	// Just written: hashed, matching, but not remembered.
	b, err := verifyFile(t, dir, file, lock, &cache)
	if err != nil || b.cached || len(cache.m) != 0 {
		t.Fatalf("fresh file: err %v, cached %v, %d remembered; want hashed, not remembered", err, b.cached, len(cache.m))
	}
	time.Sleep(hashSettle + 20*time.Millisecond)
	if b, err = verifyFile(t, dir, file, lock, &cache); err != nil || b.cached || len(cache.m) != 1 {
		t.Fatalf("settled file: err %v, cached %v, %d remembered; want hashed and remembered", err, b.cached, len(cache.m))
	}
	if b, err = verifyFile(t, dir, file, lock, &cache); err != nil || !b.cached || b.sha256 != lock[file] {
		t.Fatalf("unchanged file: err %v, cached %v, sha %s; want the remembered hash", err, b.cached, b.sha256)
	}

	// Changed in place, same size: mtime and ctime move, so it is hashed
	// again and refused.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tampered"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err = verifyFile(t, dir, file, lock, &cache); b.cached || refusalCode(err) != RefusedHashMismatch {
		t.Fatalf("file changed in place: err %v, cached %v; want hashed again and refused", err, b.cached)
	}

	// Replaced by another file with the pinned content: another inode, so
	// hashed again (and accepted).
	tmp := filepath.Join(dir, "new.tmp")
	if err := os.WriteFile(tmp, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if b, err = verifyFile(t, dir, file, lock, &cache); err != nil || b.cached {
		t.Fatalf("replaced file: err %v, cached %v; want hashed again and accepted", err, b.cached)
	}

	// Not pinned: refused before any hashing.
	if b, err = verifyFile(t, dir, file, map[string]string{}, &cache); refusalCode(err) != RefusedNotPinned || b.sha256 != "" {
		t.Fatalf("unpinned: err %v, sha %q", err, b.sha256)
	}
}

// TestHashMappedUnmapsTheFile: hashing in chunks must not leave the
// mapping behind (one leaked 13 MB mapping per launch otherwise).
func TestHashMappedUnmapsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped-file")
	content := bytes.Repeat([]byte{7}, 3*hashChunk+123)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := hashMapped(f, int64(len(content)))
	if want := sha256.Sum256(content); err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("hashMapped = %x, %v; want %x", got, err, want)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(maps), path) {
		t.Errorf("%s is still mapped after hashing:\n%s", path, maps)
	}
}

func TestHashGate(t *testing.T) {
	ctx := context.Background()
	returned := func(m *gateMember, ctx context.Context) chan struct{} {
		done := make(chan struct{})
		go func() {
			m.wait(ctx)
			close(done)
		}()
		return done
	}
	early := func(done chan struct{}, what string) {
		t.Helper()
		select {
		case <-done:
			t.Fatalf("wait returned %s", what)
		case <-time.After(30 * time.Millisecond):
		}
	}

	g := newHashGate(3)
	m1, m2, m3 := g.member(), g.member(), g.member()
	done := returned(m1, ctx)
	early(done, "while two members were still hashing")
	m3.hashed()
	m3.hashed() // counted once
	early(done, "with one member still hashing (a member counted twice?)")
	m2.hashed()
	<-done
	m2.wait(ctx) // the gate stays open

	var none *gateMember // restarts have no gate
	none.hashed()
	none.wait(ctx)
	newHashGate(0).member().wait(ctx)

	// A member that never hashes holds the others at most gateMax, or
	// until ctx ends.
	setVar(t, &gateMax, 50*time.Millisecond)
	g = newHashGate(2)
	t0 := time.Now()
	g.member().wait(ctx)
	if d := time.Since(t0); d < gateMax {
		t.Errorf("wait returned after %v, before gateMax %v", d, gateMax)
	}
	setVar(t, &gateMax, time.Hour)
	cctx, cancel := context.WithCancel(ctx)
	done = returned(newHashGate(2).member(), cctx)
	early(done, "before ctx ended")
	cancel()
	<-done
}

func TestStampsDurations(t *testing.T) {
	t0 := time.Now()
	s := &stamps{begin: t0}
	s.at[phaseOpen] = t0.Add(1 * time.Millisecond)
	// phaseHash not marked: a cache hit.
	s.at[phasePrepare] = t0.Add(3 * time.Millisecond)
	s.at[phaseExec] = t0.Add(7 * time.Millisecond)
	d := s.durations()
	if d[phaseOpen] != time.Millisecond || d[phaseHash] != 0 || d[phasePrepare] != 2*time.Millisecond || d[phaseExec] != 4*time.Millisecond || d[phaseInfo] != 0 {
		t.Errorf("durations = %v", d)
	}
	if s.end() != t0.Add(7*time.Millisecond) {
		t.Errorf("end = %v", s.end().Sub(t0))
	}
	var none *stamps
	none.mark(phaseOpen) // restarts' callers may pass nil
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartLogsPhases: at debug level Start says where each plugin's time
// went, phase by phase.
func TestStartLogsPhases(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": bin(t, testBin), "felhom-plugin-beta_v1.0.0": bin(t, testBin)})
	pin(t, dir)
	var out syncBuffer
	h := startHost(t, Options{Dir: dir, Logger: hclog.New(&hclog.LoggerOptions{Name: "felhom-agent", Level: hclog.Debug, Output: &out})})
	_ = h.Stop(context.Background())
	var phases []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "plugin start phases") {
			phases = append(phases, line)
		}
	}
	if len(phases) != 2 || !strings.Contains(phases[0], "plugin=alpha") || !strings.Contains(phases[1], "plugin=beta") {
		t.Fatalf("phase lines:\n%s", strings.Join(phases, "\n"))
	}
	for _, line := range phases {
		for _, name := range append([]string{"ready_at"}, phaseNames[:]...) {
			if !strings.Contains(line, " "+name+"=") {
				t.Errorf("no %s in %q", name, line)
			}
		}
	}
	if !strings.Contains(out.String(), "plugin host started: total=") {
		t.Errorf("no summary line in:\n%s", out.String())
	}
}

// TestRestartUsesRememberedHash: a crashed plugin whose binary did not
// change restarts without hashing it again; one whose binary was replaced
// is hashed again and refused.
func TestRestartUsesRememberedHash(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	checkGoroutines(t)
	setVar(t, &hashSettle, 50*time.Millisecond)
	const file = "felhom-plugin-alpha_v1.0.0"
	dir := pluginDir(t, map[string]string{file: bin(t, testBin)})
	pin(t, dir)
	time.Sleep(hashSettle + 20*time.Millisecond)
	h := startHost(t, Options{Dir: dir, Restart: RestartPolicy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxCrashes: 3, Window: time.Minute}})
	cur := func() *instance {
		m := h.plugins["alpha"]
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.cur
	}
	first := cur()
	if first.stamps.at[phaseHash].IsZero() {
		t.Fatal("the first launch did not hash the binary")
	}
	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "restart", func() bool {
		i := cur()
		return i != nil && i != first && statusOf(t, h, "alpha").State == StateRunning
	})
	second := cur()
	if !second.stamps.at[phaseHash].IsZero() || second.sha != first.sha {
		t.Errorf("restart of the unchanged binary hashed it again (sha %s, first %s)", second.sha, first.sha)
	}
	mustInvoke(t, h, "alpha.echo", nil)

	// Another binary renamed over the path: hashed again, refused.
	copyFile(t, bin(t, fakeBin), filepath.Join(dir, "swap.tmp"), 0o755)
	if err := os.Rename(filepath.Join(dir, "swap.tmp"), filepath.Join(dir, file)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(second.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "quarantine", func() bool { return statusOf(t, h, "alpha").State == StateQuarantined })
	if st := statusOf(t, h, "alpha"); st.PID != 0 || !strings.Contains(st.LastExit, "restart failed: SHA-256 of "+file) {
		t.Errorf("after the binary was replaced: pid %d, last exit %q; want no process, refused by hash", st.PID, st.LastExit)
	}
}
