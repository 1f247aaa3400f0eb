package registry

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnknownCapability is returned (wrapped, naming the ID) for an ID no
// plugin serves.
var ErrUnknownCapability = errors.New("unknown capability")

// pluginName matches the <name> of felhom-plugin-<name>_v<semver> (and the
// names core/config accepts in plugins.allow_root, plugins.disabled, ...).
var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Generation is one running instance of a plugin: the process started from
// one binary, after its Info was read. Registry entries point at it, so
// replacing a plugin (restart, upgrade) replaces all its entries at once.
// A Generation must not be modified after it is passed to [Registry.Swap].
type Generation struct {
	// Plugin is the plugin's name.
	Plugin string
	// Version is the plugin's semver (without a leading v).
	Version string
	// Number tells generations of one plugin apart; assigned by the host.
	Number uint64
	// Capabilities are the capabilities the plugin declared.
	Capabilities []Capability
	// States are the initial states (from Configure); a capability absent
	// here starts available.
	States map[CapabilityID]Status
	// Handle is the host's handle for calling this generation.
	Handle any
}

// Status is the live state of an entry.
type Status struct {
	State  State     `json:"state"`
	Detail string    `json:"detail,omitempty"`
	Since  time.Time `json:"since"`
}

// Entry is one registered capability: its metadata, the generation that
// serves it, and its live status.
type Entry struct {
	Capability Capability
	Generation *Generation
	status     atomic.Pointer[Status]
}

// Status returns the entry's current status.
func (e *Entry) Status() Status { return *e.status.Load() }

// ConflictError is a capability offered by two plugins with no configured
// owner. The incoming plugin is refused.
type ConflictError struct {
	ID       CapabilityID
	Holder   string // the plugin that holds the capability now
	Incoming string // the plugin refused
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("capability %s is offered by plugins %s and %s: disable one in plugins.disabled or set plugins.owners[%q] to the plugin that should serve it",
		e.ID, e.Holder, e.Incoming, string(e.ID))
}

// Options configure a Registry.
type Options struct {
	// Owners resolves conflicts: capability ID -> the plugin that serves
	// it. Other plugins offering that ID keep their other capabilities;
	// this one is not registered for them (it is "shadowed").
	Owners map[string]string
}

// Registry maps capability IDs to plugin generations. It is safe for
// concurrent use; lookups take no lock.
type Registry struct {
	owners map[CapabilityID]string

	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[snapshot]
}

// snapshot is immutable once published.
type snapshot struct {
	entries map[CapabilityID]*Entry
	gens    map[string]*Generation
}

// New returns an empty registry. Owners keys that are not valid capability
// IDs and values that are not plugin names are reported as one error.
func New(opts Options) (*Registry, error) {
	r := &Registry{owners: make(map[CapabilityID]string, len(opts.Owners))}
	var errs []error
	for id, plugin := range opts.Owners {
		cid, err := ParseCapabilityID(id)
		if err != nil {
			errs = append(errs, fmt.Errorf("plugins.owners: %w", err))
			continue
		}
		if !pluginName.MatchString(plugin) {
			errs = append(errs, fmt.Errorf("plugins.owners[%q]: %q is not a plugin name", id, plugin))
			continue
		}
		r.owners[cid] = plugin
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.cur.Store(&snapshot{entries: map[CapabilityID]*Entry{}, gens: map[string]*Generation{}})
	return r, nil
}

// Lookup returns the entry for id. It takes no lock.
func (r *Registry) Lookup(id CapabilityID) (*Entry, bool) {
	e, ok := r.cur.Load().entries[id]
	return e, ok
}

// Class returns the class of a registered capability, for the authz gate.
func (r *Registry) Class(id CapabilityID) (Class, error) {
	e, ok := r.Lookup(id)
	if !ok {
		return ClassUnspecified, fmt.Errorf("capability %s: %w", id, ErrUnknownCapability)
	}
	return e.Capability.Class, nil
}

// Generation returns the plugin's registered generation, or nil.
func (r *Registry) Generation(plugin string) *Generation {
	return r.cur.Load().gens[plugin]
}

// Entries returns every entry, sorted by capability ID.
func (r *Registry) Entries() []*Entry {
	s := r.cur.Load()
	out := make([]*Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Capability.ID < out[j].Capability.ID })
	return out
}

