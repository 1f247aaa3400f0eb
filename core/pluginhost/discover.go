package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// FilePrefix starts every plugin binary's name: felhom-plugin-<name>_v<semver>.
const FilePrefix = "felhom-plugin-"

// pluginName is the <name> part (the same rule core/config applies to
// plugins.allow_root and plugins.disabled).
var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// ParseFileName splits a plugin file name "felhom-plugin-<name>_v<semver>".
func ParseFileName(file string) (name string, v Version, err error) {
	rest, ok := strings.CutPrefix(file, FilePrefix)
	if !ok {
		return "", Version{}, fmt.Errorf("file name %q does not start with %q", file, FilePrefix)
	}
	name, ver, ok := strings.Cut(rest, "_v")
	if !ok {
		return "", Version{}, fmt.Errorf("file name %q: want %s<name>_v<semver>", file, FilePrefix)
	}
	if !pluginName.MatchString(name) {
		return "", Version{}, fmt.Errorf("file name %q: plugin name %q must be lowercase [a-z0-9-] starting with a letter", file, name)
	}
	v, err = ParseVersion(ver)
	if err != nil {
		return "", Version{}, fmt.Errorf("file name %q: %w", file, err)
	}
	return name, v, nil
}

// candidate is one plugin binary found in the directory.
type candidate struct {
	Name    string
	Version Version
	File    string // base name inside the plugin dir
}

// scan is the result of reading the plugin directory.
type scan struct {
	dir *os.File // held open: binaries are opened relative to it (openat)
	// byName lists each plugin's versions, newest first.
	byName map[string][]candidate
	// bad are files with the plugin prefix whose name does not parse.
	bad []Refusal
}

func (s *scan) close() {
	if s != nil && s.dir != nil {
		_ = s.dir.Close()
	}
}

func (s *scan) names() []string {
	out := make([]string, 0, len(s.byName))
	for n := range s.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// trustedOwner reports whether uid may own plugin files: root, or the
// agent's own user when the agent does not run as root (development).
func trustedOwner(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// checkOwnerMode is the rule for the plugin dir, each binary and the lock
// file: owned by a trusted user and not writable by group or others.
func checkOwnerMode(what string, st *unix.Stat_t) error {
	if !trustedOwner(st.Uid) {
		return fmt.Errorf("%s is owned by uid %d, not root", what, st.Uid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o): chmod go-w it", what, st.Mode&0o7777)
	}
	return nil
}

// searchable reports an error unless uid/gid (no supplementary groups) can
// traverse dir and every directory above it: unprivileged plugins create
// their sockets below dir.
func searchable(dir string, uid, gid uint32) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		var bit uint32
		switch {
		case st.Uid == uid:
			bit = 0o100
		case st.Gid == gid:
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return fmt.Errorf("%s (mode %04o, uid %d) is not searchable by uid %d", p, st.Mode&0o7777, st.Uid, uid)
		}
		if p == "/" {
			return nil
		}
	}
}

// scanDir opens the plugin directory, checks it, and lists the candidates.
// Only the directory itself is checked, not its parents (a test's temp dir
// sits under /tmp, which is world-writable with the sticky bit); the
// binaries are then opened relative to this directory's descriptor, so a
// parent swapped afterwards changes nothing.
func scanDir(dir string) (*scan, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening plugin dir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat plugin dir %s: %w", dir, err)
	}
	if err := checkOwnerMode("plugin dir "+dir, &st); err != nil {
		_ = f.Close()
		return nil, err
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("reading plugin dir %s: %w", dir, err)
	}
	s := &scan{dir: f, byName: map[string][]candidate{}}
	for _, e := range ents {
		file := e.Name()
		if !strings.HasPrefix(file, FilePrefix) {
			continue
		}
		name, v, err := ParseFileName(file)
		if err != nil {
			s.bad = append(s.bad, Refusal{File: file, Code: RefusedBadName, Reason: err.Error()})
			continue
		}
		s.byName[name] = append(s.byName[name], candidate{Name: name, Version: v, File: file})
	}
	for _, cs := range s.byName {
		sort.SliceStable(cs, func(i, j int) bool {
			if c := cs[i].Version.Compare(cs[j].Version); c != 0 {
				return c > 0
			}
			return cs[i].File > cs[j].File // same precedence, different build: stable order
		})
	}
	sort.Slice(s.bad, func(i, j int) bool { return s.bad[i].File < s.bad[j].File })
	return s, nil
}
