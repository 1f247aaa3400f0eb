// Command broken is a deliberately non-conforming variant of the NFS
// plugin: broken_test.go builds it and proves that felhom-agent's
// conformance kit rejects it with a message naming the problem. Never
// install it.
//
// Which rule it breaks is chosen at build time, so that each violation is
// seen on its own (the first would otherwise hide the others):
//
//	go build -ldflags "-X main.violation=id"    ./cmd/broken  // capability ID not namespaced
//	go build -ldflags "-X main.violation=scope" ./cmd/broken  // calls an API path it did not declare
//	go build -ldflags "-X main.violation=check" ./cmd/broken  // a selftest check without a name
package main

import (
	"context"
	"fmt"
	"os"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// violation selects the rule to break: id, scope or check.
var violation = "scope"

type broken struct {
	host sdk.Host
}

func (b *broken) Info() sdk.Info {
	id := "nfs.list"
	if violation == "id" {
		id = "NFSList" // not "<namespace>.<name>", not lowercase
	}
	return sdk.Info{Name: "nfs-storage-broken", Version: "0.0.1", Capabilities: []sdk.Capability{{
		ID: id, SchemaVersion: 1, Class: sdk.Read, Description: "List NFS storages (broken on purpose).",
		// Declares the storage list only...
		API:     []sdk.APIScope{{Method: "GET", Path: "/storage"}},
		Handler: b.list,
	}}}
}

func (b *broken) Configure(_ context.Context, host sdk.Host, _ sdk.Config) error {
	b.host = host
	return nil
}

func (b *broken) list(ctx context.Context, _ *sdk.Call) (any, error) {
	path := "/storage"
	if violation == "scope" {
		path = "/cluster/resources" // ...but reads every guest of the cluster.
	}
	data, err := b.host.API().Get(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"raw": string(data)}, nil
}

func (b *broken) SelfTest(ctx context.Context, _ sdk.SelfTestMode, _ int64) []sdk.Check {
	_, err := b.list(ctx, nil)
	c := sdk.Check{Name: "nfs storages listable", Capability: "nfs.list", Status: sdk.Pass}
	if err != nil {
		c.Status, c.Detail = sdk.Fail, err.Error()
	}
	if violation == "check" {
		c.Name = "" // an operator cannot tell what passed or failed
	}
	return []sdk.Check{c}
}

func main() {
	switch violation {
	case "id", "scope", "check":
	default:
		fmt.Fprintf(os.Stderr, "broken: unknown violation %q (want id, scope or check)\n", violation)
		os.Exit(2)
	}
	sdk.Serve(&broken{})
}
