package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// binary is a plugin file opened once for checking and exec. Every check
// (owner, mode, SHA-256) is made on this descriptor, and the plugin is
// executed through /proc/self/fd/N of the same descriptor, so renaming
// another file over the path after the check changes nothing: go-plugin's
// SecureConfig hashes by path and then execs by path, which leaves a window.
type binary struct {
	file   string   // base name
	f      *os.File // fd >= minExecFD, close-on-exec
	st     unix.Stat_t
	sha256 string
	cached bool // sha256 came from the Host's hashCache
}

// minExecFD keeps the held descriptor above the range exec.Cmd remaps for
// ExtraFiles (3, 4, ...) in the child, which could otherwise dup2 over it
// before execve resolves /proc/self/fd/N.
const minExecFD = 100

// openBinary opens file relative to dir without following a symlink (a
// FIFO cannot block us either: O_NONBLOCK) and stats the descriptor.
func openBinary(dir *os.File, file string) (*binary, error) {
	fd, err := unix.Openat(int(dir.Fd()), file, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, refuse(RefusedUnsafeFile, err, "%s is a symlink: plugin binaries must be regular files in the plugin dir", file)
		}
		return nil, refuse(RefusedUnsafeFile, err, "opening %s: %v", file, err)
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minExecFD)
	_ = unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("dup %s above fd %d: %w", file, minExecFD, err)
	}
	b := &binary{file: file, f: os.NewFile(uintptr(high), file)}
	if err := unix.Fstat(high, &b.st); err != nil {
		b.close()
		return nil, fmt.Errorf("stat %s: %w", file, err)
	}
	if b.st.Mode&unix.S_IFMT != unix.S_IFREG {
		b.close()
		return nil, refuse(RefusedUnsafeFile, nil, "%s is not a regular file", file)
	}
	return b, nil
}

// checkSafe applies the owner/mode rule to the open descriptor.
func (b *binary) checkSafe() error {
	if err := checkOwnerMode(b.file, &b.st); err != nil {
		return refuse(RefusedUnsafeFile, err, "%v", err)
	}
	if b.st.Mode&0o111 == 0 {
		return refuse(RefusedUnsafeFile, nil, "%s is not executable (mode %04o)", b.file, b.st.Mode&0o7777)
	}
	return nil
}

// hash computes the SHA-256 of the descriptor's content. Hashing is the
// largest cost of a cold start (~10 ms of CPU per 13 MB), so the file is
// mapped rather than read: that saves copying it out of the page cache
// (~1.5 ms per 13 MB less than pread into a buffer).
func (b *binary) hash() (string, error) {
	if b.sha256 != "" {
		return b.sha256, nil
	}
	sum, err := hashMapped(b.f, b.st.Size)
	if err != nil {
		// Not mappable (an empty file, an odd filesystem): read it.
		h := sha256.New()
		if _, rerr := io.Copy(h, io.NewSectionReader(b.f, 0, b.st.Size)); rerr != nil {
			return "", fmt.Errorf("hashing %s: %w", b.file, errors.Join(err, rerr))
		}
		sum = h.Sum(nil)
	}
	b.sha256 = hex.EncodeToString(sum)
	return b.sha256, nil
}

// hashMapped hashes size bytes of f through a read-only private mapping.
// A file truncated under the mapping faults (SIGBUS); SetPanicOnFault
// turns that into a panic recovered here, instead of a crashed agent.
func hashMapped(f *os.File, size int64) (sum []byte, err error) {
	if size <= 0 || size > 1<<32 {
		return nil, fmt.Errorf("size %d not mappable", size)
	}
	// No MAP_POPULATE: faulting the pages in while hashing costs ~0.8 ms
	// less per 13 MB than populating the whole range first (the pages are
	// in the page cache; a cold cache reads ahead, MADV_SEQUENTIAL).
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	defer func() { _ = unix.Munmap(data) }()
	_ = unix.Madvise(data, unix.MADV_SEQUENTIAL) // advice only
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			sum, err = nil, fmt.Errorf("file changed while it was hashed: %v", r)
		}
	}()
	h := sha256.New()
	for rest := data; len(rest) > 0; {
		n := min(len(rest), hashChunk)
		h.Write(rest[:n])
		rest = rest[n:]
		// A hash takes ~10 ms of CPU; without yielding, a few of them hold
		// every P until the scheduler preempts them (10 ms), and the
		// goroutines driving other plugins' handshakes and calls wait.
		runtime.Gosched()
	}
	return h.Sum(nil), nil
}

