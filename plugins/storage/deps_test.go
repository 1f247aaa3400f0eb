package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFence: the storage plugin reaches Proxmox only through the core's API
// proxy. Its own packages must not run programs (os/exec), open their own
// HTTP connections (net/http), or import the core.
func TestFence(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := map[string]string{
		"os/exec":  "no exec: the storage plugin declares no root capability and runs no commands",
		"net/http": "Proxmox is reached through the core's API proxy only (sdk.Host.API)",
		"syscall":  "no process or privilege tricks in an unprivileged plugin",
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("go list saw too few packages:\n%s", out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			if why, bad := banned[imp]; bad {
				t.Errorf("%s imports %s: %s", pkg, imp, why)
			}
			if strings.HasPrefix(imp, "gitea.dooplex.hu/admin/felhom-agent/core") {
				t.Errorf("%s imports %s: plugins must not import the core", pkg, imp)
			}
		}
	}
}
