package sdk_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintest"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintls"
)

var (
	binDir    string
	buildMu   sync.Mutex
	builtBins = map[string]string{}
)

// TestMain runs the tests under plugintest.Main (a private temp and socket
// dir that must end empty); the test plugins are built beside it, in a
// directory of their own.
func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "sdk-test-bin-"); err != nil {
		fmt.Fprintf(os.Stderr, "create the plugin build dir: %v\n", err)
		os.Exit(1)
	}
	code := plugintest.Main(m)
	if err := os.RemoveAll(binDir); err != nil {
		fmt.Fprintf(os.Stderr, "remove %s: %v\n", binDir, err)
		code = 1
	}
	os.Exit(code)
}

// buildBin builds ./testdata/<name> once per test run.
func buildBin(tb testing.TB, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtBins[name]; ok {
		return p
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./testdata/%s: %v\n%s", name, err, b)
	}
	builtBins[name] = out
	return out
}

// syncBuffer collects a plugin's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type launched struct {
	client  *plugin.Client
	pc      *sdk.PluginClient
	pipe    *plugintls.Pipe
	cmd     *exec.Cmd
	stderr  *syncBuffer
	sockDir string // the plugin's unix socket directory
}

type launchOpts struct {
	env       []string
	noTLSFD   bool                                     // do not pass the identity pipe
	hostTLS   func(*plugintls.Credentials) *tls.Config // override the host's config
	multiplex bool
	autoMTLS  bool
	plugins   map[int]plugin.PluginSet
}

// launch starts bin the way the core does: clean env, TLS identity on an
// inherited pipe, gRPC only. It returns the error of the handshake/dial.
func launch(tb testing.TB, bin string, o launchOpts) (*launched, error) {
	tb.Helper()
	creds, err := plugintls.Issue()
	if err != nil {
		tb.Fatalf("Issue: %v", err)
	}
	// A plugin that is killed, or exits without closing its listener
	// (status 3: the host is gone), leaves its socket behind; go-plugin
	// does not remove it for plugins started from a Cmd. So each plugin
	// gets a socket directory of its own that kill removes, as go-plugin
	// does for the runners it manages.
	sockDir, err := os.MkdirTemp("", "sock-")
	if err != nil {
		tb.Fatalf("create socket dir: %v", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{plugin.EnvUnixSocketDir + "=" + sockDir}, o.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	l := &launched{cmd: cmd, stderr: &syncBuffer{}, sockDir: sockDir}
	if !o.noTLSFD {
		l.pipe, err = creds.Attach(cmd)
		if err != nil {
			tb.Fatalf("Attach: %v", err)
		}
	}
	hostTLS := creds.Host
	if o.hostTLS != nil {
		hostTLS = o.hostTLS(creds)
	}
	if o.autoMTLS {
		hostTLS = nil
	}
	sets := o.plugins
	if sets == nil {
		sets = sdk.HostPluginSets()
	}
	l.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:     sdk.Handshake,
		VersionedPlugins:    sets,
		Cmd:                 cmd,
		SkipHostEnv:         true,
		TLSConfig:           hostTLS,
		AutoMTLS:            o.autoMTLS,
		AllowedProtocols:    []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCBrokerMultiplex: o.multiplex,
		StartTimeout:        10 * time.Second,
		Stderr:              l.stderr,
		Logger:              hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
	})
	tb.Cleanup(l.kill)
	rpc, err := l.client.Client()
	if l.pipe != nil {
		l.pipe.Started()
	}
	if err != nil {
		return l, err
	}
	raw, err := rpc.Dispense(sdk.PluginSetKey)
	if err != nil {
		return l, err
	}
	if pc, ok := raw.(*sdk.PluginClient); ok {
		l.pc = pc
	}
	return l, nil
}

// kill stops the plugin: closing the pipe first makes it exit at once,
// so go-plugin's Kill does not wait out its 2 s grace. Then it removes
// the plugin's socket directory (Kill waits for the process to exit).
func (l *launched) kill() {
	if l.pc != nil {
		l.pc.Close()
	}
	if l.pipe != nil {
		l.pipe.Close()
	}
	l.client.Kill()
	_ = os.RemoveAll(l.sockDir)
}

func (l *launched) waitExit(tb testing.TB, within time.Duration) {
	tb.Helper()
	select {
	case <-l.pc.Exited():
	case <-time.After(within):
		tb.Fatalf("plugin did not exit within %s; stderr:\n%s", within, l.stderr.String())
	}
}

func TestProcessRoundTrip(t *testing.T) {
	bin := buildBin(t, "demoplugin")
	for _, mux := range []bool{false, true} {
		t.Run(fmt.Sprintf("multiplex=%v", mux), func(t *testing.T) {
			checkGoroutines(t)
			l, err := launch(t, bin, launchOpts{multiplex: mux})
			if err != nil {
				t.Fatalf("launch: %v\nstderr:\n%s", err, l.stderr.String())
			}
			if n := len(sockets(t, l.sockDir)); n != 1 {
				t.Errorf("a running plugin has %d sockets in its socket dir, want 1 (PLUGIN_UNIX_SOCKET_DIR ignored?)", n)
			}
			roundTrip(t, l.pc, nil)
			// Shutdown makes the process exit on its own, with status 0.
			l.waitExit(t, 3*time.Second)
			if code := l.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit status after Shutdown = %d, want 0; stderr:\n%s", code, l.stderr.String())
			}
			// A clean exit closes the listener, which removes the socket;
			// go-plugin's multiplexer never closes the listener it wraps.
			if left := sockets(t, l.sockDir); !mux && len(left) > 0 {
				t.Errorf("the plugin exited after Shutdown but left its socket: %v", left)
			}
		})
	}
}

