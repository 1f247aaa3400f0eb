package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
	"golang.org/x/sys/unix"
)

// procRunner is our go-plugin runner.Runner (ClientConfig.RunnerFunc): we
// own the exec so that the binary that runs is the descriptor we checked,
// and so the process gets its own process group, a parent-death signal, a
// clean environment and, for most plugins, an unprivileged user.
type procRunner struct {
	log   hclog.Logger
	name  string // plugin name: go-plugin names the stderr logger after it
	argv0 string // the binary's file name
	bin   *binary
	cred  *syscall.Credential // nil: same user as the agent
	env   []string
	// extra become the child's fds 3, 4, ... (the TLS pipe).
	extra []*os.File
	// beforeFork, when set, runs just before the fork (it may wait; ctx
	// is go-plugin's start context).
	beforeFork func(ctx context.Context)
	// afterStart runs once the child has its copies of extra (or failed to
	// start): the host closes its copy of the pipe's read end there.
	afterStart func()

	stdoutR, stderrR *os.File

	mu      sync.Mutex
	cmd     *exec.Cmd
	pid     int
	exited  chan struct{} // closed once the process is reaped
	waitErr error
	killed  bool // Kill was called before the process exited
	closeIO sync.Once
}

var _ runner.Runner = (*procRunner)(nil)

func newProcRunner(log hclog.Logger, name string, bin *binary, cred *syscall.Credential, env []string, extra []*os.File) *procRunner {
	return &procRunner{
		log: log, name: name, argv0: bin.file, bin: bin, cred: cred, env: env, extra: extra,
		exited: make(chan struct{}),
	}
}

// Start execs the plugin. The fork happens on a goroutine locked to its OS
// thread, which stays parked until the plugin exits: Pdeathsig fires when
// the thread that forked the child exits, not the process
// (golang/go#27505), so a thread that went back to the runtime's pool and
// was retired would kill a healthy plugin.
func (r *procRunner) Start(ctx context.Context) (err error) {
	defer func() {
		if r.afterStart != nil {
			r.afterStart()
		}
	}()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("stdout pipe: %w", err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		_ = stdoutR.Close()
		_ = stdoutW.Close()
		return fmt.Errorf("stderr pipe: %w", err)
	}
	// Our own pipes (not cmd.StdoutPipe): cmd.Wait then never closes the
	// read ends under go-plugin's log reader, so the last stderr lines of a
	// crashing plugin are not lost, and we can reap the child at once.
	r.stdoutR, r.stderrR = stdoutR, stderrR
	if r.beforeFork != nil {
		r.beforeFork(ctx)
	}
	cmd := &exec.Cmd{
		Path:       r.bin.execPath(),
		Args:       []string{r.argv0},
		Env:        r.env,
		Dir:        "/",
		Stdout:     stdoutW,
		Stderr:     stderrW,
		ExtraFiles: r.extra,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Pdeathsig:  syscall.SIGKILL,
			Credential: r.cred,
		},
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		<-r.exited
	}()
	err = <-started
	_ = stdoutW.Close()
	_ = stderrW.Close()
	if err != nil {
		_ = stdoutR.Close()
		_ = stderrR.Close()
		close(r.exited)
		return fmt.Errorf("starting %s: %w", r.argv0, err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.pid = cmd.Process.Pid
	r.mu.Unlock()
	r.log.Debug("plugin started", "plugin", r.name, "file", r.argv0, "pid", r.pid)
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		r.waitErr = err
		r.mu.Unlock()
		close(r.exited)
	}()
	return nil
}

// Wait blocks until the process has been reaped. go-plugin calls it after
// reading stdout and stderr to EOF, so the read ends are closed here.
func (r *procRunner) Wait(ctx context.Context) error {
	select {
	case <-r.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.closeIO.Do(func() {
		_ = r.stdoutR.Close()
		_ = r.stderrR.Close()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.killed {
		return nil // we ended it: not worth go-plugin's error log
	}
	return r.waitErr
}

// exitedByItself reports whether the process ended without our Kill.
func (r *procRunner) exitedByItself() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.killed
}

// Kill sends SIGKILL to the plugin's process group (the plugin and anything
// it started) unless the plugin has already been reaped: after that the
// PID may belong to someone else.
func (r *procRunner) Kill(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return nil
	}
	select {
	case <-r.exited:
		return nil
	default:
	}
	r.killed = true
	// Kill the leader through its pidfd first (immune to PID reuse), then
	// the group. The group is only reused once every member is gone.
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing plugin %s: %w", r.name, err)
	}
	if err := unix.Kill(-r.pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("killing process group of plugin %s: %w", r.name, err)
	}
	return nil
}

// exitDescription says how the process ended ("" while it runs).
func (r *procRunner) exitDescription() string {
	select {
	case <-r.exited:
	default:
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.ProcessState == nil {
		return "not started"
	}
	return r.cmd.ProcessState.String()
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdoutR }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderrR }
func (r *procRunner) Name() string          { return r.name }

func (r *procRunner) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

func (r *procRunner) Diagnose(ctx context.Context) string {
	if d := r.exitDescription(); d != "" {
		return "the process ended (" + d + ") before completing the go-plugin handshake; its stderr is in the agent log"
	}
	return "the process did not answer the go-plugin handshake: not a felhom plugin, or built for another architecture"
}

func (r *procRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *procRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }
