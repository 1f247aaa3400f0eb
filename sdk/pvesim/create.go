package pvesim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// handleCreate serves POST /nodes/{node}/{qemu,lxc}: create, or restore
// from a backup (LXC restore=1 with ostemplate, QEMU archive).
func (s *Server) handleCreate(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		vmid := int(q.int("vmid", 0))
		vmPath := fmt.Sprintf("/vms/%d", vmid)
		restore := q.bool("restore")
		source := q.str("ostemplate")
		if kind == kindQemu {
			restore = q.has("archive")
			source = q.str("archive")
		}
		force := q.bool("force")
		op, word := "create", kind.word()

		s.mu.Lock()
		existing, exists := s.guests[vmid]
		var err *apiError
		switch {
		case restore && force && exists:
			if !s.has(q.auth.authID, vmPath, "VM.Allocate") {
				err = s.check(q.auth.authID, vmPath, "VM.Backup")
			}
		default:
			err = s.check(q.auth.authID, vmPath, "VM.Allocate")
		}
		if err == nil && kind == kindLXC && q.has("unprivileged") && !q.bool("unprivileged") {
			err = s.check(q.auth.authID, "/", "Sys.Modify")
		}
		if err == nil {
			for _, k := range sortedKeys(q.params) {
				if m := newVolumeRE.FindStringSubmatch(q.params[k].s); m != nil && (isQemuDiskKey(k) || k == "rootfs" || strings.HasPrefix(k, "mp")) {
					if err = s.check(q.auth.authID, "/storage/"+m[1], "Datastore.AllocateSpace"); err != nil {
						break
					}
				}
			}
		}
		if err == nil && exists && !(restore && force) {
			err = die("unable to %s %s %d - %s %d already exists on node '%s'", op, word, vmid, existing.kind.word(), vmid, s.node)
		}
		if err == nil && exists && existing.running {
			err = die("unable to restore %s %d - %s is running", word, vmid, word)
		}
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if exists {
			s.removeGuestVolumes(vmid)
		}
		g := &guest{vmid: vmid, kind: kind, conf: map[string]string{"lock": "create"}, cpuSeed: float64(vmid%7) / 100}
		s.guests[vmid] = g
		s.mu.Unlock()

		typ := kind.taskType("create")
		if restore {
			typ = kind.taskType("restore")
		}
		change := map[string]string{}
		var desc *string
		for k, v := range q.params {
			if v.kind == kUndef || inSet(k, "node", "vmid", "ostemplate", "archive", "restore", "force", "unique",
				"storage", "start", "password", "ssh-public-keys", "pool", "bwlimit", "ignore-unpack-errors",
				"ha-managed", "live-restore", "import-working-storage") {
				continue
			}
			if k == "description" {
				d := v.s
				desc = &d
				continue
			}
			change[k] = v.s
		}
		storage := q.str("storage")
		start := q.bool("start")
		upid, terr := s.startTask(q.auth, taskSpec{
			typ: typ, id: strconv.Itoa(vmid),
			run: func(tc *taskCtx) error {
				unlock, lerr := s.lockGuest(tc.ctx, kind, vmid)
				if lerr != nil {
					return taskErr(lerr)
				}
				defer unlock()
				s.mu.Lock()
				defer s.mu.Unlock()
				g, ok := s.guests[vmid]
				if !ok {
					return fmt.Errorf("Configuration file '%s' does not exist", kind.confPath(s.node, vmid))
				}
				if err := s.buildGuest(tc, g, restore, source, storage, change, desc); err != nil {
					s.removeGuestVolumes(vmid)
					delete(s.guests, vmid)
					return err
				}
				delete(g.conf, "lock")
				if start {
					g.setRunning(true)
				}
				return nil
			},
			undo: func() {
				s.removeGuestVolumes(vmid)
				delete(s.guests, vmid)
			},
		})
		if terr != nil {
			return nil, terr
		}
		return upid, nil
	}
}

