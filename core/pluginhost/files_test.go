package pluginhost

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersionAndCompare(t *testing.T) {
	// Ascending precedence, from semver.org §11.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, err := ParseVersion(order[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ParseVersion(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	v, err := ParseVersion("1.2.3-rc.1+build.5")
	if err != nil || v.Major != 1 || v.Minor != 2 || v.Patch != 3 || v.Build != "build.5" || v.String() != "1.2.3-rc.1+build.5" {
		t.Errorf("ParseVersion = %+v, %v", v, err)
	}
	a, _ := ParseVersion("1.0.0+a")
	b, _ := ParseVersion("1.0.0+b")
	if a.Compare(b) != 0 {
		t.Error("build metadata changed precedence")
	}
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.x", "1.2.3-", "1.2.3-a..b", "1.2.3-01", "1.2.3+", "1.2.3-a_b", "v1.2.3", "99999999999999999999.0.0", "1.2.3-99999999999999999999"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func TestParseFileName(t *testing.T) {
	name, v, err := ParseFileName("felhom-plugin-nfs-storage_v1.2.0-rc.1")
	if err != nil || name != "nfs-storage" || v.String() != "1.2.0-rc.1" {
		t.Fatalf("ParseFileName = %q %v %v", name, v, err)
	}
	bad := map[string]string{
		"felhom-plugin-storage":          "want felhom-plugin-<name>_v<semver>",
		"felhom-plugin-Storage_v1.0.0":   "plugin name",
		"felhom-plugin-st_x_v1.0.0":      "plugin name",
		"felhom-plugin-storage_v1.0":     "MAJOR.MINOR.PATCH",
		"felhom-plugin-_v1.0.0":          "plugin name",
		"other-storage_v1.0.0":           "does not start with",
		"felhom-plugin-storage_v1.0.0.x": "MAJOR.MINOR.PATCH",
	}
	for file, want := range bad {
		if _, _, err := ParseFileName(file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFileName(%q) = %v, want error containing %q", file, err, want)
		}
	}
}

const (
	sumA = "a3f1c2d4e5b60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	sumB = "0000000000000000000000000000000000000000000000000000000000000001"
)

