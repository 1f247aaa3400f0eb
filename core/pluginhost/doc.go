// Package pluginhost discovers, verifies, launches and supervises the
// agent's plugin processes (hashicorp/go-plugin over gRPC) and routes
// capability invocations to them through [registry.Registry].
//
// # Discovery and verification
//
// [Options].Dir holds binaries named felhom-plugin-<name>_v<semver>; several
// versions of a plugin may sit side by side. For each name the newest
// version that passes every check runs; a refused newer version falls back
// to the next older one and the refusal is reported ([Refusal], shown by
// `felhom-agent plugins list`). The checks, in order:
//
//   - The plugin dir itself is owned by root and not writable by group or
//     others. Only the dir is checked, not its parents (a test's temp dir
//     sits below /tmp, which is 1777); binaries are then opened relative
//     to the dir's descriptor (openat), so a parent swapped later does not
//     redirect them.
//   - The binary is opened once (O_RDONLY|O_NOFOLLOW|O_CLOEXEC, so no
//     symlinks) and moved to a descriptor >= 100. Owner (root), mode (no
//     group/other write, executable) and the SHA-256 are all taken from
//     that descriptor, and the plugin is executed through
//     /proc/self/fd/N of the same descriptor: execve resolves that path
//     before close-on-exec closes it, and a process may open its own
//     /proc/self/fd even after switching to the unprivileged user. What
//     runs is exactly what was hashed; renaming another file over the path
//     afterwards changes nothing (go-plugin's SecureConfig hashes by path
//     and execs by path, leaving a window). argv[0] is the file name.
//   - The SHA-256 is pinned in the lock file (sha256sum format, written by
//     [Pin] / `felhom-agent plugins pin`, atomically). The lock file obeys
//     the same owner/mode rule. The first launch of a binary in this Host
//     always hashes the descriptor it executes (mapped, ~10 ms of CPU per
//     13 MB). The Host remembers the result, in memory only, keyed on the
//     file's device, inode, size, mtime and ctime, when the file had been
//     unchanged for a second before hashing and still was after: a
//     restart or a re-launch of that same unchanged file reuses it, while
//     any write, rename or replacement makes it hash again. A new agent
//     process hashes everything.
//   - The go-plugin handshake completes within [Options].HandshakeTimeout
//     (default 2s): a binary that is not a plugin (wrong cookie, garbage
//     on stdout, exits at once, hangs) is refused with go-plugin's reason
//     and its last stderr lines. The protocol major is negotiated by
//     go-plugin; the minor and the plugin's minimum core minor by the sdk
//     ([sdk.VersionError]).
//   - Info's name and version equal the file name's; every capability is
//     valid by the registry's rules.
//
// # Launch
//
// Each plugin goes through its own pipeline on its own goroutine (open,
// hash, prepare, fork, handshake, Info, conflict check, Configure,
// register): no plugin waits for another's handshake or Configure. Two
// things are shared. Forks wait until every plugin of the Start is hashed
// (at most 500 ms): plugin processes started early slow down the hashes
// still running, and hashing first, then forking all, measured faster.
// Conflicts are decided in name order. Hashing yields to the scheduler
// every 256 KiB, so it never holds every P while other plugins'
// handshakes wait. At debug level Start logs each plugin's phase
// durations ("plugin start phases") and the total ("plugin host
// started").
//
// The exec is ours (ClientConfig.RunnerFunc):
// the host environment is not inherited (only go-plugin's variables, the
// TLS fd number and PATH=/usr/sbin:/usr/bin:/sbin:/bin), the process gets
// its own process group (a kill takes its children too) and
// Pdeathsig=SIGKILL. Pdeathsig fires when the thread that forked exits
// (golang/go#27505), so the fork runs on a goroutine locked to its thread
// that stays parked until the plugin exits. The sdk's pipe watch is a
// second guard: the host keeps the TLS pipe open, and a plugin exits when
// it closes.
//
// The channel is mutually authenticated with sdk/plugintls (a per-launch
// ECDSA P-256 pair for each side, each side pinning the other's
// certificate, passed on an inherited pipe), not go-plugin's AutoMTLS (two
// P-521 keys per launch).
//
// Plugins run as [Options].User (default nobody), with no supplementary
// groups; go-plugin's socket dir is handed to that user (0700) and the
// sockets the host serves on the broker get its group (0660). The
// needs-root decision comes from the plugin itself, but only ever from an
// unprivileged run of the pinned binary: every plugin is first launched
// unprivileged; if its Info declares a capability that needs root, it is
// killed and, only when [Options].AllowRoot names it, launched again from
// the same descriptor as root; otherwise it is refused, saying how to
// allow it. The decision is remembered per SHA-256, so restarts of an
// allowed plugin go straight to root.
//
// Stderr goes through hclog under Logger.Named("plugin").Named(<name>)
// (go-plugin re-emits JSON lines at their level) and into a ring of the
// last [Options].StderrLines lines per plugin for [Host.Status].
//
// # After launch
//
// Capabilities conflicting with another plugin's refuse the later plugin
// in name order (deterministic regardless of launch order: a plugin is
// decided once every earlier name is), with an error naming both and the
// config keys that resolve it (plugins.disabled, plugins.owners). Then
// Configure hands the plugin its settings and its
// host services: the Proxmox API proxy limited by sdk.ScopeGuard to the
// methods and paths its capabilities declare ({node} bound to this node;
// anything else is gRPC PermissionDenied naming path and plugin, logged and
// audited), the task waiter, and HostLog events into an audit ring
// ([Host.Audit]). The API token stays in the [APIBackend]. The generation
// is swapped into the registry with the states the Configure answer
// carried; once every plugin of the Start is registered, each plugin's
// health stream opens and feeds the registry's per-capability states.
//
// # Supervision
//
// A plugin process that exits without being asked is a crash: in-flight
// calls fail with a [*CrashError] (errors.Is [ErrPluginCrashed], naming the
// plugin and how it ended), its registry entries turn unhealthy, and it is
// restarted (verified again: owner, mode, lock entry; the hash is reused
// only for the unchanged file) after an exponential, jittered
// backoff. After [RestartPolicy].MaxCrashes crashes within the window it
// is quarantined: registry state quarantined, and the reason carries its
// last stderr lines. Panics in plugin code stay in the plugin process;
// the host services recover from panics in the core's own backends.
//
// [Host.Invoke] looks the capability up in the registry without a lock,
// counts the call as in flight on that generation (the count a rolling
// upgrade drains), and maps errors. [Host.Stop] drains in-flight calls
// (bounded), asks each plugin to shut down and kills what remains.
//
// [Inspect] runs discovery, verification, handshake, Info and the conflict
// check without Configure, for `plugins list` and `plugins info`.
package pluginhost
