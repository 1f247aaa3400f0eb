package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/plugins/storage/internal/pvestorage"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// config is the plugin's section of the agent config
// (plugins.settings.storage).
type config struct {
	// HealthInterval is how often the health watcher lists the node's
	// storages ("1m"); default 1m, at least 5s.
	HealthInterval string `json:"health_interval"`
}

const (
	defaultHealthInterval = time.Minute
	minHealthInterval     = 5 * time.Second
	// healthTimeout bounds one health check.
	healthTimeout = 10 * time.Second
)

// plugin is the storage plugin. Configure fills it; handlers read it.
type plugin struct {
	mu             sync.RWMutex
	svc            *pvestorage.Service
	healthInterval time.Duration
}

func newPlugin() *plugin { return &plugin{healthInterval: defaultHealthInterval} }

var (
	_ sdk.Plugin         = (*plugin)(nil)
	_ sdk.SelfTester     = (*plugin)(nil)
	_ sdk.Reporter       = (*plugin)(nil)
	_ sdk.HealthWatcher  = (*plugin)(nil)
	_ sdk.StorageBackend = (*plugin)(nil)
)

// Capability IDs.
const (
	capList    = "storage.list"
	capStatus  = "storage.status"
	capContent = "storage.content"
	capDefine  = "storage.define"
	capRemove  = "storage.remove"
)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{
		Name:    Name,
		Version: Version,
		Capabilities: []sdk.Capability{
			{
				ID: capList, SchemaVersion: 1, Class: sdk.Read,
				Description: "List this node's storages with type, content, state and usage. " +
					"Params: content (only storages allowing it), type, enabled_only.",
				API:     []sdk.APIScope{{Method: "GET", Path: "/nodes/{node}/storage"}},
				Handler: p.handleList,
			},
			{
				ID: capStatus, SchemaVersion: 1, Class: sdk.Read,
				Description: "Status and usage of one storage on this node. Params: id.",
				API:         []sdk.APIScope{{Method: "GET", Path: "/nodes/{node}/storage/{storage}/status"}},
				Handler:     p.handleStatus,
			},
			{
				ID: capContent, SchemaVersion: 1, Class: sdk.Read,
				Description: "List the volumes on a storage. Params: id, content (backup, iso, ...), vmid.",
				API:         []sdk.APIScope{{Method: "GET", Path: "/nodes/{node}/storage/{storage}/content"}},
				Handler:     p.handleContent,
			},
			{
				// Benign: it changes the cluster's storage.cfg within policy, but
				// never data; an update is guarded by the config digest.
				ID: capDefine, SchemaVersion: 1, Class: sdk.Benign,
				Description: "Create a storage, or with update=true change one under its config digest. " +
					"Params: id, type, content, options{...}, nodes, disable, update, digest. " +
					"A repeated identical create succeeds; an update merges options and writes nothing when nothing changes. " +
					"The result carries the new config digest.",
				API: []sdk.APIScope{
					{Method: "POST", Path: "/storage"},
					{Method: "GET", Path: "/storage/{storage}"},
					{Method: "PUT", Path: "/storage/{storage}"},
					{Method: "GET", Path: "/nodes/{node}/storage/{storage}/status"},
				},
				Handler: p.handleDefine,
			},
			{
				// Destructive: guests and backup jobs using the storage break.
				ID: capRemove, SchemaVersion: 1, Class: sdk.Destructive,
				Description: "Remove a storage from the cluster configuration (its data stays on disk). Params: id.",
				API:         []sdk.APIScope{{Method: "DELETE", Path: "/storage/{storage}"}},
				Handler:     p.handleRemove,
			},
		},
	}
}

func (p *plugin) Configure(ctx context.Context, host sdk.Host, cfg sdk.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	interval := defaultHealthInterval
	if c.HealthInterval != "" {
		d, err := time.ParseDuration(c.HealthInterval)
		if err != nil {
			return sdk.Errorf(sdk.CodeInvalidParams, "health_interval", "invalid duration %q (want e.g. \"1m\")", c.HealthInterval)
		}
		if d < minHealthInterval {
			return sdk.Errorf(sdk.CodeInvalidParams, "health_interval", "%s is below the minimum of %s", d, minHealthInterval)
		}
		interval = d
	}
	if err := pvestorage.ValidateNode("node", host.Node()); err != nil {
		return toSDKError(fmt.Errorf("configure: %w", err))
	}
	p.mu.Lock()
	p.svc = &pvestorage.Service{API: hostAPI{host.API()}, Node: host.Node()}
	p.healthInterval = interval
	p.mu.Unlock()
	// The first health check runs here, so the states Configure answers
	// with are real ones. Proxmox being down is a state, not a failure to
	// configure.
	p.checkHealth(ctx, host)
	return nil
}

