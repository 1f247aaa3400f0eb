package pvesim

import (
	"fmt"
	"strconv"
	"time"
)

// Version data of the simulated node (a PVE 9.1 host).
const (
	pveVersion = "9.1.3"
	pveRelease = "9.1"
	pveRepoID  = "e5010dce"
	kernel     = "6.14.11-4-pve"
	hostMemory = int64(32 << 30)
)

func (s *Server) handleVersion(*request) (any, error) {
	return map[string]any{"version": pveVersion, "release": pveRelease, "repoid": pveRepoID}, nil
}

func (s *Server) uptime() int64 { return int64(time.Since(s.bootTime).Seconds()) }

func (s *Server) handleNodes(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]any{
		"node": s.node, "status": "online", "id": "node/" + s.node, "type": "node", "level": "",
		"ssl_fingerprint": s.fingerprint,
	}
	if s.has(q.auth.authID, "/nodes/"+s.node, "Sys.Audit") {
		m["cpu"] = 0.0342
		m["maxcpu"] = hostCPUs
		m["mem"] = s.usedMemory()
		m["maxmem"] = hostMemory
		m["disk"] = int64(12 << 30)
		m["maxdisk"] = int64(100 << 30)
		m["uptime"] = s.uptime()
	}
	return []map[string]any{m}, nil
}

// usedMemory is the node's memory use: a base plus the running guests (s.mu held).
func (s *Server) usedMemory() int64 {
	used := int64(3 << 30)
	for _, g := range s.guests {
		if g.running {
			used += g.maxMem() / 3
		}
	}
	return used
}

func (s *Server) handleNodeStatus(*request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := s.usedMemory()
	return map[string]any{
		"boot-info": map[string]any{"mode": "efi", "secureboot": 0},
		"cpu":       0.0342,
		"cpuinfo": map[string]any{
			"cores": 4, "cpus": hostCPUs, "sockets": 1, "model": "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz",
			"mhz": "2100.000", "hvm": "1", "flags": "fpu vme de pse tsc msr pae mce", "user_hz": 100,
		},
		"current-kernel": map[string]any{
			"machine": "x86_64", "release": kernel, "sysname": "Linux",
			"version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4 (2025-10-10T08:04Z)",
		},
		"kversion":   "Linux " + kernel + " #1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4 (2025-10-10T08:04Z)",
		"loadavg":    []string{"0.12", "0.18", "0.15"},
		"memory":     map[string]any{"total": hostMemory, "used": used, "free": hostMemory - used, "available": hostMemory - used},
		"swap":       map[string]any{"total": int64(8 << 30), "used": 0, "free": int64(8 << 30)},
		"ksm":        map[string]any{"shared": 0},
		"rootfs":     map[string]any{"total": int64(100 << 30), "used": int64(12 << 30), "free": int64(88 << 30), "avail": int64(83 << 30)},
		"pveversion": fmt.Sprintf("pve-manager/%s/%s", pveVersion, pveRepoID),
		"uptime":     s.uptime(),
		"idle":       0,
		"wait":       0.0012,
	}, nil
}

func (s *Server) handleClusterStatus(*request) (any, error) {
	return []map[string]any{{
		"type": "node", "id": "node/" + s.node, "name": s.node, "ip": "127.0.0.1",
		"local": 1, "nodeid": 0, "online": 1, "level": "",
	}}, nil
}

func (s *Server) handleClusterResources(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := q.str("type")
	res := []map[string]any{}
	if typ == "" || typ == "vm" {
		for _, vmid := range s.sortedVMIDs() {
			g := s.guests[vmid]
			if !s.has(q.auth.authID, fmt.Sprintf("/vms/%d", vmid), "VM.Audit") {
				continue
			}
			m := g.statusFields()
			delete(m, "pid")
			delete(m, "cpus")
			delete(m, "maxswap")
			delete(m, "swap")
			m["id"] = fmt.Sprintf("%s/%d", g.kind, vmid)
			m["type"] = g.kind.String()
			m["node"] = s.node
			m["maxcpu"] = g.cpus()
			if _, ok := m["template"]; !ok {
				m["template"] = 0
			}
			res = append(res, m)
		}
	}
	if typ == "" || typ == "node" {
		if s.has(q.auth.authID, "/nodes/"+s.node, "Sys.Audit") {
			res = append(res, map[string]any{
				"id": "node/" + s.node, "type": "node", "node": s.node, "status": "online",
				"cpu": 0.0342, "maxcpu": hostCPUs, "mem": s.usedMemory(), "maxmem": hostMemory,
				"disk": int64(12 << 30), "maxdisk": int64(100 << 30), "uptime": s.uptime(),
				"level": "", "cgroup-mode": 2,
			})
		}
	}
	if typ == "" || typ == "storage" {
		for _, id := range sortedKeys(s.storages) {
			st := s.storages[id]
			if !s.canSeeStorage(q.auth.authID, id) {
				continue
			}
			stat := s.storageStatus(st)
			m := map[string]any{
				"id": "storage/" + s.node + "/" + id, "type": "storage", "storage": id, "node": s.node,
				"plugintype": st.typ, "content": stat["content"], "shared": stat["shared"],
				"status": "available",
			}
			if !st.enabled() {
				m["status"] = "unknown"
			} else {
				m["disk"] = stat["used"]
				m["maxdisk"] = stat["total"]
			}
			res = append(res, m)
		}
	}
	return res, nil
}

