package proxmox

import (
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDeps maps packages core/proxmox must never depend on, directly or
// through anything it imports, to the reason (DESIGN.md §2 rule 2).
var forbiddenDeps = map[string]string{
	"os/exec": "the core never shells out: everything goes through the Proxmox API",
}

func TestFenceNoExec(t *testing.T) {
	const self = "gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", self, err, out)
	}
	deps := strings.Fields(string(out))
	found := false
	for _, d := range deps {
		if d == self {
			found = true
		}
		if why, bad := forbiddenDeps[d]; bad {
			t.Errorf("%s depends on %s: %s", self, d, why)
		}
	}
	// Guard against an empty or wrong listing passing silently.
	if !found || len(deps) < 10 {
		t.Fatalf("go list returned %d packages without %s: %q", len(deps), self, deps)
	}
}
