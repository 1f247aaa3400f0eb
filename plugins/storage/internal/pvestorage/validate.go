package pvestorage

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Spec is the desired definition of a storage (mirrors the SDK's
// StorageSpec).
type Spec struct {
	ID      string
	Type    string
	Content []string
	// Options are the type's other properties (path, server, export, ...),
	// named as in POST /storage.
	Options map[string]string
	Nodes   []string
	Disable bool
}

var (
	// pve-storage-id (pve-common JSONSchema.pm), case-insensitive.
	storageIDRe = regexp.MustCompile(`^(?i:[a-z][a-z0-9\-_.]*[a-z0-9])$`)
	// pve-node.
	nodeRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
	// SHA-256 fingerprint as POST /storage takes it.
	fingerprintRe = regexp.MustCompile(`^([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}$`)
	// A DNS label: letters, digits, inner hyphens, 1-63 characters.
	dnsLabelRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
)

// Types are the storage types POST /storage accepts (PVE 9.1).
var Types = []string{"btrfs", "cephfs", "cifs", "dir", "esxi", "iscsi", "iscsidirect",
	"lvm", "lvmthin", "nfs", "pbs", "rbd", "zfs", "zfspool"}

// ContentTypes are the values of a storage's content list.
var ContentTypes = []string{"backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl"}

// requiredOptions are the options a type cannot be created without
// (pve-storage plugin properties marked not optional).
var requiredOptions = map[string][]string{
	"btrfs":   {"path"},
	"cifs":    {"server", "share"},
	"dir":     {"path"},
	"esxi":    {"server", "username", "password"},
	"iscsi":   {"portal", "target"},
	"lvm":     {"vgname"},
	"lvmthin": {"vgname", "thinpool"},
	"nfs":     {"server", "export"},
	"pbs":     {"server", "datastore"},
	"zfspool": {"pool"},
}

// options lists every property POST /storage takes beside storage, type,
// content, nodes and disable, which Spec holds in fields of their own.
// Checked against the real schema by a test.
var options = map[string]optionKind{
	"authsupported": plain, "base": plain, "blocksize": plain, "bwlimit": plain,
	"comstar_hg": plain, "comstar_tg": plain, "content-dirs": plain,
	"create-base-path": boolean, "create-subdirs": boolean, "data-pool": plain,
	"datastore": plain, "domain": plain, "encryption-key": secret, "export": fsPath,
	"fingerprint": fingerprint, "format": plain, "fs-name": plain, "fuse": boolean,
	"is_mountpoint": plain, "iscsiprovider": plain, "keyring": secret, "krbd": boolean,
	"lio_tpg": plain, "master-pubkey": secret, "max-protected-backups": integer,
	"mkdir": boolean, "monhost": plain, "mountpoint": fsPath, "namespace": plain,
	"nocow": boolean, "nowritecache": boolean, "options": plain, "password": secret,
	"path": fsPath, "pool": plain, "port": port, "portal": plain, "preallocation": plain,
	"prune-backups": plain, "saferemove": boolean, "saferemove-stepsize": integer,
	"saferemove_throughput": plain, "server": server, "share": plain, "shared": boolean,
	"skip-cert-verification": boolean, "smbversion": plain,
	"snapshot-as-volume-chain": boolean, "sparse": boolean, "subdir": fsPath,
	"tagged_only": boolean, "target": plain, "thinpool": plain, "username": plain,
	"vgname": plain, "zfs-base-path": fsPath,
}

// fixedOptions cannot change after creation: POST /storage takes them, PUT
// does not (type-specific fixed properties, such as an NFS server, are
// refused by Proxmox itself).
var fixedOptions = map[string]bool{
	"authsupported": true, "base": true, "datastore": true, "export": true,
	"iscsiprovider": true, "path": true, "portal": true, "share": true,
	"target": true, "thinpool": true, "vgname": true,
}

type optionKind int

const (
	plain optionKind = iota
	boolean
	integer
	port
	fsPath
	server
	fingerprint
	secret // never quoted in errors; not returned by GET /storage/{id}
)

// IsSecretOption reports whether the option holds a secret.
func IsSecretOption(key string) bool { return options[key] == secret }

// ValidateID checks a storage ID; field names the parameter in errors.
func ValidateID(field, id string) error {
	if id == "" {
		return invalid(field, "storage ID is required")
	}
	if !storageIDRe.MatchString(id) {
		return invalid(field, "invalid storage ID %q: want a letter, then letters, digits, '-', '_' or '.', ending in a letter or digit, at least 2 characters", clip(id))
	}
	return nil
}

// ValidateNode checks a node name.
func ValidateNode(field, node string) error {
	if !nodeRe.MatchString(node) {
		return invalid(field, "invalid node name %q", clip(node))
	}
	return nil
}

// ValidateContentType checks one content type.
func ValidateContentType(field, c string) error {
	if !contains(ContentTypes, c) {
		return invalid(field, "unknown content type %q (want one of %s)", clip(c), strings.Join(ContentTypes, ", "))
	}
	return nil
}

// ValidateVMID checks a guest ID (pve-vmid: 100-999999999).
func ValidateVMID(field string, vmid int64) error {
	if vmid < 100 || vmid > 999999999 {
		return invalid(field, "vmid %d out of range 100-999999999", vmid)
	}
	return nil
}

// ValidateServer checks a server address (pve-storage-server): an IPv4 or
// IPv6 address, or a DNS name.
func ValidateServer(field, s string) error {
	if s == "" {
		return invalid(field, "server is required")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return invalid(field, "server address %q must not carry a zone", clip(s))
		}
		if a.IsUnspecified() {
			return invalid(field, "server address %q is unspecified", s)
		}
		return nil
	}
	if strings.HasPrefix(s, "[") {
		return invalid(field, "server %q: give an IPv6 address without brackets", clip(s))
	}
	if len(s) > 253 {
		return invalid(field, "server name is %d characters long, over the DNS limit of 253", len(s))
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	for _, l := range labels {
		if !dnsLabelRe.MatchString(l) {
			return invalid(field, "server %q is neither an IP address nor a DNS name (bad label %q)", clip(s), clip(l))
		}
	}
	// A dotted all-numeric name is a mistyped IPv4 address, not a host name.
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil && len(labels) > 1 {
		return invalid(field, "server %q is not a valid IPv4 address", clip(s))
	}
	return nil
}

// ValidatePath checks a file-system path property (pve-storage-path):
// absolute, without ';', '(' or ')', control characters or ".." segments.
func ValidatePath(field, p string) error {
	if p == "" {
		return invalid(field, "path is required")
	}
	if !strings.HasPrefix(p, "/") {
		return invalid(field, "path %q must be absolute", clip(p))
	}
	if i := strings.IndexAny(p, ";()"); i >= 0 {
		return invalid(field, "path %q must not contain %q", clip(p), p[i])
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return invalid(field, "path %q must not contain '..'", clip(p))
		}
	}
	return nil
}

