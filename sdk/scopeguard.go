package sdk

import (
	"context"
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/apiscope"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// ScopeGuard wraps a plugin's host services so that ProxmoxCall refuses
// (with [PermissionDenied]) any method+path outside the union of the API
// scopes the plugin's capabilities declare, with {node} bound to node.
// Allowed calls are forwarded with the cleaned path (see apiscope.Clean),
// so Proxmox sees exactly what was matched. The core and sdk/plugintest
// enforce scopes through this one function.
func ScopeGuard(pluginName, node string, caps []*pluginv1.Capability, next HostServices) (HostServices, error) {
	var scopes []apiscope.Scope
	for _, c := range caps {
		scopes = append(scopes, apiscope.FromProto(c.GetApi())...)
	}
	set, err := apiscope.Compile(scopes)
	if err != nil {
		return nil, fmt.Errorf("plugin %s declares a bad API scope: %w", pluginName, err)
	}
	return &scopeGuard{name: pluginName, node: node, set: set, next: next}, nil
}

type scopeGuard struct {
	name string
	node string
	set  *apiscope.Set
	next HostServices
}

func (g *scopeGuard) ProxmoxCall(ctx context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error) {
	clean, err := g.set.Check(g.node, req.GetMethod(), req.GetPath())
	if err != nil {
		return nil, PermissionDenied(g.name, req.GetMethod(), req.GetPath())
	}
	fwd := &pluginv1.CallRequest{Method: req.GetMethod(), Path: clean, Params: req.GetParams()}
	return g.next.ProxmoxCall(ctx, fwd)
}

func (g *scopeGuard) WaitTask(ctx context.Context, upid string) (*pluginv1.WaitResponse, error) {
	return g.next.WaitTask(ctx, upid)
}

func (g *scopeGuard) Event(ctx context.Context, req *pluginv1.EventRequest) error {
	return g.next.Event(ctx, req)
}
