package config

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
)

var (
	// nodeRE is Proxmox's node-name format.
	nodeRE     = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
	hostIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// FieldError names the config field at fault.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) normalise() error {
	if c.Proxmox.Fingerprint != "" {
		fp, err := proxmox.NormalizeFingerprint(c.Proxmox.Fingerprint)
		if err != nil {
			return fieldErr("proxmox.fingerprint", "want a SHA-256 fingerprint as `pvenode cert info` prints it: %v", err)
		}
		c.Proxmox.Fingerprint = fp
	}
	if c.Hub.Fingerprint != "" {
		fp, err := proxmox.NormalizeFingerprint(c.Hub.Fingerprint)
		if err != nil {
			return fieldErr("hub.fingerprint", "want a SHA-256 fingerprint: %v", err)
		}
		c.Hub.Fingerprint = fp
	}
	c.Proxmox.URL = trimURL(c.Proxmox.URL)
	c.Hub.URL = trimURL(c.Hub.URL)
	return nil
}

// trimURL drops trailing slashes of a URL's path so paths join cleanly;
// a URL without a host is left for Validate to report as written.
func trimURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return strings.TrimRight(raw, "/")
	}
	return raw
}

// Validate checks every field; the error names the first field at fault.
func (c *Config) Validate() error {
	if c.HostID == "" {
		return fieldErr("host_id", "required (this host's ID at the hub and in signed operations)")
	}
	if !hostIDRE.MatchString(c.HostID) {
		return fieldErr("host_id", "%q: use letters, digits, '.', '_' or '-' (at most 63)", c.HostID)
	}
	if err := checkAbs("data_dir", c.DataDir); err != nil {
		return err
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "%q: want trace, debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fieldErr("log.format", "%q: want text or json", c.Log.Format)
	}
	if err := checkHTTPS("proxmox.url", c.Proxmox.URL, true); err != nil {
		return err
	}
	if c.Proxmox.Node == "" {
		return fieldErr("proxmox.node", "required (the Proxmox node name, as in `hostname`)")
	}
	if !nodeRE.MatchString(c.Proxmox.Node) {
		return fieldErr("proxmox.node", "%q is not a valid Proxmox node name", c.Proxmox.Node)
	}
	if c.Proxmox.Token.IsZero() {
		return fieldErr("proxmox.token", "required: USER@REALM!TOKENID=SECRET")
	}
	// The client's own check, whose errors never contain the secret.
	if err := proxmox.Token(c.Proxmox.Token.Reveal()).Validate(); err != nil {
		return fieldErr("proxmox.token", "malformed: %v", err)
	}
	if c.Proxmox.Fingerprint == "" {
		return fieldErr("proxmox.fingerprint", "required: the API certificate's SHA-256 (there is no insecure mode)")
	}
	if c.Proxmox.Timeout.D <= 0 {
		return fieldErr("proxmox.timeout", "must be positive")
	}
	if c.Hub.URL != "" {
		if err := checkHTTPS("hub.url", c.Hub.URL, false); err != nil {
			return err
		}
		if c.Hub.Token.IsZero() {
			return fieldErr("hub.token", "required when hub.url is set")
		}
		if c.Hub.Interval.D < 0 {
			return fieldErr("hub.interval", "must not be negative")
		}
	}
	if err := checkAbs("plugins.dir", c.Plugins.Dir); err != nil {
		return err
	}
	if err := checkAbs("plugins.lock_file", c.Plugins.LockFile); err != nil {
		return err
	}
	if c.Plugins.User == "" {
		return fieldErr("plugins.user", "required: the unprivileged user plugins run as")
	}
	if c.Plugins.HandshakeTimeout.D <= 0 {
		return fieldErr("plugins.handshake_timeout", "must be positive")
	}
	for i, n := range c.Plugins.AllowRoot {
		if !pluginName.MatchString(n) {
			return fieldErr(fmt.Sprintf("plugins.allow_root[%d]", i), "%q is not a plugin name", n)
		}
	}
	for i, n := range c.Plugins.Disabled {
		if !pluginName.MatchString(n) {
			return fieldErr(fmt.Sprintf("plugins.disabled[%d]", i), "%q is not a plugin name", n)
		}
	}
	for capID, owner := range c.Plugins.Owners {
		if !pluginName.MatchString(owner) {
			return fieldErr("plugins.owners."+capID, "%q is not a plugin name", owner)
		}
	}
	if c.Authz.Namespace == "" {
		return fieldErr("authz.namespace", "required (ssh-keygen -Y sign -n NAMESPACE)")
	}
	if err := checkAbs("authz.allowed_signers", c.Authz.AllowedSigners); err != nil {
		return err
	}
	if c.Authz.NonceStore != "" {
		if err := checkAbs("authz.nonce_store", c.Authz.NonceStore); err != nil {
			return err
		}
	}
	if c.Authz.ClockSkew.D < 0 {
		return fieldErr("authz.clock_skew", "must not be negative")
	}
	if c.Authz.MaxOpTTL.D <= 0 {
		return fieldErr("authz.max_op_ttl", "must be positive")
	}
	for i, r := range c.Authz.Policy {
		f := fmt.Sprintf("authz.policy[%d]", i)
		if len(r.Principals) == 0 {
			return fieldErr(f+".principals", "at least one principal pattern is required")
		}
		if len(r.Capabilities) == 0 {
			return fieldErr(f+".capabilities", "at least one capability pattern is required")
		}
	}
	return nil
}

// NonceStorePath is the nonce store file, defaulting into DataDir.
func (c *Config) NonceStorePath() string {
	if c.Authz.NonceStore != "" {
		return c.Authz.NonceStore
	}
	return path.Join(c.DataDir, "nonces.log")
}

func checkAbs(field, p string) error {
	if p == "" {
		return fieldErr(field, "required")
	}
	if !path.IsAbs(p) {
		return fieldErr(field, "%q must be an absolute path", p)
	}
	return nil
}

func checkHTTPS(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return fieldErr(field, "required, e.g. https://127.0.0.1:8006")
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fieldErr(field, "%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "https" {
		return fieldErr(field, "%q must use https (there is no plaintext mode)", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fieldErr(field, "%q has no host", raw)
	}
	if u.User != nil {
		return fieldErr(field, "must not carry credentials in the URL (use the token field)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fieldErr(field, "%q must not have a query or fragment", raw)
	}
	return nil
}
