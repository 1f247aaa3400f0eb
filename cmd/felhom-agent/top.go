package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
	"gitea.dooplex.hu/admin/felhom-agent/core/logging"
	"gitea.dooplex.hu/admin/felhom-agent/core/pluginhost"
	"gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/core/selftest"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// selftestFlag is --selftest with an optional value: bare --selftest means
// read; --selftest=task and --selftest=hub pick the other modes.
type selftestFlag struct{ mode string }

func (f *selftestFlag) String() string   { return f.mode }
func (f *selftestFlag) IsBoolFlag() bool { return true }
func (f *selftestFlag) Set(v string) error {
	switch v {
	case "true", "read":
		f.mode = "read"
	case "task", "hub":
		f.mode = v
	case "false":
		f.mode = ""
	default:
		return fmt.Errorf("unknown selftest mode %q: want read, task or hub", v)
	}
	return nil
}

// runTop handles the top-level flags: --config, --selftest[=mode], -vmid.
func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("felhom-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath = fs.String("config", "", "agent config `file` (JSON; FELHOM_AGENT_* variables override it)")
		st      selftestFlag
		vmid    = fs.Int("vmid", 0, "scratch guest `ID` for --selftest=task")
	)
	fs.Var(&st, "selftest", "run the selftest: read (default), task or hub")
	fs.Usage = func() { usage(stderr); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "felhom-agent: unknown command %q (see felhom-agent help)\n", fs.Arg(0))
		return 2
	}
	if st.mode == "" {
		usage(stderr)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
		return 2
	}
	log := logging.New(cfg.Log, stderr)
	if log.GetLevel() == hclog.Info {
		// The check lines are the output; routine start/stop logs would
		// only interleave with them.
		log.SetLevel(hclog.Warn)
	}
	return runSelftest(ctx, cfg, log, st.mode, *vmid, stdout, stderr)
}

func newProxmoxClient(cfg *config.Config, log hclog.Logger) (*proxmox.Client, error) {
	return proxmox.New(proxmox.Config{
		BaseURL:     cfg.Proxmox.URL,
		Node:        cfg.Proxmox.Node,
		Token:       proxmox.Token(cfg.Proxmox.Token.Reveal()),
		Fingerprint: cfg.Proxmox.Fingerprint,
		Timeout:     cfg.Proxmox.Timeout.Duration(),
		Logger:      log.Named("proxmox"),
	})
}

func runSelftest(ctx context.Context, cfg *config.Config, log hclog.Logger, mode string, vmid int, stdout, stderr io.Writer) int {
	client, err := newProxmoxClient(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
		return 2
	}
	defer client.CloseIdleConnections()
	var checks []selftest.Check
	switch mode {
	case "read":
		checks = selftest.ReadChecks(client, cfg.Proxmox.Node)
	case "task":
		if vmid == 0 {
			fmt.Fprintln(stderr, "felhom-agent: --selftest=task needs -vmid N (a scratch guest it may snapshot and reconfigure)")
			return 2
		}
		checks = selftest.TaskChecks(client, cfg.Proxmox.Node, vmid)
	case "hub":
		fmt.Fprintln(stderr, "felhom-agent: --selftest=hub needs the hub loop, which this version does not have yet")
		return 2
	}
	fmt.Fprintf(stdout, "felhom-agent selftest (%s) against %s node %s\n", mode, cfg.Proxmox.URL, cfg.Proxmox.Node)
	_, ok := selftest.Run(ctx, stdout, checks)
	if mode == "read" {
		ok = runPluginSelftests(ctx, cfg, client, log, stdout) && ok
	}
	if !ok {
		fmt.Fprintln(stdout, "selftest: FAILED")
		return 1
	}
	fmt.Fprintln(stdout, "selftest: all checks passed")
	return 0
}

// runPluginSelftests starts every plugin as the daemon would and runs each
// one's read selftest, printing one line per check. A refused or
// quarantined plugin is a failure; an empty plugin dir is not.
func runPluginSelftests(ctx context.Context, cfg *config.Config, client *proxmox.Client, log hclog.Logger, w io.Writer) bool {
	start := time.Now()
	h, err := pluginhost.New(agentPluginOptions(cfg, client, log.Named("plugins")))
	if err == nil {
		err = h.Start(ctx)
	}
	if err != nil {
		selftest.PrintResult(w, selftest.Result{Name: "plugins.start", Status: selftest.Fail, Detail: err.Error(), Duration: time.Since(start)})
		return false
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Stop(sctx)
	}()
	statuses := h.Status()
	running := 0
	for _, st := range statuses {
		if st.State == pluginhost.StateRunning {
			running++
		}
	}
	if len(statuses) == 0 {
		selftest.PrintResult(w, selftest.Result{Name: "plugins.start", Status: selftest.Skip,
			Detail: "no plugins in " + cfg.Plugins.Dir, Duration: time.Since(start)})
		return true
	}
	selftest.PrintResult(w, selftest.Result{Name: "plugins.start", Status: selftest.Pass,
		Detail: fmt.Sprintf("%d of %d plugins running", running, len(statuses)), Duration: time.Since(start)})
	ok := true
	for _, st := range statuses {
		name := "plugin." + st.Name
		if st.State != pluginhost.StateRunning {
			ok = false
			selftest.PrintResult(w, selftest.Result{Name: name, Status: selftest.Fail, Detail: st.State + ": " + st.Reason})
			continue
		}
		t0 := time.Now()
		checks, err := h.SelfTest(ctx, st.Name, pluginv1.SelfTestMode_SELF_TEST_MODE_READ, 0)
		if err != nil {
			ok = false
			selftest.PrintResult(w, selftest.Result{Name: name + ".selftest", Status: selftest.Fail, Detail: err.Error(), Duration: time.Since(t0)})
			continue
		}
		for _, c := range checks {
			r := selftest.Result{Name: name + "." + c.Name, Detail: c.Detail, Duration: c.Duration}
			r.Status = checkStatus(c)
			ok = ok && r.Status != selftest.Fail
			selftest.PrintResult(w, r)
		}
	}
	return ok
}
