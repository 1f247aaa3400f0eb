// Package config loads the agent's configuration: a JSON file overlaid by
// FELHOM_AGENT_* environment variables (the environment wins), validated at
// load so that a typo or a missing field fails at start with a message that
// names the field, not later with a confusing call error.
//
// Secrets are held in [Secret], whose every printed form is redacted;
// [Config.Redacted] renders the whole config safely for logs and
// `felhom-agent config show`.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Config is the whole agent configuration.
type Config struct {
	// HostID names this host to the hub and in signed operations.
	HostID string `json:"host_id"`
	// DataDir holds durable state: the nonce store, the op-result outbox.
	DataDir string  `json:"data_dir"`
	Log     Log     `json:"log"`
	Proxmox Proxmox `json:"proxmox"`
	Hub     Hub     `json:"hub"`
	Plugins Plugins `json:"plugins"`
	Authz   Authz   `json:"authz"`
}

// Log configures hclog for the agent and, through it, every plugin.
type Log struct {
	// Level is trace, debug, info, warn or error.
	Level string `json:"level"`
	// Format is text or json.
	Format string `json:"format"`
}

// Proxmox is how the core reaches the local Proxmox VE API.
type Proxmox struct {
	// URL is the API base, e.g. https://127.0.0.1:8006.
	URL string `json:"url"`
	// Node is this host's Proxmox node name.
	Node string `json:"node"`
	// Token is the full API token: USER@REALM!TOKENID=SECRET.
	Token Secret `json:"token"`
	// Fingerprint is the SHA-256 of the API's leaf certificate, as
	// `pvenode cert info` prints it. Stored normalised (uppercase, colons).
	Fingerprint string `json:"fingerprint"`
	// Timeout bounds one API request.
	Timeout Duration `json:"timeout"`
}

// Hub is the platform hub the agent reports to. An empty URL disables the
// hub loop (a standalone host).
type Hub struct {
	URL         string   `json:"url"`
	Token       Secret   `json:"token"`
	Fingerprint string   `json:"fingerprint"`
	Interval    Duration `json:"interval"`
}

// Plugins configures discovery and launch of plugin processes.
type Plugins struct {
	// Dir holds felhom-plugin-<name>_v<semver> binaries.
	Dir string `json:"dir"`
	// LockFile pins each binary's SHA-256 (written by `plugins pin`).
	LockFile string `json:"lock_file"`
	// User runs plugins that need no root.
	User string `json:"user"`
	// AllowRoot names the plugins that may run as root when they declare
	// a root capability.
	AllowRoot []string `json:"allow_root"`
	// Disabled names plugins not to run.
	Disabled []string `json:"disabled"`
	// Owners resolves a capability offered by two plugins: ID -> plugin.
	Owners map[string]string `json:"owners"`
	// HandshakeTimeout bounds a plugin's start-up handshake.
	HandshakeTimeout Duration `json:"handshake_timeout"`
	// Settings is each plugin's own configuration, by plugin name.
	Settings map[string]map[string]any `json:"settings"`
}

// Authz configures signed operations.
type Authz struct {
	// AllowedSigners is an OpenSSH allowed_signers file.
	AllowedSigners string `json:"allowed_signers"`
	// Namespace is the SSHSIG namespace ops are signed in.
	Namespace string `json:"namespace"`
	// NonceStore is the durable replay-protection file.
	NonceStore string `json:"nonce_store"`
	// ClockSkew is the tolerance on an op's time window.
	ClockSkew Duration `json:"clock_skew"`
	// MaxOpTTL is the longest window an op may carry.
	MaxOpTTL Duration `json:"max_op_ttl"`
	// Policy maps principals to the capabilities they may sign.
	Policy []PolicyRule `json:"policy"`
}

// PolicyRule allows principals matching any of Principals to run
// capabilities matching any of Capabilities (patterns with * and ?).
type PolicyRule struct {
	Principals   []string `json:"principals"`
	Capabilities []string `json:"capabilities"`
}

// Defaults returns a config with every optional field at its default.
func Defaults() Config {
	return Config{
		DataDir: "/var/lib/felhom-agent",
		Log:     Log{Level: "info", Format: "text"},
		Proxmox: Proxmox{Timeout: Duration{30 * time.Second}},
		Hub:     Hub{Interval: Duration{30 * time.Second}},
		Plugins: Plugins{
			Dir:              "/usr/lib/felhom-agent/plugins",
			LockFile:         "/etc/felhom-agent/plugins.lock",
			User:             "nobody",
			HandshakeTimeout: Duration{5 * time.Second},
		},
		Authz: Authz{
			AllowedSigners: "/etc/felhom-agent/allowed_signers",
			Namespace:      "felhom-op",
			ClockSkew:      Duration{30 * time.Second},
			MaxOpTTL:       Duration{15 * time.Minute},
		},
	}
}

// Load reads the JSON file at path (may be empty: defaults plus
// environment only), overlays FELHOM_AGENT_* variables from the process
// environment, and validates the result.
func Load(path string) (*Config, error) {
	return LoadEnv(path, os.Environ())
}

// LoadEnv is Load with an explicit environment, for tests.
func LoadEnv(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
	}
	cfg, err := Parse(data, environ)
	if err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Parse builds a config from JSON bytes (may be empty) and an environment.
func Parse(data []byte, environ []string) (*Config, error) {
	cfg := Defaults()
	if len(bytes.TrimSpace(data)) > 0 {
		if err := checkKeys(data); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return nil, describeJSONError(data, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("trailing data after the JSON object")
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return nil, err
	}
	if err := cfg.normalise(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Redacted renders the config as indented JSON with every secret replaced,
// safe for logs and terminals.
func (c *Config) Redacted() string {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Sprintf("<config unprintable: %v>", err)
	}
	return string(b)
}
