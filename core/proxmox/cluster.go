package proxmox

import (
	"context"
	"fmt"
	"net/url"
)

// VersionInfo is GET /version.
type VersionInfo struct {
	Version string // full pve-manager version, e.g. "9.1.3"
	Release string // point release, e.g. "9.1"
	RepoID  string // short git revision
}

// Version reads the API's version; it needs no privilege, so it doubles as
// a connectivity and token check.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var w struct {
		Version string `json:"version"`
		Release string `json:"release"`
		RepoID  string `json:"repoid"`
	}
	if err := c.Do(ctx, "GET", "/version", nil, &w); err != nil {
		return VersionInfo{}, err
	}
	return VersionInfo(w), nil
}

// NodeStatus is the subset of GET /nodes/{node}/status the agent reports.
type NodeStatus struct {
	Uptime          int64
	CPU             float64 // usage, 0..1
	LoadAvg         []float64
	MemoryTotal     int64
	MemoryUsed      int64
	MemoryFree      int64
	MemoryAvailable int64
	RootFSTotal     int64
	RootFSUsed      int64
	RootFSAvail     int64
	CPUModel        string
	CPUCores        int
	CPUThreads      int
	CPUSockets      int
	PVEVersion      string
	KernelRelease   string
	BootMode        string // "efi" or "legacy-bios"
}

type nodeStatusWire struct {
	Uptime  flexInt     `json:"uptime"`
	CPU     flexFloat   `json:"cpu"`
	LoadAvg []flexFloat `json:"loadavg"`
	Memory  struct {
		Total     flexInt `json:"total"`
		Used      flexInt `json:"used"`
		Free      flexInt `json:"free"`
		Available flexInt `json:"available"`
	} `json:"memory"`
	RootFS struct {
		Total flexInt `json:"total"`
		Used  flexInt `json:"used"`
		Avail flexInt `json:"avail"`
	} `json:"rootfs"`
	CPUInfo struct {
		Model   string  `json:"model"`
		Cores   flexInt `json:"cores"`
		CPUs    flexInt `json:"cpus"`
		Sockets flexInt `json:"sockets"`
	} `json:"cpuinfo"`
	PVEVersion string `json:"pveversion"`
	Kernel     struct {
		Release string `json:"release"`
	} `json:"current-kernel"`
	BootInfo struct {
		Mode string `json:"mode"`
	} `json:"boot-info"`
}

// NodeStatus reads a node's status; node "" means the client's node.
func (c *Client) NodeStatus(ctx context.Context, node string) (NodeStatus, error) {
	if node == "" {
		node = c.node
	}
	var w nodeStatusWire
	if err := c.Do(ctx, "GET", nodePath(node, "status"), nil, &w); err != nil {
		return NodeStatus{}, err
	}
	s := NodeStatus{
		Uptime: int64(w.Uptime), CPU: float64(w.CPU),
		MemoryTotal: int64(w.Memory.Total), MemoryUsed: int64(w.Memory.Used),
		MemoryFree: int64(w.Memory.Free), MemoryAvailable: int64(w.Memory.Available),
		RootFSTotal: int64(w.RootFS.Total), RootFSUsed: int64(w.RootFS.Used), RootFSAvail: int64(w.RootFS.Avail),
		CPUModel: w.CPUInfo.Model, CPUCores: int(w.CPUInfo.Cores), CPUThreads: int(w.CPUInfo.CPUs),
		CPUSockets: int(w.CPUInfo.Sockets), PVEVersion: w.PVEVersion, KernelRelease: w.Kernel.Release,
		BootMode: w.BootInfo.Mode,
	}
	for _, l := range w.LoadAvg {
		s.LoadAvg = append(s.LoadAvg, float64(l))
	}
	return s, nil
}

// Resource is one entry of GET /cluster/resources. Fields apply per Type
// ("qemu", "lxc", "node", "storage", "sdn", "pool").
type Resource struct {
	ID         string // e.g. "lxc/100", "node/pve", "storage/pve/local"
	Type       string
	Node       string
	Name       string
	Status     string
	VMID       int
	Template   bool
	Lock       string
	HAState    string
	Tags       string
	Pool       string
	Storage    string
	Content    string
	PluginType string
	Shared     bool
	CPU        float64
	MaxCPU     float64
	Mem        int64
	MaxMem     int64
	Disk       int64
	MaxDisk    int64
	Uptime     int64
}

// GuestKind returns the guest kind of a "qemu" or "lxc" resource, else "".
func (r Resource) GuestKind() GuestKind {
	switch GuestKind(r.Type) {
	case QEMU, LXC:
		return GuestKind(r.Type)
	}
	return ""
}

type resourceWire struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Node       string    `json:"node"`
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	VMID       flexInt   `json:"vmid"`
	Template   flexBool  `json:"template"`
	Lock       string    `json:"lock"`
	HAState    string    `json:"hastate"`
	Tags       string    `json:"tags"`
	Pool       string    `json:"pool"`
	Storage    string    `json:"storage"`
	Content    string    `json:"content"`
	PluginType string    `json:"plugintype"`
	Shared     flexBool  `json:"shared"`
	CPU        flexFloat `json:"cpu"`
	MaxCPU     flexFloat `json:"maxcpu"`
	Mem        flexInt   `json:"mem"`
	MaxMem     flexInt   `json:"maxmem"`
	Disk       flexInt   `json:"disk"`
	MaxDisk    flexInt   `json:"maxdisk"`
	Uptime     flexInt   `json:"uptime"`
}

// ClusterResources lists the cluster's resources in one call, optionally
// filtered by type: "vm", "storage", "node" or "sdn" ("" for all).
func (c *Client) ClusterResources(ctx context.Context, typ string) ([]Resource, error) {
	var q url.Values
	switch typ {
	case "":
	case "vm", "storage", "node", "sdn":
		q = url.Values{"type": {typ}}
	default:
		return nil, fmt.Errorf("cluster resources: type %q: want vm, storage, node, sdn or empty", typ)
	}
	var ws []resourceWire
	if err := c.Do(ctx, "GET", "/cluster/resources", q, &ws); err != nil {
		return nil, err
	}
	out := make([]Resource, len(ws))
	for i, w := range ws {
		out[i] = Resource{
			ID: w.ID, Type: w.Type, Node: w.Node, Name: w.Name, Status: w.Status, VMID: int(w.VMID),
			Template: bool(w.Template), Lock: w.Lock, HAState: w.HAState, Tags: w.Tags, Pool: w.Pool,
			Storage: w.Storage, Content: w.Content, PluginType: w.PluginType, Shared: bool(w.Shared),
			CPU: float64(w.CPU), MaxCPU: float64(w.MaxCPU), Mem: int64(w.Mem), MaxMem: int64(w.MaxMem),
			Disk: int64(w.Disk), MaxDisk: int64(w.MaxDisk), Uptime: int64(w.Uptime),
		}
	}
	return out, nil
}