func TestLockRoundTripAndErrors(t *testing.T) {
	in := map[string]string{"felhom-plugin-storage_v1.2.0": sumA, "felhom-plugin-usb_v0.3.0": sumB}
	out, err := ParseLock(FormatLock(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out["felhom-plugin-storage_v1.2.0"] != sumA || out["felhom-plugin-usb_v0.3.0"] != sumB {
		t.Fatalf("round trip = %v", out)
	}
	// sha256sum's binary marker and uppercase hex are accepted.
	out, err = ParseLock([]byte(strings.ToUpper(sumA) + " *felhom-plugin-smart_v1.0.0\r\n"))
	if err != nil || out["felhom-plugin-smart_v1.0.0"] != sumA {
		t.Fatalf("ParseLock = %v, %v", out, err)
	}
	bad := map[string]string{
		"abc  felhom-plugin-x_v1.0.0\n":                                           "line 1",
		"# c\n" + sumA + " felhom-plugin-x_v1.0.0\n":                              "line 2: want two spaces",
		strings.Replace(sumA, "a", "g", 1) + "  felhom-plugin-x_v1.0.0\n":         "not a 64-digit hex",
		sumA + "  ../felhom-plugin-x_v1.0.0\n":                                    "does not start with",
		sumA + "  felhom-plugin-x_v1.0.0\n" + sumB + "  felhom-plugin-x_v1.0.0\n": "line 2: felhom-plugin-x_v1.0.0 is listed twice",
	}
	for data, want := range bad {
		if _, err := ParseLock([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLock(%q) = %v, want error containing %q", data, err, want)
		}
	}
}

func TestReadLockChecksOwnerAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.lock")
	if _, err := readLock(path); !errors.Is(err, errLockMissing) {
		t.Fatalf("missing lock = %v", err)
	}
	if err := writeFileAtomic(path, FormatLock(map[string]string{"felhom-plugin-x_v1.0.0": sumA}), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := readLock(path); err != nil || m["felhom-plugin-x_v1.0.0"] != sumA {
		t.Fatalf("readLock = %v, %v", m, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := readLock(path); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("world-writable lock = %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := readLock(path); err == nil || !strings.Contains(err.Error(), "owned by uid 65534, not root") {
			t.Fatalf("nobody-owned lock = %v", err)
		}
	}
	link := filepath.Join(dir, "link.lock")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := readLock(link); err == nil {
		t.Fatal("readLock followed a symlink")
	}
}

func TestWriteFileAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.lock")
	for i := 0; i < 2; i++ {
		if err := writeFileAtomic(path, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %d entries, want only the lock file", len(ents))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o644); err == nil {
		t.Fatal("write into a missing dir succeeded")
	}
}

func TestLineRing(t *testing.T) {
	r := newLineRing(3)
	for _, s := range []string{"one", "\n", "two\nthree\n", "four", "\n", "part"} {
		_, _ = r.Write([]byte(s))
	}
	got := strings.Join(r.Lines(), "|")
	if got != "two|three|four|part" {
		t.Fatalf("Lines = %q", got)
	}
	_, _ = r.Write([]byte(strings.Repeat("x", 5000) + "\n"))
	lines := r.Lines()
	if n := len(lines[len(lines)-1]); n != maxLineLen {
		t.Fatalf("long line kept %d bytes, want %d", n, maxLineLen)
	}
}

func TestAuditRing(t *testing.T) {
	a := newAuditRing(2)
	for _, k := range []string{"a", "b", "c"} {
		a.add(AuditEvent{Kind: k})
	}
	got := a.list()
	if len(got) != 2 || got[0].Kind != "b" || got[1].Kind != "c" {
		t.Fatalf("list = %+v", got)
	}
}

func FuzzParseLock(f *testing.F) {
	f.Add([]byte(FormatLock(map[string]string{"felhom-plugin-storage_v1.2.0": sumA})))
	f.Add([]byte("# only a comment\n\n"))
	f.Add([]byte(sumA + " *felhom-plugin-a_v1.0.0-rc.1+b\r\n"))
	f.Add([]byte(sumA + "  felhom-plugin-a_v1.0.0\n" + sumA + "  felhom-plugin-a_v1.0.0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseLock(data)
		if err != nil {
			return
		}
		again, err := ParseLock(FormatLock(m))
		if err != nil {
			t.Fatalf("formatted lock does not parse: %v", err)
		}
		if len(again) != len(m) {
			t.Fatalf("round trip changed %d entries to %d", len(m), len(again))
		}
		for f, s := range m {
			if again[f] != s || len(s) != 64 {
				t.Fatalf("entry %s changed", f)
			}
		}
	})
}

func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{"felhom-plugin-storage_v1.2.0", "felhom-plugin-a_v1.0.0-rc.1+b.2", "felhom-plugin-a_v01.0.0", "felhom-plugin-_v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, v, err := ParseFileName(s)
		if err != nil {
			return
		}
		if FilePrefix+name+"_v"+v.String() != s {
			t.Fatalf("%q split into %q and %q", s, name, v)
		}
		if strings.ContainsAny(s, "/\x00") {
			t.Fatalf("accepted %q", s)
		}
		if v.Compare(v) != 0 {
			t.Fatalf("version %s not equal to itself", v)
		}
	})
}

// TestHashMappedSurvivesTruncation maps more than the file holds (as when
// a file is truncated while it is hashed): the fault must come back as an
// error, not crash the agent.
func TestHashMappedSurvivesTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := hashMapped(f, 1<<20); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := hashMapped(f, 1<<20); err == nil || !strings.Contains(err.Error(), "file changed while it was hashed") {
		t.Fatalf("truncated file: %v", err)
	}
}
