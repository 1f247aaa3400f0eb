package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintest"
)

// kitParams are the conformance kit's invocation parameters: define then
// remove (Info's order) a dir storage the simulator backs.
var kitParams = map[string]map[string]any{
	"storage.status":  {"id": "local"},
	"storage.content": {"id": "local", "content": "iso"},
	"storage.define": {"id": "kit-dir", "type": "dir", "content": []any{"backup"},
		"options": map[string]any{"path": "/srv/kit"}},
	"storage.remove": {"id": "kit-dir"},
}

// TestConformanceBinary builds the plugin as the agent's Makefile does and
// runs the conformance kit against the binary, launched the way the agent
// launches it, with the Proxmox simulator behind the API proxy.
func TestConformanceBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "felhom-plugin-"+Name+"_v"+Version)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || string(out) != Version+"\n" {
		t.Fatalf("%s --version = %q, %v; want %s", bin, out, err, Version)
	}
	plugintest.Run(t, plugintest.Config{Binary: bin, Params: kitParams,
		PluginConfig: map[string]any{"health_interval": "1m"}})
}

// TestConformanceInProcess runs the same kit in-process, where the race
// detector sees the plugin's code too.
func TestConformanceInProcess(t *testing.T) {
	plugintest.Run(t, plugintest.Config{Plugin: newPlugin(), Params: kitParams})
}
