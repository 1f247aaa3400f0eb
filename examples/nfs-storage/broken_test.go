package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"example.com/felhom-nfs-storage/internal/kitrun"
)

// TestKitRejectsBrokenPlugin builds cmd/broken once per contract
// violation, runs the conformance kit on it in a separate `go test`
// process (internal/kitrun), and checks that the kit fails and says what
// is wrong and what to fix.
func TestKitRejectsBrokenPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three plugin binaries and runs the kit on each")
	}
	cases := []struct {
		violation string
		want      []string // all must appear in the kit's output
	}{
		{"id", []string{
			"--- FAIL: TestKit/handshake",
			// sdk.Serve refuses to start; the kit shows the plugin's stderr
			// (JSON, hence the escaped quotes).
			"refusing to start", `capability \"NFSList\": IDs must be lowercase`,
		}},
		{"scope", []string{
			"--- FAIL: TestKit/invoke/nfs.list",
			`capability "nfs.list" called the API outside the plugin's declared scopes`,
			"/cluster/resources", "add the path to its Capability.API",
		}},
		{"check", []string{
			"--- FAIL: TestKit/selftest",
			"self-test check #1 has no name: name every check",
		}},
	}
	for _, c := range cases {
		t.Run(c.violation, func(t *testing.T) {
			t.Parallel()
			bin := buildPlugin(t, "./cmd/broken", "nfs-storage-broken", "0.0.1", "-ldflags", "-X main.violation="+c.violation)
			cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "^TestKit$", "./internal/kitrun")
			cmd.Env = append(os.Environ(), kitrun.EnvBinary+"="+bin)
			out, err := cmd.CombinedOutput()
			text := string(out)
			if err == nil {
				t.Fatalf("the conformance kit passed a plugin that breaks the %q rule:\n%s", c.violation, text)
			}
			if strings.Contains(text, "SKIP") && !strings.Contains(text, "FAIL") {
				t.Fatalf("the kit did not run:\n%s", text)
			}
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("kit output lacks %q:\n%s", w, text)
				}
			}
		})
	}
}
