package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// nfsPlugin defines, lists and removes NFS storages. Configure sets it up;
// handlers may run concurrently.
type nfsPlugin struct {
	mu  sync.RWMutex
	pve pve
}

var (
	_ sdk.Plugin         = (*nfsPlugin)(nil)
	_ sdk.SelfTester     = (*nfsPlugin)(nil)
	_ sdk.HealthWatcher  = (*nfsPlugin)(nil)
	_ sdk.StorageBackend = (*nfsPlugin)(nil)
)

const (
	capList    = "nfs.list"
	capContent = "nfs.content"
	capDefine  = "nfs.define"
	capRemove  = "nfs.remove"
)

func (p *nfsPlugin) Info() sdk.Info {
	return sdk.Info{
		Name:    Name,
		Version: Version,
		Capabilities: []sdk.Capability{
			{
				ID: capList, SchemaVersion: 1, Class: sdk.Read,
				Description: "List the cluster's NFS storages with server, export and this node's status.",
				API: []sdk.APIScope{
					{Method: "GET", Path: "/storage"},
					{Method: "GET", Path: "/nodes/{node}/storage"},
					{Method: "GET", Path: "/nodes/{node}/storage/{storage}/status"},
				},
				Handler: p.handleList,
			},
			{
				ID: capContent, SchemaVersion: 1, Class: sdk.Read,
				Description: "List the volumes on an NFS storage. Params: id, content, vmid.",
				API: []sdk.APIScope{
					{Method: "GET", Path: "/nodes/{node}/storage/{storage}/status"},
					{Method: "GET", Path: "/nodes/{node}/storage/{storage}/content"},
				},
				Handler: p.handleContent,
			},
			{
				// Benign: it adds (or changes) a storage.cfg entry; data is never touched.
				ID: capDefine, SchemaVersion: 1, Class: sdk.Benign,
				Description: "Define an NFS storage. Params: id, server, export, content, options (mount options), " +
					"path, nodes, disable; update+digest to change an existing one.",
				API: []sdk.APIScope{
					{Method: "POST", Path: "/storage"},
					{Method: "GET", Path: "/storage/{storage}"},
					{Method: "PUT", Path: "/storage/{storage}"},
					{Method: "GET", Path: "/nodes/{node}/storage/{storage}/status"},
				},
				Handler: p.handleDefine,
			},
			{
				// Destructive: guests and backup jobs using the storage lose it.
				ID: capRemove, SchemaVersion: 1, Class: sdk.Destructive,
				Description: "Remove an NFS storage from the cluster configuration (the export's data stays). Params: id.",
				API: []sdk.APIScope{
					{Method: "GET", Path: "/storage/{storage}"},
					{Method: "DELETE", Path: "/storage/{storage}"},
				},
				Handler: p.handleRemove,
			},
		},
	}
}

func (p *nfsPlugin) Configure(ctx context.Context, host sdk.Host, cfg sdk.Config) error {
	var none struct{} // this plugin takes no settings; Decode refuses unknown keys
	if err := cfg.Decode(&none); err != nil {
		return err
	}
	p.mu.Lock()
	p.pve = pve{api: host.API(), node: host.Node()}
	p.mu.Unlock()
	// Check once now, so the states Configure answers with are real ones.
	// An unreachable Proxmox is a state, not a failure to configure.
	p.checkHealth(ctx, host)
	return nil
}

func (p *nfsPlugin) client() pve {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.pve
}

// ---- capabilities ----

// nfsStorage is one NFS storage as nfs.list returns it.
type nfsStorage struct {
	ID         string   `json:"id"`
	Server     string   `json:"server"`
	Export     string   `json:"export"`
	Path       string   `json:"path"`
	Options    string   `json:"options,omitempty"`
	Content    []string `json:"content"`
	Nodes      []string `json:"nodes,omitempty"`
	Enabled    bool     `json:"enabled"`
	Active     bool     `json:"active"`
	TotalBytes uint64   `json:"total_bytes"`
	UsedBytes  uint64   `json:"used_bytes"`
	AvailBytes uint64   `json:"avail_bytes"`
}

