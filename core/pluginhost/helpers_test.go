package pluginhost

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test binaries are built once per test process, on first use (fuzz workers
// that never need them never build them), static and stripped like release
// builds, into one temp dir removed by TestMain.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

const (
	fakeBin = "fakeplugin"
	testBin = "testplugin"
)

func TestMain(m *testing.M) {
	if os.Getenv(miniAgentEnv) != "" {
		os.Exit(runMiniAgent())
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// bin returns the path of a built test binary.
func bin(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "pluginhost-bins-")
		if buildErr != nil {
			return
		}
		// As scripts/build.sh builds release plugins: static (no dynamic
		// loader at exec), stripped.
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", buildDir+"/",
			"./testdata/"+fakeBin, "./testdata/"+testBin)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("building test plugins: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// pluginDir makes a root-owned 0755 plugin dir holding files (dest name ->
// source binary), copied with mode 0755.
func pluginDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for dest, src := range files {
		copyFile(t, src, filepath.Join(dir, dest), 0o755)
	}
	return dir
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// pin writes the lock file for everything in dir.
func pin(t testing.TB, dir string) string {
	t.Helper()
	lock := filepath.Join(dir, "plugins.lock")
	if _, _, err := Pin(dir, lock); err != nil {
		t.Fatal(err)
	}
	return lock
}

// procStatus reads one field ("Uid", "VmRSS", ...) of /proc/<pid>/status.
func procStatus(pid int, field string) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	st, err := procStatus(pid, "State")
	return err == nil && !strings.HasPrefix(st, "Z") && !strings.HasPrefix(st, "X")
}

// checkGoroutines fails the test if goroutines started during it are
// still running once it ends (after a settle loop).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
