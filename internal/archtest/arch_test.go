package archtest

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "gitea.dooplex.hu/admin/felhom-agent"

// deps maps each package of the module to its transitive dependencies,
// from `go list -deps` (test files excluded: fences govern what ships).
func deps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	if len(m) == 0 {
		t.Fatal("go list returned no packages")
	}
	return m
}

func has(list []string, p string) bool {
	for _, d := range list {
		if d == p {
			return true
		}
	}
	return false
}

// TestCoreNeverShellsOut: in the shipped agent, the only package that
// imports os/exec is core/pluginhost, which launches verified plugin
// binaries. (Test helpers that run ssh-keygen are not linked into it.)
func TestCoreNeverShellsOut(t *testing.T) {
	all := deps(t)
	agent := module + "/cmd/felhom-agent"
	ds, ok := all[agent]
	if !ok {
		t.Fatal("cmd/felhom-agent not found")
	}
	imports := directImports(t)
	for _, pkg := range append([]string{agent}, ds...) {
		if !strings.HasPrefix(pkg, module) || pkg == module+"/core/pluginhost" {
			continue
		}
		if reason, ok := execTypeOnly[pkg]; ok {
			if calls := execCalls(t, pkg); len(calls) > 0 {
				t.Errorf("%s may use os/exec only for %s, but calls %s", pkg, reason, strings.Join(calls, ", "))
			}
			continue
		}
		if has(imports[pkg], "os/exec") {
			t.Errorf("%s imports os/exec and is linked into felhom-agent: the core never shells out (only core/pluginhost execs plugin binaries)", pkg)
		}
	}
}

// execTypeOnly lists packages linked into the agent that import os/exec
// for its types alone; execCalls proves they start nothing.
var execTypeOnly = map[string]string{
	module + "/sdk/plugintls": "the *exec.Cmd type, to attach the TLS pipe to a plugin launch",
}

// execCalls lists the process-starting calls (exec.Command,
// exec.CommandContext, exec.LookPath, os.StartProcess, syscall.Exec,
// syscall.ForkExec) in the package's non-test sources.
func execCalls(t *testing.T, pkg string) []string {
	t.Helper()
	dir := filepath.Join("../..", strings.TrimPrefix(pkg, module+"/"))
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", dir, err)
	}
	banned := map[string]bool{"exec.Command": true, "exec.CommandContext": true, "exec.LookPath": true,
		"os.StartProcess": true, "syscall.Exec": true, "syscall.ForkExec": true, "unix.Exec": true}
	var calls []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && banned[x.Name+"."+sel.Sel.Name] {
						calls = append(calls, fset.Position(sel.Pos()).String()+" "+x.Name+"."+sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
	return calls
}

// TestPrivilegedRunnerMakesNoHTTPCalls: the fenced root runner never links
// an HTTP or gRPC client.
func TestPrivilegedRunnerMakesNoHTTPCalls(t *testing.T) {
	all := deps(t)
	for pkg, ds := range all {
		if !strings.HasPrefix(pkg, module+"/sdk/privileged") {
			continue
		}
		for _, bad := range []string{"net/http", "google.golang.org/grpc"} {
			if has(ds, bad) || pkg == bad {
				t.Errorf("%s links %s: the privileged runner never makes network calls", pkg, bad)
			}
		}
	}
}

// TestPluginsAndSDKStayOutOfTheCore: the core is not importable by plugins;
// the SDK is what plugins (bundled and third-party) build on.
func TestPluginsAndSDKStayOutOfTheCore(t *testing.T) {
	all := deps(t)
	for pkg, ds := range all {
		if !strings.HasPrefix(pkg, module+"/sdk") && !strings.HasPrefix(pkg, module+"/plugins/") {
			continue
		}
		for _, d := range ds {
			if strings.HasPrefix(d, module+"/core/") || strings.HasPrefix(d, module+"/cmd/") {
				t.Errorf("%s imports %s: plugins and the SDK must not depend on the core", pkg, d)
			}
		}
	}
}

// TestAgentLinksNoSimulator: the production binary carries no simulator or
// conformance kit.
func TestAgentLinksNoSimulator(t *testing.T) {
	all := deps(t)
	ds, ok := all[module+"/cmd/felhom-agent"]
	if !ok {
		t.Fatal("cmd/felhom-agent not found")
	}
	for _, bad := range []string{module + "/sdk/pvesim", module + "/sdk/plugintest"} {
		if has(ds, bad) {
			t.Errorf("cmd/felhom-agent links %s", bad)
		}
	}
}

// directImports maps each package of the module to its own imports.
func directImports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}
