package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/core/pluginhost"
)

// buildTestPlugin builds core/pluginhost's test plugin into dir.
func buildTestPlugin(t *testing.T, dir string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("plugin dirs must be root-owned: needs root")
	}
	path := filepath.Join(dir, "testplugin")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", path, "../../core/pluginhost/testdata/testplugin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	return path
}

func pluginsDir(t *testing.T, src string, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runPluginsT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), append([]string{"plugins"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestPluginsCLI builds the test plugin once for its subtests.
func TestPluginsCLI(t *testing.T) {
	src := buildTestPlugin(t, t.TempDir())
	t.Run("pin-list-info", func(t *testing.T) { testPinListInfo(t, src) })
	t.Run("selftest", func(t *testing.T) { testSelftest(t, src) })
}

func testPinListInfo(t *testing.T, src string) {
	dir := pluginsDir(t, src, "felhom-plugin-alpha_v1.0.0", "felhom-plugin-beta_v0.2.0")
	code, out, errs := runPluginsT(t, "pin", "--dir", dir)
	if code != 0 || !strings.Contains(out, "wrote "+dir+"/plugins.lock (2 binaries)") {
		t.Fatalf("pin = %d\n%s%s", code, out, errs)
	}
	if !regexp.MustCompile(`(?m)^pinned  [0-9a-f]{64}  felhom-plugin-alpha_v1.0.0$`).MatchString(out) {
		t.Errorf("pin output:\n%s", out)
	}
	// A binary added after pinning is refused, with the reason shown.
	data, _ := os.ReadFile(src)
	if err := os.WriteFile(filepath.Join(dir, "felhom-plugin-gamma_v1.0.0"), data, 0o755); err != nil {
		t.Fatal(err)
	}

	code, out, errs = runPluginsT(t, "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("list = %d\n%s%s", code, out, errs)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^NAME +VERSION +PROTOCOL +STATE +USER +CAPABILITIES / REASON$`),
		regexp.MustCompile(`(?m)^alpha +1\.0\.0 +1\.0 +ok +nobody +alpha\.echo, alpha\.sleep, alpha\.api`),
		regexp.MustCompile(`(?m)^beta +0\.2\.0 +1\.0 +ok `),
		regexp.MustCompile(`(?m)^gamma +- +- +refused +- +SHA-256 of felhom-plugin-gamma_v1\.0\.0 is not pinned in .*plugins\.lock: run .felhom-agent plugins pin.`),
	} {
		if !want.MatchString(out) {
			t.Errorf("list output lacks %s:\n%s", want, out)
		}
	}

	code, out, _ = runPluginsT(t, "list", "--dir", dir, "--json")
	var sts []pluginhost.PluginStatus
	if code != 0 || json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 3 || sts[2].Refused[0].Code != pluginhost.RefusedNotPinned {
		t.Errorf("list --json = %d\n%s", code, out)
	}

	code, out, _ = runPluginsT(t, "info", "--dir", dir, "alpha")
	if code != 0 || !strings.Contains(out, "plugin    alpha\nstate     ok\nversion   1.0.0\n") ||
		!strings.Contains(out, "  alpha.api (schema 1, benign)\n      api GET /nodes/{node}/storage\n") {
		t.Errorf("info alpha = %d\n%s", code, out)
	}
	// Flags may follow NAME, as operators type them.
	if code2, out2, errs2 := runPluginsT(t, "info", "alpha", "--dir", dir, "--json"); code2 != 0 || !strings.Contains(out2, `"name": "alpha"`) {
		t.Errorf("info alpha --dir D --json = %d\n%s%s", code2, out2, errs2)
	}
	if code, _, errs := runPluginsT(t, "info", "--dir", dir, "nope"); code != 1 || !strings.Contains(errs, `no plugin "nope"`) {
		t.Errorf("info nope = %d %s", code, errs)
	}
	if code, out, _ := runPluginsT(t, "info", "--dir", dir, "gamma"); code != 1 || !strings.Contains(out, "refused   felhom-plugin-gamma_v1.0.0 refused (not_pinned)") {
		t.Errorf("info gamma = %d\n%s", code, out)
	}
}

func testSelftest(t *testing.T, src string) {
	dir := pluginsDir(t, src, "felhom-plugin-alpha_v1.0.0", "felhom-plugin-sick_v1.0.0")
	if code, out, errs := runPluginsT(t, "pin", "--dir", dir); code != 0 {
		t.Fatalf("pin: %s%s", out, errs)
	}
	code, out, errs := runPluginsT(t, "selftest", "--dir", dir, "alpha")
	if code != 0 || out != "PASS echo.roundtrip (12ms) ok\nselftest alpha: all 1 checks passed\n" {
		t.Errorf("selftest alpha = %d\n%s%s", code, out, errs)
	}
	code, out, _ = runPluginsT(t, "selftest", "--dir", dir, "--mode", "task", "--vmid", "9001", "alpha")
	if code != 0 || !strings.Contains(out, "PASS task.scratch (0ms) guest 9001\n") {
		t.Errorf("selftest task = %d\n%s", code, out)
	}
	code, out, _ = runPluginsT(t, "selftest", "--dir", dir, "sick")
	if code != 1 || !strings.Contains(out, "FAIL sick.check (300µs) always fails\n") || !strings.Contains(out, "1 of 2 checks FAILED") {
		t.Errorf("selftest sick = %d\n%s", code, out)
	}
	code, out, _ = runPluginsT(t, "selftest", "--dir", dir, "missing")
	if code != 1 || !strings.Contains(out, "FAIL plugin.start: plugin missing: unknown plugin") {
		t.Errorf("selftest missing = %d\n%s", code, out)
	}
	if code, _, errs := runPluginsT(t, "selftest", "--dir", dir, "--mode", "task", "alpha"); code != 2 || !strings.Contains(errs, "--mode task needs --vmid N") {
		t.Errorf("task without vmid = %d %s", code, errs)
	}
}

func TestPluginsUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"info"}, {"list", "extra"}, {"selftest", "--mode", "write", "x"}} {
		code, _, errs := runPluginsT(t, args...)
		if code != 2 || errs == "" {
			t.Errorf("plugins %v = %d, stderr %q; want usage error", args, code, errs)
		}
	}
	code, out, _ := runPluginsT(t, "help")
	if code != 0 || !strings.Contains(out, "felhom-agent plugins selftest [flags]") {
		t.Errorf("help = %d %s", code, out)
	}
	var b bytes.Buffer
	usage(&b)
	if !strings.Contains(b.String(), "plugins") {
		t.Error("plugins is not registered")
	}
}
