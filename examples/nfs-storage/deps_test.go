package main

import (
	"os/exec"
	"strings"
	"testing"
)

const agentModule = "gitea.dooplex.hu/admin/felhom-agent"

// TestImportsOnlySDK proves this is a third-party plugin: its packages
// (plugin, tests, broken variant) import nothing of felhom-agent but the
// public sdk/... packages, and nothing they pull in reaches the core or a
// bundled plugin.
func TestImportsOnlySDK(t *testing.T) {
	goList := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, out)
		}
		return strings.Fields(string(out))
	}
	direct := goList("-f", `{{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...")
	for _, imp := range direct {
		if strings.HasPrefix(imp, agentModule) && !isSDK(imp) {
			t.Errorf("imports %s: a third-party plugin may import only %s/sdk/...", imp, agentModule)
		}
	}
	all := goList("-deps", "-test", "./...")
	sawSDK := false
	for _, dep := range all {
		if !strings.HasPrefix(dep, agentModule) {
			continue
		}
		sawSDK = sawSDK || isSDK(dep)
		for _, fenced := range []string{"/core", "/plugins", "/cmd"} {
			if strings.HasPrefix(dep, agentModule+fenced+"/") || dep == agentModule+fenced {
				t.Errorf("depends on %s: the SDK must not pull in felhom-agent%s", dep, fenced)
			}
		}
	}
	if !sawSDK {
		t.Fatalf("no sdk package among the dependencies; is go list looking at the right module?\n%v", all)
	}
}

func isSDK(pkg string) bool {
	return pkg == agentModule+"/sdk" || strings.HasPrefix(pkg, agentModule+"/sdk/")
}
