// Package agentconfig checks the example agent config against the real
// config loader, so the example cannot drift from the format.
package agentconfig

import (
	"os"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
)

func TestExampleConfigLoads(t *testing.T) {
	data, err := os.ReadFile("agent.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, nil)
	if err != nil {
		t.Fatalf("examples/config/agent.json does not load: %v", err)
	}
	if cfg.Proxmox.Node != "pve1" || cfg.Plugins.User != "nobody" {
		t.Errorf("unexpected values: node %q, plugins.user %q", cfg.Proxmox.Node, cfg.Plugins.User)
	}
	// Placeholders must read as placeholders, never as a real secret.
	for _, s := range []string{cfg.Proxmox.Token.Reveal(), cfg.Hub.Token.Reveal()} {
		if !strings.HasSuffix(s, "REPLACE-ME") {
			t.Errorf("token %q in the example is not a REPLACE-ME placeholder", s)
		}
	}
	if _, ok := cfg.Plugins.Settings["storage"]; !ok {
		t.Error("example has no settings for the storage plugin")
	}
}