func (p *nfsPlugin) list(ctx context.Context) ([]nfsStorage, error) {
	c := p.client()
	cfgs, err := c.nfsConfigs(ctx)
	if err != nil {
		return nil, err
	}
	stats, err := c.statuses(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]nfsStorage, 0, len(cfgs))
	for _, cfg := range cfgs {
		if cfg.Type != "nfs" { // the type filter is the server's; do not trust it blindly
			continue
		}
		st := stats[cfg.Storage] // absent when the storage is not for this node
		out = append(out, nfsStorage{ID: cfg.Storage, Server: cfg.Server, Export: cfg.Export, Path: cfg.Path,
			Options: cfg.Options, Content: nonNil(splitList(cfg.Content)), Nodes: splitList(cfg.Nodes),
			Enabled: cfg.Disable == 0, Active: st.Active != 0,
			TotalBytes: st.Total.uint(), UsedBytes: st.Used.uint(), AvailBytes: st.Avail.uint()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (p *nfsPlugin) handleList(ctx context.Context, call *sdk.Call) (any, error) {
	var none struct{}
	if err := call.Params.Decode(&none); err != nil {
		return nil, err
	}
	list, err := p.list(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"storages": list}, nil
}

type contentParams struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	VMID    uint32 `json:"vmid"`
}

func (p *nfsPlugin) handleContent(ctx context.Context, call *sdk.Call) (any, error) {
	var cp contentParams
	if err := call.Params.Decode(&cp); err != nil {
		return nil, err
	}
	items, err := p.ListContent(ctx, cp.ID, cp.Content, cp.VMID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": cp.ID, "items": items}, nil
}

type defineParams struct {
	ID      string   `json:"id"`
	Server  string   `json:"server"`
	Export  string   `json:"export"`
	Content []string `json:"content"`
	Options string   `json:"options"`
	Path    string   `json:"path"`
	Nodes   []string `json:"nodes"`
	Disable bool     `json:"disable"`
	Update  bool     `json:"update"`
	Digest  string   `json:"digest"`
}

func (p *nfsPlugin) handleDefine(ctx context.Context, call *sdk.Call) (any, error) {
	var dp defineParams
	if err := call.Params.Decode(&dp); err != nil {
		return nil, err
	}
	spec := nfsSpec{ID: dp.ID, Server: dp.Server, Export: dp.Export, Content: dp.Content, Options: dp.Options,
		Path: dp.Path, Nodes: dp.Nodes, Disable: dp.Disable}
	info, err := p.define(ctx, spec, dp.Update, dp.Digest)
	if err != nil {
		return nil, err
	}
	p.audit(ctx, call, "NFS storage "+spec.ID+" defined", spec.ID)
	return info, nil
}

type idParams struct {
	ID string `json:"id"`
}

func (p *nfsPlugin) handleRemove(ctx context.Context, call *sdk.Call) (any, error) {
	var ip idParams
	if err := call.Params.Decode(&ip); err != nil {
		return nil, err
	}
	if err := p.RemoveStorage(ctx, ip.ID); err != nil {
		return nil, err
	}
	p.audit(ctx, call, "NFS storage "+ip.ID+" removed", ip.ID)
	return map[string]any{"id": ip.ID, "removed": true}, nil
}

func (p *nfsPlugin) audit(ctx context.Context, call *sdk.Call, msg, id string) {
	fields := map[string]string{"storage": id, "op_id": call.OpID, "principal": call.Principal}
	if err := call.Host.Event(ctx, call.Capability, msg, fields); err != nil {
		sdk.Logger().Warn("audit event not recorded", "error", err)
	}
}

// ---- define / remove ----

// define creates an NFS storage, or updates one under its digest. A
// repeated create of the same storage succeeds (an op retried after a lost
// answer must not fail).
func (p *nfsPlugin) define(ctx context.Context, s nfsSpec, update bool, digest string) (sdk.StorageInfo, error) {
	if update {
		if err := p.update(ctx, s, digest); err != nil {
			return sdk.StorageInfo{}, err
		}
		return p.info(ctx, s.ID)
	}
	if digest != "" {
		return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeInvalidParams, "digest", "a digest only applies to an update")
	}
	if err := s.validate(); err != nil {
		return sdk.StorageInfo{}, asParamError(err)
	}
	c := p.client()
	q := url.Values{}
	for k, v := range s.params() {
		q.Set(k, v)
	}
	if _, err := c.api.Post(ctx, "/storage", q); err != nil {
		err = classify(err, "create NFS storage "+s.ID)
		var pe *sdk.PluginError
		if !errors.As(err, &pe) || pe.Code != sdk.CodeConflict {
			return sdk.StorageInfo{}, err
		}
		cur, cerr := c.config(ctx, s.ID)
		if cerr != nil {
			return sdk.StorageInfo{}, errors.Join(err, cerr)
		}
		if diff := differs(cur, s); diff != "" {
			return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeConflict, "id",
				"storage %s already exists and differs (%s); use update to change it", s.ID, diff)
		}
	}
	return p.info(ctx, s.ID)
}

// differs names what an existing storage has that the spec does not.
func differs(cur storageConfig, s nfsSpec) string {
	var d []string
	switch {
	case cur.Type != "nfs":
		d = append(d, "it is a "+cur.Type+" storage")
	case cur.Server != s.Server:
		d = append(d, "server is "+cur.Server)
	case cur.Export != s.Export:
		d = append(d, "export is "+cur.Export)
	}
	if len(s.Content) > 0 && strings.Join(splitList(cur.Content), ",") != strings.Join(uniqueSorted(s.Content), ",") {
		d = append(d, "content is "+cur.Content)
	}
	if s.Options != "" && cur.Options != s.Options {
		d = append(d, "options are "+cur.Options)
	}
	return strings.Join(d, ", ")
}

func (p *nfsPlugin) update(ctx context.Context, s nfsSpec, digest string) error {
	if err := validateID("id", s.ID); err != nil {
		return asParamError(err)
	}
	c := p.client()
	cur, err := c.config(ctx, s.ID)
	if err != nil {
		return err
	}
	if cur.Type != "nfs" {
		return sdk.Errorf(sdk.CodeInvalidParams, "id", "storage %s is a %s storage, not NFS", s.ID, cur.Type)
	}
	if digest != "" && digest != cur.Digest {
		return sdk.Errorf(sdk.CodeConflict, "digest", "storage configuration changed since digest %s was read; read it again", digest)
	}
	// Fill what the update leaves out from the current config, then check
	// the whole result as a create would.
	if s.Server == "" {
		s.Server = cur.Server
	}
	if s.Export == "" {
		s.Export = cur.Export
	}
	if err := s.validate(); err != nil {
		return asParamError(err)
	}
	if s.Export != cur.Export {
		return sdk.Errorf(sdk.CodeInvalidParams, "export", "fixed at creation: is %q; define a new storage for another export", cur.Export)
	}
	if s.Path != "" && s.Path != cur.Path {
		return sdk.Errorf(sdk.CodeInvalidParams, "path", "fixed at creation: is %q", cur.Path)
	}
	q := url.Values{}
	if s.Server != cur.Server {
		q.Set("server", s.Server)
	}
	if len(s.Content) > 0 && strings.Join(uniqueSorted(s.Content), ",") != strings.Join(splitList(cur.Content), ",") {
		q.Set("content", strings.Join(uniqueSorted(s.Content), ","))
	}
	if s.Options != "" && s.Options != cur.Options {
		q.Set("options", s.Options)
	}
	if len(s.Nodes) > 0 && strings.Join(uniqueSorted(s.Nodes), ",") != strings.Join(splitList(cur.Nodes), ",") {
		q.Set("nodes", strings.Join(uniqueSorted(s.Nodes), ","))
	}
	if s.Disable != (cur.Disable != 0) {
		q.Set("disable", map[bool]string{true: "1", false: "0"}[s.Disable])
	}
	if len(q) == 0 {
		return nil // nothing to change: write nothing
	}
	q.Set("digest", cur.Digest) // Proxmox refuses the write if storage.cfg changed since our read
	if _, err := c.api.Put(ctx, "/storage/"+s.ID, q); err != nil {
		return classify(err, "update NFS storage "+s.ID)
	}
	return nil
}

// info is the storage's status on this node, or its config when it has
// none here (limited to other nodes).
func (p *nfsPlugin) info(ctx context.Context, id string) (sdk.StorageInfo, error) {
	c := p.client()
	st, err := c.status(ctx, id)
	if err == nil {
		return st.info(), nil
	}
	cur, cerr := c.config(ctx, id)
	if cerr != nil {
		return sdk.StorageInfo{}, errors.Join(err, cerr)
	}
	return sdk.StorageInfo{ID: id, Type: "nfs", Content: splitList(cur.Content), Enabled: cur.Disable == 0, Shared: true}, nil
}

// asParamError turns a validation error into an sdk error naming the field.
func asParamError(err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return sdk.Errorf(sdk.CodeInvalidParams, fe.Field, "%s", fe.Msg)
	}
	return err
}

