package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/registry"
)

// Plugin states, as Status and `plugins list` show them.
const (
	StateRunning     = "running"
	StateRestarting  = "restarting"
	StateQuarantined = "quarantined"
	StateRefused     = "refused"
	StateDisabled    = "disabled"
	StateStopped     = "stopped"
	// StateOK is what Inspect reports for a plugin that passed every check
	// and answered Info (it is stopped again afterwards).
	StateOK = "ok"
)

// Host discovers, verifies, launches and supervises the plugin processes and
// routes capability invocations to them through the registry.
type Host struct {
	o     *resolved
	log   hclog.Logger
	reg   *registry.Registry
	audit *auditRing

	ctx    context.Context // ends at Stop: supervisors and health streams
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	dir     *os.File // the plugin dir, held open for openat
	plugins map[string]*managed
	bad     []Refusal // files whose names do not parse
	started bool
	stopped bool

	gens atomic.Uint64
	// rootNeeded remembers, per binary SHA-256, that its Info declared a
	// needs-root capability, so restarts of an allowed plugin go straight
	// to root instead of launching twice.
	rootMu     sync.Mutex
	rootNeeded map[string]bool

	// testHookBeforeExec runs after a binary passed its checks and before
	// it is executed (tests swap the file there).
	testHookBeforeExec func(file string)

	// trace times Start's phases (debug log, benchmarks).
	trace startTrace
	// hashes remembers what this Host has hashed, for restarts.
	hashes hashCache
}

// managed is one plugin name: its candidate binaries and its running
// instance, across restarts.
type managed struct {
	name  string
	cands []candidate
	// ring keeps the last stderr lines of every generation of the plugin.
	ring *lineRing

	mu       sync.Mutex
	state    string
	reason   string
	refusals []Refusal
	cur      *instance
	restarts int
	crashes  []time.Time
	lastExit string
	lastAt   time.Time
}

