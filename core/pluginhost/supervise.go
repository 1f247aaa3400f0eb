package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/registry"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// activate configures a launched instance with its scoped host services
// and swaps it into the registry (replacing the plugin's previous
// generation, if any, in one step). The caller opens its health stream
// (h.watch): Start does that once every plugin is registered, since the
// Configure answer already carried the initial states.
func (h *Host) activate(ctx context.Context, inst *instance) error {
	name := inst.m.name
	// Conflicts are checked before Configure, so a plugin that will be
	// refused never receives host services.
	if err := h.reg.Check(name, inst.generation()); err != nil {
		return refuse(RefusedConflict, err, "%v", err)
	}
	services, err := sdk.ScopeGuard(name, h.o.Node, inst.info.GetCapabilities(), &hostServices{h: h, plugin: name})
	if err != nil {
		return refuse(RefusedInvalidInfo, err, "%v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, h.o.CallTimeout)
	defer cancel()
	resp, err := inst.pc.Configure(cctx, sdk.ConfigureArgs{
		Config: h.o.PluginSettings[name], HostID: h.o.HostID, Node: h.o.Node,
	}, &deniedLogger{HostServices: services, h: h, plugin: name})
	if err != nil {
		return refuse(RefusedConfigure, err, "configure %s: %v", inst.cand.File, err)
	}
	inst.stamps.mark(phaseConfigure)
	gen := inst.generation()
	gen.States = map[registry.CapabilityID]registry.Status{}
	for _, s := range resp.GetStates() {
		if st, ok := stateFromProto(s.GetState()); ok {
			gen.States[registry.CapabilityID(s.GetId())] = registry.Status{State: st, Detail: s.GetDetail()}
		}
	}
	// Under h.mu, which Stop holds while it collects the running instances:
	// an instance activated after that would never be stopped.
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return refuse(RefusedLaunch, nil, "plugin host is stopping")
	}
	if _, err := h.reg.Swap(name, gen); err != nil {
		h.mu.Unlock()
		return refuse(RefusedConflict, err, "%v", err)
	}
	inst.m.mu.Lock()
	inst.m.cur = inst
	inst.m.state, inst.m.reason = StateRunning, ""
	inst.m.mu.Unlock()
	h.mu.Unlock()
	inst.stamps.mark(phaseRegister)
	h.log.Info("plugin running", "plugin", name, "version", inst.cand.Version.String(), "pid", inst.pid,
		"generation", inst.number, "root", inst.asRoot, "capabilities", len(h.reg.Owned(name)))
	return nil
}

// spawn runs f on a goroutine Stop waits for, unless Stop has begun. The
// check and wg.Add share h.mu with Stop, so no Add can race Stop's Wait.
func (h *Host) spawn(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// watch opens inst's health stream on its own goroutine.
func (h *Host) watch(inst *instance) { h.spawn(func() { h.watchHealth(inst) }) }

func stateFromProto(s pluginv1.State) (registry.State, bool) {
	switch s {
	case pluginv1.State_STATE_AVAILABLE:
		return registry.StateAvailable, true
	case pluginv1.State_STATE_NOT_APPLICABLE:
		return registry.StateNotApplicable, true
	case pluginv1.State_STATE_UNHEALTHY:
		return registry.StateUnhealthy, true
	}
	return 0, false
}

// watchHealth copies the plugin's health stream into the registry until the
// stream ends (plugin exit or Stop).
func (h *Host) watchHealth(inst *instance) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("plugin: health watcher panicked", "plugin", inst.m.name, "panic", fmt.Sprint(r))
		}
	}()
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	go func() { // end the stream when the process goes, even if gRPC lingers
		select {
		case <-inst.proc.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	stream, err := inst.pc.Health(ctx)
	if err != nil {
		h.log.Debug("plugin: health stream not opened", "plugin", inst.m.name, "error", err)
		return
	}
	defer stream.Close()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return
		}
		for _, s := range msg.GetCapabilities() {
			if st, ok := stateFromProto(s.GetState()); ok {
				h.reg.SetState(inst.gen, registry.CapabilityID(s.GetId()), st, s.GetDetail())
			}
		}
	}
}

