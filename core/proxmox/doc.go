// Package proxmox is the core's client for the Proxmox VE API: the only
// code in felhom-agent that holds the API token and talks to pveproxy.
//
// A [Client] is built from a [Config] by [New], which validates the token
// ("USER@REALM!TOKENID=SECRET", see [Token]) and the certificate pin. TLS
// trusts exactly the leaf certificate whose SHA-256 matches the pin, as
// Proxmox's own clients do; a mismatch fails with [*PinMismatchError], and
// there is no way to turn pinning off. The token secret never appears in
// logs, errors or String output.
//
// [Client.Do] and [Client.Raw] are the low level: GET and DELETE
// parameters go in the query, POST and PUT parameters in a form body, and
// the {"data": ...} envelope is unwrapped. Errors are typed: [*APIError]
// unwraps to a class ([ErrPermission], [ErrInvalidParams], [ErrNotFound],
// [ErrLockTimeout], [ErrUnreachable], ...) and, where the text carries
// one, a detail ([*PermissionError], [*ParamError], [*LockTimeoutError]).
// Idempotent GETs are retried with jittered exponential backoff on
// transient failures; mutations never are.
//
// Tasks are identified by [UPID]. A [Waiter] waits for them: every wait on
// a node is served by one poller that reads the node's task list once per
// tick, so a hundred concurrent waits cost what one does. A task ends in a
// [TaskResult] ("OK", or "WARNINGS: n", which is success with warnings) or
// a [*TaskFailedError] that carries the exit status and the end of the
// task log. [Client.Mutate] joins both halves: a synchronous write
// succeeds on 2xx, one that returns a UPID succeeds when its task does.
//
// The typed calls cover what the core needs: [Client.Version],
// [Client.NodeStatus], [Client.ClusterResources], guest config with
// digests ([Client.GuestConfig], [Client.SetGuestConfig],
// [ErrConfigChanged]), snapshots, guest status and power actions.
package proxmox
