package main

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// nfsSpec is a validated NFS storage definition.
type nfsSpec struct {
	ID      string
	Server  string
	Export  string
	Content []string
	// Options are NFS mount options ("vers=4.2,soft"), passed to mount -o.
	Options string
	// Path is the local mount point; Proxmox defaults it to /mnt/pve/<id>.
	Path    string
	Nodes   []string
	Disable bool
}

// fieldError is a parameter error naming the field at fault.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &fieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	storageIDRe = regexp.MustCompile(`^(?i:[a-z][a-z0-9\-_.]*[a-z0-9])$`)
	nodeRe      = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
	labelRe     = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	// One mount option: a name, optionally =value, from a conservative
	// character set (no spaces, quotes or shell characters).
	mountOptRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+(=[A-Za-z0-9_.:/@+-]+)?$`)
)

// nfsContent are the content types an NFS storage can hold.
var nfsContent = []string{"backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl"}

func validateID(field, id string) error {
	if id == "" {
		return fieldErr(field, "storage ID is required")
	}
	if !storageIDRe.MatchString(id) {
		return fieldErr(field, "invalid storage ID %q: want a letter, then letters, digits, '-', '_' or '.', ending in a letter or digit", clip(id))
	}
	return nil
}

// validateServer accepts an IPv4 or IPv6 address (no brackets, no zone) or
// a DNS name.
func validateServer(s string) error {
	const field = "server"
	if s == "" {
		return fieldErr(field, "the NFS server's host name or IP address is required")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		switch {
		case a.Zone() != "":
			return fieldErr(field, "%q: an IPv6 zone (%%iface) is not supported", clip(s))
		case a.IsUnspecified():
			return fieldErr(field, "%q is the unspecified address, not a server", s)
		}
		return nil
	}
	if strings.HasPrefix(s, "[") {
		return fieldErr(field, "%q: write an IPv6 address without brackets", clip(s))
	}
	if strings.Contains(s, ":") {
		return fieldErr(field, "%q: give the host only; the export path goes in export, the port in options (port=N)", clip(s))
	}
	if len(s) > 253 {
		return fieldErr(field, "host name is %d characters, over the DNS limit of 253", len(s))
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	for _, l := range labels {
		if !labelRe.MatchString(l) {
			return fieldErr(field, "%q is neither an IP address nor a valid host name (bad part %q)", clip(s), clip(l))
		}
	}
	if len(labels) == 4 && allDigits(labels) {
		return fieldErr(field, "%q is not a valid IPv4 address", s)
	}
	return nil
}

// validateExport checks an NFS export path: absolute, no "..", no
// characters Proxmox refuses in storage paths.
func validateExport(field, p string) error {
	if p == "" {
		return fieldErr(field, "the exported path on the server is required, e.g. /srv/nfs/backup")
	}
	if !strings.HasPrefix(p, "/") {
		return fieldErr(field, "%q must be an absolute path starting with /", clip(p))
	}
	if i := strings.IndexAny(p, ";()\n\r\t\x00"); i >= 0 {
		return fieldErr(field, "%q must not contain %q", clip(p), p[i])
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return fieldErr(field, "%q must not contain '..'", clip(p))
		}
	}
	return nil
}

func validateMountOptions(s string) error {
	if s == "" {
		return nil
	}
	for i, o := range strings.Split(s, ",") {
		if !mountOptRe.MatchString(o) {
			return fieldErr("options", "mount option %d (%q) is not name or name=value", i+1, clip(o))
		}
	}
	return nil
}

func (s nfsSpec) validate() error {
	if err := validateID("id", s.ID); err != nil {
		return err
	}
	if err := validateServer(s.Server); err != nil {
		return err
	}
	if err := validateExport("export", s.Export); err != nil {
		return err
	}
	if s.Path != "" {
		if err := validateExport("path", s.Path); err != nil {
			return err
		}
	}
	for i, c := range s.Content {
		if !contains(nfsContent, c) {
			return fieldErr(fmt.Sprintf("content[%d]", i), "unknown content type %q (want one of %s)", clip(c), strings.Join(nfsContent, ", "))
		}
	}
	for i, n := range s.Nodes {
		if !nodeRe.MatchString(n) {
			return fieldErr(fmt.Sprintf("nodes[%d]", i), "invalid node name %q", clip(n))
		}
	}
	return validateMountOptions(s.Options)
}

// params renders the spec as POST /storage parameters.
func (s nfsSpec) params() map[string]string {
	p := map[string]string{"storage": s.ID, "type": "nfs", "server": s.Server, "export": s.Export}
	if len(s.Content) > 0 {
		p["content"] = strings.Join(uniqueSorted(s.Content), ",")
	}
	if s.Options != "" {
		p["options"] = s.Options
	}
	if s.Path != "" {
		p["path"] = s.Path
	}
	if len(s.Nodes) > 0 {
		p["nodes"] = strings.Join(uniqueSorted(s.Nodes), ",")
	}
	if s.Disable {
		p["disable"] = "1"
	}
	return p
}

func splitList(s string) []string {
	return uniqueSorted(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }))
}

func uniqueSorted(l []string) []string {
	out := append([]string(nil), l...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if s == "" || (i > 0 && s == out[i-1]) {
			continue
		}
		out[j] = s
		j++
	}
	if j == 0 {
		return nil
	}
	return out[:j]
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func allDigits(labels []string) bool {
	for _, l := range labels {
		for _, r := range l {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
