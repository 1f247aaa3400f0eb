package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain runs the tests with os.TempDir pointing at a directory of this
// run's own: go-plugin makes its unix sockets there (and the conformance
// kit the plugin's socket directory), so a socket the tests leak fails
// the run instead of piling up in /tmp.
func TestMain(m *testing.M) { os.Exit(runInPrivateTemp(m)) }

func runInPrivateTemp(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nfs-storage-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "create the tests' temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Setenv("TMPDIR", dir); err != nil {
		fmt.Fprintf(os.Stderr, "set TMPDIR: %v\n", err)
		return 1
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
		fmt.Fprintf(os.Stderr, "FAIL: the tests left %d entries in their temp dir %s:\n  %s\n", len(entries), dir, strings.Join(names, "\n  "))
		code = 1
	}
	return code
}
