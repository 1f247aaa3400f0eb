package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"gitea.dooplex.hu/admin/felhom-agent/core/registry"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintls"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// pluginPath is the only PATH a plugin gets (the host environment is not
// inherited).
const pluginPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// instance is one plugin process: one generation.
type instance struct {
	m      *managed
	number uint64
	cand   candidate
	sha    string
	asRoot bool
	pid    int

	client *plugin.Client
	pc     *sdk.PluginClient
	proc   *procRunner
	pipe   *plugintls.Pipe
	// socketDir is go-plugin's per-client socket dir; go-plugin removes it
	// on Kill only when the process started, so we remove it too.
	socketDir string
	info      *pluginv1.InfoResponse
	caps      []registry.Capability
	gen       *registry.Generation
	// stamps times this instance's way up (debug log, benchmarks).
	stamps *stamps

	stopping atomic.Bool // we are stopping it: its exit is not a crash
	killOnce sync.Once

	flight   sync.Mutex
	inflight int
	closed   bool          // no new calls (draining, dead)
	idle     chan struct{} // closed when closed && inflight == 0
}

// generation builds (once) the registry generation for this instance.
func (inst *instance) generation() *registry.Generation {
	if inst.gen == nil {
		inst.gen = &registry.Generation{
			Plugin: inst.m.name, Version: inst.cand.Version.String(), Number: inst.number,
			Capabilities: inst.caps, Handle: inst,
		}
	}
	return inst.gen
}

// launch verifies one candidate binary, executes it and reads its Info.
// Every failure is a *refusedError naming why. gate (nil for restarts)
// holds the exec back until the other plugins of this Start are hashed.
func (h *Host) launch(ctx context.Context, m *managed, c candidate, lock map[string]string, lockErr error, st *stamps, gate *gateMember) (*instance, error) {
	h.mu.Lock()
	dir := h.dir
	h.mu.Unlock()
	if dir == nil {
		return nil, refuse(RefusedLaunch, nil, "plugin host is stopped")
	}
	b, err := openBinary(dir, c.File)
	if err != nil {
		return nil, err
	}
	defer b.close() // the child has exec'd it (or failed) once launch returns
	if err := b.checkSafe(); err != nil {
		return nil, err
	}
	st.mark(phaseOpen)
	if lockErr != nil {
		if errors.Is(lockErr, errLockMissing) {
			return nil, refuse(RefusedNotPinned, lockErr, "no lock file %s, so nothing is pinned: run `felhom-agent plugins pin`", h.o.LockFile)
		}
		return nil, refuse(RefusedUnsafeLock, lockErr, "%v", lockErr)
	}
	if err := b.verify(lock, h.o.LockFile, &h.hashes); err != nil {
		return nil, err
	}
	if !b.cached {
		st.mark(phaseHash)
	}
	gate.hashed()
	h.rootMu.Lock()
	asRoot := h.o.asRoot && h.o.allowRoot[m.name] && h.rootNeeded[b.sha256]
	h.rootMu.Unlock()

	inst, err := h.exec(ctx, m, c, b, asRoot, st, gate)
	if err != nil {
		return nil, err
	}
	needs := ""
	for _, cp := range inst.caps {
		if cp.NeedsRoot {
			needs = string(cp.ID)
			break
		}
	}
	switch {
	case needs == "" || inst.asRoot:
		return inst, nil
	case !h.o.asRoot:
		inst.kill()
		return nil, refuse(RefusedNeedsRoot, nil, "capability %s needs root and the agent does not run as root", needs)
	case !h.o.allowRoot[m.name]:
		inst.kill()
		return nil, refuse(RefusedNeedsRoot, nil, "capability %s needs root: add %q to plugins.allow_root to let %s run as root", needs, m.name, m.name)
	}
	// Allowed: it ran unprivileged and declared a root capability; run the
	// same descriptor again as root, and remember for restarts.
	inst.kill()
	h.rootMu.Lock()
	h.rootNeeded[b.sha256] = true
	h.rootMu.Unlock()
	h.log.Info("plugin: relaunching as root (it needs root and plugins.allow_root lists it)", "plugin", m.name, "capability", needs)
	return h.exec(ctx, m, c, b, true, st, nil)
}

