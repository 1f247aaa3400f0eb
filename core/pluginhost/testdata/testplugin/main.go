// Command testplugin is a real felhom plugin (built on sdk) for
// core/pluginhost's tests. Its name and version come from its file name
// (argv[0] is felhom-plugin-<name>_v<version>), so one build runs as many
// plugins. Every plugin offers <name>.echo, .sleep, .api, .env, .event,
// .fail, .na, .noop and .sethealth; names change the rest:
//
//	liar*    reports version 9.9.9 whatever its file name says
//	impostor* reports the name "someone-else"
//	rooty*   adds <name>.mount, which needs root
//	dup*     adds shared.cap (two dup plugins conflict)
//	sick*    fails a self-test check
package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

type testPlugin struct {
	name, version string
}

func main() {
	base := strings.TrimPrefix(filepath.Base(os.Args[0]), "felhom-plugin-")
	name, version, _ := strings.Cut(base, "_v")
	// A plain stderr line (not hclog JSON): the host keeps it whatever its
	// log level, for crash reports.
	fmt.Fprintf(os.Stderr, "testplugin %s starting, pid %d\n", name, os.Getpid())
	sdk.Serve(&testPlugin{name: name, version: version})
}

func (p *testPlugin) id(s string) string { return p.name + "." + s }

func (p *testPlugin) Info() sdk.Info {
	info := sdk.Info{Name: p.name, Version: p.version}
	if strings.HasPrefix(p.name, "liar") {
		info.Version = "9.9.9"
	}
	if strings.HasPrefix(p.name, "impostor") {
		info.Name = "someone-else"
	}
	info.Capabilities = []sdk.Capability{
		{ID: p.id("echo"), SchemaVersion: 1, Class: sdk.Read, Handler: p.echo},
		{ID: p.id("sleep"), SchemaVersion: 1, Class: sdk.Read, Handler: p.sleep},
		{ID: p.id("api"), SchemaVersion: 1, Class: sdk.Benign, Handler: p.api,
			API: []sdk.APIScope{{Method: "GET", Path: "/nodes/{node}/storage"}}},
		{ID: p.id("env"), SchemaVersion: 1, Class: sdk.Read, Handler: p.env},
		{ID: p.id("event"), SchemaVersion: 1, Class: sdk.Benign, Handler: p.event},
		{ID: p.id("fail"), SchemaVersion: 1, Class: sdk.Read, Handler: p.fail},
		{ID: p.id("na"), SchemaVersion: 1, Class: sdk.Read, Handler: p.echo},
		{ID: p.id("noop"), SchemaVersion: 1, Class: sdk.Read, Handler: func(context.Context, *sdk.Call) (any, error) { return nil, nil }},
		{ID: p.id("sethealth"), SchemaVersion: 1, Class: sdk.Benign, Handler: p.setHealth},
	}
	if strings.HasPrefix(p.name, "rooty") {
		info.Capabilities = append(info.Capabilities, sdk.Capability{
			ID: p.id("mount"), SchemaVersion: 1, Class: sdk.Benign, NeedsRoot: true, Handler: p.echo})
	}
	if strings.HasPrefix(p.name, "dup") {
		info.Capabilities = append(info.Capabilities, sdk.Capability{
			ID: "shared.cap", SchemaVersion: 1, Class: sdk.Read, Handler: p.echo})
	}
	return info
}

func (p *testPlugin) Configure(ctx context.Context, host sdk.Host, cfg sdk.Config) error {
	if v, ok := cfg["fail_configure"]; ok && v == true {
		return fmt.Errorf("configure refused by test setting")
	}
	host.SetState(p.id("na"), sdk.StateNotApplicable, "no such hardware here")
	return nil
}

func (p *testPlugin) echo(ctx context.Context, c *sdk.Call) (any, error) {
	return map[string]any{"params": c.Params.Map(), "pid": os.Getpid(), "uid": os.Getuid(),
		"op_id": c.OpID, "principal": c.Principal, "node": c.Host.Node(), "host_id": c.Host.HostID()}, nil
}

func (p *testPlugin) sleep(ctx context.Context, c *sdk.Call) (any, error) {
	ms, _ := c.Params.Int("ms")
	if ms == 0 {
		ms = 60_000
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return map[string]any{"slept_ms": ms}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *testPlugin) api(ctx context.Context, c *sdk.Call) (any, error) {
	path, err := c.Params.String("path")
	if err != nil {
		return nil, err
	}
	data, err := c.Host.API().Get(ctx, path, url.Values{"x": {"1"}})
	if err != nil {
		return nil, err
	}
	return map[string]any{"data": string(data)}, nil
}

func (p *testPlugin) env(ctx context.Context, c *sdk.Call) (any, error) {
	env := make([]any, 0)
	for _, e := range os.Environ() {
		env = append(env, e)
	}
	return map[string]any{"env": env}, nil
}

func (p *testPlugin) event(ctx context.Context, c *sdk.Call) (any, error) {
	return nil, c.Host.Event(ctx, "test.event", "hello from "+p.name, map[string]string{"op": c.OpID})
}

func (p *testPlugin) fail(ctx context.Context, c *sdk.Call) (any, error) {
	return nil, sdk.Errorf(sdk.CodeNotFound, "what", "nothing called %q here", "x")
}

// setHealth reports a capability's state through the health stream.
func (p *testPlugin) setHealth(ctx context.Context, c *sdk.Call) (any, error) {
	id, err := c.Params.String("capability")
	if err != nil {
		return nil, err
	}
	st := sdk.Available
	if bad, _ := c.Params.Bool("unhealthy"); bad {
		st = sdk.Unhealthy
	}
	detail, _ := c.Params.String("detail")
	c.Host.SetState(id, st, detail)
	return nil, nil
}

func (p *testPlugin) SelfTest(ctx context.Context, mode sdk.SelfTestMode, vmid int64) []sdk.Check {
	checks := []sdk.Check{{Name: "echo.roundtrip", Status: sdk.Pass, Detail: "ok", Duration: 12 * time.Millisecond}}
	if strings.HasPrefix(p.name, "sick") {
		checks = append(checks, sdk.Check{Name: "sick.check", Status: sdk.Fail, Detail: "always fails", Duration: 300 * time.Microsecond})
	}
	if mode == sdk.SelfTestTask {
		if vmid == 0 {
			checks = append(checks, sdk.Check{Name: "task.scratch", Status: sdk.Fail, Detail: "no scratch guest given"})
		} else {
			checks = append(checks, sdk.Check{Name: "task.scratch", Status: sdk.Pass, Detail: fmt.Sprintf("guest %d", vmid)})
		}
	}
	return checks
}
