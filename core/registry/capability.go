package registry

import (
	"fmt"
	"strings"
)

// CapabilityID is a namespaced capability name: "<namespace>.<name>[.<name>...]",
// labels of lowercase letters, digits and '_', each starting with a letter,
// e.g. "storage.list" or "backup.pbs.prune" (the same rule as
// sdk.CheckCapabilityID, which also reserves the "sdk" namespace).
type CapabilityID string

// maxIDLen bounds an ID so that a hostile plugin cannot bloat reports.
const maxIDLen = 128

// ParseCapabilityID validates s as a [CapabilityID].
func ParseCapabilityID(s string) (CapabilityID, error) {
	if s == "" {
		return "", fmt.Errorf("capability id is empty")
	}
	if len(s) > maxIDLen {
		return "", fmt.Errorf("capability id %.40q... is longer than %d bytes", s, maxIDLen)
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("capability id %q has no namespace: want <namespace>.<name>", s)
	}
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("capability id %q has an empty label", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			ok := c >= 'a' && c <= 'z' || (i > 0 && (c >= '0' && c <= '9' || c == '_'))
			if !ok {
				return "", fmt.Errorf("capability id %q: label %q must be lowercase [a-z0-9_] starting with a letter", s, l)
			}
		}
	}
	return CapabilityID(s), nil
}

// Namespace is the first label ("storage" in "storage.list").
func (id CapabilityID) Namespace() string {
	ns, _, _ := strings.Cut(string(id), ".")
	return ns
}

// Name is everything after the namespace ("list" in "storage.list").
func (id CapabilityID) Name() string {
	_, name, _ := strings.Cut(string(id), ".")
	return name
}

// Class says who may trigger a capability (see DESIGN.md §2 rule 6).
type Class uint8

const (
	// ClassUnspecified is invalid in a registered capability.
	ClassUnspecified Class = iota
	// ClassRead changes nothing.
	ClassRead
	// ClassBenign changes state within policy; the hub's desired state may
	// trigger it.
	ClassBenign
	// ClassDestructive runs only on a signed operation from an operator key.
	ClassDestructive
)

func (c Class) String() string {
	switch c {
	case ClassRead:
		return "read"
	case ClassBenign:
		return "benign"
	case ClassDestructive:
		return "destructive"
	}
	return "unspecified"
}

// MarshalText renders the class by name in JSON.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a class name.
func (c *Class) UnmarshalText(b []byte) error {
	for _, v := range []Class{ClassRead, ClassBenign, ClassDestructive} {
		if string(b) == v.String() {
			*c = v
			return nil
		}
	}
	return fmt.Errorf("class %q: want read, benign or destructive", b)
}

// State is the live state of a registered capability.
type State uint8

const (
	// StateAvailable: the capability can be invoked.
	StateAvailable State = iota + 1
	// StateNotApplicable: the host lacks what the capability is for (no USB
	// disks, no sensors). Not a failure.
	StateNotApplicable
	// StateUnhealthy: the plugin reported a problem, or its process is down
	// and being restarted.
	StateUnhealthy
	// StateQuarantined: the plugin crashed too often and is not restarted
	// until the agent restarts or the plugin is upgraded.
	StateQuarantined
)

func (s State) String() string {
	switch s {
	case StateAvailable:
		return "available"
	case StateNotApplicable:
		return "not_applicable"
	case StateUnhealthy:
		return "unhealthy"
	case StateQuarantined:
		return "quarantined"
	}
	return "unknown"
}

// MarshalText renders the state by name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state name.
func (s *State) UnmarshalText(b []byte) error {
	for _, v := range []State{StateAvailable, StateNotApplicable, StateUnhealthy, StateQuarantined} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("state %q: want available, not_applicable, unhealthy or quarantined", b)
}

// APIScope is one Proxmox API method and path pattern a capability may use
// through the core's API proxy (pattern syntax: sdk/apiscope).
type APIScope struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// Capability is what a plugin declares about one capability in its Info.
type Capability struct {
	ID            CapabilityID `json:"id"`
	SchemaVersion uint32       `json:"schema_version"`
	Class         Class        `json:"class"`
	NeedsRoot     bool         `json:"needs_root,omitempty"`
	API           []APIScope   `json:"api,omitempty"`
	Description   string       `json:"description,omitempty"`
	Flags         []string     `json:"flags,omitempty"`
}

func (c Capability) validate() error {
	if _, err := ParseCapabilityID(string(c.ID)); err != nil {
		return err
	}
	if c.Class < ClassRead || c.Class > ClassDestructive {
		return fmt.Errorf("capability %s: class must be read, benign or destructive", c.ID)
	}
	if c.SchemaVersion == 0 {
		return fmt.Errorf("capability %s: schema_version must be at least 1", c.ID)
	}
	return nil
}
