package plugintest

import (
	"fmt"
	"strings"
)

// The phases of a conformance run, in order; Problem.Phase is one of them.
const (
	PhaseHandshake    = "handshake"
	PhaseInfo         = "info"
	PhaseConfigure    = "configure"
	PhaseHealth       = "health"
	PhaseSelfTest     = "selftest"
	PhaseReport       = "report"
	PhaseInvoke       = "invoke"
	PhaseScopeRefusal = "scope-refusal"
	PhaseShutdown     = "shutdown"
)

// Problem is one way the plugin (or the kit's Config) breaks the contract.
type Problem struct {
	// Phase is the check that found it (PhaseHandshake, ...).
	Phase string
	// Capability is the capability concerned, or "" when none is.
	Capability string
	// Message says what is wrong; it names the capability, path or check.
	Message string
	// Hint says what to do about it; "" when Message says it already.
	Hint string
}

// String is the message and the hint, as Run reports them.
func (p Problem) String() string {
	if p.Hint == "" {
		return p.Message
	}
	return p.Message + ": " + p.Hint
}

func problem(phase, capability, hint, format string, args ...any) Problem {
	return Problem{Phase: phase, Capability: capability, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// Report is what Check found.
type Report struct {
	// Plugin is the name the plugin's Info gave; "" if Info was not reached.
	Plugin string
	// Problems in the order found; none means the plugin conforms.
	Problems []Problem
	// StoppedAt is the phase whose problems ended the run early
	// (handshake, info or configure: the later phases need them); "" when
	// every phase ran.
	StoppedAt string
	// PluginLog is the end of a Binary plugin's stderr, one readable line
	// per log entry ("ERROR message: key=value ...").
	PluginLog []string
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Find returns the problems of phase, and of capability unless it is "".
func (r *Report) Find(phase, capability string) []Problem {
	var out []Problem
	for _, p := range r.Problems {
		if p.Phase == phase && (capability == "" || p.Capability == capability) {
			out = append(out, p)
		}
	}
	return out
}

// String lists the problems, one a line, each with its phase.
func (r *Report) String() string {
	if r.OK() {
		return "plugintest: no problems"
	}
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "%s: %s\n", p.Phase, p)
	}
	if r.StoppedAt != "" {
		fmt.Fprintf(&b, "(stopped after %s)\n", r.StoppedAt)
	}
	return b.String()
}
