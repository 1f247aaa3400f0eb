// Package sdk is how you write a felhom-agent plugin: a separate program
// that offers capabilities (list storages, run a backup, read SMART data)
// to the agent running on a Proxmox VE host. You write capabilities; the
// SDK does the process, gRPC, TLS and versioning plumbing.
//
// # A plugin in 30 lines
//
//	package main
//
//	import (
//		"context"
//		"encoding/json"
//
//		"gitea.dooplex.hu/admin/felhom-agent/sdk"
//	)
//
//	type storage struct{}
//
//	func (storage) Info() sdk.Info {
//		return sdk.Info{Name: "mystorage", Version: "1.0.0", Capabilities: []sdk.Capability{{
//			ID: "mystorage.list", SchemaVersion: 1, Class: sdk.Read,
//			API:     []sdk.APIScope{{Method: "GET", Path: "/nodes/{node}/storage"}},
//			Handler: list,
//		}}}
//	}
//
//	func (storage) Configure(ctx context.Context, host sdk.Host, cfg sdk.Config) error {
//		return nil // read cfg with cfg.Decode(&yourStruct)
//	}
//
//	func list(ctx context.Context, call *sdk.Call) (any, error) {
//		raw, err := call.Host.API().Get(ctx, "/nodes/"+call.Host.Node()+"/storage", nil)
//		if err != nil {
//			return nil, err
//		}
//		var storages []map[string]any
//		if err := json.Unmarshal(raw, &storages); err != nil {
//			return nil, err
//		}
//		return map[string]any{"storages": storages}, nil
//	}
//
//	func main() { sdk.Serve(storage{}) }
//
// Build it as felhom-plugin-mystorage_v1.0.0, pin it (felhom-agent plugins
// pin) and put it in the agent's plugin directory.
//
// # Capabilities
//
// A [Capability] has a namespaced lowercase ID ("mystorage.list"), a
// schema version for its parameters and result, a [Class] ([Read],
// [Benign] or [Destructive]: destructive ones run only on an operator's
// signed operation), and the Proxmox API methods and paths it uses. The
// agent holds the API token; your plugin reaches Proxmox only through
// [Host.API], and only on the paths its capabilities declare (see package
// apiscope for the patterns). A call outside them fails with
// [ErrNotInScope].
//
// A handler gets a [Call] with typed parameter accessors
// (call.Params.String("storage") returns an error naming the parameter when
// it is missing) and returns a map[string]any or any value that encodes to
// a JSON object. Return [Errorf] errors to say what went wrong:
//
//	return nil, sdk.Errorf(sdk.CodeNotFound, "storage", "storage %q does not exist", id)
//
// Proxmox errors come back as *[APIError]; handlers may return them as they
// are. A panic in a handler is caught and reported; the plugin keeps
// running.
//
// # Tasks
//
// Mutating Proxmox calls return a task ID (UPID). Record it with
// [Call.AddTask] and wait through the agent, which checks that the task
// ended "OK" (or "WARNINGS: n") and survives plugin restarts:
//
//	upid := ...from API().Post(...)
//	call.AddTask(upid)
//	if _, err := call.Host.WaitTask(ctx, upid); err != nil {
//		return nil, err // *sdk.TaskError when the task failed
//	}
//
// # Health, self-test, report, shutdown
//
// Every capability starts Available. Call [Host.SetState] (for example
// from Configure, or from a [HealthWatcher]) to mark one
// [StateNotApplicable] (no USB disks here: a state, not a failure) or
// [Unhealthy]; the agent sees changes at once. Implement [SelfTester] for
// "felhom-agent plugins selftest", [Reporter] for HostReport sections and
// [Closer] to release resources at shutdown. Storage plugins implement
// [StorageBackend].
//
// # Logs and output
//
// Log with [Logger] (JSON on stderr; the agent files it under your
// plugin's name). Never print to stdout: it belongs to the handshake.
//
// # Testing
//
// Package sdk/plugintest runs your plugin, in-process or as the built
// binary, through the same checks the agent makes, against a Proxmox
// simulator (sdk/pvesim):
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, plugintest.Config{Plugin: storage{}})
//	}
//
// # Versions
//
// [ProtocolMajor] changes only when the wire breaks; inside it the agent
// and plugin use the lower of their [ProtocolMinor]s. Set
// [Info.MinCoreMinor] when you need a newer agent; the agent then tells the
// operator which side to upgrade ([VersionError]).
//
// The host side of this package ([HostPluginSets], [PluginClient],
// [HostServices], [ScopeGuard]) is what felhom-agent itself uses.
package sdk
