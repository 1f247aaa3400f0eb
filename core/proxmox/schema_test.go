package proxmox

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/testenv"
)

type schemaEndpoint struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	Missing    bool   `json:"missing"`
	Parameters []struct {
		Name string `json:"name"`
	} `json:"parameters"`
	re *regexp.Regexp
}

var placeholderRe = regexp.MustCompile(`\{[^}]+\}`)

func loadSchema(t *testing.T) []schemaEndpoint {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.SharedDir(t), "pve-api", "schema-subset.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Endpoints      []schemaEndpoint `json:"endpoints"`
		ExtraEndpoints []schemaEndpoint `json:"extra_endpoints"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("schema-subset.json: %v", err)
	}
	eps := append(doc.Endpoints, doc.ExtraEndpoints...)
	for i := range eps {
		tmpl := placeholderRe.ReplaceAllString(eps[i].Path, "\x00")
		eps[i].re = regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(tmpl), "\x00", "[^/]+") + "$")
	}
	return eps
}

// TestTypedCallsMatchSchema makes every typed call against a recording
// server and checks each request's method, path and parameter names
// against the real PVE API schema, so a typo cannot reach a real node.
func TestTypedCallsMatchSchema(t *testing.T) {
	schema := loadSchema(t)
	f := newFakePVE(t)
	type call struct {
		method, path string
		params       []string
	}
	var mu sync.Mutex
	var calls []call
	f.observe = func(r *http.Request) {
		var names []string
		for k := range r.Form {
			names = append(names, k)
		}
		sort.Strings(names)
		mu.Lock()
		calls = append(calls, call{r.Method, strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix), names})
		mu.Unlock()
	}
	c := f.client(t, func(cfg *Config) { cfg.Retry.MaxAttempts = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	upid, _ := ParseUPID(f.addTask("qmstart", "100", 0, "OK"))
	for _, g := range []GuestRef{{Kind: QEMU, VMID: 100}, {Kind: LXC, VMID: 100}} {
		// Answers do not matter here (most are 501); the requests do.
		_, _ = c.GuestConfig(ctx, g)
		_, _ = c.SetGuestConfig(ctx, g, ConfigUpdate{Set: map[string]string{"memory": "512"}, Delete: []string{"swap"}, Digest: "d"})
		_, _ = c.Snapshots(ctx, g)
		_, _ = c.CreateSnapshot(ctx, g, "s1", "desc", g.Kind == QEMU)
		_, _ = c.RollbackSnapshot(ctx, g, "s1")
		_, _ = c.DeleteSnapshot(ctx, g, "s1", true)
		_, _ = c.GuestStatus(ctx, g)
		_, _ = c.Start(ctx, g)
		_, _ = c.Stop(ctx, g)
		_, _ = c.Shutdown(ctx, g, 30*time.Second)
	}
	_, _ = c.SetGuestConfig(ctx, GuestRef{Kind: QEMU, VMID: 100}, ConfigUpdate{Set: map[string]string{"cores": "2"}, Synchronous: true})
	_, _ = c.Version(ctx)
	_, _ = c.NodeStatus(ctx, "")
	_, _ = c.ClusterResources(ctx, "vm")
	_, _ = c.TaskStatus(ctx, upid)
	_, _, _ = c.TaskLog(ctx, upid, 0, 20)
	_, _, _ = c.Tasks(ctx, "", TaskListOptions{Source: "all", Since: 1, Until: 2, Start: 1, Limit: 5,
		TypeFilter: "qmstart", UserFilter: "root", VMID: 100, Errors: true})

	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 27 {
		t.Fatalf("only %d requests recorded", len(calls))
	}
	for _, cl := range calls {
		var ep *schemaEndpoint
		for i := range schema {
			if schema[i].Method == cl.method && schema[i].re.MatchString(cl.path) && !schema[i].Missing {
				ep = &schema[i]
				break
			}
		}
		if ep == nil {
			t.Errorf("%s %s: no such endpoint in the PVE API schema", cl.method, cl.path)
			continue
		}
		known := map[string]bool{}
		for _, p := range ep.Parameters {
			known[p.Name] = true
		}
		for _, p := range cl.params {
			if !known[p] {
				t.Errorf("%s %s: parameter %q is not in the schema of %s %s", cl.method, cl.path, p, ep.Method, ep.Path)
			}
		}
	}
}
