// Package registry is the capability registry: which plugin generation
// serves each namespaced capability ID (storage.list, backup.run, ...).
//
// The rules it enforces:
//
//   - One owner per capability. A second plugin offering an ID already
//     held by another plugin is refused with a [*ConflictError] that names
//     the capability, both plugins, and the two ways to resolve it in the
//     agent config (plugins.disabled, plugins.owners).
//   - Entries point at a plugin [Generation], never at a plugin name, so a
//     restart or rolling upgrade replaces every entry of a plugin in one
//     step: [Registry.Swap] validates the whole new generation first and
//     then publishes a new immutable snapshot.
//   - Each capability carries its metadata ([Capability]: schema version,
//     [Class], needs-root, API scopes) and a live [State]: available,
//     not_applicable (the host lacks what the capability is for; a state,
//     not a failure), unhealthy or quarantined.
//
// Lookups ([Registry.Lookup], [Registry.Class]) read an immutable snapshot
// through an atomic pointer and take no lock, so concurrent invocations never
// contend with each other or with a swap. Writers (Swap, Remove) serialise on
// one mutex and copy the map; they are rare (start, crash, upgrade). State
// changes (health) are atomic stores on the entry and do not copy anything.
//
// A Registry is a value: create one with [New]; there is no package-level
// registry.
package registry
