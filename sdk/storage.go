package sdk

import (
	"context"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// StorageBackend is the typed service of storage plugins, the contract
// third-party storage authors implement beside Plugin. A Plugin that
// implements it serves StorageService and reports FeatureStorageV1.
// Return [Errorf] errors (CodeNotFound, CodeConflict, CodeInvalidParams,
// ...) so the core can tell failures apart.
type StorageBackend interface {
	// DefineStorage creates a storage, or updates it when update is set;
	// digest guards an update against a concurrent change.
	DefineStorage(ctx context.Context, spec StorageSpec, update bool, digest string) (StorageInfo, error)
	ListStorages(ctx context.Context) ([]StorageInfo, error)
	StorageStatus(ctx context.Context, id string) (StorageInfo, error)
	RemoveStorage(ctx context.Context, id string) error
	// ListContent lists a storage's volumes; content ("backup", "iso",
	// "vztmpl", "images", ...) and vmid filter when non-zero.
	ListContent(ctx context.Context, id, content string, vmid uint32) ([]ContentItem, error)
}

// StorageSpec describes a storage to define.
type StorageSpec struct {
	ID string
	// Type is the Proxmox storage type: dir, nfs, cifs, pbs, lvmthin, ...
	Type    string
	Content []string
	// Options are the type's other properties (server, export, path, ...).
	Options map[string]string
	Nodes   []string
	Disable bool
}

// StorageInfo is a storage's definition and usage.
type StorageInfo struct {
	ID         string
	Type       string
	Content    []string
	Active     bool
	Enabled    bool
	Shared     bool
	TotalBytes uint64
	UsedBytes  uint64
	AvailBytes uint64
}

// ContentItem is one volume on a storage.
type ContentItem struct {
	VolID     string
	Content   string
	Format    string
	SizeBytes uint64
	CTime     int64
	VMID      uint32
	Notes     string
}

func storageInfoToProto(i StorageInfo) *pluginv1.StorageInfo {
	return &pluginv1.StorageInfo{Id: i.ID, Type: i.Type, Content: i.Content, Active: i.Active, Enabled: i.Enabled,
		Shared: i.Shared, TotalBytes: i.TotalBytes, UsedBytes: i.UsedBytes, AvailBytes: i.AvailBytes}
}

func storageSpecFromProto(p *pluginv1.StorageSpec) StorageSpec {
	return StorageSpec{ID: p.GetId(), Type: p.GetType(), Content: p.GetContent(), Options: p.GetOptions(),
		Nodes: p.GetNodes(), Disable: p.GetDisable()}
}

// storageServer is the plugin side of StorageService.
type storageServer struct {
	pluginv1.UnimplementedStorageServiceServer
	s *server
}

// guard applies the same configured/draining rules as Invoke.
func (ss *storageServer) guard() (func(), error) {
	if !ss.s.configured.Load() {
		return nil, errNotConfigured
	}
	if !ss.s.enter() {
		return nil, toStatus(PluginErrorFromProto(shuttingDown))
	}
	return ss.s.leave, nil
}

func (ss *storageServer) DefineStorage(ctx context.Context, req *pluginv1.DefineStorageRequest) (*pluginv1.DefineStorageResponse, error) {
	done, err := ss.guard()
	if err != nil {
		return nil, err
	}
	defer done()
	info, err := ss.s.storage.DefineStorage(ctx, storageSpecFromProto(req.GetSpec()), req.GetUpdate(), req.GetDigest())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.DefineStorageResponse{Storage: storageInfoToProto(info)}, nil
}

func (ss *storageServer) ListStorages(ctx context.Context, _ *pluginv1.ListStoragesRequest) (*pluginv1.ListStoragesResponse, error) {
	done, err := ss.guard()
	if err != nil {
		return nil, err
	}
	defer done()
	list, err := ss.s.storage.ListStorages(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pluginv1.ListStoragesResponse{Storages: make([]*pluginv1.StorageInfo, 0, len(list))}
	for _, i := range list {
		out.Storages = append(out.Storages, storageInfoToProto(i))
	}
	return out, nil
}

func (ss *storageServer) StorageStatus(ctx context.Context, req *pluginv1.StorageStatusRequest) (*pluginv1.StorageStatusResponse, error) {
	done, err := ss.guard()
	if err != nil {
		return nil, err
	}
	defer done()
	info, err := ss.s.storage.StorageStatus(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.StorageStatusResponse{Storage: storageInfoToProto(info)}, nil
}

func (ss *storageServer) RemoveStorage(ctx context.Context, req *pluginv1.RemoveStorageRequest) (*pluginv1.RemoveStorageResponse, error) {
	done, err := ss.guard()
	if err != nil {
		return nil, err
	}
	defer done()
	if err := ss.s.storage.RemoveStorage(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.RemoveStorageResponse{}, nil
}

func (ss *storageServer) ListContent(ctx context.Context, req *pluginv1.ListContentRequest) (*pluginv1.ListContentResponse, error) {
	done, err := ss.guard()
	if err != nil {
		return nil, err
	}
	defer done()
	items, err := ss.s.storage.ListContent(ctx, req.GetId(), req.GetContent(), req.GetVmid())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pluginv1.ListContentResponse{Items: make([]*pluginv1.ContentItem, 0, len(items))}
	for _, i := range items {
		out.Items = append(out.Items, &pluginv1.ContentItem{Volid: i.VolID, Content: i.Content, Format: i.Format,
			SizeBytes: i.SizeBytes, Ctime: i.CTime, Vmid: i.VMID, Notes: i.Notes})
	}
	return out, nil
}

// StorageClient is the core's handle on a plugin's StorageService. Errors
// are mapped like PluginClient's (*PluginError, ErrPluginCrashed).
type StorageClient struct {
	rpc pluginv1.StorageServiceClient
}

func (c *StorageClient) DefineStorage(ctx context.Context, req *pluginv1.DefineStorageRequest) (*pluginv1.StorageInfo, error) {
	resp, err := c.rpc.DefineStorage(ctx, req)
	if err != nil {
		return nil, hostError(ctx, "define storage "+req.GetSpec().GetId(), err)
	}
	return resp.GetStorage(), nil
}

func (c *StorageClient) ListStorages(ctx context.Context) ([]*pluginv1.StorageInfo, error) {
	resp, err := c.rpc.ListStorages(ctx, &pluginv1.ListStoragesRequest{})
	if err != nil {
		return nil, hostError(ctx, "list storages", err)
	}
	return resp.GetStorages(), nil
}

func (c *StorageClient) StorageStatus(ctx context.Context, id string) (*pluginv1.StorageInfo, error) {
	resp, err := c.rpc.StorageStatus(ctx, &pluginv1.StorageStatusRequest{Id: id})
	if err != nil {
		return nil, hostError(ctx, "storage status "+id, err)
	}
	return resp.GetStorage(), nil
}

func (c *StorageClient) RemoveStorage(ctx context.Context, id string) error {
	if _, err := c.rpc.RemoveStorage(ctx, &pluginv1.RemoveStorageRequest{Id: id}); err != nil {
		return hostError(ctx, "remove storage "+id, err)
	}
	return nil
}

func (c *StorageClient) ListContent(ctx context.Context, req *pluginv1.ListContentRequest) ([]*pluginv1.ContentItem, error) {
	resp, err := c.rpc.ListContent(ctx, req)
	if err != nil {
		return nil, hostError(ctx, "list content of "+req.GetId(), err)
	}
	return resp.GetItems(), nil
}
