package pluginhost

import (
	"errors"
	"fmt"
)

var (
	// ErrPluginCrashed: the plugin process died while serving the call.
	// Match with errors.Is; [*CrashError] carries the plugin's name.
	ErrPluginCrashed = errors.New("plugin crashed")
	// ErrPluginUnavailable: the capability's plugin has no running process
	// right now (restarting after a crash, or stopped).
	ErrPluginUnavailable = errors.New("plugin unavailable")
	// ErrQuarantined: the capability's plugin crashed too often and is not
	// restarted.
	ErrQuarantined = errors.New("plugin quarantined")
	// ErrNotApplicable: the capability is registered but not applicable on
	// this host (no USB disks, no sensors).
	ErrNotApplicable = errors.New("capability not applicable on this host")
	// ErrUnknownPlugin: no plugin of that name is running.
	ErrUnknownPlugin = errors.New("unknown plugin")
)

// CrashError is a call that failed because the plugin process died.
type CrashError struct {
	Plugin  string
	Version string
	// Exit describes how the process ended ("signal: killed").
	Exit string
	Err  error
}

func (e *CrashError) Error() string {
	s := fmt.Sprintf("plugin %s %s crashed", e.Plugin, e.Version)
	if e.Exit != "" {
		s += " (" + e.Exit + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrPluginCrashed) true.
func (e *CrashError) Is(target error) bool { return target == ErrPluginCrashed }

func (e *CrashError) Unwrap() error { return e.Err }

// RefusalCode classifies why a plugin binary was not run.
type RefusalCode string

// Refusal codes, as `plugins list` shows them.
const (
	RefusedBadName          RefusalCode = "bad_name"
	RefusedUnsafeDir        RefusalCode = "unsafe_dir"
	RefusedUnsafeFile       RefusalCode = "unsafe_file"
	RefusedUnsafeLock       RefusalCode = "unsafe_lock"
	RefusedNotPinned        RefusalCode = "not_pinned"
	RefusedHashMismatch     RefusalCode = "hash_mismatch"
	RefusedNotAPlugin       RefusalCode = "not_a_plugin"
	RefusedHandshakeTimeout RefusalCode = "handshake_timeout"
	RefusedProtocol         RefusalCode = "protocol"
	RefusedInfoMismatch     RefusalCode = "info_mismatch"
	RefusedInvalidInfo      RefusalCode = "invalid_info"
	RefusedNeedsRoot        RefusalCode = "needs_root"
	RefusedConflict         RefusalCode = "conflict"
	RefusedConfigure        RefusalCode = "configure_failed"
	RefusedLaunch           RefusalCode = "launch_failed"
	RefusedDisabled         RefusalCode = "disabled"
)

// Refusal is one binary that was not run, and why.
type Refusal struct {
	File    string      `json:"file"`
	Version string      `json:"version,omitempty"`
	Code    RefusalCode `json:"code"`
	Reason  string      `json:"reason"`
}

func (r Refusal) String() string {
	return fmt.Sprintf("%s refused (%s): %s", r.File, r.Code, r.Reason)
}

// refusedError carries a Refusal through the launch path.
type refusedError struct {
	Code   RefusalCode
	Reason string
	Err    error
}

func (e *refusedError) Error() string { return e.Reason }
func (e *refusedError) Unwrap() error { return e.Err }

func refuse(code RefusalCode, err error, format string, args ...any) *refusedError {
	return &refusedError{Code: code, Reason: fmt.Sprintf(format, args...), Err: err}
}

// asRefusal turns any launch error into a Refusal for file.
func asRefusal(c candidate, err error) Refusal {
	var re *refusedError
	if errors.As(err, &re) {
		return Refusal{File: c.File, Version: c.Version.String(), Code: re.Code, Reason: re.Reason}
	}
	return Refusal{File: c.File, Version: c.Version.String(), Code: RefusedLaunch, Reason: err.Error()}
}
