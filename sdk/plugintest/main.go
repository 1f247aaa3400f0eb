package plugintest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-plugin"
)

// Main runs a package's tests with the temp dir and go-plugin's unix
// socket dir pointing at a directory of the run's own, and returns the
// exit code. go-plugin creates its sockets there (the in-process listener,
// the host side of the broker, the kit's per-plugin socket directories),
// so a socket the tests leak — a listener or plugin process never closed —
// fails the run instead of piling up in /tmp. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "plugintest-")
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