// ValidateSpec checks a spec before it is sent. On update, type may be
// empty (the current one is kept) and required options are not checked.
func ValidateSpec(s Spec, update bool) error {
	if err := ValidateID("id", s.ID); err != nil {
		return err
	}
	switch {
	case s.Type == "" && !update:
		return invalid("type", "storage type is required (one of %s)", strings.Join(Types, ", "))
	case s.Type != "" && !contains(Types, s.Type):
		return invalid("type", "unknown storage type %q (want one of %s)", clip(s.Type), strings.Join(Types, ", "))
	}
	for i, c := range s.Content {
		if err := ValidateContentType(fmt.Sprintf("content[%d]", i), c); err != nil {
			return err
		}
	}
	for i, n := range s.Nodes {
		if err := ValidateNode(fmt.Sprintf("nodes[%d]", i), n); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(s.Options) {
		if err := validateOption(k, s.Options[k]); err != nil {
			return err
		}
	}
	if !update {
		for _, k := range requiredOptions[s.Type] {
			if s.Options[k] == "" {
				return invalid("options."+k, "required for storage type %s", s.Type)
			}
		}
	}
	return nil
}

func validateOption(key, v string) error {
	field := "options." + key
	kind, ok := options[key]
	if !ok {
		switch key {
		case "storage", "type", "content", "nodes", "disable":
			return invalid(field, "set %s through its own field, not options", key)
		case "digest", "delete":
			return invalid(field, "not a storage property")
		}
		return invalid(field, "unknown storage property (known: %s)", strings.Join(sortedKeys(options), ", "))
	}
	if kind == secret {
		if v == "" || strings.ContainsAny(v, "\r\n\x00") {
			return invalid(field, "must be non-empty and single-line (value not shown)")
		}
		return nil
	}
	if v == "" {
		return invalid(field, "empty value")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "value %q contains a control character", clip(v))
		}
	}
	switch kind {
	case boolean:
		if v != "0" && v != "1" {
			return invalid(field, "want 0 or 1, got %q", clip(v))
		}
	case integer:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return invalid(field, "want an integer, got %q", clip(v))
		}
	case port:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return invalid(field, "want a port number 1-65535, got %q", clip(v))
		}
	case fsPath:
		return ValidatePath(field, v)
	case server:
		return ValidateServer(field, v)
	case fingerprint:
		if !fingerprintRe.MatchString(v) {
			return invalid(field, "want a SHA-256 fingerprint as 32 colon-separated hex bytes, got %q", clip(v))
		}
	}
	return nil
}

// specParams renders a spec as POST/PUT /storage parameters.
func specParams(s Spec) map[string]string {
	p := map[string]string{}
	for k, v := range s.Options {
		p[k] = v
	}
	if len(s.Content) > 0 {
		p["content"] = strings.Join(normList(s.Content), ",")
	}
	if len(s.Nodes) > 0 {
		p["nodes"] = strings.Join(normList(s.Nodes), ",")
	}
	return p
}

func normList(l []string) []string { return SplitList(strings.Join(l, ",")) }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func equalSets(a, b []string) bool {
	a, b = normList(a), normList(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// clip shortens outside text quoted in an error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
