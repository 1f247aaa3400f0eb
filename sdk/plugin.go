package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// Plugin is what a plugin author implements and hands to [Serve].
//
// The life of a plugin process:
//
//  1. The core starts the binary; [Serve] validates Info and answers the
//     go-plugin handshake.
//  2. The core calls Info, then Configure once, with the plugin's config
//     section and a [Host] for calling back into the core.
//  3. The core invokes capabilities, streams health, runs self-tests and
//     collects report sections, possibly concurrently.
//  4. The core asks the plugin to shut down: new calls are refused,
//     in-flight ones get the grace period, [Closer] runs, the process exits.
//
// Optional behaviour comes from one-method interfaces found by type
// assertion: [SelfTester], [Reporter], [HealthWatcher], [Closer] and
// [StorageBackend].
type Plugin interface {
	// Info describes the plugin. It is called once, at start; it must not
	// do I/O.
	Info() Info
	// Configure receives the plugin's config section and the core's
	// services. It runs once, before any capability is invoked. Keep the
	// host: it is valid for the life of the process.
	Configure(ctx context.Context, host Host, cfg Config) error
}

// Info describes a plugin.
type Info struct {
	// Name is the <name> of the binary's file name felhom-plugin-<name>_v<version>.
	Name string
	// Version is the plugin's semver without a leading "v", e.g. "1.2.0".
	Version string
	// MinCoreMinor is the oldest core protocol minor (inside ProtocolMajor)
	// this plugin works with. Leave 0 unless you use a newer protocol
	// feature.
	MinCoreMinor uint32
	// Capabilities are what the plugin offers, each with its handler.
	Capabilities []Capability
}

// Class says how dangerous a capability is.
type Class int

const (
	// Read changes nothing.
	Read Class = 1
	// Benign changes state within policy; the hub's desired state may ask
	// for it.
	Benign Class = 2
	// Destructive runs only on a signed operation from an operator key.
	Destructive Class = 3
)

