package pvesim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// handleSnapshotList lists the snapshots, ending with the "current" entry.
func (s *Server) handleSnapshotList(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err != nil {
			return nil, err
		}
		snaps := make([]*snapshot, 0, len(g.snaps))
		for _, sn := range g.snaps {
			snaps = append(snaps, sn)
		}
		sort.Slice(snaps, func(i, j int) bool {
			if snaps[i].snaptime != snaps[j].snaptime {
				return snaps[i].snaptime < snaps[j].snaptime
			}
			return snaps[i].name < snaps[j].name
		})
		res := []map[string]any{}
		for _, sn := range snaps {
			e := map[string]any{"name": sn.name, "snaptime": sn.snaptime, "description": ""}
			if len(sn.desc) > 0 {
				e["description"] = descText(kind, sn.desc)
			}
			if sn.parent != "" {
				e["parent"] = sn.parent
			}
			if sn.state != "" {
				e["snapstate"] = sn.state
			}
			if kind == kindQemu {
				e["vmstate"] = boolInt(sn.vmstate)
			}
			res = append(res, e)
		}
		cur := map[string]any{"name": "current", "description": "You are here!", "running": boolInt(g.running), "digest": g.digest()}
		if p := g.conf["parent"]; p != "" {
			cur["parent"] = p
		}
		res = append(res, cur)
		return res, nil
	}
}

func (s *Server) handleSnapshotConfigGet(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err != nil {
			return nil, err
		}
		sn, ok := g.snaps[q.str("snapname")]
		if !ok {
			return nil, die("snapshot '%s' does not exist", q.str("snapname"))
		}
		v := g.configView(sn.conf, sn.desc)
		delete(v, "digest")
		v["snaptime"] = sn.snaptime
		if sn.parent != "" {
			v["parent"] = sn.parent
		}
		return v, nil
	}
}

func (s *Server) handleSnapshotConfigPut(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		vmid, _ := strconv.Atoi(q.str("vmid"))
		unlock, lerr := s.lockGuest(q.ctx, kind, vmid)
		if lerr != nil {
			return nil, lerr
		}
		defer unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err != nil {
			return nil, err
		}
		sn, ok := g.snaps[q.str("snapname")]
		if !ok {
			return nil, die("snapshot '%s' does not exist", q.str("snapname"))
		}
		if q.has("description") {
			sn.desc = descLines(q.str("description"))
		}
		return nil, nil
	}
}

// copyConfig is __snapshot_copy_config: everything but snapshot bookkeeping,
// the description and unused disks.
func copyConfig(src map[string]string) map[string]string {
	dst := map[string]string{}
	for k, v := range src {
		if inSet(k, "snapstate", "snaptime", "vmstate", "lock", "digest", "description") || (familyBase(k) == "unused" && k != "unused") {
			continue
		}
		dst[k] = v
	}
	return dst
}

func (s *Server) handleSnapshotCreate(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		name := q.str("snapname")
		if name == "current" || (kind == kindQemu && strings.EqualFold(name, "pending")) || (kind == kindLXC && name == "vzdump") {
			return nil, die("unable to use snapshot name '%s' (reserved name)", name)
		}
		vmid, err := s.existingGuest(kind, q)
		if err != nil {
			return nil, err
		}
		desc := descLines(q.str("description"))
		vmstate := q.bool("vmstate")
		return s.startGuestTask(q, kind, vmid, taskSpec{
			typ: kind.taskType("snapshot"), id: strconv.Itoa(vmid),
			run: func(tc *taskCtx) error {
				return s.withGuest(tc, kind, vmid, func(g *guest) error {
					if g.conf["lock"] != "snapshot" {
						return fmt.Errorf("%s is locked (%s)", kind.word(), g.conf["lock"])
					}
					sn := g.snaps[name]
					sn.state = ""
					delete(g.conf, "lock")
					g.conf["parent"] = name
					return nil
				})
			},
			undo: func() {
				if g, ok := s.guests[vmid]; ok {
					delete(g.snaps, name)
					delete(g.conf, "lock")
				}
			},
		}, func(tc *taskCtx, g *guest) error {
			if err := g.checkLock(); err != nil {
				return taskErr(err)
			}
			if _, used := g.snaps[name]; used {
				return fmt.Errorf("snapshot name '%s' already used", name)
			}
			if g.snaps == nil {
				g.snaps = map[string]*snapshot{}
			}
			g.snaps[name] = &snapshot{
				name: name, conf: copyConfig(g.conf), desc: desc, snaptime: time.Now().Unix(),
				parent: g.conf["parent"], vmstate: vmstate && g.running && kind == kindQemu, state: "prepare",
			}
			g.conf["lock"] = "snapshot"
			for _, k := range g.diskKeys(g.conf) {
				vol := strings.Split(g.conf[k], ",")[0]
				if kind == kindQemu {
					tc.logLocked("snapshotting 'drive-%s' (%s)", k, vol)
				} else if st, _, ok := strings.Cut(vol, ":"); ok && s.storages[st] != nil && s.storages[st].typ == "lvmthin" {
					tc.logLocked("  Logical volume \"snap_%s_%s\" created.", strings.SplitN(vol, ":", 2)[1], name)
				}
			}
			return nil
		})
	}
}