// handleNextID returns the next free VMID. Like PVE it answers a string.
func (s *Server) handleNextID(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.has("vmid") {
		id := int(q.int("vmid", 0))
		if _, used := s.guests[id]; used {
			return nil, paramError1("vmid", fmt.Sprintf("VM %d already exists", id))
		}
		return strconv.Itoa(id), nil
	}
	for id := 100; id < 1000000; id++ {
		if _, used := s.guests[id]; !used {
			return strconv.Itoa(id), nil
		}
	}
	return nil, die("unable to get any free VMID in range [100, 999999]")
}

func (s *Server) handlePermissions(q *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subject := q.auth.authID
	if q.has("userid") && q.str("userid") != subject {
		subject = q.str("userid")
		// A user may dump its own tokens; anyone else needs Sys.Audit on /access.
		if !(q.auth.authID == q.auth.user && tokenIDRE.MatchString(subject) && tokenIDRE.FindStringSubmatch(subject)[1] == q.auth.user) {
			if err := s.check(q.auth.authID, "/access", "Sys.Audit"); err != nil {
				return nil, err
			}
		}
	}
	if q.has("path") {
		return map[string]any{q.str("path"): privMap(s.permissions(subject, q.str("path")))}, nil
	}
	return s.effectivePermissions(subject), nil
}

// Static hardware of the simulated host.
func (s *Server) handleDisksList(q *request) (any, error) {
	disks := []map[string]any{
		{
			"devpath": "/dev/nvme0n1", "size": int64(512110190592), "model": "Samsung SSD 970 EVO Plus 500GB",
			"serial": "S4EVNX0R123456", "vendor": "unknown", "type": "nvme", "wwn": "eui.0025385b91b12345",
			"health": "PASSED", "wearout": 97, "gpt": 1, "mounted": 1, "osdid": -1, "osdid-list": nil,
			"used": "LVM", "rpm": 0, "by_id_link": "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_500GB_S4EVNX0R123456",
		},
		{
			"devpath": "/dev/sda", "size": int64(4000787030016), "model": "WDC_WD40EFRX-68N32N0",
			"serial": "WD-WCC7K1234567", "vendor": "ATA", "type": "hdd", "wwn": "0x50014ee2b1234567",
			"health": "PASSED", "wearout": "N/A", "gpt": 1, "mounted": 0, "osdid": -1, "osdid-list": nil,
			"used": "partitions", "rpm": 5400, "by_id_link": "/dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567",
		},
		{
			"devpath": "/dev/sdb", "size": int64(2000398934016), "model": "Expansion_Desk",
			"serial": "NAAB1234", "vendor": "Seagate", "type": "usb", "wwn": "unknown",
			"health": "UNKNOWN", "wearout": "N/A", "gpt": 0, "mounted": 0, "osdid": -1, "osdid-list": nil,
			"rpm": 0, "by_id_link": "/dev/disk/by-id/usb-Seagate_Expansion_Desk_NAAB1234-0:0",
		},
	}
	if q.str("type") == "unused" {
		res := []map[string]any{}
		for _, d := range disks {
			if _, used := d["used"]; !used {
				res = append(res, d)
			}
		}
		return res, nil
	}
	if q.bool("skipsmart") {
		for _, d := range disks {
			delete(d, "health")
			delete(d, "wearout")
		}
	}
	return disks, nil
}

func (s *Server) handleDisksSmart(q *request) (any, error) {
	switch q.str("disk") {
	case "/dev/nvme0n1":
		return map[string]any{"health": "PASSED", "type": "text",
			"text": "SMART/Health Information (NVMe Log 0x02)\nCritical Warning: 0x00\nTemperature: 38 Celsius\nPercentage Used: 3%\n"}, nil
	case "/dev/sda":
		res := map[string]any{"health": "PASSED", "type": "ata"}
		if !q.bool("healthonly") {
			res["attributes"] = []map[string]any{
				{"id": " 5", "name": "Reallocated_Sector_Ct", "value": 200, "worst": 200, "threshold": 140, "fail": "-", "flags": "PO--CK", "raw": "0", "normalized": 200},
				{"id": "194", "name": "Temperature_Celsius", "value": 118, "worst": 104, "threshold": 0, "fail": "-", "flags": "-O---K", "raw": "32", "normalized": 118},
			}
		}
		return res, nil
	case "/dev/sdb":
		return map[string]any{"health": "UNKNOWN", "type": "text", "text": ""}, nil
	}
	return nil, die("no such disk '%s'", q.str("disk"))
}

func (s *Server) handleUSB(*request) (any, error) {
	return []map[string]any{
		{"busnum": 1, "devnum": 1, "level": 0, "port": 0, "class": 9, "speed": "480", "vendid": "1d6b", "prodid": "0002",
			"manufacturer": "Linux 6.14.11-4-pve xhci-hcd", "product": "xHCI Host Controller", "serial": "0000:00:14.0", "usbpath": "1"},
		{"busnum": 2, "devnum": 1, "level": 0, "port": 0, "class": 9, "speed": "5000", "vendid": "1d6b", "prodid": "0003",
			"manufacturer": "Linux 6.14.11-4-pve xhci-hcd", "product": "xHCI Host Controller", "serial": "0000:00:14.0", "usbpath": "2"},
		{"busnum": 2, "devnum": 2, "level": 1, "port": 1, "class": 0, "speed": "5000", "vendid": "0bc2", "prodid": "3312",
			"manufacturer": "Seagate", "product": "Expansion Desk", "serial": "NAAB1234", "usbpath": "2-2"},
		{"busnum": 1, "devnum": 3, "level": 1, "port": 3, "class": 0, "speed": "12", "vendid": "046d", "prodid": "c52b",
			"manufacturer": "Logitech", "product": "USB Receiver", "usbpath": "1-4"},
	}, nil
}