// hashChunk is how much is hashed between yields to the scheduler (~0.2 ms).
const hashChunk = 256 << 10

// hashKey is what the kernel says about a file's content: the same inode
// with the same size, mtime and ctime. Writing to the file changes mtime
// and ctime; ctime cannot be set from user space.
type hashKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func keyOf(st *unix.Stat_t) hashKey {
	return hashKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// hashSettle is how long a file must have been unchanged before its hash
// is remembered: a write in the same clock tick as the one before our
// fstat could leave mtime and ctime as they were (coarse kernel
// timestamps). A variable for tests only.
var hashSettle = time.Second

// hashCache remembers the SHA-256 computed for each binary file name in
// this process, keyed on its hashKey, so that a restart or a rolling
// upgrade of an unchanged file does not hash it again. It lives in the
// Host only: it is never written anywhere, and every Start of a new agent
// process hashes every binary. The first launch of a file always hashes
// the descriptor it executes; a hit needs the same inode, unchanged.
type hashCache struct {
	mu sync.Mutex
	m  map[string]cachedHash // file name -> last verified state
}

type cachedHash struct {
	key hashKey
	sum string
}

func (c *hashCache) get(file string, k hashKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[file]
	if !ok || e.key != k {
		return "", false
	}
	return e.sum, true
}

func (c *hashCache) put(file string, k hashKey, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedHash{}
	}
	c.m[file] = cachedHash{key: k, sum: sum}
}

// verify compares the descriptor's SHA-256 with the lock entry. The hash
// comes from cache when this Host already hashed this very file state;
// otherwise it is computed from the descriptor that will be executed, and
// remembered when the file was stable: unchanged for hashSettle before
// hashing and still the same after.
func (b *binary) verify(lock map[string]string, lockPath string, cache *hashCache) error {
	want, ok := lock[b.file]
	if !ok {
		return refuse(RefusedNotPinned, nil, "SHA-256 of %s is not pinned in %s: run `felhom-agent plugins pin` after installing it", b.file, lockPath)
	}
	k := keyOf(&b.st)
	got, hit := cache.get(b.file, k)
	if hit {
		b.sha256, b.cached = got, true
	} else {
		start := time.Now()
		sum, err := b.hash()
		if err != nil {
			return err
		}
		got = sum
		if b.stable(start) {
			cache.put(b.file, k, sum)
		}
	}
	if got != want {
		return refuse(RefusedHashMismatch, nil, "SHA-256 of %s is %s but %s pins %s: the file changed since it was pinned", b.file, got, lockPath, want)
	}
	return nil
}

// stable reports whether the file was last changed at least hashSettle
// before start and is unchanged now.
func (b *binary) stable(start time.Time) bool {
	old := start.Add(-hashSettle)
	if time.Unix(b.st.Mtim.Unix()).After(old) || time.Unix(b.st.Ctim.Unix()).After(old) {
		return false
	}
	var now unix.Stat_t
	if err := unix.Fstat(int(b.f.Fd()), &now); err != nil {
		return false
	}
	return keyOf(&now) == keyOf(&b.st)
}

// execPath is the path that makes execve open this very descriptor.
func (b *binary) execPath() string {
	return "/proc/self/fd/" + strconv.Itoa(int(b.f.Fd()))
}

func (b *binary) close() {
	if b != nil && b.f != nil {
		_ = b.f.Close()
	}
}