// supervise waits for the plugin's process to exit. An exit the host did not
// cause is a crash: the registry entries go unhealthy, the plugin is
// restarted after an exponential, jittered backoff, and after
// Restart.MaxCrashes crashes within Restart.Window it is quarantined.
func (h *Host) supervise(m *managed, inst *instance) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("plugin supervisor panicked: the plugin is no longer restarted", "plugin", m.name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-inst.proc.exited:
		}
		if inst.stopping.Load() || h.ctx.Err() != nil {
			return
		}
		exit := inst.proc.exitDescription()
		inst.release()
		for {
			n, quarantined := h.recordCrash(m, inst, exit)
			if quarantined {
				return
			}
			delay := backoff(h.o.Restart, n, rand.Float64)
			h.reg.SetGenerationState(inst.gen, registry.StateUnhealthy,
				fmt.Sprintf("plugin crashed (%s); restart %d in %v", exit, n, delay.Round(time.Millisecond)))
			h.log.Error("plugin crashed", "plugin", m.name, "exit", exit, "crashes_in_window", n, "restart_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			next, err := h.restart(m, inst)
			if err == nil {
				inst = next
				break
			}
			if h.ctx.Err() != nil {
				return
			}
			exit = "restart failed: " + err.Error()
			h.log.Error("plugin restart failed", "plugin", m.name, "error", err)
		}
	}
}

// recordCrash counts a crash in the window and quarantines the plugin when
// the window is full. It returns the count.
func (h *Host) recordCrash(m *managed, inst *instance, exit string) (int, bool) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := m.crashes[:0]
	for _, t := range m.crashes {
		if now.Sub(t) < h.o.Restart.Window {
			keep = append(keep, t)
		}
	}
	m.crashes = append(keep, now)
	m.lastExit, m.lastAt = exit, now
	n := len(m.crashes)
	if n < h.o.Restart.MaxCrashes {
		m.state = StateRestarting
		m.reason = "crashed: " + exit
		return n, false
	}
	tail := m.ring.Lines()
	if len(tail) > 5 {
		tail = tail[len(tail)-5:]
	}
	m.state = StateQuarantined
	m.reason = fmt.Sprintf("crashed %d times within %v (last: %s); last stderr: %s",
		n, h.o.Restart.Window, exit, strings.Join(tail, " | "))
	h.reg.SetGenerationState(inst.gen, registry.StateQuarantined, m.reason)
	h.log.Error("plugin quarantined", "plugin", m.name, "reason", m.reason)
	return n, true
}

// restart launches the plugin's binary again (verified again from scratch:
// owner, mode, lock entry) and swaps the new generation in.
func (h *Host) restart(m *managed, old *instance) (*instance, error) {
	lock, lockErr := readLock(h.o.LockFile)
	ctx := h.ctx
	inst, err := h.launch(ctx, m, old.cand, lock, lockErr, newStamps(), nil)
	if err != nil {
		return nil, err
	}
	if err := h.activate(ctx, inst); err != nil {
		inst.kill()
		return nil, err
	}
	h.watch(inst)
	m.mu.Lock()
	m.restarts++
	m.mu.Unlock()
	return inst, nil
}

// backoff is the delay before restart number n (1-based): BaseDelay
// doubled per earlier crash in the window, capped at MaxDelay, with "equal
// jitter" (half fixed, half random) so plugins that crashed together do
// not restart in lockstep.
func backoff(p RestartPolicy, n int, rnd func() float64) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// crashError maps an error of a call into a dead plugin to *CrashError.
func (h *Host) crashError(ctx context.Context, inst *instance, err error) error {
	if !errors.Is(err, sdk.ErrPluginCrashed) {
		return err
	}
	// go-plugin reports the exit a moment after the connection breaks; wait
	// briefly for it, to say how the process ended.
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-inst.proc.exited:
	case <-t.C:
	case <-ctx.Done():
	}
	return &CrashError{Plugin: inst.m.name, Version: inst.cand.Version.String(), Exit: inst.proc.exitDescription(), Err: err}
}
