package pvestorage

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// API is the slice of the core's Proxmox API proxy this package uses.
// path is below /api2/json. A Proxmox error status comes back as an error
// that [errors.As] can turn into an [*APIError]; data is the raw JSON of
// the response's "data" member.
type API interface {
	Call(ctx context.Context, method, path string, params url.Values) (data json.RawMessage, err error)
}

// APIError mirrors a Proxmox error answer (status, text, per-parameter
// errors). The main package converts the SDK's error into it.
type APIError struct {
	Status  int
	Message string
	Errors  map[string]string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "proxmox: %d %s", e.Status, strings.TrimSpace(e.Message))
	for _, k := range sortedKeys(e.Errors) {
		fmt.Fprintf(&b, "; %s: %s", k, strings.TrimSpace(e.Errors[k]))
	}
	return b.String()
}
