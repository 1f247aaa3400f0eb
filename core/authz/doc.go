// Package authz decides whether an operation may run on this host: the
// gate between the hub, operators and the capabilities that change a
// Proxmox host.
//
// # Classes and sources
//
// Every capability has a class from the registry: read, benign or
// destructive. Read and benign ones may run from the hub's desired state
// (source hub) unsigned. Destructive ones (delete a guest, rollback,
// restore over a guest, remove storage, prune backups, unmount a disk in
// use) run only from an operator-signed operation (source signed), and a
// signed op of any class must also pass the policy. [Gate.Check] takes a
// [Request] and returns a [Decision] or a [*Rejection].
//
// # Signed operations
//
// An operator writes an [Envelope] (felhom-agent op new), signs it with an
// SSH key:
//
//	ssh-keygen -Y sign -n felhom-op -f ~/.ssh/id_ed25519 op.json
//
// and hands op.json and op.json.sig to the hub. The agent checks, in
// order:
//
//  1. the clock is not behind an op already accepted (clock_rollback);
//  2. the SSHSIG signature (package sshsig): format, namespace, key type,
//     no SHA-1 RSA, cryptographic validity over the envelope's exact bytes;
//  3. allowed_signers (package allowedsigners): the key, or for a
//     certificate its CA with cert-authority, is listed; namespaces=,
//     valid-after=, valid-before= and certificate validity hold. The
//     envelope does not name a principal: [Verifier.FindPrincipals]
//     derives the identities from the granting lines (for a plain key,
//     the line's principals as written; for a certificate, its principals
//     that match the line);
//  4. the envelope: strict JSON (see [Envelope] for why the signed bytes
//     are the file's exact bytes and what is refused), this host's ID, an
//     issued_at..expires_at window no longer than MaxTTL (15m) containing
//     now within Skew (30s);
//  5. the capability exists, and if destructive the envelope says
//     "destructive": true, so that a signer cannot authorise a destructive
//     op by mistake;
//  6. a [PolicyRule] lets one of the identities run the capability;
//  7. the op ID is recorded durably in the nonce store (package nonce)
//     before the op is allowed: a replay, even after a crash or restart,
//     is refused.
//
// # Rejections
//
// A [*Rejection] has a [Reason] code (unknown_key, namespace_mismatch,
// op_expired, replay, ...), a fixed sentence ([Reason.Sentence]) and a
// Detail; all three are safe to log, send to the hub and print. The
// wrapped Err is the internal cause.
//
// # Packages
//
// The pieces are usable alone: package sshsig reads, writes, signs and
// verifies SSHSIG signatures on golang.org/x/crypto/ssh; package
// allowedsigners parses allowed_signers files and matches keys; package
// nonce is the durable op-ID store.
package authz