// ---- StorageBackend (typed StorageService, type nfs only) ----

func (p *nfsPlugin) DefineStorage(ctx context.Context, spec sdk.StorageSpec, update bool, digest string) (sdk.StorageInfo, error) {
	if spec.Type != "" && spec.Type != "nfs" {
		return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeInvalidParams, "type", "this plugin defines nfs storages, not %q", spec.Type)
	}
	s := nfsSpec{ID: spec.ID, Content: spec.Content, Nodes: spec.Nodes, Disable: spec.Disable}
	for k, v := range spec.Options {
		switch k {
		case "server":
			s.Server = v
		case "export":
			s.Export = v
		case "options":
			s.Options = v
		case "path":
			s.Path = v
		default:
			return sdk.StorageInfo{}, sdk.Errorf(sdk.CodeInvalidParams, "options."+k,
				"not supported by the NFS plugin (supported: server, export, options, path)")
		}
	}
	return p.define(ctx, s, update, digest)
}

func (p *nfsPlugin) ListStorages(ctx context.Context) ([]sdk.StorageInfo, error) {
	list, err := p.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sdk.StorageInfo, 0, len(list))
	for _, s := range list {
		out = append(out, sdk.StorageInfo{ID: s.ID, Type: "nfs", Content: s.Content, Active: s.Active,
			Enabled: s.Enabled, Shared: true, TotalBytes: s.TotalBytes, UsedBytes: s.UsedBytes, AvailBytes: s.AvailBytes})
	}
	return out, nil
}