// New checks opts and returns a Host that has not started anything.
func New(opts Options) (*Host, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(registry.Options{Owners: o.Owners})
	if err != nil {
		return nil, fmt.Errorf("plugin options: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{
		o: o, log: o.Logger, reg: reg, audit: newAuditRing(o.AuditEvents),
		ctx: ctx, cancel: cancel,
		plugins: map[string]*managed{}, rootNeeded: map[string]bool{},
	}, nil
}

// Registry is the capability registry the host fills.
func (h *Host) Registry() *registry.Registry { return h.reg }

// Audit returns the last HostLog events the plugins sent, oldest first.
func (h *Host) Audit() []AuditEvent { return h.audit.list() }

// Start discovers the plugins and brings them up. Each plugin goes
// through its own pipeline on its own goroutine: no plugin waits for
// another one's handshake, Info or Configure.
//
//  1. Scan the plugin dir; check it.
//  2. For each plugin name, newest version first: open the binary once,
//     check owner and mode on the descriptor, check its SHA-256 against
//     the lock file, exec that descriptor (the fork waits until every
//     plugin is hashed, see hashGate), do the handshake and Info, check
//     Info against the file name and the protocol, and the needs-root
//     rule. A refused version falls back to the next older one; every
//     refusal is kept for Status.
//  3. Refuse a plugin whose capabilities conflict with an earlier plugin's
//     in name order. Each plugin waits only until every earlier name is
//     decided, so the outcome does not depend on launch order.
//  4. Configure it with its scoped host services, register the
//     generation, start supervising. The health streams open once every
//     plugin is registered (the Configure answers carried the initial
//     states), each on its own goroutine: Start does not wait for them.
//
// A plugin that fails never fails Start: it is refused and reported. Start
// returns an error only when the plugin dir itself cannot be used.
func (h *Host) Start(ctx context.Context) error {
	h.trace.begin = time.Now()
	var mu sync.Mutex
	var running []*instance
	err := h.bringUp(ctx, func(inst *instance) {
		if err := h.activate(ctx, inst); err != nil {
			inst.kill()
			h.setRefused(inst.m, asRefusal(inst.cand, err))
			return
		}
		h.trace.set(inst.m.name, inst.stamps)
		h.spawn(func() { h.supervise(inst.m, inst) })
		mu.Lock()
		running = append(running, inst)
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	h.trace.done = time.Now()
	for _, inst := range running {
		h.watch(inst)
	}
	if h.log.IsDebug() {
		h.trace.log(h.log)
	}
	return nil
}

// Inspect runs steps 1–3 of [Host.Start] (verification, handshake, Info,
// conflicts) without configuring anything, stops the plugins again, and
// returns their status: what `plugins list` shows.
func Inspect(ctx context.Context, opts Options) ([]PluginStatus, error) {
	h, err := New(opts)
	if err != nil {
		return nil, err
	}
	defer h.closeDir()
	var mu sync.Mutex
	var insts []*instance
	err = h.bringUp(ctx, func(inst *instance) {
		inst.m.mu.Lock()
		inst.m.state, inst.m.cur = StateOK, inst
		inst.m.mu.Unlock()
		mu.Lock()
		insts = append(insts, inst)
		mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	st := h.Status()
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst.kill()
		}()
	}
	wg.Wait()
	h.cancel()
	return st, nil
}

// bringUp runs Start's steps 1–3, one goroutine per plugin name, and hands
// every instance that passed them to accepted (on that plugin's goroutine,
// so accepted calls overlap). It returns when every accepted call has.
func (h *Host) bringUp(ctx context.Context, accepted func(*instance)) error {
	h.mu.Lock()
	if h.started {
		h.mu.Unlock()
		return errors.New("plugin host already started")
	}
	h.started = true
	h.mu.Unlock()

	if h.o.asRoot {
		if err := searchable(h.o.SocketDir, h.o.uid, h.o.gid); err != nil {
			return fmt.Errorf("plugin socket dir: %w: user %s could not create its socket there", err, h.o.User)
		}
	}
	s, err := scanDir(h.o.Dir)
	if err != nil {
		return err
	}
	h.trace.scan = time.Now()
	h.mu.Lock()
	h.dir = s.dir
	h.bad = s.bad
	var todo []*managed // in name order
	for _, name := range s.names() {
		m := &managed{name: name, cands: s.byName[name], ring: newLineRing(h.o.StderrLines)}
		h.plugins[name] = m
		switch {
		case h.o.disabled[name]:
			m.state, m.reason = StateDisabled, "listed in plugins.disabled"
		case len(h.o.only) > 0 && !h.o.only[name]:
			delete(h.plugins, name)
		default:
			todo = append(todo, m)
		}
	}
	h.mu.Unlock()

	lock, lockErr := readLock(h.o.LockFile)
	// Conflicts are decided in name order against a scratch registry with
	// the same owners: the earlier name keeps the capability. decided[i]
	// closes once todo[i] is decided, which is after decided[i-1].
	scratch, err := registry.New(registry.Options{Owners: h.o.Owners})
	if err != nil {
		return err
	}
	var scratchMu sync.Mutex
	decided := make([]chan struct{}, len(todo))
	for i := range decided {
		decided[i] = make(chan struct{})
	}
	gate := newHashGate(len(todo))
	var wg sync.WaitGroup
	for i, m := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := h.pick(ctx, m, lock, lockErr, gate.member())
			if i > 0 {
				<-decided[i-1] // every pick returns (bounded by HandshakeTimeout)
			}
			var conflict error
			if inst != nil {
				scratchMu.Lock()
				_, conflict = scratch.Swap(m.name, inst.generation())
				scratchMu.Unlock()
			}
			close(decided[i])
			switch {
			case inst == nil:
			case conflict != nil:
				inst.kill()
				h.setRefused(m, Refusal{File: inst.cand.File, Version: inst.cand.Version.String(), Code: RefusedConflict, Reason: conflict.Error()})
			default:
				inst.stamps.mark(phaseConflict)
				accepted(inst)
			}
		}()
	}
	wg.Wait()
	return nil
}

// pick launches the newest version of m that passes every check. gate
// holds the exec back until every plugin of this Start is hashed.
func (h *Host) pick(ctx context.Context, m *managed, lock map[string]string, lockErr error, gate *gateMember) *instance {
	defer gate.hashed() // a plugin refused before hashing must not hold the others
	for _, c := range m.cands {
		st := newStamps()
		inst, err := h.launch(ctx, m, c, lock, lockErr, st, gate)
		if err == nil {
			if len(m.refusals) > 0 {
				h.log.Warn("plugin: newer version refused, running an older one",
					"plugin", m.name, "running", c.Version.String(), "refused", m.refusals[len(m.refusals)-1].String())
			}
			return inst
		}
		r := asRefusal(c, err)
		h.log.Error("plugin refused", "plugin", m.name, "file", c.File, "code", string(r.Code), "reason", r.Reason)
		m.mu.Lock()
		m.refusals = append(m.refusals, r)
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.state = StateRefused
	if n := len(m.refusals); n > 0 {
		m.reason = m.refusals[0].Reason
	}
	m.mu.Unlock()
	return nil
}

// setRefused records a refusal of the version that was picked.
func (h *Host) setRefused(m *managed, r Refusal) {
	h.log.Error("plugin refused", "plugin", m.name, "file", r.File, "code", string(r.Code), "reason", r.Reason)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refusals = append(m.refusals, r)
	m.state, m.reason = StateRefused, r.Reason
	m.cur = nil
}

// Stop drains in-flight calls (bounded by Options.DrainTimeout and ctx),
// asks every plugin to shut down, kills what is left and waits for the
// supervisors. It is safe to call more than once.
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil
	}
	h.stopped = true
	var insts []*instance
	for _, m := range h.plugins {
		m.mu.Lock()
		if m.cur != nil {
			insts = append(insts, m.cur)
		}
		m.mu.Unlock()
	}
	h.mu.Unlock()

	h.cancel() // supervisors stop restarting; health streams end
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.shutdown(ctx, inst)
		}()
	}
	wg.Wait()
	h.wg.Wait()
	for _, inst := range insts {
		h.reg.SetGenerationState(inst.gen, registry.StateUnhealthy, "agent stopped")
		inst.m.mu.Lock()
		if inst.m.state == StateRunning || inst.m.state == StateRestarting {
			inst.m.state = StateStopped
		}
		inst.m.mu.Unlock()
	}
	h.closeDir()
	return nil
}

