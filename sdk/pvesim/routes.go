package pvesim

import (
	"net/http"
	"strings"
)

type handlerFunc func(q *request) (any, error)

// route is one served API method: its path template, parameter table,
// permission check (as in the PVE schema) and handler.
type route struct {
	method    string
	template  string
	segs      []string
	params    *endpointParams
	perm      permCheck
	proxyNode bool // proxyto => 'node'
	handler   handlerFunc
}

// Route describes a served endpoint, for tests and documentation.
type Route struct {
	Method   string
	Template string
}

// Routes lists the endpoints the simulator serves.
func (s *Server) Routes() []Route {
	out := make([]Route, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, Route{Method: r.method, Template: r.template})
	}
	return out
}

func (s *Server) buildRoutes() []*route {
	const (
		get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	)
	vmAudit := perm("/vms/{vmid}", "VM.Audit")
	power := perm("/vms/{vmid}", "VM.PowerMgmt")
	snap := perm("/vms/{vmid}", "VM.Snapshot")
	rollback := permAny("/vms/{vmid}", "VM.Snapshot", "VM.Snapshot.Rollback")
	snapConfig := permAny("/vms/{vmid}", "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit")
	storeAudit := permAny("/storage/{storage}", "Datastore.Audit", "Datastore.AllocateSpace")
	qemuConf := permAny("/vms/{vmid}", "VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory",
		"VM.Config.Network", "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit")
	lxcConf := permAny("/vms/{vmid}", "VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
		"VM.Config.Options")

	type def struct {
		method, tmpl string
		params       *endpointParams
		perm         permCheck
		proxy        bool
		h            handlerFunc
	}
	defs := []def{
		{get, "/version", noParams(), permAll, false, s.handleVersion},
		{get, "/nodes", noParams(), permAll, false, s.handleNodes},
		{get, "/nodes/{node}/status", nodeOnly(), perm("/nodes/{node}", "Sys.Audit"), true, s.handleNodeStatus},
		{get, "/nodes/{node}/tasks", taskListParams(), permAll, true, s.handleTaskList},
		{get, "/nodes/{node}/tasks/{upid}/status", taskParams(), permAll, true, s.handleTaskStatus},
		{get, "/nodes/{node}/tasks/{upid}/log", taskLogParams(), permAll, true, s.handleTaskLog},
		{del, "/nodes/{node}/tasks/{upid}", taskParams(), permAll, true, s.handleTaskStop},
		{get, "/cluster/resources", clusterResourcesParams(), permAll, false, s.handleClusterResources},
		{get, "/cluster/status", noParams(), perm("/", "Sys.Audit"), false, s.handleClusterStatus},
		{get, "/cluster/nextid", nextIDParams(), permAll, false, s.handleNextID},
		{get, "/access/permissions", permissionsParams(), permAll, false, s.handlePermissions},

		{get, "/nodes/{node}/qemu", qemuListParams(), permAll, true, s.handleGuestList(kindQemu)},
		{post, "/nodes/{node}/qemu", qemuCreateParams(), permAll, true, s.handleCreate(kindQemu)},
		{get, "/nodes/{node}/qemu/{vmid}/config", guestConfigGetParams(), vmAudit, true, s.handleConfigGet(kindQemu)},
		{post, "/nodes/{node}/qemu/{vmid}/config", qemuConfigPostParams(), qemuConf, true, s.handleQemuConfigPost},
		{put, "/nodes/{node}/qemu/{vmid}/config", qemuConfigPutParams(), qemuConf, true, s.handleConfigPut(kindQemu)},
		{get, "/nodes/{node}/qemu/{vmid}/pending", guestOnly(), vmAudit, true, s.handlePending(kindQemu)},
		{get, "/nodes/{node}/qemu/{vmid}/status/current", guestOnly(), vmAudit, true, s.handleStatusCurrent(kindQemu)},
		{post, "/nodes/{node}/qemu/{vmid}/status/start", qemuStartParams(), power, true, s.handlePower(kindQemu, "start")},
		{post, "/nodes/{node}/qemu/{vmid}/status/stop", qemuStopParams(), power, true, s.handlePower(kindQemu, "stop")},
		{post, "/nodes/{node}/qemu/{vmid}/status/shutdown", qemuShutdownParams(), power, true, s.handlePower(kindQemu, "shutdown")},
		{post, "/nodes/{node}/qemu/{vmid}/status/reboot", rebootParams(), power, true, s.handlePower(kindQemu, "reboot")},
		{get, "/nodes/{node}/qemu/{vmid}/snapshot", guestOnly(), vmAudit, true, s.handleSnapshotList(kindQemu)},
		{post, "/nodes/{node}/qemu/{vmid}/snapshot", snapshotCreateParams(true), snap, true, s.handleSnapshotCreate(kindQemu)},
		{del, "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", snapshotDeleteParams(), snap, true, s.handleSnapshotDelete(kindQemu)},
		{post, "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", snapshotRollbackParams(), rollback, true, s.handleSnapshotRollback(kindQemu)},
		{get, "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", snapshotConfigGetParams(), snapConfig, true, s.handleSnapshotConfigGet(kindQemu)},
		{put, "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", snapshotConfigPutParams(), snap, true, s.handleSnapshotConfigPut(kindQemu)},
		{del, "/nodes/{node}/qemu/{vmid}", qemuDestroyParams(), perm("/vms/{vmid}", "VM.Allocate"), true, s.handleDestroy(kindQemu)},

		{get, "/nodes/{node}/lxc", nodeOnly(), permAll, true, s.handleGuestList(kindLXC)},
		{post, "/nodes/{node}/lxc", lxcCreateParams(), permAll, true, s.handleCreate(kindLXC)},
		{get, "/nodes/{node}/lxc/{vmid}/config", guestConfigGetParams(), vmAudit, true, s.handleConfigGet(kindLXC)},
		{put, "/nodes/{node}/lxc/{vmid}/config", lxcConfigPutParams(), lxcConf, true, s.handleConfigPut(kindLXC)},
		{get, "/nodes/{node}/lxc/{vmid}/pending", guestOnly(), vmAudit, true, s.handlePending(kindLXC)},
		{get, "/nodes/{node}/lxc/{vmid}/status/current", guestOnly(), vmAudit, true, s.handleStatusCurrent(kindLXC)},
		{post, "/nodes/{node}/lxc/{vmid}/status/start", lxcStartParams(), power, true, s.handlePower(kindLXC, "start")},
		{post, "/nodes/{node}/lxc/{vmid}/status/stop", lxcStopParams(), power, true, s.handlePower(kindLXC, "stop")},
		{post, "/nodes/{node}/lxc/{vmid}/status/shutdown", lxcShutdownParams(), power, true, s.handlePower(kindLXC, "shutdown")},
		{post, "/nodes/{node}/lxc/{vmid}/status/reboot", rebootParams(), power, true, s.handlePower(kindLXC, "reboot")},
		{get, "/nodes/{node}/lxc/{vmid}/snapshot", guestOnly(), vmAudit, true, s.handleSnapshotList(kindLXC)},
		{post, "/nodes/{node}/lxc/{vmid}/snapshot", snapshotCreateParams(false), snap, true, s.handleSnapshotCreate(kindLXC)},
		{del, "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", snapshotDeleteParams(), snap, true, s.handleSnapshotDelete(kindLXC)},
		{post, "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", snapshotRollbackParams(), rollback, true, s.handleSnapshotRollback(kindLXC)},
		{get, "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", snapshotConfigGetParams(), snapConfig, true, s.handleSnapshotConfigGet(kindLXC)},
		{put, "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config", snapshotConfigPutParams(), snap, true, s.handleSnapshotConfigPut(kindLXC)},
		{get, "/nodes/{node}/lxc/{vmid}/interfaces", guestOnly(), vmAudit, true, s.handleInterfaces},
		{del, "/nodes/{node}/lxc/{vmid}", lxcDestroyParams(), perm("/vms/{vmid}", "VM.Allocate"), true, s.handleDestroy(kindLXC)},

		{post, "/nodes/{node}/vzdump", vzdumpParams(), permAll, true, s.handleVzdump},
		{get, "/nodes/{node}/storage", nodeStorageListParams(), permAll, true, s.handleNodeStorageList},
		{get, "/nodes/{node}/storage/{storage}/status", storageStatusParams(), storeAudit, true, s.handleStorageStatus},
		{get, "/nodes/{node}/storage/{storage}/content", storageContentParams(), storeAudit, true, s.handleStorageContent},
		{get, "/storage", storageListParams(), permAll, false, s.handleStorageList},
		{post, "/storage", storageCreateParams(), perm("/storage", "Datastore.Allocate"), false, s.handleStorageCreate},
		{get, "/storage/{storage}", storageIDParams(), perm("/storage/{storage}", "Datastore.Allocate"), false, s.handleStorageGet},
		{put, "/storage/{storage}", storageUpdateParams(), perm("/storage", "Datastore.Allocate"), false, s.handleStorageUpdate},
		{del, "/storage/{storage}", storageIDParams(), perm("/storage", "Datastore.Allocate"), false, s.handleStorageDelete},
		{get, "/nodes/{node}/storage/{storage}/content/{volume}", volumeParams(), permAll, true, s.handleVolumeGet},
		{del, "/nodes/{node}/storage/{storage}/content/{volume}", volumeDeleteParams(), permAll, true, s.handleVolumeDelete},

		{get, "/cluster/backup", noParams(), perm("/", "Sys.Audit"), false, s.handleJobList},
		{post, "/cluster/backup", backupJobCreateParams(), perm("/", "Sys.Modify"), false, s.handleJobCreate},
		{get, "/cluster/backup/{id}", backupJobIDParams(), perm("/", "Sys.Audit"), false, s.handleJobGet},
		{put, "/cluster/backup/{id}", backupJobUpdateParams(), perm("/", "Sys.Modify"), false, s.handleJobUpdate},
		{del, "/cluster/backup/{id}", backupJobIDParams(), perm("/", "Sys.Modify"), false, s.handleJobDelete},

		{get, "/nodes/{node}/disks/list", disksListParams(),
			permOr(perm("/", "Sys.Audit"), perm("/nodes/{node}", "Sys.Audit")), true, s.handleDisksList},
		{get, "/nodes/{node}/disks/smart", disksSmartParams(), perm("/", "Sys.Audit"), true, s.handleDisksSmart},
		{get, "/nodes/{node}/hardware/usb", nodeOnly(), perm("/", "Sys.Modify"), true, s.handleUSB},
	}
	routes := make([]*route, 0, len(defs))
	for _, d := range defs {
		routes = append(routes, &route{
			method: d.method, template: d.tmpl, segs: strings.Split(strings.TrimPrefix(d.tmpl, "/"), "/"),
			params: d.params, perm: d.perm, proxyNode: d.proxy, handler: d.h,
		})
	}
	return routes
}

// matchRoute finds the route for a method and escaped relative path and
// returns the decoded path parameters. Segments are split before decoding
// so an encoded '/' (e.g. in a volume ID) stays inside its segment.
func (s *Server) matchRoute(method, escRel string) (*route, map[string]string) {
	segs := strings.Split(strings.TrimPrefix(strings.TrimSuffix(escRel, "/"), "/"), "/")
	for _, r := range s.routes {
		if r.method != method || len(r.segs) != len(segs) {
			continue
		}
		var params map[string]string
		ok := true
		for i, t := range r.segs {
			if strings.HasPrefix(t, "{") {
				if segs[i] == "" {
					ok = false
					break
				}
				if params == nil {
					params = map[string]string{}
				}
				params[t[1:len(t)-1]] = uriUnescape(segs[i])
				continue
			}
			if t != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return r, params
		}
	}
	return nil, nil
}
