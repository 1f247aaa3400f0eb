package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// storageCfg is one storage.cfg section.
type storageCfg struct {
	id    string
	typ   string
	props map[string]string
}

func (st *storageCfg) contentList() []string { return splitList(st.props["content"]) }

func (st *storageCfg) hasContent(ct string) bool {
	for _, c := range st.contentList() {
		if c == ct {
			return true
		}
	}
	return false
}

func (st *storageCfg) enabled() bool { return st.props["disable"] != "1" }

func (st *storageCfg) shared() bool {
	switch st.typ {
	case "nfs", "cifs", "pbs", "cephfs", "rbd", "iscsi", "iscsidirect", "esxi":
		return true
	}
	return st.props["shared"] == "1"
}

// capacity is the simulated size of a storage in bytes.
func (st *storageCfg) capacity() int64 {
	switch st.typ {
	case "dir", "btrfs":
		return 100 << 30
	case "lvmthin", "lvm", "zfspool":
		return 350 << 30
	default:
		return 2 << 40
	}
}

// volume is one item of a storage's content.
type volume struct {
	volid     string
	content   string
	format    string
	size      int64
	vmid      int
	ctime     int64
	notes     string
	protected bool
	subtype   string
	// backupConf/backupDesc keep the guest config a backup was made from,
	// so a restore can recreate it.
	backupConf map[string]string
	backupDesc []string
}

// storageTypeInfo lists per storage type the required, fixed and allowed
// storage.cfg properties and the default content.
type storageTypeInfo struct {
	required []string
	fixed    []string
	allowed  []string
	content  string
}

var commonStorageProps = []string{"nodes", "disable", "content", "bwlimit"}
var fileStorageProps = []string{"prune-backups", "max-protected-backups", "format", "mkdir", "preallocation",
	"content-dirs", "create-base-path", "create-subdirs", "snapshot-as-volume-chain"}

var storageTypeInfos = map[string]storageTypeInfo{
	"dir": {required: []string{"path"}, fixed: []string{"path"}, content: "images,rootdir",
		allowed: concat(commonStorageProps, fileStorageProps, []string{"path", "shared", "is_mountpoint"})},
	"btrfs": {required: []string{"path"}, fixed: []string{"path"}, content: "images,rootdir",
		allowed: concat(commonStorageProps, fileStorageProps, []string{"path", "is_mountpoint"})},
	"nfs": {required: []string{"server", "export"}, fixed: []string{"export"}, content: "images",
		allowed: concat(commonStorageProps, fileStorageProps, []string{"server", "export", "path", "options"})},
	"cifs": {required: []string{"server", "share"}, fixed: []string{"share"}, content: "images",
		allowed: concat(commonStorageProps, fileStorageProps, []string{"server", "share", "path", "options",
			"username", "password", "domain", "smbversion", "subdir"})},
	"pbs": {required: []string{"server", "datastore"}, fixed: []string{"server", "datastore"}, content: "backup",
		allowed: concat(commonStorageProps, []string{"server", "datastore", "username", "password", "namespace",
			"port", "fingerprint", "encryption-key", "master-pubkey", "prune-backups", "max-protected-backups"})},
	"lvmthin": {required: []string{"vgname", "thinpool"}, fixed: []string{"vgname", "thinpool"}, content: "images,rootdir",
		allowed: concat(commonStorageProps, []string{"vgname", "thinpool"})},
	"lvm": {required: []string{"vgname"}, fixed: []string{"vgname"}, content: "images,rootdir",
		allowed: concat(commonStorageProps, []string{"vgname", "base", "saferemove", "saferemove_throughput",
			"saferemove-stepsize", "tagged_only", "shared", "snapshot-as-volume-chain"})},
	"zfspool": {required: []string{"pool"}, fixed: []string{"pool"}, content: "images,rootdir",
		allowed: concat(commonStorageProps, []string{"pool", "blocksize", "sparse", "mountpoint"})},
}

// sensitiveStorageProps live in /etc/pve/priv and are never returned.
var sensitiveStorageProps = map[string]bool{"password": true, "encryption-key": true, "master-pubkey": true}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func (s *Server) initStorage() {
	s.storages["local"] = &storageCfg{id: "local", typ: "dir", props: map[string]string{
		"path": "/var/lib/vz", "content": "backup,iso,vztmpl", "prune-backups": "keep-all=1",
	}}
	s.storages["local-lvm"] = &storageCfg{id: "local-lvm", typ: "lvmthin", props: map[string]string{
		"thinpool": "data", "vgname": "pve", "content": "images,rootdir",
	}}
	old := time.Now().Add(-60 * 24 * time.Hour).Unix()
	s.addVolume("local", &volume{volid: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", content: "vztmpl",
		format: "tzst", size: 126391845, ctime: old})
	s.addVolume("local", &volume{volid: "local:iso/debian-12.8.0-amd64-netinst.iso", content: "iso",
		format: "iso", size: 661651456, ctime: old})
}

