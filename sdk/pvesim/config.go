package pvesim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// configChange is a parsed config update request.
type configChange struct {
	set    map[string]string
	del    []string
	revert []string
	desc   *string
}

// parseConfigChange collects the option parameters of a config update and
// applies PVE's parameter-level checks.
func parseConfigChange(q *request, kind guestKind) (*configChange, *apiError) {
	c := &configChange{set: map[string]string{}}
	skip := map[string]bool{
		"node": true, "vmid": true, "delete": true, "revert": true, "digest": true, "skiplock": true,
		"force": true, "background_delay": true, "import-working-storage": true,
	}
	for k, v := range q.params {
		if skip[k] || v.kind == kUndef {
			continue
		}
		if k == "description" {
			d := v.s
			c.desc = &d
			continue
		}
		c.set[k] = v.s
	}
	for _, opt := range splitList(q.str("delete")) {
		if kind == kindQemu && opt == "cdrom" {
			opt = "ide2"
		}
		if q.has(opt) {
			return nil, paramError1("delete", fmt.Sprintf("you can't use '-%s' and -delete %s' at the same time", opt, opt))
		}
		if opt != "description" && keyTypes[kind].lookup(opt) == nil {
			return nil, paramError1("delete", fmt.Sprintf("unknown option '%s'", opt))
		}
		c.del = append(c.del, opt)
	}
	for _, opt := range splitList(q.str("revert")) {
		for _, d := range c.del {
			if d == opt {
				return nil, paramError1("revert", fmt.Sprintf("you can't use '-delete %s' and '-revert %s' at the same time", opt, opt))
			}
		}
		if q.has(opt) {
			return nil, paramError1("revert", fmt.Sprintf("you can't use '-%s' and '-revert %s' at the same time", opt, opt))
		}
		c.revert = append(c.revert, opt)
	}
	if q.bool("skiplock") && q.auth.authID != rootUser {
		return nil, paramError1("skiplock", "Only root may use this option.")
	}
	if len(c.set) == 0 && len(c.del) == 0 && len(c.revert) == 0 && c.desc == nil {
		return nil, die("no options specified")
	}
	return c, nil
}

func (c *configChange) keys() []string {
	var keys []string
	for k := range c.set {
		keys = append(keys, k)
	}
	keys = append(keys, c.del...)
	if c.desc != nil {
		keys = append(keys, "description")
	}
	sort.Strings(keys)
	return keys
}

var newVolumeRE = regexp.MustCompile(`^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)(,.*)?$`)

