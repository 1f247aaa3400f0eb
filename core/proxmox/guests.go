package proxmox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// GuestKind is the guest type as it appears in API paths.
type GuestKind string

const (
	QEMU GuestKind = "qemu" // virtual machine
	LXC  GuestKind = "lxc"  // container
)

// Validate reports whether k is QEMU or LXC.
func (k GuestKind) Validate() error {
	switch k {
	case QEMU, LXC:
		return nil
	}
	return fmt.Errorf("guest kind %q: want %q or %q", string(k), QEMU, LXC)
}

// GuestRef names a guest. An empty Node means the client's node.
type GuestRef struct {
	Node string
	Kind GuestKind
	VMID int
}

func (g GuestRef) String() string {
	return fmt.Sprintf("%s/%d", g.Kind, g.VMID)
}

// guestPath validates g and returns "/nodes/{node}/{kind}/{vmid}" plus segments.
func (c *Client) guestPath(g GuestRef, segs ...string) (string, error) {
	if err := g.Kind.Validate(); err != nil {
		return "", err
	}
	if g.VMID < 100 || g.VMID > 999999999 {
		return "", fmt.Errorf("vmid %d: must be 100..999999999", g.VMID)
	}
	node := g.Node
	if node == "" {
		node = c.node
	}
	if !nodeNameRe.MatchString(node) {
		return "", fmt.Errorf("node %q: not a PVE node name", node)
	}
	return nodePath(node, append([]string{string(g.Kind), strconv.Itoa(g.VMID)}, segs...)...), nil
}

// NormalizeDescription returns a guest description in a form that compares
// equal across guest kinds: LXC returns it with a trailing newline, QEMU
// strips trailing whitespace, and line endings may be CRLF.
func NormalizeDescription(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.TrimRightFunc(s, unicode.IsSpace)
}

// GuestConfig is a guest's current configuration, with every value in its
// config-file text form (numbers as written, booleans as 0/1).
type GuestConfig struct {
	Values map[string]string
	// Digest identifies this version of the config; pass it back on writes
	// so a concurrent change is detected ([ErrConfigChanged]).
	Digest string
}

// Description returns the normalised description.
func (gc GuestConfig) Description() string { return NormalizeDescription(gc.Values["description"]) }

// Changes returns the entries of desired that differ from the current
// config, comparing descriptions normalised. An empty result means
// nothing to write.
func (gc GuestConfig) Changes(desired map[string]string) map[string]string {
	out := map[string]string{}
	for k, want := range desired {
		have, ok := gc.Values[k]
		if k == "description" {
			if ok && NormalizeDescription(have) == NormalizeDescription(want) {
				continue
			}
		} else if ok && have == want {
			continue
		}
		out[k] = want
	}
	return out
}