// exec runs the verified descriptor and does the handshake and Info. The
// fork waits at gate (see hashGate); everything before it (TLS pair,
// go-plugin client, socket dir, pipes) is done while others still hash.
func (h *Host) exec(ctx context.Context, m *managed, c candidate, b *binary, asRoot bool, st *stamps, gate *gateMember) (_ *instance, err error) {
	if h.testHookBeforeExec != nil {
		h.testHookBeforeExec(c.File)
	}
	creds, err := plugintls.Issue()
	if err != nil {
		return nil, fmt.Errorf("launching %s: %w", c.File, err)
	}
	inst := &instance{m: m, number: h.gens.Add(1), cand: c, sha: b.sha256, asRoot: asRoot, idle: make(chan struct{}), stamps: st}
	var cred *syscall.Credential
	sock := &plugin.UnixSocketConfig{TempDir: h.o.SocketDir}
	if h.o.asRoot && !asRoot {
		cred = &syscall.Credential{Uid: h.o.uid, Gid: h.o.gid, Groups: []uint32{}}
		// Sockets the host makes for the broker get this group, 0660, so
		// the unprivileged plugin can connect to them.
		sock.Group = strconv.FormatUint(uint64(h.o.gid), 10)
	}
	mark := m.ring.mark()
	inst.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.HostPluginSets(sdk.WithCoreVersion(h.o.CoreVersion)),
		RunnerFunc: func(l hclog.Logger, cmd *exec.Cmd, socketDir string) (runner.Runner, error) {
			inst.socketDir = socketDir
			if cred != nil {
				// The plugin creates its socket here: its own dir, 0700.
				if err := os.Chown(socketDir, int(cred.Uid), int(cred.Gid)); err != nil {
					return nil, fmt.Errorf("chown plugin socket dir: %w", err)
				}
				if err := os.Chmod(socketDir, 0o700); err != nil {
					return nil, fmt.Errorf("chmod plugin socket dir: %w", err)
				}
			}
			pipe, err := creds.Attach(cmd)
			if err != nil {
				return nil, err
			}
			inst.pipe = pipe
			env := append(cmd.Env, pluginPath, sdk.EnvLogLevel+"="+levelName(h.log))
			inst.proc = newProcRunner(l, m.name, b, cred, env, cmd.ExtraFiles)
			inst.proc.beforeFork = func(ctx context.Context) {
				gate.wait(ctx)
				st.mark(phasePrepare)
			}
			inst.proc.afterStart = func() {
				pipe.Started()
				st.mark(phaseExec)
			}
			return inst.proc, nil
		},
		TLSConfig:        creds.Host,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     h.o.HandshakeTimeout,
		Logger:           h.log.Named("plugin"),
		Stderr:           m.ring,
		SkipHostEnv:      true,
		UnixSocketConfig: sock,
	})
	defer func() {
		if err != nil {
			inst.kill()
		}
	}()
	rpc, err := inst.client.Client()
	if err != nil {
		return nil, h.classifyStart(m, c, inst, mark, err)
	}
	st.mark(phaseHandshake)
	inst.pid, _ = strconv.Atoi(inst.proc.ID())
	raw, err := rpc.Dispense(sdk.PluginSetKey)
	if err != nil {
		return nil, refuse(RefusedNotAPlugin, err, "dispensing %s: %v", c.File, err)
	}
	pc, ok := raw.(*sdk.PluginClient)
	if !ok {
		return nil, refuse(RefusedNotAPlugin, nil, "dispensing %s: got %T", c.File, raw)
	}
	inst.pc = pc
	ictx, cancel := context.WithTimeout(ctx, h.o.HandshakeTimeout)
	defer cancel()
	info, err := pc.Info(ictx)
	if err != nil {
		var ve *sdk.VersionError
		if errors.As(err, &ve) {
			return nil, refuse(RefusedProtocol, err, "%v", err)
		}
		return nil, refuse(RefusedNotAPlugin, err, "%s did not answer Info: %v", c.File, err)
	}
	inst.info = info
	if info.GetName() != c.Name || info.GetVersion() != c.Version.String() {
		return nil, refuse(RefusedInfoMismatch, nil, "%s says it is %s %s: the file name says %s %s",
			c.File, info.GetName(), info.GetVersion(), c.Name, c.Version)
	}
	caps, err := capsFromProto(info.GetCapabilities())
	if err != nil {
		return nil, refuse(RefusedInvalidInfo, err, "%s declares %v", c.File, err)
	}
	inst.caps = caps
	// Validate the declarations alone (no other plugin) with the registry's rules.
	empty, _ := registry.New(registry.Options{})
	if err := empty.Check(m.name, inst.generation()); err != nil {
		return nil, refuse(RefusedInvalidInfo, err, "%v", err)
	}
	st.mark(phaseInfo)
	return inst, nil
}

