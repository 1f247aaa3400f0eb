package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
	"gitea.dooplex.hu/admin/felhom-agent/core/logging"
	"gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/core/selftest"
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
	if !ok {
		fmt.Fprintln(stdout, "selftest: FAILED")
		return 1
	}
	fmt.Fprintln(stdout, "selftest: all checks passed")
	return 0
}
