package pvesim

// The simulator's own parameter tables for the endpoints it serves, written
// as API facts (names, types, optionality, enumerations, patterns, ranges,
// formats). They let felhom-sim validate requests on machines without the
// schema file; conformance_schema_test.go checks them against the real
// schema. Property-string values (net0, rootfs, scsi0, ...) are taken as
// opaque strings.

const maxVMID = 999999999

// Common parameters.
func pNode() *paramSpec { return req("node", tString).fmt("pve-node").path() }
func pVMIDPath() *paramSpec {
	return req("vmid", tInteger).between(100, maxVMID).fmt("pve-vmid").path()
}
func pSnapPath() *paramSpec {
	return req("snapname", tString).fmt("pve-configid").maxLen(40).path()
}
func pStoragePath() *paramSpec { return req("storage", tString).fmt("pve-storage-id").path() }
func pUPID() *paramSpec        { return req("upid", tString).path() }

func guestPath() []*paramSpec { return ps(pNode(), pVMIDPath()) }

var (
	qemuLockEnum = []string{"backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"}
	lxcLockEnum  = []string{"backup", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot", "snapshot-delete"}
	storageTypes = []string{"btrfs", "cephfs", "cifs", "dir", "esxi", "iscsi", "iscsidirect", "lvm", "lvmthin", "nfs", "pbs", "rbd", "zfs", "zfspool"}
	keyboards    = []string{"de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"}
	qemuOSTypes  = []string{"other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"}
	lxcOSTypes   = []string{"debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged"}
)

// qemuOptions are the VM configuration options shared by create, POST and
// PUT config (and the key types of GET config).
func qemuOptions() []*paramSpec {
	return ps(
		opt("acpi", tBoolean),
		opt("affinity", tString).fmt("pve-cpuset"),
		opt("agent", tString).fmt("propstring"),
		opt("allow-ksm", tBoolean),
		opt("amd-sev", tString).fmt("pve-qemu-sev-fmt"),
		opt("arch", tString).oneOf("x86_64", "aarch64"),
		opt("args", tString),
		opt("audio0", tString).fmt("propstring"),
		opt("autostart", tBoolean),
		opt("balloon", tInteger).atLeast(0),
		opt("bios", tString).oneOf("seabios", "ovmf"),
		opt("boot", tString).fmt("pve-qm-boot"),
		opt("bootdisk", tString).match(`(ide|sata|scsi|virtio)\d+`).fmt("pve-qm-bootdisk"),
		opt("cdrom", tString).fmt("pve-qm-ide"),
		opt("cicustom", tString).fmt("pve-qm-cicustom"),
		opt("cipassword", tString),
		opt("citype", tString).oneOf("configdrive2", "nocloud", "opennebula"),
		opt("ciupgrade", tBoolean),
		opt("ciuser", tString),
		opt("cores", tInteger).atLeast(1),
		opt("cpu", tString).fmt("pve-vm-cpu-conf"),
		opt("cpulimit", tNumber).between(0, 128),
		opt("cpuunits", tInteger).between(1, 262144),
		opt("description", tString).maxLen(8192),
		opt("efidisk0", tString).fmt("propstring"),
		opt("freeze", tBoolean),
		opt("hookscript", tString).fmt("pve-volume-id"),
		opt("hostpci[16]", tString).fmt("pve-qm-hostpci"),
		opt("hotplug", tString).fmt("pve-hotplug-features"),
		opt("hugepages", tString).oneOf("any", "2", "1024"),
		opt("ide[4]", tString).fmt("propstring"),
		opt("intel-tdx", tString).fmt("pve-qemu-tdx-fmt"),
		opt("ipconfig[32]", tString).fmt("pve-qm-ipconfig"),
		opt("ivshmem", tString).fmt("propstring"),
		opt("keephugepages", tBoolean),
		opt("keyboard", tString).oneOf(keyboards...),
		opt("kvm", tBoolean),
		opt("localtime", tBoolean),
		opt("lock", tString).oneOf(qemuLockEnum...),
		opt("machine", tString).fmt("propstring"),
		opt("memory", tString).fmt("propstring"),
		opt("migrate_downtime", tNumber).atLeast(0),
		opt("migrate_speed", tInteger).atLeast(0),
		opt("name", tString).fmt("dns-name"),
		opt("nameserver", tString).fmt("address-list"),
		opt("net[32]", tString).fmt("propstring"),
		opt("numa", tBoolean),
		opt("numa[8]", tString).fmt("propstring"),
		opt("onboot", tBoolean),
		opt("ostype", tString).oneOf(qemuOSTypes...),
		opt("parallel[3]", tString).match(`/dev/parport\d+|/dev/usb/lp\d+`),
		opt("protection", tBoolean),
		opt("reboot", tBoolean),
		opt("rng0", tString).fmt("pve-qm-rng"),
		opt("sata[6]", tString).fmt("propstring"),
		opt("scsi[31]", tString).fmt("propstring"),
		opt("scsihw", tString).oneOf("lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"),
		opt("searchdomain", tString),
		opt("serial[4]", tString).match(`(/dev/.+|socket)`),
		opt("shares", tInteger).between(0, 50000),
		opt("smbios1", tString).maxLen(512).fmt("pve-qm-smbios1"),
		opt("smp", tInteger).atLeast(1),
		opt("sockets", tInteger).atLeast(1),
		opt("spice_enhancements", tString).fmt("propstring"),
		opt("sshkeys", tString).fmt("urlencoded"),
		opt("startdate", tString).match(`(now|\d{4}-\d{1,2}-\d{1,2}(T\d{1,2}:\d{1,2}:\d{1,2})?)`),
		opt("startup", tString).fmt("pve-startup-order"),
		opt("tablet", tBoolean),
		opt("tags", tString).fmt("pve-tag-list"),
		opt("tdf", tBoolean),
		opt("template", tBoolean),
		opt("tpmstate0", tString).fmt("propstring"),
		opt("unused[256]", tString).fmt("propstring"),
		opt("usb[14]", tString).fmt("propstring"),
		opt("vcpus", tInteger).atLeast(1),
		opt("vga", tString).fmt("propstring"),
		opt("virtio[16]", tString).fmt("propstring"),
		opt("virtiofs[10]", tString).fmt("propstring"),
		opt("vmgenid", tString).match(`(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])`),
		opt("vmstatestorage", tString).fmt("pve-storage-id"),
		opt("watchdog", tString).fmt("pve-qm-watchdog"),
	)
}

// qemuUpdateExtras are the parameters POST and PUT config add to the options.
func qemuUpdateExtras() []*paramSpec {
	return ps(
		opt("delete", tString).fmt("pve-configid-list"),
		opt("digest", tString).maxLen(40),
		opt("force", tBoolean).needs("delete"),
		opt("revert", tString).fmt("pve-configid-list"),
		opt("skiplock", tBoolean),
	)
}

// lxcOptions are the container options shared by create and PUT config.
func lxcOptions() []*paramSpec {
	return ps(
		opt("arch", tString).oneOf("amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"),
		opt("cmode", tString).oneOf("shell", "console", "tty"),
		opt("console", tBoolean),
		opt("cores", tInteger).between(1, 8192),
		opt("cpulimit", tNumber).between(0, 8192),
		opt("cpuunits", tInteger).between(0, 500000),
		opt("debug", tBoolean),
		opt("description", tString).maxLen(8192),
		opt("dev[256]", tString).fmt("propstring"),
		opt("entrypoint", tString).match(`(?:[^\x00-\x08\x10-\x1F\x7F]+)`),
		opt("env", tString).match(`(?:(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\x00\w+=[^\x00-\x08\x10-\x1F\x7F]*)*)`),
		opt("features", tString).fmt("propstring"),
		opt("hookscript", tString).fmt("pve-volume-id"),
		opt("hostname", tString).maxLen(255).fmt("dns-name"),
		opt("lock", tString).oneOf(lxcLockEnum...),
		opt("memory", tInteger).atLeast(16),
		opt("mp[256]", tString).fmt("propstring"),
		opt("nameserver", tString).fmt("lxc-ip-with-ll-iface-list"),
		opt("net[32]", tString).fmt("propstring"),
		opt("onboot", tBoolean),
		opt("ostype", tString).oneOf(lxcOSTypes...),
		opt("protection", tBoolean),
		opt("rootfs", tString).fmt("propstring"),
		opt("searchdomain", tString).fmt("dns-name-list"),
		opt("startup", tString).fmt("pve-startup-order"),
		opt("swap", tInteger).atLeast(0),
		opt("tags", tString).fmt("pve-tag-list"),
		opt("template", tBoolean),
		opt("timezone", tString).fmt("pve-ct-timezone"),
		opt("tty", tInteger).between(0, 6),
		opt("unprivileged", tBoolean),
		opt("unused[256]", tString).fmt("propstring"),
	)
}

// storageOptions are the storage.cfg properties shared by POST and PUT /storage.
func storageOptions() []*paramSpec {
	return ps(
		opt("blocksize", tString),
		opt("bwlimit", tString).fmt("propstring"),
		opt("comstar_hg", tString),
		opt("comstar_tg", tString),
		opt("content", tString).fmt("pve-storage-content-list"),
		opt("content-dirs", tString).fmt("pve-dir-override-list"),
		opt("create-base-path", tBoolean),
		opt("create-subdirs", tBoolean),
		opt("data-pool", tString),
		opt("disable", tBoolean),
		opt("domain", tString).maxLen(256),
		opt("encryption-key", tString),
		opt("fingerprint", tString).match(`([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}`),
		opt("format", tString).oneOf("raw", "qcow2", "subvol", "vmdk"),
		opt("fs-name", tString).fmt("pve-configid"),
		opt("fuse", tBoolean),
		opt("is_mountpoint", tString),
		opt("keyring", tString),
		opt("krbd", tBoolean),
		opt("lio_tpg", tString),
		opt("master-pubkey", tString),
		opt("max-protected-backups", tInteger).atLeast(-1),
		opt("mkdir", tBoolean),
		opt("monhost", tString).fmt("pve-storage-portal-dns-list"),
		opt("mountpoint", tString).fmt("pve-storage-path"),
		opt("namespace", tString),
		opt("nocow", tBoolean),
		opt("nodes", tString).fmt("pve-node-list"),
		opt("nowritecache", tBoolean),
		opt("options", tString).fmt("pve-storage-options"),
		opt("password", tString).maxLen(256),
		opt("pool", tString),
		opt("port", tInteger).between(1, 65535),
		opt("preallocation", tString).oneOf("off", "metadata", "falloc", "full"),
		opt("prune-backups", tString).fmt("prune-backups"),
		opt("saferemove", tBoolean),
		opt("saferemove-stepsize", tInteger).oneOf("1", "2", "4", "8", "16", "32"),
		opt("saferemove_throughput", tString),
		opt("server", tString).fmt("pve-storage-server"),
		opt("shared", tBoolean),
		opt("skip-cert-verification", tBoolean),
		opt("smbversion", tString).oneOf("default", "2.0", "2.1", "3", "3.0", "3.11"),
		opt("snapshot-as-volume-chain", tBoolean),
		opt("sparse", tBoolean),
		opt("subdir", tString).fmt("pve-storage-path"),
		opt("tagged_only", tBoolean),
		opt("username", tString),
		opt("zfs-base-path", tString).fmt("pve-storage-path"),
	)
}

// storageCreateOnly are the properties that are fixed after creation.
func storageCreateOnly() []*paramSpec {
	return ps(
		req("storage", tString).fmt("pve-storage-id"),
		req("type", tString).oneOf(storageTypes...),
		opt("authsupported", tString),
		opt("base", tString).fmt("pve-volume-id"),
		opt("datastore", tString),
		opt("export", tString).fmt("pve-storage-path"),
		opt("iscsiprovider", tString),
		opt("path", tString).fmt("pve-storage-path"),
		opt("portal", tString).fmt("pve-storage-portal-dns"),
		opt("share", tString),
		opt("target", tString),
		opt("thinpool", tString).fmt("pve-storage-vgname"),
		opt("vgname", tString).fmt("pve-storage-vgname"),
	)
}

// vzdumpOptions are the backup options of POST /nodes/{node}/vzdump.
func vzdumpOptions() []*paramSpec {
	return ps(
		opt("all", tBoolean),
		opt("bwlimit", tInteger).atLeast(0),
		opt("compress", tString).oneOf("0", "1", "gzip", "lzo", "zstd"),
		opt("dumpdir", tString),
		opt("exclude", tString).fmt("pve-vmid-list"),
		opt("exclude-path", tArray),
		opt("fleecing", tString).fmt("backup-fleecing"),
		opt("ionice", tInteger).between(0, 8),
		opt("job-id", tString).match(`\S+`).maxLen(50),
		opt("lockwait", tInteger).atLeast(0),
		opt("mailnotification", tString).oneOf("always", "failure"),
		opt("mailto", tString).fmt("email-or-username-list"),
		opt("maxfiles", tInteger).atLeast(1),
		opt("mode", tString).oneOf("snapshot", "suspend", "stop"),
		opt("notes-template", tString).maxLen(1024).needs("storage"),
		opt("notification-mode", tString).oneOf("auto", "legacy-sendmail", "notification-system"),
		opt("pbs-change-detection-mode", tString).oneOf("legacy", "data", "metadata"),
		opt("performance", tString).fmt("backup-performance"),
		opt("pigz", tInteger),
		opt("pool", tString),
		opt("protected", tBoolean).needs("storage"),
		opt("prune-backups", tString).fmt("prune-backups"),
		opt("quiet", tBoolean),
		opt("remove", tBoolean),
		opt("script", tString),
		opt("stdexcludes", tBoolean),
		opt("stdout", tBoolean),
		opt("stop", tBoolean),
		opt("stopwait", tInteger).atLeast(0),
		opt("storage", tString).fmt("pve-storage-id"),
		opt("tmpdir", tString),
		opt("vmid", tString).fmt("pve-vmid-list"),
		opt("zstd", tInteger),
	)
}

// Endpoint tables.
var (
	noParams = func() *endpointParams { return params() }

	nodeOnly = func() *endpointParams { return params(ps(pNode())) }

	guestOnly = func() *endpointParams { return params(guestPath()) }

	taskListParams = func() *endpointParams {
		return params(ps(
			pNode(),
			opt("errors", tBoolean),
			opt("limit", tInteger).atLeast(0),
			opt("since", tInteger),
			opt("source", tString).oneOf("archive", "active", "all"),
			opt("start", tInteger).atLeast(0),
			opt("statusfilter", tString).fmt("pve-task-status-type-list"),
			opt("typefilter", tString),
			opt("until", tInteger),
			opt("userfilter", tString),
			opt("vmid", tInteger).between(100, maxVMID).fmt("pve-vmid"),
		))
	}

	taskParams = func() *endpointParams { return params(ps(pNode(), pUPID())) }

	taskLogParams = func() *endpointParams {
		return params(ps(
			pNode(), pUPID(),
			opt("download", tBoolean),
			opt("limit", tInteger).atLeast(0),
			opt("start", tInteger).atLeast(0),
		))
	}

	clusterResourcesParams = func() *endpointParams {
		return params(ps(opt("type", tString).oneOf("vm", "storage", "node", "sdn")))
	}

	nextIDParams = func() *endpointParams {
		return params(ps(opt("vmid", tInteger).between(100, maxVMID).fmt("pve-vmid")))
	}

	permissionsParams = func() *endpointParams {
		return params(ps(
			opt("path", tString),
			opt("userid", tString).match(`^(?:[^\s:/]+)\@(?:[A-Za-z][A-Za-z0-9\.\-_]+)(?:!(?:[A-Za-z][A-Za-z0-9\.\-_]+))?$`),
		))
	}

	guestConfigGetParams = func() *endpointParams {
		return params(guestPath(), ps(
			opt("current", tBoolean),
			opt("snapshot", tString).fmt("pve-configid").maxLen(40),
		))
	}

	qemuConfigPostParams = func() *endpointParams {
		return params(guestPath(), qemuOptions(), qemuUpdateExtras(), ps(
			opt("background_delay", tInteger).between(1, 30),
			opt("import-working-storage", tString).fmt("pve-storage-id"),
		))
	}

	qemuConfigPutParams = func() *endpointParams {
		return params(guestPath(), qemuOptions(), qemuUpdateExtras())
	}

	lxcConfigPutParams = func() *endpointParams {
		return params(guestPath(), lxcOptions(), ps(
			opt("delete", tString).fmt("pve-configid-list"),
			opt("digest", tString).maxLen(40),
			opt("revert", tString).fmt("pve-configid-list"),
		))
	}

	snapshotCreateParams = func(qemu bool) *endpointParams {
		p := ps(
			req("snapname", tString).fmt("pve-configid").maxLen(40),
			opt("description", tString),
		)
		if qemu {
			p = append(p, opt("vmstate", tBoolean))
		}
		return params(guestPath(), p)
	}

	snapshotDeleteParams = func() *endpointParams {
		return params(guestPath(), ps(pSnapPath(), opt("force", tBoolean)))
	}

	snapshotRollbackParams = func() *endpointParams {
		return params(guestPath(), ps(pSnapPath(), opt("start", tBoolean)))
	}

	snapshotConfigGetParams = func() *endpointParams { return params(guestPath(), ps(pSnapPath())) }

	snapshotConfigPutParams = func() *endpointParams {
		return params(guestPath(), ps(pSnapPath(), opt("description", tString)))
	}

	qemuStartParams = func() *endpointParams {
		return params(guestPath(), ps(
			opt("force-cpu", tString),
			opt("machine", tString).fmt("propstring"),
			opt("migratedfrom", tString).fmt("pve-node"),
			opt("migration_network", tString).fmt("CIDR"),
			opt("migration_type", tString).oneOf("secure", "insecure"),
			opt("nets-host-mtu", tString).match(`net\d+=\d+(,net\d+=\d+)*`),
			opt("skiplock", tBoolean),
			opt("stateuri", tString).maxLen(128),
			opt("targetstorage", tString).fmt("storage-pair-list"),
			opt("timeout", tInteger).atLeast(0),
			opt("with-conntrack-state", tBoolean),
		))
	}

	qemuStopParams = func() *endpointParams {
		return params(guestPath(), ps(
			opt("keepActive", tBoolean),
			opt("migratedfrom", tString).fmt("pve-node"),
			opt("overrule-shutdown", tBoolean),
			opt("skiplock", tBoolean),
			opt("timeout", tInteger).atLeast(0),
		))
	}

	qemuShutdownParams = func() *endpointParams {
		return params(guestPath(), ps(
			opt("forceStop", tBoolean),
			opt("keepActive", tBoolean),
			opt("skiplock", tBoolean),
			opt("timeout", tInteger).atLeast(0),
		))
	}

	rebootParams = func() *endpointParams {
		return params(guestPath(), ps(opt("timeout", tInteger).atLeast(0)))
	}

	lxcStartParams = func() *endpointParams {
		return params(guestPath(), ps(opt("debug", tBoolean), opt("skiplock", tBoolean)))
	}

	lxcStopParams = func() *endpointParams {
		return params(guestPath(), ps(opt("overrule-shutdown", tBoolean), opt("skiplock", tBoolean)))
	}

	lxcShutdownParams = func() *endpointParams {
		return params(guestPath(), ps(opt("forceStop", tBoolean), opt("timeout", tInteger).atLeast(0)))
	}

	qemuDestroyParams = func() *endpointParams {
		return params(guestPath(), ps(
			opt("destroy-unreferenced-disks", tBoolean),
			opt("purge", tBoolean),
			opt("skiplock", tBoolean),
		))
	}

	lxcDestroyParams = func() *endpointParams {
		return params(guestPath(), ps(
			opt("destroy-unreferenced-disks", tBoolean),
			opt("force", tBoolean),
			opt("purge", tBoolean),
		))
	}

	lxcCreateParams = func() *endpointParams {
		return params(lxcOptions(), ps(
			pNode(),
			req("vmid", tInteger).between(100, maxVMID).fmt("pve-vmid"),
			req("ostemplate", tString).maxLen(255),
			opt("bwlimit", tNumber).atLeast(0),
			opt("force", tBoolean),
			opt("ha-managed", tBoolean),
			opt("ignore-unpack-errors", tBoolean),
			opt("password", tString).minLen(5),
			opt("pool", tString).fmt("pve-poolid"),
			opt("restore", tBoolean),
			opt("ssh-public-keys", tString),
			opt("start", tBoolean),
			opt("storage", tString).fmt("pve-storage-id"),
			opt("unique", tBoolean).needs("restore"),
		))
	}

	qemuCreateParams = func() *endpointParams {
		return params(qemuOptions(), ps(
			pNode(),
			req("vmid", tInteger).between(100, maxVMID).fmt("pve-vmid"),
			opt("archive", tString).maxLen(255),
			opt("bwlimit", tInteger).atLeast(0),
			opt("force", tBoolean).needs("archive"),
			opt("ha-managed", tBoolean),
			opt("import-working-storage", tString).fmt("pve-storage-id"),
			opt("live-restore", tBoolean),
			opt("pool", tString).fmt("pve-poolid"),
			opt("start", tBoolean),
			opt("storage", tString).fmt("pve-storage-id"),
			opt("unique", tBoolean).needs("archive"),
		))
	}

	// The schema marks vzdump's node optional although it is in the path.
	vzdumpParams = func() *endpointParams {
		return params(ps(opt("node", tString).fmt("pve-node").path()), vzdumpOptions())
	}

	nodeStorageListParams = func() *endpointParams {
		return params(ps(
			pNode(),
			opt("content", tString).fmt("pve-storage-content-list"),
			opt("enabled", tBoolean),
			opt("format", tBoolean),
			opt("storage", tString).fmt("pve-storage-id"),
			opt("target", tString).fmt("pve-node"),
		))
	}

	storageStatusParams = func() *endpointParams { return params(ps(pNode(), pStoragePath())) }

	storageContentParams = func() *endpointParams {
		return params(ps(
			pNode(), pStoragePath(),
			opt("content", tString).fmt("pve-storage-content"),
			opt("vmid", tInteger).between(100, maxVMID).fmt("pve-vmid"),
		))
	}

	storageListParams = func() *endpointParams {
		return params(ps(opt("type", tString).oneOf(storageTypes...)))
	}

	storageCreateParams = func() *endpointParams { return params(storageCreateOnly(), storageOptions()) }

	storageUpdateParams = func() *endpointParams {
		return params(ps(
			pStoragePath(),
			opt("delete", tString).fmt("pve-configid-list").maxLen(4096),
			opt("digest", tString).maxLen(64),
		), storageOptions())
	}

	storageIDParams = func() *endpointParams { return params(ps(pStoragePath())) }

	disksListParams = func() *endpointParams {
		return params(ps(
			pNode(),
			opt("include-partitions", tBoolean),
			opt("skipsmart", tBoolean),
			opt("type", tString).oneOf("unused", "journal_disks"),
		))
	}

	disksSmartParams = func() *endpointParams {
		return params(ps(
			pNode(),
			req("disk", tString).match(`^/dev/[a-zA-Z0-9\/]+$`),
			opt("healthonly", tBoolean),
		))
	}

	qemuListParams = func() *endpointParams { return params(ps(pNode(), opt("full", tBoolean))) }
)