func (h *Host) closeDir() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dir != nil {
		_ = h.dir.Close()
		h.dir = nil
	}
}

// shutdown drains, asks the plugin to exit, and kills it if it does not.
func (h *Host) shutdown(ctx context.Context, inst *instance) {
	inst.stopping.Store(true)
	dctx, cancel := context.WithTimeout(ctx, h.o.DrainTimeout)
	defer cancel()
	if err := inst.drain(dctx); err != nil {
		h.log.Warn("plugin: in-flight calls did not finish before stop", "plugin", inst.m.name, "in_flight", inst.inFlight())
	}
	if err := inst.pc.Shutdown(dctx, time.Second); err != nil {
		h.log.Debug("plugin: shutdown call failed", "plugin", inst.m.name, "error", err)
	}
	select {
	case <-inst.proc.exited:
	case <-time.After(2 * time.Second):
	case <-dctx.Done():
	}
	inst.kill()
}

// CapabilityStatus is one capability of a plugin in Status.
type CapabilityStatus struct {
	registry.Capability
	// State is the registry state; "shadowed" when plugins.owners gives
	// the ID to another plugin.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// PluginStatus is one plugin in Status: for `plugins list` and the
// HostReport.
type PluginStatus struct {
	Name       string `json:"name"`
	Version    string `json:"version,omitempty"`
	File       string `json:"file,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	SDKVersion string `json:"sdk_version,omitempty"`
	State      string `json:"state"`
	// Reason says why the plugin is refused, quarantined or disabled.
	Reason     string `json:"reason,omitempty"`
	PID        int    `json:"pid,omitempty"`
	User       string `json:"user,omitempty"`
	Generation uint64 `json:"generation,omitempty"`
	Restarts   int    `json:"restarts"`
	// LastExit is how the last crashed process ended ("signal: killed").
	LastExit     string             `json:"last_exit,omitempty"`
	LastCrash    *time.Time         `json:"last_crash,omitempty"`
	InFlight     int                `json:"in_flight,omitempty"`
	Capabilities []CapabilityStatus `json:"capabilities,omitempty"`
	// Refused lists the versions that were not run, and why.
	Refused []Refusal `json:"refused,omitempty"`
	// Stderr is the plugin's last stderr lines (all generations).
	Stderr []string `json:"stderr,omitempty"`
}

// Status reports every plugin found in the dir, sorted by name; files whose
// names do not parse are listed under their file name, refused.
func (h *Host) Status() []PluginStatus {
	h.mu.Lock()
	ms := make([]*managed, 0, len(h.plugins))
	for _, m := range h.plugins {
		ms = append(ms, m)
	}
	bad := append([]Refusal(nil), h.bad...)
	h.mu.Unlock()

	out := make([]PluginStatus, 0, len(ms)+len(bad))
	for _, m := range ms {
		out = append(out, h.status(m))
	}
	for _, b := range bad {
		out = append(out, PluginStatus{Name: b.File, File: b.File, State: StateRefused, Reason: b.Reason, Refused: []Refusal{b}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (h *Host) status(m *managed) PluginStatus {
	m.mu.Lock()
	st := PluginStatus{
		Name: m.name, State: m.state, Reason: m.reason, Restarts: m.restarts, LastExit: m.lastExit,
		Refused: append([]Refusal(nil), m.refusals...),
	}
	if !m.lastAt.IsZero() {
		t := m.lastAt
		st.LastCrash = &t
	}
	inst := m.cur
	m.mu.Unlock()
	st.Stderr = m.ring.Lines()
	if inst == nil {
		return st
	}
	st.Version, st.File, st.SHA256 = inst.cand.Version.String(), inst.cand.File, inst.sha
	st.Protocol = fmt.Sprintf("%d.%d", inst.info.GetProtocolMajor(), inst.info.GetProtocolMinor())
	st.SDKVersion = inst.info.GetSdkVersion()
	st.Generation, st.InFlight = inst.number, inst.inFlight()
	if !inst.exited() {
		st.PID = inst.pid
	}
	st.User = h.o.User
	if inst.asRoot {
		st.User = "root"
	} else if !h.o.asRoot {
		st.User = ""
	}
	for _, c := range inst.caps {
		cs := CapabilityStatus{Capability: c, State: "shadowed"}
		if e, ok := h.reg.Lookup(c.ID); ok && e.Generation == inst.gen {
			s := e.Status()
			cs.State, cs.Detail = s.State.String(), s.Detail
		} else if owner, ok := h.o.Owners[string(c.ID)]; ok && owner != m.name {
			cs.Detail = "plugins.owners gives it to " + owner
		} else if m.state == StateOK {
			cs.State = "ok"
		}
		st.Capabilities = append(st.Capabilities, cs)
	}
	return st
}
