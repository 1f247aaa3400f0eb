// Package testenv locates what the project's tests need from outside the
// repository: the platform's shared documents, ../shared beside the
// repository root (the real Proxmox API schema, the research notes).
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns ../shared beside the repository root, the directory
// holding go.mod found by walking up from the working directory. When it
// is absent (a user's fresh clone) the test is skipped with a message
// saying so; when CI=true it fails instead: in CI these tests must run.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			missing(tb, "no go.mod above "+dir)
		}
		dir = parent
	}
	shared := filepath.Join(filepath.Dir(dir), "shared")
	if fi, err := os.Stat(shared); err != nil || !fi.IsDir() {
		missing(tb, shared+" is not a directory")
	}
	return shared
}

func missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("../shared not found (%s): in CI the tests that read it must run", why)
	}
	tb.Skipf("../shared not found (%s): run inside the workspace that has the shared folder", why)
}
