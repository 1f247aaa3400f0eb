package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnePackageDoc: every package of the module has exactly one package
// doc comment (in doc.go when long), so `go doc` shows one coherent text.
func TestOnePackageDoc(t *testing.T) {
	root := "../.."
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			if p != root && p != filepath.Join(root, "examples") && fileExists(filepath.Join(p, "go.mod")) {
				return filepath.SkipDir // another module checks itself
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") && !strings.HasSuffix(p, ".pb.go") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for dir, files := range dirs {
		var docs []string
		for _, f := range files {
			af, err := parser.ParseFile(fset, f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parse %s: %v", f, err)
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				docs = append(docs, filepath.Base(f))
			}
		}
		rel, _ := filepath.Rel(root, dir)
		switch {
		case len(docs) == 0:
			t.Errorf("%s: no package doc comment (add one, in doc.go when long)", rel)
		case len(docs) > 1:
			t.Errorf("%s: package doc comments in %d files (%s): keep exactly one", rel, len(docs), strings.Join(docs, ", "))
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
