package pluginhost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// APIBackend is the core's Proxmox API client as the host services need
// it (core/proxmox.Client.Raw, adapted by the caller). The token stays in
// it: plugins only ever see the JSON data. Errors that are Proxmox answers
// should be (or wrap) [*APIError] so the plugin gets status and message;
// anything else reaches the plugin as an Unavailable gRPC error.
type APIBackend interface {
	// Raw makes one API call; path is below /api2/json. It returns the
	// response's "data" member and its "total" when present.
	Raw(ctx context.Context, method, path string, params url.Values) (json.RawMessage, *int, error)
}

// APIError is a Proxmox error answer, passed to the plugin as
// CallResponse.error.
type APIError struct {
	Status  int
	Reason  string
	Message string
	Errors  map[string]string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Reason
	}
	return fmt.Sprintf("proxmox API: %d %s", e.Status, msg)
}

// TaskWaiter waits for a Proxmox task (core/proxmox's waiter, adapted).
type TaskWaiter interface {
	Wait(ctx context.Context, upid string) (TaskResult, error)
}

// TaskResult is a finished task.
type TaskResult struct {
	UPID       string
	ExitStatus string
	// OK is true for "OK" and "WARNINGS: n".
	OK       bool
	Warnings int
	LogTail  []string
	Duration time.Duration
}

// RestartPolicy says how crashed plugins are restarted.
type RestartPolicy struct {
	// BaseDelay is the first restart delay; it doubles per crash in the
	// window, with jitter, up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxCrashes in Window quarantine the plugin.
	MaxCrashes int
	Window     time.Duration
}

// Options configure a [Host]. Zero values take the defaults noted.
type Options struct {
	// Dir holds the felhom-plugin-<name>_v<semver> binaries.
	Dir string
	// LockFile pins each binary's SHA-256 (default Dir/plugins.lock).
	LockFile string
	// User runs plugins that need no root (default "nobody"). Ignored when
	// the agent itself does not run as root: plugins then run as the
	// agent's user and no plugin may need root.
	User string
	// AllowRoot names the plugins that may run as root when they declare a
	// capability that needs root.
	AllowRoot []string
	// Disabled names plugins not to run.
	Disabled []string
	// Only, when set, runs just these plugins (the CLI's selftest).
	Only []string
	// Owners resolves a capability offered by two plugins: ID -> plugin.
	Owners map[string]string
	// HandshakeTimeout bounds the go-plugin handshake and the Info call
	// (default 2s).
	HandshakeTimeout time.Duration
	// CallTimeout bounds Configure and other control calls (default 30s).
	CallTimeout time.Duration
	// Logger is the agent's logger; plugin stderr goes to
	// Logger.Named("plugin").Named(<name>). Default: hclog at Info.
	Logger hclog.Logger
	// HostID and Node are handed to every plugin in Configure.
	HostID string
	Node   string
	// CoreVersion is the agent's version, sent in Info.
	CoreVersion string
	// PluginSettings is each plugin's own config section, by name.
	PluginSettings map[string]map[string]any
	// API and Waiter back the host services; nil answers every call with
	// an error.
	API    APIBackend
	Waiter TaskWaiter
	// Restart is the crash policy (defaults: 1s base, 1m cap, 5 crashes in
	// 10m quarantine).
	Restart RestartPolicy
	// StderrLines is how many stderr lines are kept per plugin (default 50).
	StderrLines int
	// AuditEvents is how many HostLog events are kept (default 256).
	AuditEvents int
	// SocketDir is where per-plugin socket directories are made (default
	// os.TempDir()).
	SocketDir string
	// DrainTimeout bounds waiting for in-flight calls at Stop (default 10s).
	DrainTimeout time.Duration
}

// resolved holds Options with defaults applied and users looked up.
type resolved struct {
	Options
	allowRoot, disabled, only map[string]bool
	// cred decides who runs unprivileged plugins; nil when the agent is
	// not root (plugins run as the agent's user).
	uid, gid uint32
	asRoot   bool // the agent runs as root and can switch users
}

func (o Options) resolve() (*resolved, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("plugin options: dir is empty")
	}
	if o.LockFile == "" {
		o.LockFile = filepath.Join(o.Dir, "plugins.lock")
	}
	if o.User == "" {
		o.User = "nobody"
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 2 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "felhom-agent", Level: hclog.Info})
	}
	if o.Restart.BaseDelay <= 0 {
		o.Restart.BaseDelay = time.Second
	}
	if o.Restart.MaxDelay <= 0 {
		o.Restart.MaxDelay = time.Minute
	}
	if o.Restart.MaxDelay < o.Restart.BaseDelay {
		o.Restart.MaxDelay = o.Restart.BaseDelay
	}
	if o.Restart.MaxCrashes <= 0 {
		o.Restart.MaxCrashes = 5
	}
	if o.Restart.Window <= 0 {
		o.Restart.Window = 10 * time.Minute
	}
	if o.StderrLines <= 0 {
		o.StderrLines = 50
	}
	if o.AuditEvents <= 0 {
		o.AuditEvents = 256
	}
	if o.SocketDir == "" {
		o.SocketDir = os.TempDir()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	r := &resolved{Options: o, allowRoot: set(o.AllowRoot), disabled: set(o.Disabled), only: set(o.Only)}
	r.asRoot = os.Geteuid() == 0
	if r.asRoot {
		u, err := user.Lookup(o.User)
		if err != nil {
			return nil, fmt.Errorf("plugin options: user %q: %w", o.User, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("plugin options: user %q has a non-numeric uid/gid", o.User)
		}
		if uid == 0 {
			return nil, fmt.Errorf("plugin options: user %q is root: pick an unprivileged user", o.User)
		}
		r.uid, r.gid = uint32(uid), uint32(gid)
	}
	return r, nil
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
