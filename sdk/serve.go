package sdk

import (
	"context"
	"crypto/tls"
	"fmt"
	stdlog "log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintls"
)

// EnvLogLevel sets a plugin's log level (trace, debug, info, warn, error);
// the default is info.
const EnvLogLevel = "FELHOM_PLUGIN_LOG_LEVEL"

// stderr is the process's real stderr, captured before go-plugin swaps
// os.Stderr for a pipe that is discarded by default.
var stderr = os.Stderr

var (
	loggerOnce sync.Once
	logger     hclog.Logger
)

// Logger is the plugin's logger: JSON lines on stderr, which the core
// routes into its own log under the plugin's name. Never log secrets.
func Logger() hclog.Logger {
	loggerOnce.Do(func() {
		level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
		if level == hclog.NoLevel {
			level = hclog.Info
		}
		logger = hclog.New(&hclog.LoggerOptions{Output: stderr, JSONFormat: true, Level: level})
	})
	return logger
}

// Serve runs p as a plugin process and never returns. Call it from main:
//
//	func main() { sdk.Serve(&myPlugin{}) }
//
// It refuses to start (exit status 1, reason on stderr) when Info is
// invalid, when the binary was not started by felhom-agent, or when no TLS
// identity arrived on the inherited pipe. It exits 0 after Shutdown or when
// the core stops it, and 3 when the core disappears.
func Serve(p Plugin) {
	os.Exit(serveProcess(p))
}

func serveProcess(p Plugin) int {
	log := Logger()
	stdlog.SetOutput(stderr)
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintln(stderr, "This binary is a felhom-agent plugin: felhom-agent starts it, it is not meant to be run by hand.")
		return 1
	}
	handshakeOut, err := reserveStdout()
	if err != nil {
		log.Error("refusing to start", "error", err)
		return 1
	}
	srv, err := newServer(p, os.Getenv(EnvPluginTest) == "1", log)
	if err != nil {
		log.Error("refusing to start", "error", err)
		return 1
	}
	srv.handshakeOut = handshakeOut
	setProcessName(srv.name)
	tlsCfg, watch, err := plugintls.FromEnv(5 * time.Second)
	if err != nil {
		log.Error("refusing to start", "error", err)
		return 1
	}
	go func() {
		watch.HostGone()
		if srv.isDraining() {
			os.Exit(0)
		}
		log.Error("felhom-agent closed the plugin pipe (it is gone): exiting")
		os.Exit(3)
	}()
	srv.janitor = &memoryJanitor{}
	var tuneOnce sync.Once
	srv.afterConfigure = func() {
		tuneOnce.Do(func() { go srv.janitor.run(srv.life, time.Second, time.Minute) })
	}

	// SIGTERM (systemd, an operator) drains like Shutdown, then stops.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		log.Info("SIGTERM: shutting down")
		srv.drain(context.Background(), defaultGrace)
		if g := srv.grpcSrv.Load(); g != nil {
			stopServer(g, 100*time.Millisecond)
		}
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolMajor: {PluginSetKey: &grpcPlugin{srv: srv}}},
		GRPCServer:       srv.newGRPCServer,
		TLSProvider:      func() (*tls.Config, error) { return tlsCfg, nil },
		Logger:           log,
	})
	// Stopped by the core (Kill) without a Shutdown: still give the plugin
	// its Close.
	srv.drain(context.Background(), time.Second)
	srv.stop(time.Second)
	if srv.grpcSrv.Load() == nil {
		return 1 // go-plugin gave up before serving; it logged why
	}
	return 0
}

// reserveStdout keeps stdout for go-plugin's handshake line only: the real
// stdout moves to a private descriptor (returned), and fd 1, which
// os.Stdout and any stray writer use, becomes a copy of stderr. So
// fmt.Print in plugin code, a library or C code writing fd 1 lands in the
// log instead of breaking the handshake. The server hands the private
// descriptor to go-plugin just before it prints the line (newGRPCServer);
// after the handshake go-plugin replaces os.Stdout itself.
func reserveStdout() (*os.File, error) {
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("reserve stdout: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("point fd 1 at stderr: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/stdout"), nil
}

// InProcess returns a go-plugin plugin set that serves p inside this
// process, for go-plugin's TestPluginGRPCConn (sdk/plugintest uses it):
// the set serves p and dispenses a *PluginClient under PluginSetKey. Call
// stop when done; it ends p's HealthWatcher.
func InProcess(p Plugin, opts ...Option) (set plugin.PluginSet, stop func(), err error) {
	o := buildOptions(opts)
	srv, err := newServer(p, o.probe, Logger())
	if err != nil {
		return nil, nil, err
	}
	stop = func() {
		srv.drain(context.Background(), time.Second)
		srv.stop(time.Second)
	}
	return plugin.PluginSet{PluginSetKey: &grpcPlugin{srv: srv, opts: o}}, stop, nil
}

// setProcessName names the process after the plugin in ps and top: the
// host executes the verified descriptor through /proc/self/fd/N, so the
// kernel's name for the process would otherwise be that fd number.
// Best effort: the name is cosmetic.
func setProcessName(name string) {
	comm := "fp-" + name
	if len(comm) > 15 { // TASK_COMM_LEN - 1
		comm = comm[:15]
	}
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(unsafe.StringData(comm+"\x00"))), 0, 0, 0)
}
