package plugintest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-plugin"
)

// TestMain runs the tests with os.TempDir pointing at a directory of this
// run's own. go-plugin creates its unix sockets there (the in-process
// listener, the host side of the broker, and the kit's per-plugin socket
// directories), so a socket some test leaks shows up here, fails the run
// and never litters /tmp.
func TestMain(m *testing.M) { os.Exit(runInPrivateTemp(m)) }

func runInPrivateTemp(m *testing.M) int {
	dir, err := os.MkdirTemp("", "plugintest-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "create the tests' temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	for k, v := range map[string]string{"TMPDIR": dir, plugin.EnvUnixSocketDir: dir} {
		if err := os.Setenv(k, v); err != nil {
			fmt.Fprintf(os.Stderr, "set %s: %v\n", k, err)
			return 1
		}
	}
	code := m.Run()
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "read the tests' temp dir: %v\n", err)
		return 1
	}
	if len(entries) > 0 {
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		fmt.Fprintf(os.Stderr, "FAIL: the tests left %d entries in their temp dir %s (go-plugin's plugin* sockets leak when a listener is not closed):\n  %s\n",
			len(entries), dir, strings.Join(names, "\n  "))
		code = 1
	}
	return code
}
