package pluginhost

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// The lock file uses sha256sum's format, so an operator can check it with
// `cd DIR && sha256sum -c plugins.lock`:
//
//	# comment
//	<64 hex digits>  felhom-plugin-storage_v1.2.0
//
// One line per binary, keyed by file name; a file whose name appears twice
// is an error. "<hex> *<file>" (sha256sum's binary marker) is accepted.

// errLockMissing: there is no lock file, so nothing is pinned.
var errLockMissing = errors.New("lock file missing")

// ParseLock parses a plugins.lock: file name -> lowercase hex SHA-256.
// Errors name the line.
func ParseLock(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if len(line) < 64+2 {
			return nil, fmt.Errorf("plugins.lock line %d: want \"<sha256 hex>  <file>\"", n)
		}
		sum := strings.ToLower(line[:64])
		if !isHex(sum) {
			return nil, fmt.Errorf("plugins.lock line %d: %q is not a 64-digit hex SHA-256", n, line[:64])
		}
		sep := line[64:66]
		if sep != "  " && sep != " *" {
			return nil, fmt.Errorf("plugins.lock line %d: want two spaces between the hash and the file name", n)
		}
		file := line[66:]
		if _, _, err := ParseFileName(file); err != nil {
			return nil, fmt.Errorf("plugins.lock line %d: %w", n, err)
		}
		if _, dup := out[file]; dup {
			return nil, fmt.Errorf("plugins.lock line %d: %s is listed twice", n, file)
		}
		out[file] = sum
	}
	return out, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// FormatLock renders entries (file -> hex SHA-256) sorted by file name.
func FormatLock(entries map[string]string) []byte {
	files := make([]string, 0, len(entries))
	for f := range entries {
		files = append(files, f)
	}
	sort.Strings(files)
	var b bytes.Buffer
	b.WriteString("# felhom-agent plugins.lock: the SHA-256 of each plugin binary allowed to run.\n")
	b.WriteString("# Written by `felhom-agent plugins pin`; sha256sum format (check: cd PLUGIN_DIR && sha256sum -c FILE).\n")
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", entries[f], f)
	}
	return b.Bytes()
}

// readLock reads and checks the lock file: it decides what may run, so it
// obeys the same owner/mode rule as the binaries.
func readLock(path string) (map[string]string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, errLockMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat lock file %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("lock file %s is not a regular file", path)
	}
	if err := checkOwnerMode("lock file "+path, &st); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading lock file %s: %w", path, err)
	}
	m, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// writeFileAtomic writes data to path whole or not at all: a temp file in
// the same directory, fsync, rename, then fsync of the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating temp file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming into place: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to fsync: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// Pinned is one binary written to the lock file by [Pin].
type Pinned struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Warning says why the binary will still be refused (owner, mode).
	Warning string `json:"warning,omitempty"`
}

// Pin hashes every plugin binary now in dir and writes the lock file at
// lockPath (replacing it atomically). It pins what is there: a binary
// that the owner/mode rule will refuse anyway is pinned with a Warning.
// Files whose names do not parse are returned as refusals, not pinned.
func Pin(dir, lockPath string) ([]Pinned, []Refusal, error) {
	s, err := scanDir(dir)
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	entries := map[string]string{}
	var pinned []Pinned
	for _, name := range s.names() {
		for _, c := range s.byName[name] {
			b, err := openBinary(s.dir, c.File)
			if err != nil {
				return nil, nil, fmt.Errorf("pinning %s: %w", c.File, err)
			}
			var warn string
			if err := b.checkSafe(); err != nil {
				warn = "will be refused: " + err.Error()
			}
			sum, err := b.hash()
			if err != nil {
				b.close()
				return nil, nil, err
			}
			entries[c.File] = sum
			pinned = append(pinned, Pinned{File: c.File, SHA256: sum, Warning: warn})
			b.close()
		}
	}
	sort.Slice(pinned, func(i, j int) bool { return pinned[i].File < pinned[j].File })
	if err := writeFileAtomic(lockPath, FormatLock(entries), 0o644); err != nil {
		return nil, nil, fmt.Errorf("writing lock file %s: %w", lockPath, err)
	}
	return pinned, s.bad, nil
}