// GuestConfig reads a guest's current config (GET .../config).
func (c *Client) GuestConfig(ctx context.Context, g GuestRef) (GuestConfig, error) {
	path, err := c.guestPath(g, "config")
	if err != nil {
		return GuestConfig{}, fmt.Errorf("get guest config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := c.Do(ctx, "GET", path, nil, &raw); err != nil {
		return GuestConfig{}, err
	}
	gc := GuestConfig{Values: make(map[string]string, len(raw))}
	for k, v := range raw {
		s, ok := jsonScalarString(v)
		if !ok {
			continue
		}
		if k == "digest" {
			gc.Digest = s
			continue
		}
		gc.Values[k] = s
	}
	return gc, nil
}

// ConfigUpdate is a change to a guest's config.
type ConfigUpdate struct {
	Set    map[string]string
	Delete []string
	// Digest from [Client.GuestConfig]; when set, the write fails with
	// [ErrConfigChanged] if the config changed since.
	Digest string
	// Synchronous makes a QEMU update use PUT, which applies the change
	// inside the request. The default POST runs a qmconfig task that is
	// waited for; upstream advises it for disk and hotplug changes, and
	// it avoids pveproxy's 30s limit. LXC has only the synchronous PUT.
	Synchronous bool
}

var configKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_\-]*$`)

// SetGuestConfig writes u to the guest's config and waits until it is
// applied.
func (c *Client) SetGuestConfig(ctx context.Context, g GuestRef, u ConfigUpdate) (MutateResult, error) {
	path, err := c.guestPath(g, "config")
	if err != nil {
		return MutateResult{}, fmt.Errorf("set guest config: %w", err)
	}
	params := url.Values{}
	for k, v := range u.Set {
		if !configKeyRe.MatchString(k) || k == "digest" || k == "delete" {
			return MutateResult{}, fmt.Errorf("set guest config %s: key %q: not a config option name", g, k)
		}
		params.Set(k, v)
	}
	del := append([]string(nil), u.Delete...)
	sort.Strings(del)
	for _, k := range del {
		if !configKeyRe.MatchString(k) {
			return MutateResult{}, fmt.Errorf("set guest config %s: delete %q: not a config option name", g, k)
		}
		if _, ok := u.Set[k]; ok {
			return MutateResult{}, fmt.Errorf("set guest config %s: key %q: both set and deleted", g, k)
		}
	}
	if len(params) == 0 && len(del) == 0 {
		return MutateResult{}, nil
	}
	if len(del) > 0 {
		params.Set("delete", strings.Join(del, ","))
	}
	if u.Digest != "" {
		params.Set("digest", u.Digest)
	}
	method := "POST"
	if g.Kind == LXC || u.Synchronous {
		method = "PUT"
	}
	return c.Mutate(ctx, method, path, params)
}

// Snapshot is one entry of a guest's snapshot list.
type Snapshot struct {
	Name        string
	Description string
	Parent      string
	SnapTime    int64
	VMState     bool // QEMU: RAM included
}

// snapNameRe is pve-configid: a letter, then letters, digits, '_' or '-'.
var snapNameRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_\-]+$`)

func checkSnapName(name string) error {
	if len(name) > 40 || !snapNameRe.MatchString(name) {
		return fmt.Errorf("snapshot name %q: want 2-40 characters, a letter then letters, digits, '_' or '-'", name)
	}
	return nil
}

// Snapshots lists a guest's snapshots, without the synthetic "current"
// entry PVE appends.
func (c *Client) Snapshots(ctx context.Context, g GuestRef) ([]Snapshot, error) {
	path, err := c.guestPath(g, "snapshot")
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var ws []struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Parent      string   `json:"parent"`
		SnapTime    flexInt  `json:"snaptime"`
		VMState     flexBool `json:"vmstate"`
	}
	if err := c.Do(ctx, "GET", path, nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(ws))
	for _, w := range ws {
		if w.Name == "current" {
			continue
		}
		out = append(out, Snapshot{Name: w.Name, Description: w.Description, Parent: w.Parent,
			SnapTime: int64(w.SnapTime), VMState: bool(w.VMState)})
	}
	return out, nil
}

// CreateSnapshot snapshots a guest and waits for the task. vmstate (RAM)
// is QEMU only.
func (c *Client) CreateSnapshot(ctx context.Context, g GuestRef, name, description string, vmstate bool) (MutateResult, error) {
	path, err := c.guestPath(g, "snapshot")
	if err != nil {
		return MutateResult{}, fmt.Errorf("create snapshot: %w", err)
	}
	if err := checkSnapName(name); err != nil {
		return MutateResult{}, fmt.Errorf("create snapshot of %s: %w", g, err)
	}
	if vmstate && g.Kind != QEMU {
		return MutateResult{}, fmt.Errorf("create snapshot of %s: vmstate is only for qemu guests", g)
	}
	params := url.Values{"snapname": {name}}
	if description != "" {
		params.Set("description", description)
	}
	if vmstate {
		params.Set("vmstate", "1")
	}
	return c.Mutate(ctx, "POST", path, params)
}

// RollbackSnapshot rolls a guest back to a snapshot and waits for the task.
func (c *Client) RollbackSnapshot(ctx context.Context, g GuestRef, name string) (MutateResult, error) {
	if err := checkSnapName(name); err != nil {
		return MutateResult{}, fmt.Errorf("rollback %s: %w", g, err)
	}
	path, err := c.guestPath(g, "snapshot", name, "rollback")
	if err != nil {
		return MutateResult{}, fmt.Errorf("rollback: %w", err)
	}
	return c.Mutate(ctx, "POST", path, nil)
}