func TestProcessRefusesWithoutTLSIdentity(t *testing.T) {
	checkGoroutines(t)
	bin := buildBin(t, "demoplugin")
	l, err := launch(t, bin, launchOpts{noTLSFD: true})
	if err == nil {
		t.Fatal("a plugin without FELHOM_PLUGIN_TLS_FD started")
	}
	if !strings.Contains(l.stderr.String(), plugintls.EnvFD+" is not set") {
		t.Errorf("stderr does not say why:\n%s", l.stderr.String())
	}
}

func TestProcessRefusesPlaintextAndWrongPeer(t *testing.T) {
	bin := buildBin(t, "demoplugin")
	cases := map[string]func(*plugintls.Credentials) *tls.Config{
		// go-plugin dials without TLS when TLSConfig is nil.
		"plaintext host": noTLS,
		// A host presenting another launch's identity is refused, and it
		// refuses the plugin's certificate too.
		"wrong identity": func(*plugintls.Credentials) *tls.Config {
			other, err := plugintls.Issue()
			if err != nil {
				t.Fatal(err)
			}
			return other.Host
		},
	}
	for name, hostTLS := range cases {
		t.Run(name, func(t *testing.T) {
			checkGoroutines(t)
			l, err := launch(t, bin, launchOpts{hostTLS: hostTLS})
			if err != nil {
				t.Fatalf("launch: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := l.pc.Info(ctx); err == nil {
				t.Fatal("Info succeeded over a connection that should be refused")
			}
		})
	}
}

func TestProcessExitsWhenHostGoes(t *testing.T) {
	checkGoroutines(t)
	bin := buildBin(t, "demoplugin")
	l, err := launch(t, bin, launchOpts{})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	if _, err := l.pc.Info(context.Background()); err != nil {
		t.Fatalf("Info: %v", err)
	}
	// Closing the pipe is what the kernel does when the host dies.
	l.pipe.Close()
	l.waitExit(t, 3*time.Second)
	if code := l.cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit status = %d, want 3", code)
	}
	if !strings.Contains(l.stderr.String(), "closed the plugin pipe") {
		t.Errorf("stderr does not say why:\n%s", l.stderr.String())
	}
}

func TestProcessCrashIsTyped(t *testing.T) {
	checkGoroutines(t)
	bin := buildBin(t, "demoplugin")
	l, err := launch(t, bin, launchOpts{})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	ctx := context.Background()
	configured(t, l.pc, &fakeHost{})
	errc := make(chan error, 1)
	go func() {
		_, err := l.pc.Invoke(ctx, invokeReq(t, "demo.slow", map[string]any{"ms": 5000}))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := l.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, sdk.ErrPluginCrashed) {
			t.Errorf("in-flight call after SIGKILL: err = %v, want ErrPluginCrashed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("in-flight call did not fail after SIGKILL")
	}
	l.waitExit(t, 3*time.Second)
	if _, err := l.pc.Invoke(ctx, invokeReq(t, "demo.noop", nil)); !errors.Is(err, sdk.ErrPluginCrashed) {
		t.Errorf("call after SIGKILL: err = %v, want ErrPluginCrashed", err)
	}
}

func TestProcessMajorMismatch(t *testing.T) {
	bin := buildBin(t, "plainplugin")
	for major, upgrade := range map[string]string{"2": "upgrade felhom-agent", "0": "upgrade the plugin"} {
		t.Run("plugin major "+major, func(t *testing.T) {
			checkGoroutines(t)
			l, err := launch(t, bin, launchOpts{env: []string{"PLAIN_MAJOR=" + major}, autoMTLS: true})
			if err == nil {
				t.Fatal("go-plugin accepted a plugin of another major")
			}
			err = sdk.ClassifyStartError("plain", err)
			var ve *sdk.VersionError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), upgrade) || !strings.Contains(err.Error(), "speaks protocol "+major) {
				t.Errorf("err = %v, want a VersionError saying %q", err, upgrade)
			}
			_ = l
		})
	}
}

// noTLS makes launch dial without TLS (go-plugin's default).
func noTLS(*plugintls.Credentials) *tls.Config { return nil }

func TestProcessSIGTERMDrains(t *testing.T) {
	checkGoroutines(t)
	l, err := launch(t, buildBin(t, "demoplugin"), launchOpts{})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	configured(t, l.pc, &fakeHost{})
	hs, err := l.pc.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	slow := make(chan error, 1)
	go func() {
		_, err := l.pc.Invoke(context.Background(), invokeReq(t, "demo.slow", map[string]any{"ms": 300}))
		slow <- err
	}()
	for { // wait until the slow call runs
		m, err := hs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if stateOf(m.GetCapabilities(), "demo.slow") == "STATE_UNHEALTHY sleeping" {
			break
		}
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Errorf("in-flight call during SIGTERM: %v", err)
	}
	l.waitExit(t, 3*time.Second)
	if code := l.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0; stderr:\n%s", code, l.stderr.String())
	}
}

func TestProcessSurvivesStdoutNoise(t *testing.T) {
	checkGoroutines(t)
	l, err := launch(t, buildBin(t, "demoplugin"), launchOpts{env: []string{"DEMO_STDOUT_NOISE=1"}})
	if err != nil {
		t.Fatalf("a plugin printing to stdout before the handshake broke it: %v", err)
	}
	if _, err := l.pc.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.stderr.String(), "stray stdout noise from Info") {
		t.Errorf("the stray output did not land on stderr:\n%s", l.stderr.String())
	}
}
