package sdk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ReleaseMemory lowers an idle plugin's resident memory. Serve runs it
// about a second after the first Configure and again whenever the plugin
// has been idle for a minute; call it yourself after a large one-off job.
//
// It returns freed heap to the kernel (debug.FreeOSMemory) and drops this
// process's page mappings of its read-only file-backed mappings (program
// text and rodata: most of a Go plugin's RSS, mapped during start-up and
// rarely needed again) with madvise(MADV_DONTNEED). Those pages are clean
// and stay in the page cache, so touching them again costs a minor fault,
// not disk I/O. Honestly put: this shrinks the RSS the process is charged
// with and turns the pages into easily reclaimable cache; the kernel frees
// the memory itself only when it needs it. Mappings holding any private
// (copy-on-write) page are skipped, so relocated read-only data is never
// discarded. It returns the bytes of mappings it advised.
func ReleaseMemory() (advised int64, err error) {
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("release memory: %w", err)
	}
	defer f.Close()
	regions, err := readOnlyFileRegions(f)
	if err != nil {
		return 0, fmt.Errorf("release memory: %w", err)
	}
	for _, r := range regions {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); e != 0 {
			return advised, fmt.Errorf("release memory: madvise %x-%x: %w", r.start, r.end, e)
		}
		advised += int64(r.end - r.start)
	}
	return advised, nil
}

type region struct{ start, end uintptr }

// readOnlyFileRegions parses /proc/self/smaps and returns private,
// non-writable, file-backed mappings that hold no anonymous pages.
func readOnlyFileRegions(r io.Reader) ([]region, error) {
	var out []region
	var cur *region
	keep := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	flush := func() {
		if cur != nil && keep {
			out = append(out, *cur)
		}
		cur, keep = nil, false
	}
	for sc.Scan() {
		line := sc.Bytes()
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && !bytes.ContainsAny(k, " -") {
			// A field of the current mapping.
			if cur != nil && string(k) == "Anonymous" && strings.TrimSpace(string(v)) != "0 kB" {
				keep = false
			}
			continue
		}
		flush()
		fields := strings.Fields(string(line))
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") {
			continue // anonymous, [heap], [stack], [vdso], ...
		}
		perms := fields[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		cur, keep = &region{start: uintptr(start), end: uintptr(end)}, true
	}
	flush()
	return out, sc.Err()
}

// memoryJanitor runs ReleaseMemory after start-up and after idle periods.
type memoryJanitor struct {
	lastCall atomic.Int64 // unix nanos of the last call's start
}

func (j *memoryJanitor) touch() { j.lastCall.Store(time.Now().UnixNano()) }

// run releases memory once after settle, then again each time the plugin
// has been quiet for idle after a call; it returns when ctx ends.
func (j *memoryJanitor) run(ctx context.Context, settle, idle time.Duration) {
	t := time.NewTimer(settle)
	defer t.Stop()
	releasedAt := int64(-1) // lastCall when memory was last released
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last := j.lastCall.Load()
		if last == releasedAt {
			t.Reset(idle) // no call since the last release
			continue
		}
		if releasedAt != -1 {
			if quiet := time.Since(time.Unix(0, last)); quiet < idle {
				t.Reset(idle - quiet)
				continue
			}
		}
		_, _ = ReleaseMemory()
		releasedAt = last
		t.Reset(idle)
	}
}