// addVolume adds a volume to a storage's content (s.mu held).
func (s *Server) addVolume(storage string, v *volume) {
	s.content[storage] = append(s.content[storage], v)
}

// findVolume looks a volume up by volid (s.mu held).
func (s *Server) findVolume(volid string) *volume {
	st, _, _ := strings.Cut(volid, ":")
	for _, v := range s.content[st] {
		if v.volid == volid {
			return v
		}
	}
	return nil
}

// renderStorageCfg renders storage.cfg; its SHA-1 is the digest (s.mu held).
func (s *Server) storageDigest() string {
	var b strings.Builder
	for _, id := range sortedKeys(s.storages) {
		st := s.storages[id]
		fmt.Fprintf(&b, "%s: %s\n", st.typ, st.id)
		for _, k := range sortedKeys(st.props) {
			fmt.Fprintf(&b, "\t%s %s\n", k, st.props[k])
		}
		b.WriteString("\n")
	}
	sum := sha1.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// storageView is a storage's config as GET /storage shows it (s.mu held).
func (s *Server) storageView(st *storageCfg, digest string) map[string]any {
	m := map[string]any{"storage": st.id, "type": st.typ, "digest": digest}
	for k, v := range st.props {
		if sensitiveStorageProps[k] {
			continue
		}
		switch k {
		case "disable", "shared", "mkdir", "sparse", "krbd", "saferemove", "tagged_only", "nocow":
			n, _ := strconv.Atoi(v)
			m[k] = n
		case "port", "max-protected-backups":
			n, _ := strconv.Atoi(v)
			m[k] = n
		default:
			m[k] = v
		}
	}
	if st.shared() && st.typ != "dir" {
		m["shared"] = 1
	}
	return m
}

func (s *Server) loadStorage(id string) (*storageCfg, *apiError) {
	st, ok := s.storages[id]
	if !ok {
		return nil, die("storage '%s' does not exist", id)
	}
	return st, nil
}

func (s *Server) canSeeStorage(authID, id string) bool {
	p := "/storage/" + id
	return s.has(authID, p, "Datastore.Audit") || s.has(authID, p, "Datastore.AllocateSpace")
}

func (s *Server) handleStorageList(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	digest := s.storageDigest()
	res := []map[string]any{}
	for _, id := range sortedKeys(s.storages) {
		st := s.storages[id]
		if q.has("type") && st.typ != q.str("type") {
			continue
		}
		if !s.canSeeStorage(q.auth.authID, id) {
			continue
		}
		res = append(res, s.storageView(st, digest))
	}
	return res, nil
}

func (s *Server) handleStorageGet(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadStorage(q.str("storage"))
	if err != nil {
		return nil, err
	}
	return s.storageView(st, s.storageDigest()), nil
}

// storageProps collects the storage.cfg properties of a create or update.
func storageProps(q *request) map[string]string {
	props := map[string]string{}
	for k, v := range q.params {
		if v.kind == kUndef || inSet(k, "storage", "type", "delete", "digest") {
			continue
		}
		props[k] = v.s
	}
	return props
}

func (s *Server) handleStorageCreate(q *request) (any, error) {
	id, typ := q.str("storage"), q.str("type")
	props := storageProps(q)
	info, known := storageTypeInfos[typ]
	if known {
		allowed := map[string]bool{}
		for _, a := range info.allowed {
			allowed[a] = true
		}
		for _, k := range sortedKeys(props) {
			if !allowed[k] {
				return nil, die("unexpected property '%s'", k)
			}
		}
		for _, r := range info.required {
			if _, ok := props[r]; !ok {
				return nil, die("missing value for required option '%s'", r)
			}
		}
		if _, ok := props["content"]; !ok {
			props["content"] = info.content
		}
	}
	switch typ {
	case "nfs", "cifs":
		if _, ok := props["path"]; !ok {
			props["path"] = "/mnt/pve/" + id
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.storages[id]; exists {
		return nil, die("storage ID '%s' already defined", id)
	}
	s.storages[id] = &storageCfg{id: id, typ: typ, props: props}
	return map[string]any{"storage": id, "type": typ}, nil
}

func (s *Server) handleStorageUpdate(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadStorage(q.str("storage"))
	if err != nil {
		return nil, err
	}
	if q.has("digest") && q.str("digest") != s.storageDigest() {
		return nil, die("detected modified configuration - file changed by other user? Try again.")
	}
	props := storageProps(q)
	if info, ok := storageTypeInfos[st.typ]; ok {
		allowed := map[string]bool{}
		for _, a := range info.allowed {
			allowed[a] = true
		}
		for _, k := range sortedKeys(props) {
			if !allowed[k] {
				return nil, die("unexpected property '%s'", k)
			}
			if inSet(k, info.fixed...) {
				return nil, die("unable to change fixed property '%s'", k)
			}
		}
		for _, d := range splitList(q.str("delete")) {
			if inSet(d, info.required...) {
				return nil, die("cannot delete required option '%s'", d)
			}
		}
	}
	for _, d := range splitList(q.str("delete")) {
		delete(st.props, d)
	}
	for k, v := range props {
		st.props[k] = v
	}
	return map[string]any{"storage": st.id, "type": st.typ}, nil
}

func (s *Server) handleStorageDelete(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.loadStorage(q.str("storage")); err != nil {
		return nil, err
	}
	delete(s.storages, q.str("storage"))
	return nil, nil
}

// storageStatus computes the status fields of a storage (s.mu held).
func (s *Server) storageStatus(st *storageCfg) map[string]any {
	m := map[string]any{
		"storage": st.id,
		"type":    st.typ,
		"content": strings.Join(st.contentList(), ","),
		"shared":  boolInt(st.shared()),
		"enabled": boolInt(st.enabled()),
		"active":  boolInt(st.enabled()),
	}
	if !st.enabled() {
		return m
	}
	total := st.capacity()
	used := int64(12 << 30)
	if st.typ == "lvmthin" || st.typ == "zfspool" {
		used = 0
	}
	for _, v := range s.content[st.id] {
		if st.typ == "lvmthin" {
			used += v.size / 4 // thin volumes use a fraction of their size
		} else {
			used += v.size
		}
	}
	if used > total {
		used = total
	}
	m["total"] = total
	m["used"] = used
	m["avail"] = total - used
	m["used_fraction"] = float64(used) / float64(total)
	return m
}

func (s *Server) handleNodeStorageList(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want []string
	if q.has("content") {
		want = splitList(q.str("content"))
	}
	res := []map[string]any{}
	for _, id := range sortedKeys(s.storages) {
		st := s.storages[id]
		if q.has("storage") && id != q.str("storage") {
			continue
		}
		if q.bool("enabled") && !st.enabled() {
			continue
		}
		if want != nil {
			ok := false
			for _, c := range want {
				ok = ok || st.hasContent(c)
			}
			if !ok {
				continue
			}
		}
		if !s.canSeeStorage(q.auth.authID, id) {
			continue
		}
		m := s.storageStatus(st)
		if q.bool("format") {
			m["formats"] = map[string]any{"default": "raw", "supported": []string{"raw"}}
		}
		res = append(res, m)
	}
	return res, nil
}

func (s *Server) handleStorageStatus(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadStorage(q.str("storage"))
	if err != nil {
		return nil, err
	}
	m := s.storageStatus(st)
	delete(m, "storage")
	delete(m, "used_fraction")
	return m, nil
}

func (v *volume) view() map[string]any {
	m := map[string]any{"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": v.ctime}
	if v.vmid != 0 {
		m["vmid"] = v.vmid
	}
	if v.content == "images" || v.content == "rootdir" {
		m["used"] = v.size / 4
	}
	if v.notes != "" {
		m["notes"] = v.notes
	}
	if v.subtype != "" {
		m["subtype"] = v.subtype
	}
	if v.content == "backup" {
		m["protected"] = boolInt(v.protected)
	}
	return m
}

func (s *Server) handleStorageContent(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.loadStorage(q.str("storage"))
	if err != nil {
		return nil, err
	}
	if !st.enabled() {
		return nil, die("storage '%s' is disabled", st.id)
	}
	vols := append([]*volume(nil), s.content[st.id]...)
	sort.Slice(vols, func(i, j int) bool { return vols[i].volid < vols[j].volid })
	res := []map[string]any{}
	for _, v := range vols {
		if q.has("content") && v.content != q.str("content") {
			continue
		}
		if q.has("vmid") && strconv.Itoa(v.vmid) != q.str("vmid") {
			continue
		}
		res = append(res, v.view())
	}
	return res, nil
}

// --- vzdump ---

// backupVolid names a backup like PVE: local storages use the archive file
// name, PBS the backup-group snapshot path.
func backupVolid(st *storageCfg, g *guest, at time.Time, compress string) (volid, format string) {
	if st.typ == "pbs" {
		kind := map[guestKind]string{kindQemu: "vm", kindLXC: "ct"}[g.kind]
		return fmt.Sprintf("%s:backup/%s/%d/%s", st.id, kind, g.vmid, at.UTC().Format("2006-01-02T15:04:05Z")), "pbs-" + kind
	}
	ext := map[string]string{"": "", "0": "", "1": ".lzo", "gzip": ".gz", "lzo": ".lzo", "zstd": ".zst"}[compress]
	base := "tar"
	if g.kind == kindQemu {
		base = "vma"
	}
	return fmt.Sprintf("%s:backup/vzdump-%s-%d-%s.%s%s", st.id, g.kind, g.vmid, at.Format("2006_01_02-15_04_05"), base, ext),
		base + ext
}

func (s *Server) handleVzdump(q *request) (any, error) {
	for _, key := range []string{"tmpdir", "dumpdir", "script", "job-id"} {
		if q.has(key) && q.auth.authID != rootUser {
			return nil, paramError1(key, "Only root may set this option.")
		}
	}
	if q.bool("all") && q.has("vmid") {
		return nil, paramError1("all", "option conflicts with option 'vmid'")
	}
	if q.has("exclude") && !q.bool("all") {
		return nil, paramError1("exclude", "option requires option 'all'")
	}
	if !q.bool("all") && !q.has("vmid") && !q.has("pool") {
		return nil, paramError1("vmid", "property is missing and it is not optional")
	}
	if q.bool("stdout") {
		return nil, die("pvesim: backups to stdout are not simulated")
	}
	storeID := q.str("storage")
	if storeID == "" {
		storeID = "local"
	}
	compress := q.str("compress")
	mode := q.str("mode")
	if mode == "" {
		mode = "snapshot"
	}

	s.mu.Lock()
	st, err := s.loadStorage(storeID)
	if err == nil && !st.hasContent("backup") {
		err = die("storage '%s' does not support backups", storeID)
	}
	if err == nil {
		err = s.check(q.auth.authID, "/storage/"+storeID, "Datastore.AllocateSpace")
	}
	if err == nil && q.has("prune-backups") {
		err = s.check(q.auth.authID, "/storage/"+storeID, "Datastore.Allocate")
	}
	for _, key := range []string{"bwlimit", "performance", "ionice"} {
		if err == nil && q.has(key) {
			err = s.check(q.auth.authID, "/", "Sys.Modify")
		}
	}
	if err == nil && q.bool("stop") {
		err = s.check(q.auth.authID, "/nodes/"+s.node, "Sys.Modify")
	}
	var vmids []int
	if err == nil {
		if q.bool("all") {
			excl := map[string]bool{}
			for _, e := range splitList(q.str("exclude")) {
				excl[e] = true
			}
			for _, id := range s.sortedVMIDs() {
				if !excl[strconv.Itoa(id)] && s.has(q.auth.authID, fmt.Sprintf("/vms/%d", id), "VM.Backup") {
					vmids = append(vmids, id)
				}
			}
		} else {
			for _, v := range splitList(q.str("vmid")) {
				id, _ := strconv.Atoi(v)
				if err = s.check(q.auth.authID, "/vms/"+v, "VM.Backup"); err != nil {
					break
				}
				vmids = append(vmids, id)
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	id := ""
	if len(vmids) == 1 {
		id = strconv.Itoa(vmids[0])
	}
	startAt := time.Now()
	cmd := "vzdump"
	if q.bool("all") {
		cmd += " --all 1"
	} else {
		cmd += " " + strings.Join(splitList(q.str("vmid")), " ")
	}
	cmd += " --storage " + storeID + " --mode " + mode
	if compress != "" {
		cmd += " --compress " + compress
	}
	cmd += " --node " + s.node
	notesTmpl := q.str("notes-template")
	protected := q.bool("protected")

	// Lock each guest as the backup of it begins; failures are logged and
	// make the job fail at the end, as vzdump does.
	failed := map[int]string{}
	var locked []int
	lines := []string{"INFO: starting new backup job: " + cmd}
	for _, vmid := range vmids {
		s.mu.Lock()
		g, ok := s.guests[vmid]
		var kind guestKind
		if ok {
			kind = g.kind
		}
		s.mu.Unlock()
		if !ok {
			failed[vmid] = fmt.Sprintf("unable to find configuration file for VM %d - no such machine", vmid)
			continue
		}
		unlock, lerr := s.lockGuest(q.ctx, kind, vmid)
		if lerr != nil {
			failed[vmid] = strings.TrimRight(lerr.msg, "\n")
			continue
		}
		s.mu.Lock()
		if l := g.conf["lock"]; l != "" {
			failed[vmid] = fmt.Sprintf("%s is locked (%s)", kind.word(), l)
		} else {
			g.conf["lock"] = "backup"
			locked = append(locked, vmid)
		}
		s.mu.Unlock()
		unlock()
	}
	unlockAll := func() {
		for _, vmid := range locked {
			if g, ok := s.guests[vmid]; ok && g.conf["lock"] == "backup" {
				delete(g.conf, "lock")
			}
		}
	}
	return s.startTask(q.auth, taskSpec{
		typ: "vzdump", id: id, lines: lines,
		run: func(tc *taskCtx) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			defer unlockAll()
			errs := 0
			for _, vmid := range vmids {
				g, ok := s.guests[vmid]
				if msg, bad := failed[vmid]; bad || !ok {
					if !bad {
						msg = fmt.Sprintf("unable to find configuration file for VM %d - no such machine", vmid)
					}
					tc.logLocked("ERROR: Backup of VM %d failed - %s", vmid, msg)
					errs++
					continue
				}
				s.backupGuest(tc, st, g, startAt, compress, mode, notesTmpl, protected)
			}
			if errs > 0 {
				tc.logLocked("INFO: Backup job finished with errors")
				return fmt.Errorf("job errors")
			}
			tc.logLocked("INFO: Backup job finished successfully")
			return nil
		},
		undo: unlockAll,
	})
}

// backupGuest writes the log of one guest's backup and adds the archive to
// the storage content (s.mu held).
func (s *Server) backupGuest(tc *taskCtx, st *storageCfg, g *guest, at time.Time, compress, mode, notesTmpl string, protected bool) {
	volid, format := backupVolid(st, g, at, compress)
	size := g.maxDisk()/5 + 1<<20
	tc.logLocked("INFO: Starting Backup of VM %d (%s)", g.vmid, g.kind)
	tc.logLocked("INFO: Backup started at %s", at.Format("2006-01-02 15:04:05"))
	tc.logLocked("INFO: status = %s", map[bool]string{true: "running", false: "stopped"}[g.running])
	if g.kind == kindLXC {
		tc.logLocked("INFO: CT Name: %s", g.name())
		tc.logLocked("INFO: including mount point rootfs ('/') in backup")
	} else {
		tc.logLocked("INFO: VM Name: %s", g.name())
		for _, k := range g.diskKeys(g.conf) {
			tc.logLocked("INFO: include disk '%s' '%s' %s", k, strings.Split(g.conf[k], ",")[0], propValue(g.conf[k], "size"))
		}
	}
	tc.logLocked("INFO: backup mode: %s", mode)
	tc.logLocked("INFO: ionice priority: 7")
	if st.typ == "pbs" {
		tc.logLocked("INFO: creating Proxmox Backup Server archive '%s'", strings.SplitN(volid, ":backup/", 2)[1])
	} else {
		tc.logLocked("INFO: creating vzdump archive '/var/lib/vz/dump/%s'", strings.SplitN(volid, ":backup/", 2)[1])
	}
	tc.logLocked("INFO: Total bytes written: %d (%s, 120MiB/s)", size, formatSize(size))
	tc.logLocked("INFO: archive file size: %s", formatSize(size))
	notes := ""
	if notesTmpl != "" {
		notes = strings.NewReplacer("{{cluster}}", "", "{{guestname}}", g.name(), "{{node}}", s.node,
			"{{vmid}}", strconv.Itoa(g.vmid)).Replace(notesTmpl)
		tc.logLocked("INFO: adding notes to backup")
	}
	if protected {
		tc.logLocked("INFO: marking backup as protected")
	}
	tc.logLocked("INFO: Finished Backup of VM %d (00:00:02)", g.vmid)
	tc.logLocked("INFO: Backup finished at %s", at.Add(2*time.Second).Format("2006-01-02 15:04:05"))
	conf := map[string]string{}
	for k, v := range g.conf {
		if k != "lock" {
			conf[k] = v
		}
	}
	s.addVolume(st.id, &volume{
		volid: volid, content: "backup", format: format, size: size, vmid: g.vmid, ctime: at.Unix(),
		notes: notes, protected: protected, subtype: g.kind.String(),
		backupConf: conf, backupDesc: append([]string(nil), g.desc...),
	})
}