func (p *nfsPlugin) StorageStatus(ctx context.Context, id string) (sdk.StorageInfo, error) {
	st, err := p.nfsStatus(ctx, id)
	if err != nil {
		return sdk.StorageInfo{}, err
	}
	return st.info(), nil
}

// nfsStatus reads a storage's status on this node and refuses other
// types. Reads use the status (Datastore.Audit is enough), not the config
// (GET /storage/{id} needs Datastore.Allocate).
func (p *nfsPlugin) nfsStatus(ctx context.Context, id string) (storageStatus, error) {
	if err := validateID("id", id); err != nil {
		return storageStatus{}, asParamError(err)
	}
	st, err := p.client().status(ctx, id)
	if err != nil {
		return st, err
	}
	if st.Type != "nfs" {
		return st, notNFS(id, st.Type)
	}
	return st, nil
}

func notNFS(id, typ string) error {
	return sdk.Errorf(sdk.CodeInvalidParams, "id", "storage %s is a %s storage; this plugin handles NFS storages only", id, typ)
}

func (p *nfsPlugin) RemoveStorage(ctx context.Context, id string) error {
	if err := p.requireNFS(ctx, id); err != nil {
		return err
	}
	if _, err := p.client().api.Delete(ctx, "/storage/"+id, nil); err != nil {
		return classify(err, "remove NFS storage "+id)
	}
	return nil
}

