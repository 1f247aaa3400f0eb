package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"

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
// largest cost of a cold start (several MB per plugin), so the file is
// mapped rather than read: that saves copying it out of the page cache.
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
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	defer func() { _ = unix.Munmap(data) }()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			sum, err = nil, fmt.Errorf("file changed while it was hashed: %v", r)
		}
	}()
	s := sha256.Sum256(data)
	return s[:], nil
}

// checkPinned compares the descriptor's hash with the lock entry.
func (b *binary) checkPinned(lock map[string]string, lockPath string) error {
	want, ok := lock[b.file]
	if !ok {
		return refuse(RefusedNotPinned, nil, "SHA-256 of %s is not pinned in %s: run `felhom-agent plugins pin` after installing it", b.file, lockPath)
	}
	got, err := b.hash()
	if err != nil {
		return err
	}
	if got != want {
		return refuse(RefusedHashMismatch, nil, "SHA-256 of %s is %s but %s pins %s: the file changed since it was pinned", b.file, got, lockPath, want)
	}
	return nil
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