// service returns the configured service; the SDK calls nothing but Info
// before Configure, so it is always set when a handler runs.
func (p *plugin) service() *pvestorage.Service {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.svc
}

func (p *plugin) handleList(ctx context.Context, call *sdk.Call) (any, error) {
	f, err := pvestorage.ParseListParams(call.Params.Map())
	if err != nil {
		return nil, toSDKError(err)
	}
	list, err := p.service().List(ctx, f)
	if err != nil {
		return nil, toSDKError(err)
	}
	return pvestorage.StoragesMap(list), nil
}

func (p *plugin) handleStatus(ctx context.Context, call *sdk.Call) (any, error) {
	id, err := pvestorage.ParseIDParams(call.Params.Map())
	if err != nil {
		return nil, toSDKError(err)
	}
	st, err := p.service().Status(ctx, id)
	if err != nil {
		return nil, toSDKError(err)
	}
	return pvestorage.StorageMap(st), nil
}

func (p *plugin) handleContent(ctx context.Context, call *sdk.Call) (any, error) {
	id, f, err := pvestorage.ParseContentParams(call.Params.Map())
	if err != nil {
		return nil, toSDKError(err)
	}
	items, err := p.service().Content(ctx, id, f)
	if err != nil {
		return nil, toSDKError(err)
	}
	return pvestorage.ContentMap(id, items), nil
}

func (p *plugin) handleDefine(ctx context.Context, call *sdk.Call) (any, error) {
	r, err := pvestorage.ParseDefineParams(call.Params.Map())
	if err != nil {
		return nil, toSDKError(err)
	}
	st, err := p.service().Define(ctx, r.Spec, r.Update, r.Digest)
	if err != nil {
		return nil, toSDKError(err)
	}
	verb := "created"
	if r.Update {
		verb = "updated"
	}
	p.audit(ctx, call, capDefine, fmt.Sprintf("storage %s %s", r.Spec.ID, verb),
		map[string]string{"storage": r.Spec.ID, "type": st.Type})
	out := pvestorage.StorageMap(st)
	// The digest lets the caller's next update detect a concurrent change.
	if cfg, err := p.service().Config(ctx, r.Spec.ID); err == nil {
		out["digest"] = cfg.Digest
	}
	return out, nil
}

func (p *plugin) handleRemove(ctx context.Context, call *sdk.Call) (any, error) {
	id, err := pvestorage.ParseIDParams(call.Params.Map())
	if err != nil {
		return nil, toSDKError(err)
	}
	if err := p.service().Remove(ctx, id); err != nil {
		return nil, toSDKError(err)
	}
	p.audit(ctx, call, capRemove, "storage "+id+" removed", map[string]string{"storage": id})
	return map[string]any{"id": id, "removed": true}, nil
}

// audit records a change in the core's audit log. A failure to record is
// logged, not returned: the change itself has happened.
func (p *plugin) audit(ctx context.Context, call *sdk.Call, kind, msg string, fields map[string]string) {
	if call.OpID != "" {
		fields["op_id"] = call.OpID
	}
	if call.Principal != "" {
		fields["principal"] = call.Principal
	}
	if err := call.Host.Event(ctx, kind, msg, fields); err != nil {
		sdk.Logger().Warn("audit event not recorded", "kind", kind, "error", err)
	}
}

// SelfTest runs the read checks, and in task mode also defines, updates
// and removes the scratch storage (see pvestorage.ScratchSpec: a disabled
// dir storage limited to this node, so only storage.cfg changes, and back).
// The scratch guest is not needed.
func (p *plugin) SelfTest(ctx context.Context, mode sdk.SelfTestMode, _ int64) []sdk.Check {
	svc := p.service()
	var checks []pvestorage.Check
	if mode == sdk.SelfTestTask {
		checks = svc.SelfTestTask(ctx)
	} else {
		checks = svc.SelfTestRead(ctx)
	}
	out := make([]sdk.Check, 0, len(checks))
	for _, c := range checks {
		out = append(out, sdk.Check{Name: c.Name, Capability: c.Capability, Detail: c.Detail,
			Duration: c.Duration, Status: checkStatus(c.Status)})
	}
	return out
}

