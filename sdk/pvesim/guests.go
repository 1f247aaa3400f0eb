package pvesim

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

type guestKind int

const (
	kindQemu guestKind = iota
	kindLXC
)

func (k guestKind) String() string {
	if k == kindLXC {
		return "lxc"
	}
	return "qemu"
}

// word is how PVE's messages name the guest type.
func (k guestKind) word() string {
	if k == kindLXC {
		return "CT"
	}
	return "VM"
}

func (k guestKind) confPath(node string, vmid int) string {
	if k == kindLXC {
		return fmt.Sprintf("nodes/%s/lxc/%d.conf", node, vmid)
	}
	return fmt.Sprintf("nodes/%s/qemu-server/%d.conf", node, vmid)
}

func (k guestKind) lockFile(vmid int) string {
	if k == kindLXC {
		return fmt.Sprintf("/run/lock/lxc/pve-config-%d.lock", vmid)
	}
	return fmt.Sprintf("/var/lock/qemu-server/lock-%d.conf", vmid)
}

// taskType maps an operation to the kind's worker type, e.g. "snapshot" to
// "qmsnapshot" or "vzsnapshot".
func (k guestKind) taskType(op string) string {
	if k == kindLXC {
		return "vz" + op
	}
	return "qm" + op
}

// guest is a VM or container. Config values are kept as the strings of the
// config file; GET renders them with Perl's types (integers and booleans as
// numbers, everything else as strings).
type guest struct {
	vmid    int
	kind    guestKind
	conf    map[string]string // includes lock and parent
	desc    []string          // description lines
	pending map[string]string // QEMU changes queued by POST config ("" value = delete)
	snaps   map[string]*snapshot
	running bool
	started time.Time
	pid     int
	// cpuSeed varies the simulated load per guest.
	cpuSeed float64
}

type snapshot struct {
	name     string
	conf     map[string]string // copied config keys
	desc     []string
	snaptime int64
	parent   string
	vmstate  bool
	state    string // snapstate while a task works on it
}

