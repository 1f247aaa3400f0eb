package pvesim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// backupJob is one vzdump job of jobs.cfg (/cluster/backup).
type backupJob struct {
	id    string
	props map[string]string
}

// backupJobOptions are the job properties of POST and PUT /cluster/backup:
// vzdump's options without job-id and stdout, plus the scheduling ones.
func backupJobOptions(put bool) []*paramSpec {
	var out []*paramSpec
	for _, p := range vzdumpOptions() {
		if p.name == "job-id" || p.name == "stdout" {
			continue
		}
		out = append(out, p)
	}
	dow := opt("dow", tString).fmt("pve-day-of-week-list").needs("starttime")
	out = append(out,
		opt("comment", tString).maxLen(512),
		dow,
		opt("enabled", tBoolean),
		opt("node", tString).fmt("pve-node"),
		opt("repeat-missed", tBoolean),
		opt("schedule", tString).maxLen(128).fmt("pve-calendar-event"),
		opt("starttime", tString).match(`\d{1,2}:\d{1,2}`),
	)
	if put {
		out = append(out,
			req("id", tString).match(`\S+`).maxLen(50).path(),
			opt("delete", tString).fmt("pve-configid-list"),
		)
	} else {
		out = append(out, opt("id", tString).fmt("pve-configid"))
	}
	return out
}

var (
	backupJobCreateParams = func() *endpointParams { return params(backupJobOptions(false)) }
	backupJobUpdateParams = func() *endpointParams { return params(backupJobOptions(true)) }
	backupJobIDParams     = func() *endpointParams {
		return params(ps(req("id", tString).match(`\S+`).maxLen(50).path()))
	}
	volumeParams = func() *endpointParams {
		return params(ps(pNode(), opt("storage", tString).fmt("pve-storage-id").path(), req("volume", tString).path()))
	}
	volumeDeleteParams = func() *endpointParams {
		return params(ps(pNode(), opt("storage", tString).fmt("pve-storage-id").path(), req("volume", tString).path(),
			opt("delay", tInteger).between(1, 30)))
	}
)

// jobView renders a job as the API does: booleans and integers as numbers.
func (j *backupJob) view() map[string]any {
	m := map[string]any{"id": j.id, "type": "vzdump"}
	types := params(backupJobOptions(false))
	for k, v := range j.props {
		typ := tString
		if p := types.lookup(k); p != nil {
			typ = p.typ
		}
		if typ == tBoolean || typ == tInteger {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m[k] = n
				continue
			}
		}
		m[k] = v
	}
	return m
}

func jobProps(q *request) map[string]string {
	props := map[string]string{}
	for k, v := range q.params {
		if v.kind == kUndef || inSet(k, "id", "delete") {
			continue
		}
		props[k] = v.s
	}
	return props
}

// checkJobParams applies vzdump's parameter rules to a job (props merged).
func checkJobParams(q *request, props map[string]string) *apiError {
	for _, key := range []string{"tmpdir", "dumpdir", "script"} {
		if q.has(key) && q.auth.authID != rootUser {
			return paramError1(key, "Only root may set this option.")
		}
	}
	if props["all"] == "1" && props["vmid"] != "" {
		return paramError1("all", "option conflicts with option 'vmid'")
	}
	if props["exclude"] != "" && props["all"] != "1" {
		return paramError1("exclude", "option requires option 'all'")
	}
	if props["all"] != "1" && props["vmid"] == "" && props["pool"] == "" {
		return paramError1("vmid", "property is missing and it is not optional")
	}
	return nil
}

func (s *Server) handleJobList(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := []map[string]any{}
	for _, id := range sortedKeys(s.jobs) {
		res = append(res, s.jobs[id].view())
	}
	return res, nil
}

func (s *Server) loadJob(id string) (*backupJob, *apiError) {
	j, ok := s.jobs[id]
	if !ok {
		return nil, die("Job '%s' does not exist", id)
	}
	return j, nil
}

func (s *Server) handleJobGet(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.loadJob(q.str("id"))
	if err != nil {
		return nil, err
	}
	return j.view(), nil
}

