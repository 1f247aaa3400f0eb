package main

import (
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintest"
)

// TestKitRejectsBrokenPlugin builds cmd/broken once per contract
// violation, runs the conformance kit on each binary with
// plugintest.Check (which reports instead of failing this test), and
// checks that the kit finds exactly that violation and says what is wrong
// and what to fix.
func TestKitRejectsBrokenPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three plugin binaries and runs the kit on each")
	}
	cases := []struct {
		violation string
		phases    []string // the only phases allowed to report problems
		check     func(t *testing.T, rep *plugintest.Report)
	}{
		{"id", []string{plugintest.PhaseHandshake}, func(t *testing.T, rep *plugintest.Report) {
			// sdk.Serve refuses to start; the kit passes on what it said,
			// decoded from its JSON log.
			p := one(t, rep, plugintest.PhaseHandshake, "")
			for _, want := range []string{"refusing to start", `capability "NFSList": IDs must be lowercase <namespace>.<name>, e.g. storage.list`} {
				if !strings.Contains(p.Message, want) {
					t.Errorf("handshake problem lacks %q: %s", want, p.Message)
				}
			}
			if p.Hint != "fix what the plugin said" {
				t.Errorf("hint = %q", p.Hint)
			}
			if rep.StoppedAt != plugintest.PhaseHandshake || rep.Plugin != "" {
				t.Errorf("stopped at %q with plugin %q, want a stop at handshake before Info", rep.StoppedAt, rep.Plugin)
			}
		}},
		{"scope", []string{plugintest.PhaseInvoke, plugintest.PhaseSelfTest}, func(t *testing.T, rep *plugintest.Report) {
			p := one(t, rep, plugintest.PhaseInvoke, "nfs.list")
			for _, want := range []string{`capability "nfs.list" called the API outside the plugin's declared scopes`,
				`plugin nfs-storage-broken may not call GET "/cluster/resources"`} {
				if !strings.Contains(p.Message, want) {
					t.Errorf("invoke problem lacks %q: %s", want, p.Message)
				}
			}
			if !strings.Contains(p.Hint, "add the path to its Capability.API") {
				t.Errorf("hint = %q", p.Hint)
			}
			if rep.StoppedAt != "" {
				t.Errorf("the run stopped at %s; an invoke problem must not stop it", rep.StoppedAt)
			}
		}},
		{"check", []string{plugintest.PhaseSelfTest}, func(t *testing.T, rep *plugintest.Report) {
			p := one(t, rep, plugintest.PhaseSelfTest, "nfs.list")
			if p.Message != "self-test check #1 has no name" || !strings.Contains(p.Hint, "name every check") {
				t.Errorf("selftest problem = %+v", p)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.violation, func(t *testing.T) {
			t.Parallel()
			bin := buildPlugin(t, "./cmd/broken", "nfs-storage-broken", "0.0.1", "-ldflags", "-X main.violation="+c.violation)
			rep, err := plugintest.Check(t.Context(), plugintest.Config{Binary: bin})
			if err != nil {
				t.Fatalf("the kit could not run: %v", err)
			}
			if rep.OK() {
				t.Fatalf("the conformance kit passed a plugin that breaks the %q rule", c.violation)
			}
			for _, p := range rep.Problems {
				if !slices.Contains(c.phases, p.Phase) {
					t.Errorf("unexpected %s problem: %s", p.Phase, p)
				}
			}
			c.check(t, rep)
			if t.Failed() {
				t.Logf("report:\n%s\nplugin log:\n%s", rep, strings.Join(rep.PluginLog, "\n"))
			}
		})
	}
}

// one returns the single problem of phase (and capability), failing t
// when there is not exactly one.
func one(t *testing.T, rep *plugintest.Report, phase, capability string) plugintest.Problem {
	t.Helper()
	ps := rep.Find(phase, capability)
	if len(ps) != 1 {
		t.Fatalf("want one %s problem for %q, got %d", phase, capability, len(ps))
	}
	return ps[0]
}