func (s *Server) handleSnapshotDelete(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		name := q.str("snapname")
		vmid, err := s.existingGuest(kind, q)
		if err != nil {
			return nil, err
		}
		force := q.bool("force")
		return s.startGuestTask(q, kind, vmid, taskSpec{
			typ: kind.taskType("delsnapshot"), id: strconv.Itoa(vmid),
			run: func(tc *taskCtx) error {
				return s.withGuest(tc, kind, vmid, func(g *guest) error {
					sn, ok := g.snaps[name]
					if !ok {
						return fmt.Errorf("snapshot '%s' does not exist", name)
					}
					for _, other := range g.snaps {
						if other.parent == name {
							other.parent = sn.parent
						}
					}
					if g.conf["parent"] == name {
						if sn.parent != "" {
							g.conf["parent"] = sn.parent
						} else {
							delete(g.conf, "parent")
						}
					}
					delete(g.snaps, name)
					delete(g.conf, "lock")
					return nil
				})
			},
			undo: func() {
				if g, ok := s.guests[vmid]; ok {
					delete(g.conf, "lock")
					if sn, ok := g.snaps[name]; ok {
						sn.state = ""
					}
				}
			},
		}, func(tc *taskCtx, g *guest) error {
			sn, ok := g.snaps[name]
			if !ok {
				return fmt.Errorf("snapshot '%s' does not exist", name)
			}
			if !force {
				if err := g.checkLock(); err != nil {
					return taskErr(err)
				}
			}
			g.conf["lock"] = "snapshot-delete"
			sn.state = "delete"
			return nil
		})
	}
}

func (s *Server) handleSnapshotRollback(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		name := q.str("snapname")
		vmid, err := s.existingGuest(kind, q)
		if err != nil {
			return nil, err
		}
		start := q.bool("start")
		return s.startGuestTask(q, kind, vmid, taskSpec{
			typ: kind.taskType("rollback"), id: strconv.Itoa(vmid),
			run: func(tc *taskCtx) error {
				return s.withGuest(tc, kind, vmid, func(g *guest) error {
					sn, ok := g.snaps[name]
					if !ok {
						return fmt.Errorf("snapshot '%s' does not exist", name)
					}
					conf := copyConfig(sn.conf)
					for k, v := range g.conf {
						if familyBase(k) == "unused" {
							conf[k] = v
						}
					}
					conf["parent"] = name
					g.conf = conf
					g.pending = nil
					if start || sn.vmstate {
						g.setRunning(true)
					}
					return nil
				})
			},
			undo: func() {
				if g, ok := s.guests[vmid]; ok {
					delete(g.conf, "lock")
				}
			},
		}, func(tc *taskCtx, g *guest) error {
			if _, ok := g.snaps[name]; !ok {
				return fmt.Errorf("snapshot '%s' does not exist", name)
			}
			if err := g.checkLock(); err != nil {
				return taskErr(err)
			}
			g.conf["lock"] = "rollback"
			if g.running {
				if kind == kindLXC {
					tc.logLocked("stopping container %d", vmid)
				}
				g.setRunning(false)
			}
			for _, k := range g.diskKeys(g.conf) {
				vol := strings.Split(g.conf[k], ",")[0]
				if st, rest, ok := strings.Cut(vol, ":"); ok && s.storages[st] != nil && s.storages[st].typ == "lvmthin" {
					tc.logLocked("  Logical volume \"%s\" successfully removed.", rest)
					tc.logLocked("  Logical volume \"snap_%s_%s\" created.", rest, name)
				}
			}
			return nil
		})
	}
}

// existingGuest returns the VMID of the request's guest, or the error a
// missing guest gets before any task is started.
func (s *Server) existingGuest(kind guestKind, q *request) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.loadGuest(kind, q.str("vmid")); err != nil {
		return 0, err
	}
	vmid, _ := strconv.Atoi(q.str("vmid"))
	return vmid, nil
}
