// Package plugintest is the conformance kit for felhom-agent plugins. Run
// it from your plugin's tests:
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, plugintest.Config{
//			Plugin: myplugin.New(),                 // or Binary: "path/to/built/plugin"
//			Params: map[string]map[string]any{
//				"mystorage.status": {"storage": "local"},
//			},
//			SkipInvoke: []string{"mystorage.remove"}, // needs more than the simulator offers
//		})
//	}
//
// Run the package's tests under [Main] as well, so that a plugin process or
// listener the tests never close (a go-plugin socket left behind) fails
// the run:
//
//	func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }
//
// The kit plays felhom-agent against a Proxmox VE simulator (sdk/pvesim,
// seeded with LXC 100 running, QEMU 101 and LXC 9999 stopped) and checks,
// as subtests, each with a message saying what to fix:
//
//   - handshake: the plugin starts (a Binary runs exactly as the agent
//     runs it: clean environment, TLS identity on fd 3, gRPC only);
//   - info: name, semver version, lowercase "<namespace>.<name>" capability
//     IDs, classes, descriptions, well-formed and narrow API scopes, read
//     capabilities that only read, destructive ones that do something;
//   - configure and health: Configure succeeds with Config.PluginConfig,
//     the first health message comes at once, every capability has a state;
//   - selftest (read mode) and report: structured, named, passing, read-only;
//   - invoke/<capability>: every capability not skipped runs against the
//     simulator and calls only API paths its own scopes declare;
//   - scope-refusal: the plugin is made to call paths outside its scopes
//     through the real broker connection (the SDK's hidden
//     "sdk.conformance.probe" capability, served only under
//     FELHOM_PLUGINTEST=1) and the proxy must refuse them, naming the path
//     and the plugin;
//   - shutdown: in-flight work drains, the health stream ends and a plugin
//     process exits with status 0.
//
// The kit's API proxy enforces scopes with sdk.ScopeGuard, the same code
// felhom-agent uses, and calls the simulator with its admin token. A
// failed phase shows the end of the plugin's stderr, decoded into
// readable lines ("ERROR refusing to start: error=...").
//
// # Asserting that the kit fails a plugin
//
// Check runs the same phases without a *testing.T and returns a Report of
// structured problems (phase, capability, message, hint), so a test can
// assert that a deliberately broken plugin is rejected, and why, without
// failing itself:
//
//	rep, err := plugintest.Check(ctx, plugintest.Config{Binary: broken})
//	if err != nil {
//		t.Fatal(err) // the checks could not run
//	}
//	if p := rep.Find(plugintest.PhaseInvoke, "nfs.list"); len(p) == 0 {
//		t.Errorf("the kit accepted an undeclared API call:\n%s", rep)
//	}
//
// # API calls are charged to the running capability
//
// The kit cannot tell which goroutine of the plugin made an API call (the
// calls carry no mark of the invocation they serve): every call that
// reaches the proxy while an invocation runs is charged to that
// capability and must lie in its own scopes. A background goroutine (a
// HealthWatcher polling the API, a cache refresher) that happens to call
// mid-invocation is therefore reported against whichever capability was
// running. Do such checks on their own schedule, from WatchHealth rather
// than from handlers, only on paths some capability declares (the agent
// allows a plugin the union of its capabilities' scopes), and when the
// kit reports a call a handler never makes, look at those goroutines
// first. Calls made between phases are charged to no one.
package plugintest