// checkConfigPerms applies the per-option privilege checks of
// qemu-server's check_vm_modify_config_perm and pve-container's
// check_ct_modify_config_perm (s.mu held). Only root@pam itself may set
// root-only options; tokens of root@pam may not.
func (s *Server) checkConfigPerms(q *request, g *guest, c *configChange) *apiError {
	id := q.auth.authID
	vmPath := fmt.Sprintf("/vms/%d", g.vmid)
	need := func(privs ...string) *apiError {
		if len(privs) > 1 {
			return s.checkAny(id, vmPath, privs...)
		}
		return s.check(id, vmPath, privs...)
	}
	for _, k := range c.keys() {
		v := c.set[k]
		if m := newVolumeRE.FindStringSubmatch(v); m != nil {
			if err := s.check(id, "/storage/"+m[1], "Datastore.AllocateSpace"); err != nil {
				return err
			}
		}
		var err *apiError
		if g.kind == kindQemu {
			err = s.qemuOptionPerm(id, k, v, need)
		} else {
			err = s.lxcOptionPerm(id, g, k, v, need)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func familyBase(k string) string { return strings.TrimRight(k, "0123456789") }

func (s *Server) qemuOptionPerm(id, k, v string, need func(...string) *apiError) *apiError {
	base := familyBase(k)
	switch {
	case k == "cdrom" || (isQemuDiskKey(k) && strings.Contains(v, "media=cdrom")):
		return need("VM.Config.CDROM")
	case isQemuDiskKey(k) || base == "unused" || k == "boot" || k == "bootdisk" || k == "vmstatestorage":
		return need("VM.Config.Disk")
	case inSet(k, "cores", "cpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus", "affinity") || (base == "numa" && k != "numa"):
		return need("VM.Config.CPU")
	case inSet(k, "memory", "balloon", "shares", "allow-ksm", "hugepages", "keephugepages"):
		return need("VM.Config.Memory")
	case base == "net":
		return need("VM.Config.Network")
	case base == "ipconfig":
		return need("VM.Config.Cloudinit", "VM.Config.Network")
	case inSet(k, "cicustom", "cipassword", "citype", "ciupgrade", "ciuser", "nameserver", "searchdomain", "sshkeys"):
		return need("VM.Config.Cloudinit")
	case inSet(k, "acpi", "hotplug", "kvm", "machine", "scsihw", "smbios1", "tablet", "vga", "watchdog", "audio0"):
		return need("VM.Config.HWType")
	case k == "freeze":
		return need("VM.PowerMgmt")
	case k == "startup":
		if err := need("VM.Config.Options"); err != nil {
			return err
		}
		return s.check(id, "/", "Sys.Modify")
	case inSet(k, "agent", "arch", "autostart", "bios", "description", "keyboard", "localtime", "migrate_downtime",
		"migrate_speed", "name", "onboot", "ostype", "protection", "reboot", "startdate", "tdf", "template",
		"tags", "vmgenid", "spice_enhancements"):
		return need("VM.Config.Options")
	}
	if id != rootUser {
		return die("only root can set '%s' config", k)
	}
	return nil
}

func (s *Server) lxcOptionPerm(id string, g *guest, k, v string, need func(...string) *apiError) *apiError {
	base := familyBase(k)
	switch {
	case inSet(k, "cores", "cpulimit", "cpuunits"):
		return need("VM.Config.CPU")
	case inSet(k, "memory", "swap"):
		return need("VM.Config.Memory")
	case k == "rootfs" || base == "mp" || base == "unused":
		return need("VM.Config.Disk")
	case base == "net" || inSet(k, "hostname", "nameserver", "searchdomain"):
		return need("VM.Config.Network")
	case base == "dev":
		if id != rootUser {
			return permError("configuring device passthrough is only allowed for root@pam")
		}
		return nil
	case k == "hookscript":
		if id != rootUser {
			return permError("changing the hookscript is only allowed for root@pam")
		}
		return nil
	case k == "features":
		if id == rootUser {
			return nil
		}
		if g.conf["unprivileged"] != "1" {
			return permError("changing feature flags for privileged container is only allowed for root@pam")
		}
		old := featureFlags(g.conf["features"])
		nw := featureFlags(v)
		nesting := false
		for _, f := range unionKeys(old, nw) {
			if old[f] == nw[f] {
				continue
			}
			if f != "nesting" {
				return permError("changing feature flags (except nesting) is only allowed for root@pam")
			}
			nesting = true
		}
		if nesting {
			return need("VM.Allocate")
		}
		return nil
	}
	return need("VM.Config.Options")
}

func featureFlags(v string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(part, "="); ok {
			m[k] = val
		}
	}
	return m
}

func unionKeys(a, b map[string]string) []string {
	set := map[string]string{}
	for k := range a {
		set[k] = ""
	}
	for k := range b {
		set[k] = ""
	}
	return sortedKeys(set)
}

func inSet(k string, set ...string) bool {
	for _, s := range set {
		if k == s {
			return true
		}
	}
	return false
}

// allocVolumes turns "STORAGE:SIZE" values into new volumes (s.mu held).
func (s *Server) allocVolumes(g *guest, set map[string]string) *apiError {
	for _, k := range sortedKeys(set) {
		v := set[k]
		if !(isQemuDiskKey(k) || k == "rootfs" || (strings.HasPrefix(k, "mp") && isInteger(k[2:]))) {
			continue
		}
		m := newVolumeRE.FindStringSubmatch(v)
		if m == nil {
			continue
		}
		st, ok := s.storages[m[1]]
		if !ok {
			return die("storage '%s' does not exist", m[1])
		}
		ct := "images"
		if g.kind == kindLXC {
			ct = "rootdir"
		}
		if !st.hasContent(ct) {
			if ct == "rootdir" {
				return die("storage '%s' does not support container directories", m[1])
			}
			return die("storage '%s' does not support vm images", m[1])
		}
		gib, _ := strconv.ParseFloat(m[2], 64)
		name := s.nextDiskName(m[1], g.vmid)
		size := int64(gib * (1 << 30))
		s.addVolume(m[1], &volume{volid: m[1] + ":" + name, content: ct, format: "raw", size: size, vmid: g.vmid, ctime: time.Now().Unix()})
		set[k] = fmt.Sprintf("%s:%s%s,size=%s", m[1], name, m[3], formatSize(size))
	}
	return nil
}

func formatSize(b int64) string {
	switch {
	case b%(1<<40) == 0 && b > 0:
		return fmt.Sprintf("%dT", b>>40)
	case b%(1<<30) == 0 && b > 0:
		return fmt.Sprintf("%dG", b>>30)
	case b%(1<<20) == 0 && b > 0:
		return fmt.Sprintf("%dM", b>>20)
	case b%(1<<10) == 0 && b > 0:
		return fmt.Sprintf("%dK", b>>10)
	}
	return strconv.FormatInt(b, 10)
}

// applyChange writes a config change into conf/desc (s.mu held).
func applyChange(g *guest, c *configChange) {
	for k, v := range c.set {
		g.conf[k] = v
	}
	for _, k := range c.del {
		if k == "description" {
			g.desc = nil
			continue
		}
		delete(g.conf, k)
	}
	for _, k := range c.revert {
		delete(g.pending, k)
	}
	if c.desc != nil {
		if *c.desc == "" {
			g.desc = nil
		} else {
			g.desc = descLines(*c.desc)
		}
	}
}

// updateConfig is the synchronous part shared by PUT (both kinds) and QEMU
// POST config: lock, digest and lock-key checks, then the change. With
// queue set (QEMU POST) the change is queued as pending for a qmconfig task.
func (s *Server) updateConfig(q *request, kind guestKind, queue bool) (any, error) {
	c, perr := parseConfigChange(q, kind)
	if perr != nil {
		return nil, perr
	}
	vmid, _ := strconv.Atoi(q.str("vmid"))
	s.mu.Lock()
	g, gerr := s.loadGuest(kind, q.str("vmid"))
	if gerr == nil {
		gerr = s.checkConfigPerms(q, g, c)
	}
	s.mu.Unlock()
	if gerr != nil {
		return nil, gerr
	}
	unlock, lerr := s.lockGuest(q.ctx, kind, vmid)
	if lerr != nil {
		return nil, lerr
	}
	defer unlock()
	s.mu.Lock()
	g, gerr = s.loadGuest(kind, q.str("vmid"))
	if gerr != nil {
		s.mu.Unlock()
		return nil, gerr
	}
	if q.has("digest") && q.str("digest") != g.digest() {
		s.mu.Unlock()
		return nil, die("detected modified configuration - file changed by other user? Try again.")
	}
	if !q.bool("skiplock") {
		if err := g.checkLock(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	if err := s.allocVolumes(g, c.set); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if !queue {
		applyChange(g, c)
		s.mu.Unlock()
		return nil, nil
	}
	if g.pending == nil {
		g.pending = map[string]string{}
	}
	for k, v := range c.set {
		g.pending[k] = v
	}
	for _, k := range c.del {
		g.pending[k] = ""
	}
	for _, k := range c.revert {
		delete(g.pending, k)
	}
	desc := c.desc
	s.mu.Unlock()
	return s.startTask(q.auth, taskSpec{
		typ: "qmconfig", id: strconv.Itoa(vmid),
		run: func(tc *taskCtx) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			g, ok := s.guests[vmid]
			if !ok {
				return fmt.Errorf("Configuration file '%s' does not exist", kind.confPath(s.node, vmid))
			}
			for _, k := range sortedKeys(g.pending) {
				v := g.pending[k]
				if v == "" {
					delete(g.conf, k)
					tc.logLocked("delete %s", k)
				} else {
					g.conf[k] = v
					tc.logLocked("update VM %d: -%s %s", vmid, k, v)
				}
			}
			g.pending = nil
			if desc != nil {
				g.desc = descLines(*desc)
			}
			return nil
		},
	})
}

func (s *Server) handleConfigPut(kind guestKind) handlerFunc {
	return func(q *request) (any, error) { return s.updateConfig(q, kind, false) }
}

func (s *Server) handleQemuConfigPost(q *request) (any, error) {
	upid, err := s.updateConfig(q, kindQemu, true)
	if err != nil || !q.has("background_delay") {
		return upid, err
	}
	// With background_delay the call waits for the task and returns null
	// when it finished OK within the delay.
	return s.waitTask(q, upid.(string), time.Duration(q.int("background_delay", 0))*time.Second, func(exit string) error {
		return die("failed to update VM %s: %s", q.str("vmid"), exit)
	})
}