// classifyStart turns a go-plugin start error into a refusal.
func (h *Host) classifyStart(m *managed, c candidate, inst *instance, mark uint64, err error) error {
	var ve *sdk.VersionError
	if errors.As(sdk.ClassifyStartError(m.name, err), &ve) {
		return refuse(RefusedProtocol, err, "%v", ve)
	}
	if strings.Contains(err.Error(), "timeout while waiting for plugin to start") {
		return refuse(RefusedHandshakeTimeout, err, "%s did not finish the go-plugin handshake within %v: not a felhom plugin, or hung at start", c.File, h.o.HandshakeTimeout)
	}
	// Kill waits for go-plugin's stderr reader, so the ring then holds
	// everything the process said.
	inst.kill()
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if strings.HasSuffix(msg, "Unrecognized remote plugin message: ") {
		msg = "it closed stdout without a go-plugin handshake"
	}
	if inst.proc != nil {
		if d := inst.proc.exitDescription(); d != "" && inst.proc.exitedByItself() {
			msg += " (" + d + ")"
		}
	}
	if tail := m.ring.since(mark, 3); len(tail) > 0 {
		msg += "; stderr: " + strings.Join(tail, " | ")
	}
	return refuse(RefusedNotAPlugin, err, "%s is not a working felhom plugin: %s", c.File, msg)
}

func levelName(l hclog.Logger) string {
	switch l.GetLevel() {
	case hclog.Trace:
		return "trace"
	case hclog.Debug:
		return "debug"
	case hclog.Warn:
		return "warn"
	case hclog.Error, hclog.Off:
		return "error"
	}
	return "info"
}

func capsFromProto(in []*pluginv1.Capability) ([]registry.Capability, error) {
	out := make([]registry.Capability, 0, len(in))
	for _, c := range in {
		// The sdk's ID rule adds the reserved "sdk" namespace to the
		// registry's syntax; a plugin not built on the sdk meets it here.
		if err := sdk.CheckCapabilityID(c.GetId()); err != nil {
			return nil, err
		}
		rc := registry.Capability{
			ID: registry.CapabilityID(c.GetId()), SchemaVersion: c.GetSchemaVersion(), NeedsRoot: c.GetNeedsRoot(),
			Description: c.GetDescription(), Flags: c.GetFlags(),
		}
		switch c.GetClass() {
		case pluginv1.CapabilityClass_CAPABILITY_CLASS_READ:
			rc.Class = registry.ClassRead
		case pluginv1.CapabilityClass_CAPABILITY_CLASS_BENIGN:
			rc.Class = registry.ClassBenign
		case pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE:
			rc.Class = registry.ClassDestructive
		default:
			return nil, fmt.Errorf("capability %s: class %v is not read, benign or destructive", c.GetId(), c.GetClass())
		}
		for _, s := range c.GetApi() {
			rc.API = append(rc.API, registry.APIScope{Method: s.GetMethod(), Path: s.GetPath()})
		}
		out = append(out, rc)
	}
	return out, nil
}

// kill stops the process at once and releases everything of the instance.
func (inst *instance) kill() {
	inst.stopping.Store(true)
	inst.markClosed()
	inst.killOnce.Do(func() {
		if inst.proc != nil {
			_ = inst.proc.Kill(context.Background())
		}
		inst.cleanup()
	})
}

// release cleans up after a process that exited on its own.
func (inst *instance) release() {
	inst.markClosed()
	inst.killOnce.Do(inst.cleanup)
}

func (inst *instance) cleanup() {
	if inst.pc != nil {
		inst.pc.Close()
	}
	inst.client.Kill() // waits for go-plugin's goroutines (stderr reader, ...)
	if inst.pipe != nil {
		_ = inst.pipe.Close()
	}
	if inst.socketDir != "" {
		_ = os.RemoveAll(inst.socketDir)
	}
}

func (inst *instance) exited() bool {
	if inst.proc == nil {
		return true
	}
	select {
	case <-inst.proc.exited:
		return true
	default:
		return false
	}
}

// enter counts an in-flight call; false when the instance takes no calls.
func (inst *instance) enter() bool {
	inst.flight.Lock()
	defer inst.flight.Unlock()
	if inst.closed {
		return false
	}
	inst.inflight++
	return true
}

func (inst *instance) leave() {
	inst.flight.Lock()
	defer inst.flight.Unlock()
	inst.inflight--
	if inst.closed && inst.inflight == 0 {
		closeOnce(inst.idle)
	}
}

func (inst *instance) inFlight() int {
	inst.flight.Lock()
	defer inst.flight.Unlock()
	return inst.inflight
}

func (inst *instance) markClosed() {
	inst.flight.Lock()
	defer inst.flight.Unlock()
	if !inst.closed {
		inst.closed = true
		if inst.inflight == 0 {
			closeOnce(inst.idle)
		}
	}
}

// drain refuses new calls and waits for the in-flight ones (the rolling
// upgrade's and Stop's bounded drain).
func (inst *instance) drain(ctx context.Context) error {
	inst.markClosed()
	select {
	case <-inst.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}