func (c Class) String() string {
	switch c {
	case Read:
		return "read"
	case Benign:
		return "benign"
	case Destructive:
		return "destructive"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// APIScope is one Proxmox API method and path a capability may use through
// the core's API proxy; see package [gitea.dooplex.hu/admin/felhom-agent/sdk/apiscope]
// for the pattern syntax ("/nodes/{node}/qemu/{vmid}/config").
type APIScope struct {
	Method string
	Path   string
}

// Capability is one thing a plugin can do, addressed by its ID.
type Capability struct {
	// ID is namespaced and lowercase: "<namespace>.<name>", e.g. "storage.list".
	ID string
	// SchemaVersion is the version of the capability's params and result.
	SchemaVersion uint32
	Class         Class
	// NeedsRoot says the capability runs privileged code (a root-CLI fence).
	NeedsRoot bool
	// API lists every Proxmox API method+path the handler calls. Calls
	// outside the plugin's declared scopes are refused by the core.
	API         []APIScope
	Description string
	// Flags are optional features inside the schema version.
	Flags []string
	// Handler runs the capability.
	Handler Handler
}

// Handler runs one invocation. The result is a map[string]any, any value
// that encodes to a JSON object, or nil. Return errors made with [Errorf]
// to tell the caller what went wrong in a structured way; other errors are
// reported as internal errors.
type Handler func(ctx context.Context, call *Call) (any, error)

// Call is one invocation of a capability.
type Call struct {
	Capability    string
	SchemaVersion uint32
	Params        Params
	// OpID is the signed operation's (or desired-state change's) ID: an
	// idempotency key for retries.
	OpID string
	// Principal is the verified operator who signed the operation, if any.
	Principal string
	// Host is the same Host that Configure received.
	Host Host

	mu    sync.Mutex
	upids []string
}

// AddTask records a Proxmox task the invocation started, so the core can
// report (and, if the handler did not, wait on) it.
func (c *Call) AddTask(upid string) {
	c.mu.Lock()
	c.upids = append(c.upids, upid)
	c.mu.Unlock()
}

func (c *Call) tasks() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upids
}

// Params are an invocation's parameters. Accessors return [Errorf] errors
// with code CodeInvalidParams naming the parameter, ready to return from a
// handler.
type Params struct {
	s *structpb.Struct
}

// NewParams wraps a map (for tests of handlers).
func NewParams(m map[string]any) (Params, error) {
	if m == nil {
		return Params{}, nil
	}
	s, err := toStruct(m)
	if err != nil {
		return Params{}, fmt.Errorf("build params: %w", err)
	}
	return Params{s: s}, nil
}

func (p Params) value(key string) (*structpb.Value, bool) {
	if p.s == nil {
		return nil, false
	}
	v, ok := p.s.Fields[key]
	if !ok || v == nil {
		return nil, false
	}
	if _, null := v.Kind.(*structpb.Value_NullValue); null {
		return nil, false
	}
	return v, true
}

// Has reports whether key is present and not null.
func (p Params) Has(key string) bool {
	_, ok := p.value(key)
	return ok
}

// Keys returns the parameter names, sorted.
func (p Params) Keys() []string {
	if p.s == nil {
		return nil
	}
	keys := make([]string, 0, len(p.s.Fields))
	for k := range p.s.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func missing(key string) error {
	return Errorf(CodeInvalidParams, key, "missing parameter %q", key)
}

// String returns the required string parameter key.
func (p Params) String(key string) (string, error) {
	v, ok := p.value(key)
	if !ok {
		return "", missing(key)
	}
	s, ok := v.Kind.(*structpb.Value_StringValue)
	if !ok {
		return "", Errorf(CodeInvalidParams, key, "parameter %q must be a string", key)
	}
	return s.StringValue, nil
}

// Int returns the required integer parameter key. JSON numbers travel as
// float64; a value with a fraction or beyond ±2^53 is refused.
func (p Params) Int(key string) (int64, error) {
	v, ok := p.value(key)
	if !ok {
		return 0, missing(key)
	}
	n, ok := v.Kind.(*structpb.Value_NumberValue)
	if !ok {
		return 0, Errorf(CodeInvalidParams, key, "parameter %q must be a number", key)
	}
	f := n.NumberValue
	if f != float64(int64(f)) || f > 1<<53 || f < -(1<<53) {
		return 0, Errorf(CodeInvalidParams, key, "parameter %q must be an integer, got %v", key, f)
	}
	return int64(f), nil
}

// Bool returns the required boolean parameter key.
func (p Params) Bool(key string) (bool, error) {
	v, ok := p.value(key)
	if !ok {
		return false, missing(key)
	}
	b, ok := v.Kind.(*structpb.Value_BoolValue)
	if !ok {
		return false, Errorf(CodeInvalidParams, key, "parameter %q must be a boolean", key)
	}
	return b.BoolValue, nil
}

// Map returns all parameters as plain Go values (nil when there are none).
func (p Params) Map() map[string]any {
	if p.s == nil {
		return nil
	}
	return p.s.AsMap()
}

// Decode fills the struct v from the parameters, as encoding/json would,
// refusing unknown parameters. Errors name the parameter at fault.
func (p Params) Decode(v any) error {
	return decodeStrict(p.Map(), v, CodeInvalidParams, "parameter")
}

// Config is a plugin's section of the agent config.
type Config map[string]any

// Decode fills the struct v from the config, as encoding/json would,
// refusing unknown keys. Errors name the key at fault.
func (c Config) Decode(v any) error {
	return decodeStrict(map[string]any(c), v, CodeInvalidParams, "config key")
}

func decodeStrict(m map[string]any, v any, code ErrorCode, what string) error {
	if m == nil {
		m = map[string]any{}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Errorf(code, "", "encode %ss: %v", what, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return Errorf(code, ute.Field, "%s %q must be %s, got %s", what, ute.Field, ute.Type, ute.Value)
		}
		if f, ok := unknownField(err); ok {
			return Errorf(code, f, "unknown %s %q", what, f)
		}
		return Errorf(code, "", "decode %ss: %v", what, err)
	}
	return nil
}

// Check is one named self-test result.
type Check struct {
	// Name identifies the check, e.g. "api.reach" or "storage.list".
	Name   string
	Status CheckStatus
	Detail string
	// Duration is how long the check took, if measured.
	Duration time.Duration
	// Capability is the capability the check covers, if any.
	Capability string
}

// CheckStatus is the outcome of one check.
type CheckStatus int

const (
	Pass          CheckStatus = 1
	Fail          CheckStatus = 2
	Skip          CheckStatus = 3
	NotApplicable CheckStatus = 4
)

// SelfTestMode says what a self-test may touch.
type SelfTestMode int

const (
	// SelfTestRead checks touch nothing.
	SelfTestRead SelfTestMode = 1
	// SelfTestTask checks may run reversible tasks on the scratch guest.
	SelfTestTask SelfTestMode = 2
)

// SelfTester is implemented by plugins with their own checks. scratchVMID
// is the guest task-mode checks may use (0 when none was given).
type SelfTester interface {
	SelfTest(ctx context.Context, mode SelfTestMode, scratchVMID int64) []Check
}

// ReportSection is one section of the HostReport ("storage", "usb", ...).
type ReportSection struct {
	Name string
	// Data is a map[string]any or any value that encodes to a JSON object.
	Data any
}

// Reporter is implemented by plugins that contribute HostReport sections.
// ctx carries the core's budget as its deadline; return what you have
// when it nears.
type Reporter interface {
	Report(ctx context.Context) ([]ReportSection, error)
}

// State is a capability's state on this host.
type State int

const (
	// Available: the capability works here.
	Available State = 1
	// StateNotApplicable: the host lacks what the capability is for (no USB
	// disks, no sensors). A state, not a failure.
	StateNotApplicable State = 2
	// Unhealthy: the capability should work here but does not now.
	Unhealthy State = 3
)

// Notifier receives capability state changes; they reach the core's health
// stream at once.
type Notifier interface {
	SetState(capability string, s State, detail string)
}

// HealthWatcher is implemented by plugins that watch their own health.
// WatchHealth runs in its own goroutine after Configure succeeds; ctx ends
// when the plugin shuts down. Report changes through n.
type HealthWatcher interface {
	WatchHealth(ctx context.Context, n Notifier)
}

// Closer is implemented by plugins that must release something at shutdown.
// It runs after in-flight invocations finished (or the grace ran out); ctx
// ends when the grace does.
type Closer interface {
	Close(ctx context.Context) error
}

// unknownField extracts the field name from encoding/json's
// `json: unknown field "x"` error.
func unknownField(err error) (string, bool) {
	const prefix = "json: unknown field "
	s := err.Error()
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		var f string
		if _, e := fmt.Sscanf(s[len(prefix):], "%q", &f); e == nil {
			return f, true
		}
	}
	return "", false
}

// isNilValue reports whether v is nil or a typed nil pointer/map/slice.
func isNilValue(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