// buildGuest fills a new guest's config in a create or restore task (s.mu held).
func (s *Server) buildGuest(tc *taskCtx, g *guest, restore bool, source, storage string, change map[string]string, desc *string) error {
	var vol *volume
	if source != "" {
		vol = s.findVolume(source)
		if vol == nil {
			return fmt.Errorf("volume '%s' does not exist", source)
		}
	}
	conf := map[string]string{}
	if restore {
		if vol == nil || vol.content != "backup" {
			return fmt.Errorf("unable to restore - '%s' is not a backup archive", source)
		}
		if vol.backupConf != nil {
			for k, v := range vol.backupConf {
				conf[k] = v
			}
			g.desc = append([]string(nil), vol.backupDesc...)
		}
		tc.logLocked("restore %s backup '%s' using storage '%s'", map[guestKind]string{kindQemu: "vma", kindLXC: "tar"}[g.kind], source, storageOr(storage, "local-lvm"))
		// Restored disks get fresh volumes on the target storage.
		for _, k := range g.diskKeys(conf) {
			size := sizeBytes(propValue(conf[k], "size"))
			conf[k] = fmt.Sprintf("%s:%s", storageOr(storage, "local-lvm"), strconv.FormatFloat(float64(size)/(1<<30), 'f', -1, 64))
		}
	} else if g.kind == kindLXC {
		if vol.content != "vztmpl" {
			return fmt.Errorf("volume '%s' is not a container template", source)
		}
		tc.logLocked("extracting archive '/var/lib/vz/template/cache/%s'", strings.SplitN(source, "/", 2)[1])
		tc.logLocked("Total bytes read: 524728320 (501MiB, 131MiB/s)")
		tc.logLocked("Detected container architecture: amd64")
		conf["arch"] = "amd64"
		conf["ostype"] = "debian"
		conf["memory"] = "512"
		conf["swap"] = "512"
		conf["cores"] = "1"
		conf["hostname"] = fmt.Sprintf("CT%d", g.vmid)
	}
	for k, v := range change {
		conf[k] = v
	}
	if g.kind == kindLXC && conf["rootfs"] == "" {
		conf["rootfs"] = storageOr(storage, "local") + ":4"
	}
	if err := s.allocVolumes(g, conf); err != nil {
		return taskErr(err)
	}
	if g.kind == kindLXC && !restore {
		tc.logLocked("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...")
	}
	conf["lock"] = "create"
	if g.kind == kindQemu {
		if _, ok := conf["smbios1"]; !ok {
			u, _ := newUUID()
			conf["smbios1"] = "uuid=" + u
		}
		if _, ok := conf["vmgenid"]; !ok {
			u, _ := newUUID()
			conf["vmgenid"] = u
		}
	}
	g.conf = conf
	if desc != nil {
		g.desc = descLines(*desc)
	}
	return nil
}

func storageOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// removeGuestVolumes drops a guest's disk volumes (not its backups) and
// returns their IDs (s.mu held).
func (s *Server) removeGuestVolumes(vmid int) []string {
	var removed []string
	for st, vols := range s.content {
		kept := vols[:0]
		for _, v := range vols {
			if v.vmid == vmid && (v.content == "images" || v.content == "rootdir") {
				removed = append(removed, v.volid)
				continue
			}
			kept = append(kept, v)
		}
		s.content[st] = kept
	}
	sort.Strings(removed)
	return removed
}

// nextDiskName finds the next free vm-<vmid>-disk-N name (s.mu held).
func (s *Server) nextDiskName(storage string, vmid int) string {
	for n := 0; ; n++ {
		name := fmt.Sprintf("vm-%d-disk-%d", vmid, n)
		if s.findVolume(storage+":"+name) == nil {
			return name
		}
	}
}

// hostCPUs is the simulated node's CPU count.
const hostCPUs = 8

func (s *Server) seedGuests() {
	now := time.Now()
	ct := &guest{vmid: 100, kind: kindLXC, cpuSeed: 0.02, conf: map[string]string{
		"arch":         "amd64",
		"cores":        "2",
		"features":     "nesting=1",
		"hostname":     "ct100",
		"memory":       "1024",
		"net0":         "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:5E:10:01,ip=dhcp,type=veth",
		"onboot":       "1",
		"ostype":       "debian",
		"rootfs":       "local-lvm:vm-100-disk-0,size=8G",
		"swap":         "512",
		"tags":         "felhom",
		"unprivileged": "1",
	}, desc: []string{"Seeded container"}}
	ct.setRunning(true)
	ct.started = now.Add(-26 * time.Hour)
	vm := &guest{vmid: 101, kind: kindQemu, cpuSeed: 0.01, conf: map[string]string{
		"boot":    "order=scsi0;ide2;net0",
		"cores":   "2",
		"cpu":     "x86-64-v2-AES",
		"ide2":    "none,media=cdrom",
		"memory":  "2048",
		"meta":    "creation-qemu=9.2.0,ctime=1764160000",
		"name":    "vm101",
		"net0":    "virtio=BC:24:11:5E:10:02,bridge=vmbr0,firewall=1",
		"numa":    "0",
		"ostype":  "l26",
		"scsi0":   "local-lvm:vm-101-disk-0,iothread=1,size=32G",
		"scsihw":  "virtio-scsi-single",
		"smbios1": "uuid=6f1c2a7e-3b5d-4c8e-9f10-2a3b4c5d6e7f",
		"sockets": "1",
		"vmgenid": "0b6c3f42-8e1d-4a57-b9c2-7d5e6f708192",
	}, desc: []string{"Seeded VM"}}
	scratch := &guest{vmid: 9999, kind: kindLXC, cpuSeed: 0.03, conf: map[string]string{
		"arch":         "amd64",
		"cores":        "1",
		"hostname":     "scratch",
		"memory":       "512",
		"net0":         "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5E:10:03,ip=dhcp,type=veth",
		"ostype":       "debian",
		"rootfs":       "local-lvm:vm-9999-disk-0,size=4G",
		"swap":         "512",
		"unprivileged": "1",
	}}
	for _, g := range []*guest{ct, vm, scratch} {
		s.guests[g.vmid] = g
		for _, k := range g.diskKeys(g.conf) {
			volid := strings.Split(g.conf[k], ",")[0]
			ct := "images"
			if g.kind == kindLXC {
				ct = "rootdir"
			}
			s.addVolume("local-lvm", &volume{volid: volid, content: ct, format: "raw",
				size: sizeBytes(propValue(g.conf[k], "size")), vmid: g.vmid, ctime: now.Add(-30 * 24 * time.Hour).Unix()})
		}
	}
}