func (s *Server) handleJobCreate(q *request) (any, error) {
	props := jobProps(q)
	if err := checkJobParams(q, props); err != nil {
		return nil, err
	}
	if _, ok := props["schedule"]; !ok {
		st := props["starttime"]
		if st == "" {
			return nil, paramError1("schedule", "property is missing and it is not optional")
		}
		// Old-style starttime/dow become a calendar event.
		dow := props["dow"]
		delete(props, "starttime")
		delete(props, "dow")
		if dow != "" {
			st = dow + " " + st
		}
		props["schedule"] = st
	}
	if _, ok := props["enabled"]; !ok {
		props["enabled"] = "1"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := props["storage"]; st != "" {
		if _, err := s.loadStorage(st); err != nil {
			return nil, err
		}
	}
	id := q.str("id")
	if id == "" {
		u, err := newUUID()
		if err != nil {
			return nil, die("unable to generate job ID: %v", err)
		}
		id = "backup-" + strings.ReplaceAll(u, "-", "")[:12]
	}
	if _, exists := s.jobs[id]; exists {
		return nil, die("Job '%s' already exists", id)
	}
	s.jobs[id] = &backupJob{id: id, props: props}
	return nil, nil
}

func (s *Server) handleJobUpdate(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.loadJob(q.str("id"))
	if err != nil {
		return nil, err
	}
	merged := map[string]string{}
	for k, v := range j.props {
		merged[k] = v
	}
	for _, d := range splitList(q.str("delete")) {
		delete(merged, d)
	}
	for k, v := range jobProps(q) {
		merged[k] = v
	}
	// Choosing "all" or a pool drops an explicit VMID list and vice versa.
	if q.bool("all") || q.has("pool") {
		delete(merged, "vmid")
	}
	if q.has("vmid") {
		delete(merged, "all")
		delete(merged, "pool")
		delete(merged, "exclude")
	}
	if err := checkJobParams(q, merged); err != nil {
		return nil, err
	}
	if st := merged["storage"]; st != "" {
		if _, err := s.loadStorage(st); err != nil {
			return nil, err
		}
	}
	j.props = merged
	return nil, nil
}

func (s *Server) handleJobDelete(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.loadJob(q.str("id")); err != nil {
		return nil, err
	}
	delete(s.jobs, q.str("id"))
	return nil, nil
}

// --- single volumes ---

// volumeID resolves the volume parameter: a full volume ID, or a volume name
// relative to the storage in the path (pve-storage's real_volume_id).
func volumeID(storage, volume string) (string, *apiError) {
	if strings.Contains(volume, ":") {
		sid, _, _ := strings.Cut(volume, ":")
		if storage != "" && sid != storage {
			return "", paramError1("volume", fmt.Sprintf("storage ID mismatch (%s != %s)\n", sid, storage))
		}
		return volume, nil
	}
	return storage + ":" + volume, nil
}

// volumePath is where PVE would keep a volume on the node.
func (s *Server) volumePath(st *storageCfg, v *volume) string {
	_, name, _ := strings.Cut(v.volid, ":")
	switch st.typ {
	case "lvmthin", "lvm":
		return "/dev/" + st.props["vgname"] + "/" + name
	case "zfspool":
		return "/dev/zvol/" + st.props["pool"] + "/" + name
	case "pbs":
		return "pbs://" + st.props["server"] + "/" + st.props["datastore"] + "/" + strings.TrimPrefix(name, "backup/")
	}
	base := st.props["path"]
	sub := map[string]string{"backup": "dump", "iso": "template/iso", "vztmpl": "template/cache", "images": "images", "rootdir": "images", "snippets": "snippets"}[v.content]
	return base + "/" + sub + "/" + name[strings.IndexByte(name, '/')+1:]
}

func (s *Server) handleVolumeGet(q *request) (any, error) {
	volid, perr := volumeID(q.str("storage"), q.str("volume"))
	if perr != nil {
		return nil, perr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sid, _, _ := strings.Cut(volid, ":")
	st, err := s.loadStorage(sid)
	if err != nil {
		return nil, err
	}
	if !s.has(q.auth.authID, "/storage/"+sid, "Datastore.Allocate") && !s.canSeeStorage(q.auth.authID, sid) {
		return nil, permError("/storage/" + sid + ", Datastore.Audit|Datastore.AllocateSpace")
	}
	v := s.findVolume(volid)
	if v == nil {
		return nil, die("volume '%s' does not exist", volid)
	}
	m := map[string]any{"path": s.volumePath(st, v), "size": v.size, "used": v.size, "format": v.format}
	if v.content == "images" || v.content == "rootdir" {
		m["used"] = v.size / 4
	}
	if v.notes != "" {
		m["notes"] = v.notes
	}
	if v.content == "backup" {
		m["protected"] = boolInt(v.protected)
	}
	return m, nil
}

func (s *Server) handleVolumeDelete(q *request) (any, error) {
	volid, perr := volumeID(q.str("storage"), q.str("volume"))
	if perr != nil {
		return nil, perr
	}
	sid, _, _ := strings.Cut(volid, ":")
	s.mu.Lock()
	_, err := s.loadStorage(sid)
	var v *volume
	if err == nil {
		if v = s.findVolume(volid); v == nil {
			err = die("volume '%s' does not exist", volid)
		}
	}
	if err == nil {
		if v.content == "backup" && v.vmid != 0 {
			err = s.check(q.auth.authID, "/storage/"+sid, "Datastore.AllocateSpace")
			if err == nil {
				err = s.check(q.auth.authID, fmt.Sprintf("/vms/%d", v.vmid), "VM.Backup")
			}
		} else {
			err = s.check(q.auth.authID, "/storage/"+sid, "Datastore.Allocate")
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	id := sid
	if v.vmid != 0 {
		id = fmt.Sprintf("%d@%s", v.vmid, sid)
	}
	upid, terr := s.startTask(q.auth, taskSpec{
		typ: "imgdel", id: id,
		run: func(tc *taskCtx) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			cur := s.findVolume(volid)
			if cur == nil {
				return fmt.Errorf("volume '%s' does not exist", volid)
			}
			if cur.protected {
				// Text approximated: the simulator has no verified source for it.
				return fmt.Errorf("volume '%s' is protected", volid)
			}
			vols := s.content[sid]
			for i, x := range vols {
				if x == cur {
					s.content[sid] = append(vols[:i:i], vols[i+1:]...)
					break
				}
			}
			tc.logLocked("Removed volume '%s'", volid)
			return nil
		},
	})
	if terr != nil || !q.has("delay") {
		return upid, terr
	}
	// With delay the call waits for the task and returns null on success.
	return s.waitTask(q, upid, time.Duration(q.int("delay", 0))*time.Second, func(exit string) error {
		return die("%s", exit)
	})
}
