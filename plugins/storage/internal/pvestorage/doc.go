// Package pvestorage holds the storage plugin's domain logic: Proxmox VE
// storage API calls (GET /nodes/{node}/storage, /storage, DELETE /storage/{id},
// ...) expressed against the small [API] interface, validation of storage
// IDs, specs and capability parameters, lenient decoding of Proxmox JSON, and
// the plugin's selftest checks. It knows nothing of gRPC or the plugin SDK:
// the main package adapts the SDK's host API to [API] and maps [*Error] to
// the SDK's structured errors.
package pvestorage