// Owned returns the IDs the plugin's registered generation serves, sorted.
// It can be fewer than the generation declares when plugins.owners gives
// some of them to another plugin.
func (r *Registry) Owned(plugin string) []CapabilityID {
	s := r.cur.Load()
	var out []CapabilityID
	for id, e := range s.entries {
		if e.Generation.Plugin == plugin {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Check reports whether gen could be swapped in for plugin now, without
// changing anything: the same validation and conflict errors as Swap.
func (r *Registry) Check(plugin string, gen *Generation) error {
	_, err := r.plan(r.cur.Load(), plugin, gen)
	return err
}

// Swap replaces all of plugin's entries with gen's in one step and returns
// the generation it replaced (nil if none). Everything is validated before
// anything changes: an invalid capability or a conflict with another plugin
// returns an error (conflicts as [*ConflictError], joined) and leaves the
// registry as it was. Concurrent lookups see either the old or the new
// generation for every ID, never a mix from a half-done swap.
func (r *Registry) Swap(plugin string, gen *Generation) (old *Generation, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur.Load()
	keep, err := r.plan(cur, plugin, gen)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	next := &snapshot{
		entries: make(map[CapabilityID]*Entry, len(cur.entries)+len(keep)),
		gens:    make(map[string]*Generation, len(cur.gens)+1),
	}
	for id, e := range cur.entries {
		if e.Generation.Plugin != plugin {
			next.entries[id] = e
		}
	}
	for name, g := range cur.gens {
		next.gens[name] = g
	}
	for _, c := range keep {
		e := &Entry{Capability: c, Generation: gen}
		st, ok := gen.States[c.ID]
		if !ok || st.State == 0 {
			st = Status{State: StateAvailable, Detail: st.Detail}
		}
		st.Since = now
		e.status.Store(&st)
		next.entries[c.ID] = e
	}
	next.gens[plugin] = gen
	r.cur.Store(next)
	return cur.gens[plugin], nil
}

// plan validates gen and returns the capabilities it will own.
func (r *Registry) plan(cur *snapshot, plugin string, gen *Generation) ([]Capability, error) {
	if !pluginName.MatchString(plugin) {
		return nil, fmt.Errorf("plugin name %q: want lowercase [a-z0-9-] starting with a letter", plugin)
	}
	if gen == nil {
		return nil, fmt.Errorf("plugin %s: nil generation", plugin)
	}
	if gen.Plugin != plugin {
		return nil, fmt.Errorf("plugin %s: generation belongs to plugin %q", plugin, gen.Plugin)
	}
	seen := make(map[CapabilityID]bool, len(gen.Capabilities))
	var keep []Capability
	var errs []error
	for _, c := range gen.Capabilities {
		if err := c.validate(); err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", plugin, err))
			continue
		}
		if seen[c.ID] {
			errs = append(errs, fmt.Errorf("plugin %s: capability %s declared twice", plugin, c.ID))
			continue
		}
		seen[c.ID] = true
		if owner, ok := r.owners[c.ID]; ok && owner != plugin {
			continue // shadowed: plugins.owners gives it to another plugin
		}
		if e, ok := cur.entries[c.ID]; ok && e.Generation.Plugin != plugin {
			errs = append(errs, &ConflictError{ID: c.ID, Holder: e.Generation.Plugin, Incoming: plugin})
			continue
		}
		keep = append(keep, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return keep, nil
}

// Remove drops all of plugin's entries and returns its generation (nil if
// it had none).
func (r *Registry) Remove(plugin string) *Generation {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur.Load()
	old, ok := cur.gens[plugin]
	if !ok {
		return nil
	}
	next := &snapshot{
		entries: make(map[CapabilityID]*Entry, len(cur.entries)),
		gens:    make(map[string]*Generation, len(cur.gens)),
	}
	for id, e := range cur.entries {
		if e.Generation.Plugin != plugin {
			next.entries[id] = e
		}
	}
	for name, g := range cur.gens {
		if name != plugin {
			next.gens[name] = g
		}
	}
	r.cur.Store(next)
	return old
}

// SetState sets the state of one capability of gen. It does nothing (and
// returns false) when gen no longer serves id, so a late health message
// from a replaced generation cannot touch its successor's entries, or when
// the entry is quarantined (only a new generation lifts a quarantine).
func (r *Registry) SetState(gen *Generation, id CapabilityID, state State, detail string) bool {
	e, ok := r.Lookup(id)
	if !ok || e.Generation != gen {
		return false
	}
	return e.setStatus(state, detail)
}

// SetGenerationState sets the state of every capability gen serves (a
// crashed process: unhealthy; a crash loop: quarantined). It returns how
// many entries changed.
func (r *Registry) SetGenerationState(gen *Generation, state State, detail string) int {
	n := 0
	for _, e := range r.cur.Load().entries {
		if e.Generation == gen && e.setStatus(state, detail) {
			n++
		}
	}
	return n
}

func (e *Entry) setStatus(state State, detail string) bool {
	for {
		old := e.status.Load()
		if old.State == StateQuarantined {
			return false
		}
		if old.State == state && old.Detail == detail {
			return true
		}
		next := &Status{State: state, Detail: detail, Since: time.Now()}
		if e.status.CompareAndSwap(old, next) {
			return true
		}
	}
}
