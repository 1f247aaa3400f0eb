package pluginhost

import (
	"bufio"
	"context"
	"fmt"
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

	"github.com/hashicorp/go-hclog"
)

// miniAgentEnv makes the test binary a small agent (see TestMain): it
// starts the plugins in the dir named by the variable, prints their PIDs
// and waits to be killed.
const miniAgentEnv = "PLUGINHOST_MINI_AGENT"

func runMiniAgent() int {
	if dir, ok := strings.CutPrefix(os.Getenv(miniAgentEnv), "proc:"); ok {
		return runMiniProc(dir)
	}
	dir := os.Getenv(miniAgentEnv)
	// Socket dirs inside the test's temp dir (made by the test): a killed
	// agent cannot remove them, the test's cleanup does.
	sock := filepath.Join(filepath.Dir(dir), "sock")
	h, err := New(Options{
		Dir: dir, AllowRoot: []string{"rooty"}, SocketDir: sock,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := h.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var pids []string
	for _, st := range h.Status() {
		if st.State != StateRunning {
			fmt.Fprintf(os.Stderr, "plugin %s: %s %s\n", st.Name, st.State, st.Reason)
			return 1
		}
		pids = append(pids, strconv.Itoa(st.PID))
	}
	fmt.Println("PIDS " + strings.Join(pids, " "))
	time.Sleep(time.Hour)
	return 0
}

// runMiniProc starts the fake whoami binary through procRunner alone: no
// go-plugin, no TLS pipe for it to watch, so only the parent-death signal
// can end it when this process is killed.
func runMiniProc(dir string) int {
	d, err := os.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := openBinary(d, "felhom-plugin-whoami_v1.0.0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := newProcRunner(hclog.NewNullLogger(), "whoami", b, &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}, nil, nil)
	if err := r.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Retire OS threads (a goroutine that exits locked takes its thread
	// with it): Pdeathsig fires when the forking thread exits
	// (golang/go#27505), so the child must survive this. The runtime does
	// not let a test pick which threads go, so this exercises the risk
	// rather than proving its absence; procRunner's locked, parked forking
	// goroutine is what rules it out.
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // exits locked: the thread is destroyed
				time.Sleep(time.Millisecond)
			}()
		}
		wg.Wait()
	}
	time.Sleep(50 * time.Millisecond)
	fmt.Println("PIDS " + r.ID())
	time.Sleep(time.Hour)
	return 0
}

// startMiniAgent runs the test binary as a mini agent and returns its
// command and the PIDs it reported.
func startMiniAgent(t *testing.T, arg string) (*exec.Cmd, []int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), miniAgentEnv+"="+arg)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("mini agent did not report its plugins")
	}
	if !strings.HasPrefix(line, "PIDS ") {
		t.Fatalf("mini agent said %q", line)
	}
	var pids []int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "PIDS ")) {
		pid, _ := strconv.Atoi(f)
		if !alive(pid) {
			t.Fatalf("plugin %d is not running before the kill", pid)
		}
		pids = append(pids, pid)
	}
	return cmd, pids
}

func killAndCheckOrphans(t *testing.T, cmd *exec.Cmd, pids []int) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, 5*time.Second, "plugins to die with the agent", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// TestParentDeathSignalAlone checks the Pdeathsig path by itself, with a
// child that watches nothing.
func TestParentDeathSignalAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := pluginDir(t, map[string]string{"felhom-plugin-whoami_v1.0.0": bin(t, fakeBin)})
	cmd, pids := startMiniAgent(t, "proc:"+dir)
	if len(pids) != 1 {
		t.Fatalf("pids %v", pids)
	}
	killAndCheckOrphans(t, cmd, pids)
}

// TestNoOrphansWhenAgentIsKilled SIGKILLs an agent (this test binary,
// re-executed) that runs three plugins, one as root: the plugins must be
// gone within a short bound, checked by PID.
func TestNoOrphansWhenAgentIsKilled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tp := bin(t, testBin)
	dir := pluginDir(t, map[string]string{"felhom-plugin-alpha_v1.0.0": tp, "felhom-plugin-beta_v1.0.0": tp, "felhom-plugin-rooty_v1.0.0": tp})
	pin(t, dir)
	// The plugin user must reach the socket dir: open up t.TempDir's 0700
	// parent.
	if err := os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(filepath.Dir(dir), "sock"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, pids := startMiniAgent(t, dir)
	if len(pids) != 3 {
		t.Fatalf("pids %v", pids)
	}
	killAndCheckOrphans(t, cmd, pids)
}