// DeleteSnapshot deletes a snapshot and waits for the task. force removes
// it from the config even if removing the disk snapshots fails.
func (c *Client) DeleteSnapshot(ctx context.Context, g GuestRef, name string, force bool) (MutateResult, error) {
	if err := checkSnapName(name); err != nil {
		return MutateResult{}, fmt.Errorf("delete snapshot of %s: %w", g, err)
	}
	path, err := c.guestPath(g, "snapshot", name)
	if err != nil {
		return MutateResult{}, fmt.Errorf("delete snapshot: %w", err)
	}
	var params url.Values
	if force {
		params = url.Values{"force": {"1"}}
	}
	return c.Mutate(ctx, "DELETE", path, params)
}

// GuestStatus is GET .../status/current.
type GuestStatus struct {
	// Status is "running" or "stopped".
	Status    string
	Name      string
	Lock      string
	QMPStatus string // QEMU: e.g. "running", "paused"
	HAState   string
	Template  bool
	Uptime    int64
	CPU       float64
	CPUs      float64
	Mem       int64
	MaxMem    int64
	PID       int64
}

// Running reports whether the guest runs.
func (s GuestStatus) Running() bool { return s.Status == "running" }

// GuestStatus reads a guest's current status.
func (c *Client) GuestStatus(ctx context.Context, g GuestRef) (GuestStatus, error) {
	path, err := c.guestPath(g, "status", "current")
	if err != nil {
		return GuestStatus{}, fmt.Errorf("get guest status: %w", err)
	}
	var w struct {
		Status    string                 `json:"status"`
		Name      string                 `json:"name"`
		Lock      string                 `json:"lock"`
		QMPStatus string                 `json:"qmpstatus"`
		HA        struct{ State string } `json:"ha"`
		Template  flexBool               `json:"template"`
		Uptime    flexInt                `json:"uptime"`
		CPU       flexFloat              `json:"cpu"`
		CPUs      flexFloat              `json:"cpus"`
		Mem       flexInt                `json:"mem"`
		MaxMem    flexInt                `json:"maxmem"`
		PID       flexInt                `json:"pid"`
	}
	if err := c.Do(ctx, "GET", path, nil, &w); err != nil {
		return GuestStatus{}, err
	}
	return GuestStatus{
		Status: w.Status, Name: w.Name, Lock: w.Lock, QMPStatus: w.QMPStatus, HAState: w.HA.State,
		Template: bool(w.Template), Uptime: int64(w.Uptime), CPU: float64(w.CPU), CPUs: float64(w.CPUs),
		Mem: int64(w.Mem), MaxMem: int64(w.MaxMem), PID: int64(w.PID),
	}, nil
}

// Start starts a guest and waits for the start task.
func (c *Client) Start(ctx context.Context, g GuestRef) (MutateResult, error) {
	return c.power(ctx, g, "start", nil)
}

// Stop stops a guest immediately (like pulling the plug) and waits.
func (c *Client) Stop(ctx context.Context, g GuestRef) (MutateResult, error) {
	return c.power(ctx, g, "stop", nil)
}

// Shutdown asks the guest OS to shut down and waits; timeout > 0 bounds
// the server-side wait (whole seconds).
func (c *Client) Shutdown(ctx context.Context, g GuestRef, timeout time.Duration) (MutateResult, error) {
	var params url.Values
	if timeout > 0 {
		params = url.Values{"timeout": {strconv.Itoa(int((timeout + time.Second - 1) / time.Second))}}
	}
	return c.power(ctx, g, "shutdown", params)
}

func (c *Client) power(ctx context.Context, g GuestRef, action string, params url.Values) (MutateResult, error) {
	path, err := c.guestPath(g, "status", action)
	if err != nil {
		return MutateResult{}, fmt.Errorf("%s guest: %w", action, err)
	}
	return c.Mutate(ctx, "POST", path, params)
}