func (p *nfsPlugin) ListContent(ctx context.Context, id, content string, vmid uint32) ([]sdk.ContentItem, error) {
	if _, err := p.nfsStatus(ctx, id); err != nil {
		return nil, err
	}
	if content != "" && !contains(nfsContent, content) {
		return nil, sdk.Errorf(sdk.CodeInvalidParams, "content", "unknown content type %q (want one of %s)", clip(content), strings.Join(nfsContent, ", "))
	}
	if vmid != 0 && vmid < 100 {
		return nil, sdk.Errorf(sdk.CodeInvalidParams, "vmid", "vmid %d is below 100", vmid)
	}
	items, err := p.client().content(ctx, id, content, vmid)
	if err != nil {
		return nil, err
	}
	out := make([]sdk.ContentItem, 0, len(items))
	for _, it := range items {
		out = append(out, sdk.ContentItem{VolID: it.VolID, Content: it.Content, Format: it.Format,
			SizeBytes: it.Size.uint(), CTime: int64(it.CTime), VMID: uint32(it.VMID.uint()), Notes: it.Notes})
	}
	return out, nil
}

// requireNFS refuses storages of other types before a change: this plugin
// owns NFS only.
func (p *nfsPlugin) requireNFS(ctx context.Context, id string) error {
	if err := validateID("id", id); err != nil {
		return asParamError(err)
	}
	cur, err := p.client().config(ctx, id)
	if err != nil {
		return err
	}
	if cur.Type != "nfs" {
		return notNFS(id, cur.Type)
	}
	return nil
}

// ---- selftest and health ----

// SelfTest checks, reading only, that NFS storages can be listed and that
// each active one answers its status. Task mode adds nothing: defining an
// NFS storage makes every node mount the export, and no export is known
// to be safe to mount, so that check is skipped with the reason.
func (p *nfsPlugin) SelfTest(ctx context.Context, mode sdk.SelfTestMode, _ int64) []sdk.Check {
	var checks []sdk.Check
	start := time.Now()
	list, err := p.list(ctx)
	c := sdk.Check{Name: "nfs storages listable", Capability: capList, Duration: time.Since(start)}
	if err != nil {
		c.Status, c.Detail = sdk.Fail, err.Error()
		return append(checks, c)
	}
	c.Status, c.Detail = sdk.Pass, fmt.Sprintf("%d NFS storages defined", len(list))
	checks = append(checks, c)
	for _, s := range list {
		if !s.Active {
			continue
		}
		start := time.Now()
		st, err := p.StorageStatus(ctx, s.ID)
		c := sdk.Check{Name: "status of nfs storage " + s.ID, Capability: capList, Status: sdk.Pass,
			Detail: fmt.Sprintf("%d of %d bytes used", st.UsedBytes, st.TotalBytes)}
		if err != nil {
			c.Status, c.Detail = sdk.Fail, err.Error()
		}
		c.Duration = time.Since(start)
		checks = append(checks, c)
	}
	if mode == sdk.SelfTestTask {
		checks = append(checks, sdk.Check{Name: "define and remove an nfs storage", Capability: capDefine,
			Status: sdk.Skip, Detail: "not run: defining an NFS storage makes every node mount the export, and no export is known to be safe to mount"})
	}
	return checks
}

// WatchHealth re-checks every minute (Configure ran the first check).
func (p *nfsPlugin) WatchHealth(ctx context.Context, n sdk.Notifier) {
	t := time.NewTicker(time.Minute)
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

// checkHealth lists the NFS storages; every capability goes through the
// same API, so all follow the result.
func (p *nfsPlugin) checkHealth(ctx context.Context, n sdk.Notifier) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := p.client().nfsConfigs(cctx)
	if ctx.Err() != nil {
		return // shutting down: not a health change
	}
	state, detail := sdk.Available, "NFS storage configuration readable"
	if err != nil {
		state, detail = sdk.Unhealthy, err.Error()
	}
	for _, id := range []string{capList, capContent, capDefine, capRemove} {
		n.SetState(id, state, detail)
	}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