// descLines splits a description into the comment lines PVE stores,
// dropping trailing empty lines like Perl's split(/\n/).
func descLines(d string) []string {
	lines := strings.Split(d, "\n")
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// descText renders stored description lines as GET config shows them: LXC
// keeps a trailing newline, QEMU strips trailing whitespace.
func descText(kind guestKind, lines []string) string {
	if kind == kindLXC {
		return strings.Join(lines, "\n") + "\n"
	}
	return strings.TrimRight(strings.Join(lines, "\n"), " \t\r\n")
}

// encodeText is PVE::Tools::encode_text: control characters, ':' and
// non-ASCII bytes become %XX.
func encodeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == ':' || c > 0x7e {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// render writes the config file as PVE would (description comments, sorted
// keys, pending and snapshot sections); its SHA-1 is the digest.
func (g *guest) render() string {
	var b strings.Builder
	writeSection := func(desc []string, conf map[string]string, extra map[string]string) {
		for _, l := range desc {
			b.WriteString("#" + encodeText(l) + "\n")
		}
		all := map[string]string{}
		for k, v := range conf {
			all[k] = v
		}
		for k, v := range extra {
			all[k] = v
		}
		for _, k := range sortedKeys(all) {
			b.WriteString(k + ": " + all[k] + "\n")
		}
	}
	writeSection(g.desc, g.conf, nil)
	if len(g.pending) > 0 {
		b.WriteString("\n[PENDING]\n")
		var del []string
		set := map[string]string{}
		for k, v := range g.pending {
			if v == "" {
				del = append(del, k)
			} else {
				set[k] = v
			}
		}
		sort.Strings(del)
		if len(del) > 0 {
			set["delete"] = strings.Join(del, ",")
		}
		writeSection(nil, set, nil)
	}
	for _, name := range sortedKeys(g.snaps) {
		sn := g.snaps[name]
		b.WriteString("\n[" + name + "]\n")
		extra := map[string]string{"snaptime": strconv.FormatInt(sn.snaptime, 10)}
		if sn.parent != "" {
			extra["parent"] = sn.parent
		}
		if sn.state != "" {
			extra["snapstate"] = sn.state
		}
		if sn.vmstate {
			extra["vmstate"] = fmt.Sprintf("local-lvm:vm-%d-state-%s", g.vmid, name)
		}
		writeSection(sn.desc, sn.conf, extra)
	}
	return b.String()
}

func (g *guest) digest() string {
	sum := sha1.Sum([]byte(g.render()))
	return hex.EncodeToString(sum[:])
}

// keyTypes maps config keys to schema types per guest kind, derived from
// the parameter tables.
var keyTypes = func() map[guestKind]*endpointParams {
	return map[guestKind]*endpointParams{
		kindQemu: params(qemuOptions()),
		kindLXC:  params(lxcOptions()),
	}
}()

// typedValue converts a stored config string to the JSON value PVE emits.
func typedValue(kind guestKind, key, v string) any {
	typ := tString
	if p := keyTypes[kind].lookup(key); p != nil {
		typ = p.typ
	}
	switch key {
	case "snaptime":
		typ = tInteger
	}
	switch typ {
	case tInteger, tBoolean:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

// configView renders a config for GET (s.mu held).
func (g *guest) configView(conf map[string]string, desc []string) map[string]any {
	m := map[string]any{}
	for k, v := range conf {
		m[k] = typedValue(g.kind, k, v)
	}
	if len(desc) > 0 {
		m["description"] = descText(g.kind, desc)
	}
	m["digest"] = g.digest()
	return m
}

// loadGuest finds a guest of the given kind (s.mu held).
func (s *Server) loadGuest(kind guestKind, vmidStr string) (*guest, *apiError) {
	vmid, _ := strconv.Atoi(vmidStr)
	g, ok := s.guests[vmid]
	if !ok || g.kind != kind {
		return nil, die("Configuration file '%s' does not exist", kind.confPath(s.node, vmid))
	}
	return g, nil
}

// checkLock is check_lock: a set "lock" key blocks the operation.
func (g *guest) checkLock() *apiError {
	if l := g.conf["lock"]; l != "" {
		return die("%s is locked (%s)", g.kind.word(), l)
	}
	return nil
}

var errLockTimeout = errors.New("got timeout")

// flock returns the per-guest config lock, created on first use (s.mu held).
func (s *Server) flock(vmid int) chan struct{} {
	c, ok := s.flocks[vmid]
	if !ok {
		c = make(chan struct{}, 1)
		s.flocks[vmid] = c
	}
	return c
}

// acquireFlock takes a guest's config lock, waiting at most timeout (0 =
// until ctx ends or the server closes).
func (s *Server) acquireFlock(ctx context.Context, vmid int, timeout time.Duration) (func(), error) {
	s.mu.Lock()
	c := s.flock(vmid)
	s.mu.Unlock()
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-expire:
		return nil, errLockTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, errors.New("server is shutting down")
	}
}

// lockGuest takes the config lock with the configured timeout and returns
// PVE's error text on timeout.
func (s *Server) lockGuest(ctx context.Context, kind guestKind, vmid int) (func(), *apiError) {
	unlock, err := s.acquireFlock(ctx, vmid, s.opts.LockTimeout)
	if err != nil {
		if errors.Is(err, errLockTimeout) {
			return nil, die("can't lock file '%s' - got timeout", kind.lockFile(vmid))
		}
		return nil, die("can't lock file '%s' - %v", kind.lockFile(vmid), err)
	}
	return unlock, nil
}

// taskErr turns an apiError into a plain task error (its message only).
func taskErr(e *apiError) error {
	if e == nil {
		return nil
	}
	return errors.New(strings.TrimRight(e.msg, "\n"))
}

func (s *Server) handleConfigGet(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err != nil {
			return nil, err
		}
		if q.has("snapshot") {
			name := q.str("snapshot")
			sn, ok := g.snaps[name]
			if !ok {
				return nil, die("snapshot '%s' does not exist", name)
			}
			v := g.configView(sn.conf, sn.desc)
			v["snaptime"] = sn.snaptime
			if sn.parent != "" {
				v["parent"] = sn.parent
			}
			return v, nil
		}
		// QEMU shows pending changes applied unless current=1 is given.
		conf := g.conf
		if len(g.pending) > 0 && !q.bool("current") {
			conf = map[string]string{}
			for k, v := range g.conf {
				conf[k] = v
			}
			for k, v := range g.pending {
				if v == "" {
					delete(conf, k)
				} else {
					conf[k] = v
				}
			}
		}
		return g.configView(conf, g.desc), nil
	}
}

func (s *Server) handlePending(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err != nil {
			return nil, err
		}
		keys := map[string]bool{}
		for k := range g.conf {
			keys[k] = true
		}
		for k := range g.pending {
			keys[k] = true
		}
		res := []map[string]any{}
		if len(g.desc) > 0 {
			res = append(res, map[string]any{"key": "description", "value": descText(kind, g.desc)})
		}
		for _, k := range sortedKeys(keys) {
			e := map[string]any{"key": k}
			// The pending API reports values as strings (its schema says so).
			if v, ok := g.conf[k]; ok {
				e["value"] = v
			}
			if pv, ok := g.pending[k]; ok {
				if pv == "" {
					e["delete"] = 1
				} else {
					e["pending"] = pv
				}
			}
			res = append(res, e)
		}
		return res, nil
	}
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT])?$`)

// sizeBytes parses PVE disk sizes like "32G" or "512M".
func sizeBytes(s string) int64 {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m[2]]
	return int64(f * mult)
}

// propValue returns key's value from a property string like
// "local-lvm:vm-100-disk-0,size=8G".
func propValue(ps, key string) string {
	for _, part := range strings.Split(ps, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// isQemuDiskKey reports whether key holds a VM disk.
func isQemuDiskKey(key string) bool {
	for _, p := range []string{"ide", "sata", "scsi", "virtio"} {
		if rest, ok := strings.CutPrefix(key, p); ok && rest != "" && isInteger(rest) {
			return true
		}
	}
	return key == "efidisk0" || key == "tpmstate0"
}

// diskKeys lists the keys of a config holding guest volumes.
func (g *guest) diskKeys(conf map[string]string) []string {
	var keys []string
	for _, k := range sortedKeys(conf) {
		v := conf[k]
		if g.kind == kindQemu {
			if isQemuDiskKey(k) && !strings.Contains(v, "media=cdrom") {
				keys = append(keys, k)
			}
		} else if k == "rootfs" || (strings.HasPrefix(k, "mp") && isInteger(k[2:])) {
			keys = append(keys, k)
		}
	}
	return keys
}

func (g *guest) maxMem() int64 {
	mem := g.conf["memory"]
	if g.kind == kindQemu {
		if c := propValue(mem, "current"); c != "" {
			mem = c
		}
		if mem == "" {
			mem = "512"
		}
	} else if mem == "" {
		mem = "512"
	}
	n, _ := strconv.ParseInt(strings.Split(mem, ",")[0], 10, 64)
	return n << 20
}

func (g *guest) maxDisk() int64 {
	keys := g.diskKeys(g.conf)
	for _, k := range keys {
		if k == "rootfs" || isQemuDiskKey(k) && k != "efidisk0" && k != "tpmstate0" {
			return sizeBytes(propValue(g.conf[k], "size"))
		}
	}
	return 0
}

func (g *guest) cpus() int {
	cores, _ := strconv.Atoi(g.conf["cores"])
	if g.kind == kindQemu {
		if cores == 0 {
			cores = 1
		}
		sockets, _ := strconv.Atoi(g.conf["sockets"])
		if sockets == 0 {
			sockets = 1
		}
		return cores * sockets
	}
	if cores == 0 {
		return hostCPUs
	}
	return cores
}

func (g *guest) name() string {
	if g.kind == kindLXC {
		if h := g.conf["hostname"]; h != "" {
			return h
		}
		return fmt.Sprintf("CT%d", g.vmid)
	}
	if n := g.conf["name"]; n != "" {
		return n
	}
	return fmt.Sprintf("VM %d", g.vmid)
}

// statusFields are the vmstatus fields shared by status/current, the guest
// lists and /cluster/resources (s.mu held).
func (g *guest) statusFields() map[string]any {
	m := map[string]any{
		"vmid":      g.vmid,
		"name":      g.name(),
		"status":    "stopped",
		"cpus":      g.cpus(),
		"maxmem":    g.maxMem(),
		"mem":       0,
		"maxdisk":   g.maxDisk(),
		"disk":      0,
		"cpu":       0,
		"uptime":    0,
		"netin":     0,
		"netout":    0,
		"diskread":  0,
		"diskwrite": 0,
	}
	if g.kind == kindLXC {
		m["type"] = "lxc"
		swap, _ := strconv.ParseInt(g.conf["swap"], 10, 64)
		m["maxswap"] = swap << 20
		m["swap"] = 0
	}
	if g.running {
		up := int64(time.Since(g.started).Seconds())
		m["status"] = "running"
		m["uptime"] = up
		m["pid"] = g.pid
		m["cpu"] = 0.01 + g.cpuSeed
		m["mem"] = g.maxMem() / 3
		m["netin"] = 1000 + up*1500
		m["netout"] = 800 + up*900
		m["diskread"] = 40 << 20
		m["diskwrite"] = 8<<20 + up*4096
		if g.kind == kindLXC {
			m["disk"] = g.maxDisk() / 4
		}
	}
	if l := g.conf["lock"]; l != "" {
		m["lock"] = l
	}
	if t := g.conf["tags"]; t != "" {
		m["tags"] = t
	}
	if g.conf["template"] == "1" {
		m["template"] = 1
	}
	return m
}

func (s *Server) handleStatusCurrent(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err != nil {
			return nil, err
		}
		m := g.statusFields()
		m["ha"] = map[string]any{"managed": 0}
		if kind == kindQemu {
			m["qmpstatus"] = m["status"]
			if g.running {
				m["running-machine"] = "pc-i440fx-9.2+pve1"
				m["running-qemu"] = "9.2.0"
			}
			if a := g.conf["agent"]; a != "" && (a == "1" || strings.HasPrefix(a, "1,") || propValue(a, "enabled") == "1") {
				m["agent"] = 1
			}
		}
		return m, nil
	}
}

func (s *Server) handleGuestList(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		res := []map[string]any{}
		for _, vmid := range s.sortedVMIDs() {
			g := s.guests[vmid]
			if g.kind != kind || !s.has(q.auth.authID, fmt.Sprintf("/vms/%d", vmid), "VM.Audit") {
				continue
			}
			res = append(res, g.statusFields())
		}
		return res, nil
	}
}

func (s *Server) sortedVMIDs() []int {
	ids := make([]int, 0, len(s.guests))
	for id := range s.guests {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func (s *Server) handleInterfaces(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.loadGuest(kindLXC, q.str("vmid"))
	if err != nil {
		return nil, err
	}
	if !g.running {
		return nil, die("CT %d not running", g.vmid)
	}
	res := []map[string]any{{
		"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
		"inet": "127.0.0.1/8", "inet6": "::1/128",
		"ip-addresses": []map[string]any{
			{"ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8},
			{"ip-address": "::1", "ip-address-type": "inet6", "prefix": 128},
		},
	}}
	for _, k := range sortedKeys(g.conf) {
		if !strings.HasPrefix(k, "net") || !isInteger(k[3:]) {
			continue
		}
		v := g.conf[k]
		ip := fmt.Sprintf("192.168.100.%d", 10+g.vmid%200)
		res = append(res, map[string]any{
			"name": propValue(v, "name"), "hwaddr": propValue(v, "hwaddr"), "hardware-address": propValue(v, "hwaddr"),
			"inet": ip + "/24",
			"ip-addresses": []map[string]any{
				{"ip-address": ip, "ip-address-type": "inet", "prefix": 24},
			},
		})
	}
	return res, nil
}

func (g *guest) setRunning(on bool) {
	g.running = on
	if on {
		g.started = time.Now()
		g.pid = 100000 + g.vmid*7%90000
	} else {
		g.pid = 0
	}
}

// startGuestTask starts a task whose first step (prepare) runs under the
// guest's config lock inside the task, as PVE's workers take it: failures
// there (lock timeout, "already used", "is locked") end the task with an
// error instead of failing the API call.
func (s *Server) startGuestTask(q *request, kind guestKind, vmid int, spec taskSpec, prepare func(tc *taskCtx, g *guest) error) (any, error) {
	run := spec.run
	var prepErr error
	spec.run = func(tc *taskCtx) error {
		if prepErr != nil {
			return prepErr
		}
		return run(tc)
	}
	// The preparation happens at dispatch time so its effects (the lock key)
	// are visible as soon as the UPID is returned.
	fake := &task{}
	tc := &taskCtx{s: s, t: fake, ctx: q.ctx}
	prepErr = s.withGuest(tc, kind, vmid, func(g *guest) error { return prepare(tc, g) })
	spec.lines = append(spec.lines, fake.lines...)
	if prepErr != nil {
		spec.undo = nil
		spec.run = func(*taskCtx) error { return prepErr }
	}
	upid, err := s.startTask(q.auth, spec)
	if err != nil {
		return nil, err
	}
	if prepErr != nil {
		s.finishEarly(upid)
	}
	return upid, nil
}

// finishEarly completes a task now instead of when its timer fires.
func (s *Server) finishEarly(upid string) {
	s.mu.Lock()
	t := s.taskByUPID[upid]
	tm, ok := s.timers[t]
	stopped := ok && tm.Stop()
	if stopped {
		s.bg.Done()
		delete(s.timers, t)
	}
	s.mu.Unlock()
	if stopped {
		s.finishTask(t)
	}
}

// withGuest runs fn on a guest under its config lock (taken with the task's
// context) and s.mu.
func (s *Server) withGuest(tc *taskCtx, kind guestKind, vmid int, fn func(g *guest) error) error {
	unlock, lerr := s.lockGuest(tc.ctx, kind, vmid)
	if lerr != nil {
		return taskErr(lerr)
	}
	defer unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guests[vmid]
	if !ok || g.kind != kind {
		return fmt.Errorf("Configuration file '%s' does not exist", kind.confPath(s.node, vmid))
	}
	return fn(g)
}
