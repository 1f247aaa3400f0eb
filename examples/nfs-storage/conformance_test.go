package main

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintest"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// kitParams: nfs.content lists the NFS storage simWithNFS defines; define
// then remove (Info's order) a second one.
var kitParams = map[string]map[string]any{
	"nfs.content": {"id": "nas", "content": "backup"},
	"nfs.define": {"id": "kit-nfs", "server": "192.0.2.20", "export": "/srv/kit", "content": []any{"backup", "iso"},
		"options": "vers=4.2,soft"},
	"nfs.remove": {"id": "kit-nfs"},
}

// simWithNFS starts the Proxmox simulator with one NFS storage, "nas".
func simWithNFS(t *testing.T) *pvesim.Server {
	t.Helper()
	sim := pvesim.Start(t, pvesim.Options{Seed: true})
	form := url.Values{"storage": {"nas"}, "type": {"nfs"}, "server": {"192.0.2.10"}, "export": {"/srv/nfs"},
		"content": {"backup"}}
	req, err := http.NewRequest("POST", sim.URL()+"/api2/json/storage", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+sim.AdminToken())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := sim.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("define nfs storage in the simulator: %s", resp.Status)
	}
	return sim
}

// buildPlugin builds a main package of this module into dir under the
// name the agent expects, with optional extra go build flags.
func buildPlugin(t *testing.T, pkg, name, version string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "felhom-plugin-"+name+"_v"+version)
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// TestConformance builds the plugin and runs felhom-agent's conformance
// kit against the binary, launched as the agent launches it.
func TestConformance(t *testing.T) {
	bin := buildPlugin(t, ".", Name, Version)
	plugintest.Run(t, plugintest.Config{Binary: bin, Sim: simWithNFS(t), Params: kitParams})
}

// TestConformanceInProcess runs the kit on the plugin in this process, so
// the race detector covers the plugin's code.
func TestConformanceInProcess(t *testing.T) {
	plugintest.Run(t, plugintest.Config{Plugin: &nfsPlugin{}, Sim: simWithNFS(t), Params: kitParams})
}
