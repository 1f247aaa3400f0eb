package pluginhost

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

func openDir(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestOpenBinaryChecks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
	src := bin(t, fakeBin)
	dir := pluginDir(t, map[string]string{"felhom-plugin-ok_v1.0.0": src})
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		copyFile(t, src, p, mode)
		return p
	}
	mk("felhom-plugin-ww_v1.0.0", 0o757)
	mk("felhom-plugin-gw_v1.0.0", 0o775)
	mk("felhom-plugin-noexec_v1.0.0", 0o644)
	if err := os.Chown(mk("felhom-plugin-nobody_v1.0.0", 0o755), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "felhom-plugin-ok_v1.0.0"), filepath.Join(dir, "felhom-plugin-link_v1.0.0")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "felhom-plugin-fifo_v1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "felhom-plugin-dir_v1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := openDir(t, dir)

	b, err := openBinary(d, "felhom-plugin-ok_v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if int(b.f.Fd()) < minExecFD {
		t.Errorf("descriptor %d is below %d", b.f.Fd(), minExecFD)
	}
	if err := b.checkSafe(); err != nil {
		t.Errorf("checkSafe = %v", err)
	}
	data, _ := os.ReadFile(src)
	want := sha256.Sum256(data)
	if got, err := b.hash(); err != nil || got != hex.EncodeToString(want[:]) {
		t.Errorf("hash = %s, %v", got, err)
	}
	if !strings.HasPrefix(b.execPath(), "/proc/self/fd/") {
		t.Errorf("execPath = %s", b.execPath())
	}

	cases := map[string]string{
		"felhom-plugin-ww_v1.0.0":     "writable by group or others (mode 0757)",
		"felhom-plugin-gw_v1.0.0":     "writable by group or others (mode 0775)",
		"felhom-plugin-noexec_v1.0.0": "is not executable",
		"felhom-plugin-nobody_v1.0.0": "owned by uid 65534, not root",
		"felhom-plugin-link_v1.0.0":   "is a symlink",
		"felhom-plugin-fifo_v1.0.0":   "not a regular file",
		"felhom-plugin-dir_v1.0.0":    "not a regular file",
	}
	for file, want := range cases {
		b, err := openBinary(d, file)
		if err == nil {
			err = b.checkSafe()
			b.close()
		}
		re, ok := err.(*refusedError)
		if !ok || re.Code != RefusedUnsafeFile || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want unsafe_file containing %q", file, err, want)
		}
	}
}

func TestScanDirChecksTheDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"felhom-plugin-a_v1.0.0", "felhom-plugin-a_v1.10.0", "felhom-plugin-a_v1.9.0-rc.1", "felhom-plugin-b_v0.1.0", "felhom-plugin-Bad_v1", "README", "plugins.lock"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := scanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range s.byName["a"] {
		got = append(got, c.Version.String())
	}
	if strings.Join(got, " ") != "1.10.0 1.9.0-rc.1 1.0.0" || len(s.byName["b"]) != 1 || len(s.byName) != 2 {
		t.Errorf("byName = %v", s.byName)
	}
	if len(s.bad) != 1 || s.bad[0].File != "felhom-plugin-Bad_v1" || s.bad[0].Code != RefusedBadName {
		t.Errorf("bad = %+v", s.bad)
	}
	s.close()

	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := scanDir(dir); err == nil || !strings.Contains(err.Error(), "plugin dir "+dir+" is writable by group or others (mode 0777)") {
		t.Errorf("world-writable dir: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := scanDir(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 65534, not root") {
		t.Errorf("nobody-owned dir: %v", err)
	}
	if _, err := scanDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing dir scanned")
	}
}

// TestProcRunnerRunsTheCheckedDescriptor opens a binary, renames a
// non-executable file over its path, and starts it: what runs is the
// opened file, under the unprivileged user, in its own process group, with
// exactly the environment given and the file name as argv[0].
func TestProcRunnerRunsTheCheckedDescriptor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	checkGoroutines(t)
	const file = "felhom-plugin-whoami_v1.0.0"
	dir := pluginDir(t, map[string]string{file: bin(t, fakeBin)})
	b, err := openBinary(openDir(t, dir), file)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	// The swap: an exec by path would now fail with "exec format error".
	swapped := filepath.Join(dir, "swap.tmp")
	if err := os.WriteFile(swapped, []byte("not an executable\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(swapped, filepath.Join(dir, file)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PLUGINHOST_LEAK_CHECK", "host-only")

	cred := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	r := newProcRunner(hclog.NewNullLogger(), "whoami", b, cred, []string{"A=1", "PATH=/usr/bin:/bin"}, nil)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(r.ID())
	line, err := bufio.NewReader(r.Stdout()).ReadString('\n')
	if err != nil {
		t.Fatalf("reading whoami: %v", err)
	}
	want := "uid=65534 gid=65534 pgid=" + strconv.Itoa(pid) + " argv0=" + file + " env=A=1,PATH=/usr/bin:/bin\n"
	if line != want {
		t.Errorf("plugin said %q\nwant        %q", line, want)
	}
	if uid, err := procStatus(pid, "Uid"); err != nil || uid != "65534\t65534\t65534\t65534" {
		t.Errorf("/proc/%d/status Uid = %q, %v", pid, uid, err)
	}
	if err := r.Kill(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = r.Stderr().Read(make([]byte, 1)) }() // drained like go-plugin does
	// Wait is quiet about a kill we asked for (go-plugin logs a Wait error
	// as a plugin failure); the exit is still recorded.
	if err := r.Wait(context.Background()); err != nil {
		t.Errorf("Wait after our Kill = %v, want nil", err)
	}
	if r.exitDescription() != "signal: killed" || r.exitedByItself() {
		t.Errorf("exit = %q, by itself %v", r.exitDescription(), r.exitedByItself())
	}
	if err := r.Kill(context.Background()); err != nil {
		t.Errorf("second Kill = %v", err)
	}
}