func checkStatus(s pvestorage.CheckStatus) sdk.CheckStatus {
	switch s {
	case pvestorage.Pass:
		return sdk.Pass
	case pvestorage.Skip:
		return sdk.Skip
	case pvestorage.NotApplicable:
		return sdk.NotApplicable
	}
	return sdk.Fail
}

// Report returns the "storage" section: this node's storages and status.
func (p *plugin) Report(ctx context.Context) ([]sdk.ReportSection, error) {
	data, err := p.service().Report(ctx)
	if err != nil {
		return nil, toSDKError(err)
	}
	return []sdk.ReportSection{{Name: "storage", Data: data}}, nil
}

// WatchHealth lists the node's storages every health interval (Configure
// ran the first check). Every capability goes through the same API, so all
// of them follow the list: unhealthy when Proxmox cannot be reached or
// refuses, available again when it answers. Storage is never "not
// applicable": every node has some.
func (p *plugin) WatchHealth(ctx context.Context, n sdk.Notifier) {
	p.mu.RLock()
	interval := p.healthInterval
	p.mu.RUnlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.checkHealth(ctx, n)
		}
	}
}

var allCaps = []string{capList, capStatus, capContent, capDefine, capRemove}

func (p *plugin) checkHealth(ctx context.Context, n sdk.Notifier) {
	svc := p.service()
	if svc == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	list, err := svc.List(cctx, pvestorage.ListFilter{})
	if ctx.Err() != nil {
		return // shutting down: not a health change
	}
	state, detail := sdk.Available, fmt.Sprintf("%d storages on node %s", len(list), svc.Node)
	if err != nil {
		state, detail = sdk.Unhealthy, err.Error()
	}
	for _, id := range allCaps {
		n.SetState(id, state, detail)
	}
}

// ---- StorageBackend: the typed storage service, for every type ----

func (p *plugin) DefineStorage(ctx context.Context, spec sdk.StorageSpec, update bool, digest string) (sdk.StorageInfo, error) {
	st, err := p.service().Define(ctx, pvestorage.Spec{ID: spec.ID, Type: spec.Type, Content: spec.Content,
		Options: spec.Options, Nodes: spec.Nodes, Disable: spec.Disable}, update, digest)
	if err != nil {
		return sdk.StorageInfo{}, toSDKError(err)
	}
	return storageInfo(st), nil
}

func (p *plugin) ListStorages(ctx context.Context) ([]sdk.StorageInfo, error) {
	list, err := p.service().List(ctx, pvestorage.ListFilter{})
	if err != nil {
		return nil, toSDKError(err)
	}
	out := make([]sdk.StorageInfo, 0, len(list))
	for _, st := range list {
		out = append(out, storageInfo(st))
	}
	return out, nil
}

func (p *plugin) StorageStatus(ctx context.Context, id string) (sdk.StorageInfo, error) {
	st, err := p.service().Status(ctx, id)
	if err != nil {
		return sdk.StorageInfo{}, toSDKError(err)
	}
	return storageInfo(st), nil
}

func (p *plugin) RemoveStorage(ctx context.Context, id string) error {
	return toSDKError(p.service().Remove(ctx, id))
}

func (p *plugin) ListContent(ctx context.Context, id, content string, vmid uint32) ([]sdk.ContentItem, error) {
	items, err := p.service().Content(ctx, id, pvestorage.ContentFilter{Content: content, VMID: int64(vmid)})
	if err != nil {
		return nil, toSDKError(err)
	}
	out := make([]sdk.ContentItem, 0, len(items))
	for _, it := range items {
		out = append(out, sdk.ContentItem{VolID: it.VolID, Content: it.Content, Format: it.Format,
			SizeBytes: it.Size, CTime: it.CTime, VMID: it.VMID, Notes: it.Notes})
	}
	return out, nil
}

func storageInfo(st pvestorage.Storage) sdk.StorageInfo {
	return sdk.StorageInfo{ID: st.ID, Type: st.Type, Content: st.Content, Active: st.Active, Enabled: st.Enabled,
		Shared: st.Shared, TotalBytes: st.Total, UsedBytes: st.Used, AvailBytes: st.Avail}
}
