// Package pvesim simulates one Proxmox VE 9 node's JSON API over HTTPS, for
// tests and demos of code that talks to PVE. It is stateful (guests,
// snapshots, tasks, storages) and reproduces the wire behaviour clients
// depend on; [Start] runs one for a test, cmd/felhom-sim serves one.
//
// # Faithful
//
//   - Wire protocol: /api2/json paths, form-urlencoded or JSON bodies on
//     POST/PUT with the query string merged on top, {"data": ...} answers
//     with "total" on paged lists, Content-Type application/json;charset=UTF-8.
//     Errors carry the first line of the message as the HTTP reason phrase
//     (written on a hijacked connection, which is then closed, as pveproxy
//     closes after every error) and a {"data":null,"message":...} body;
//     errors of the HTTP layer itself (401, "Unexpected content for method",
//     malformed JSON) have an empty body.
//   - The order of pveproxy/rest_handler: authentication (401 "No ticket" or
//     "Authentication failed!" after [Options.AuthFailDelay]), body check,
//     routing (501 "Method 'M /path' not implemented"), URI parameter merge,
//     permission check (403 "Permission check failed (<path>, <Priv>[|..])"),
//     proxy node resolution ("hostname lookup 'x' failed"), parameter
//     validation (400 "Parameter verification failed." with PVE's texts in
//     "errors"), then the handler.
//   - API tokens: header parsing as pve-http-server does (value up to ';',
//     URI-unescaped, split at the last '='), privilege separation (a privsep
//     token's ACL intersected with its user's; privsep=0 gets the user's),
//     ACL resolution (a deeper path replaces what is inherited, only
//     propagating entries apply below their path, NoAccess cancels), built-in
//     roles. root@pam has every privilege, but options PVE reserves for
//     "root@pam" itself are refused to its tokens, as on a real host.
//   - Parameter tables for every served endpoint, written here as API facts
//     and checked against the real schema by conformance_schema_test.go;
//     validation order and messages follow PVE::JSONSchema.
//   - Tasks: real UPID encoding (per-node increasing pid; pstart crosses from
//     8 to 9 hex digits after the first two tasks), status/log/list/stop
//     endpoints with user and tokenid split, exit statuses "OK",
//     "WARNINGS: n" or the one-line error, "no content" for empty logs,
//     "no such task" right after dispatch ([Options.NoSuchTaskFor]),
//     "received interrupt" when stopped.
//   - Guests: configs stored as config-file strings and rendered with Perl's
//     types (integers and booleans as numbers, the rest as strings), a SHA-1
//     digest of the rendered file (stale digests fail), descriptions with a
//     trailing newline on LXC only, the "lock" key during tasks, config flock
//     timeouts, snapshots (reserved names refused synchronously, "already
//     used"/"does not exist" inside the task, a final "current" entry,
//     rollback restoring the snapshot config), sync/async exactly as PVE
//     (QEMU POST config is a qmconfig task applying pending changes, PUT
//     config is synchronous, LXC has no POST config), start/stop prechecks
//     (LXC synchronous, QEMU inside the task), destroy refusals.
//   - Storages (dir, nfs, cifs, pbs, lvmthin, lvm, zfspool configs with
//     required/fixed properties, secrets never returned), storage status and
//     content, vzdump archives named like PVE's that appear in the content
//     (a restore recreates the backed-up config), single volumes (GET, and
//     DELETE as an imgdel task with PVE's permission rules and delay), and
//     vzdump jobs under /cluster/backup.
//
// # Simplified
//
//   - One node, no cluster, pools, HA, replication or tickets; only API
//     tokens authenticate. Users have no groups.
//   - Property-string values (net0, rootfs, scsi0, ...) are not parsed
//     beyond what the simulation needs; named formats the simulator does not
//     implement are accepted unchecked.
//   - Work that PVE's workers do after taking the config lock happens when
//     the task is dispatched, so its effects (the lock key) are visible as
//     soon as the UPID is returned; if the lock is held the API call itself
//     waits up to [Options.LockTimeout] before returning the UPID of a task
//     that failed with "can't lock file".
//   - Guests do not run: status numbers are plausible constants. Hotplug,
//     pending changes of running VMs and disk resizing are not simulated.
//   - The disks, USB devices and node status are static.
//   - Endpoints outside the served set answer 501 like unknown paths;
//     [Server.Routes] lists the served ones.
//   - A few error texts have no verified source and are approximations:
//     deleting a protected backup, missing or duplicate backup jobs, and the
//     storage.cfg property checks.
//
// Fault injection ([Faults]) adds task failures and warnings, slow tasks,
// held config locks, pveproxy's 595/596 proxy errors, hanging and
// transiently failing paths; request faults apply after authentication.
// [Server.Stats] counts requests per route, faulted ones included.
package pvesim
