package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
	"gitea.dooplex.hu/admin/felhom-agent/core/pluginhost"
	"gitea.dooplex.hu/admin/felhom-agent/core/selftest"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

func init() {
	registerCommand("plugins", "list, inspect, pin and selftest plugins", runPlugins)
}

const pluginsUsage = `usage:
  felhom-agent plugins list     [flags] [--json]
  felhom-agent plugins info     [flags] [--json] NAME
  felhom-agent plugins pin      [flags]
  felhom-agent plugins selftest [flags] [--mode read|task] [--vmid N] NAME

list starts every plugin far enough to read its Info (checks: dir and binary
owner/mode, plugins.lock pin, handshake, protocol, Info against the file name,
needs-root, capability conflicts), stops it again, and shows each plugin's
version, protocol, state and capabilities, or why it was refused.
info shows one plugin in detail. pin writes plugins.lock with the SHA-256 of
every plugin binary now in the dir (run it after installing or upgrading one).
selftest starts one plugin with the agent's Proxmox API access and runs its
checks: one line per check, exit status 1 if any failed.

flags (override the config file's plugins section):
  --config FILE       agent config (for selftest also the Proxmox API)
  --dir DIR           plugin dir
  --lock-file FILE    plugins.lock
  --user USER         unprivileged user for plugins
  --allow-root NAMES  comma-separated plugins that may run as root
  --handshake-timeout D
  --log-level LEVEL   agent log on stderr (default off; selftest: warn)
`

func runPlugins(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, pluginsUsage)
		return 2
	}
	switch args[0] {
	case "list", "info", "pin", "selftest":
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, pluginsUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "felhom-agent plugins: unknown subcommand %q\n%s", args[0], pluginsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("felhom-agent plugins "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, pluginsUsage) }
	var (
		cfgPath   = fs.String("config", "", "")
		dir       = fs.String("dir", "", "")
		lockFile  = fs.String("lock-file", "", "")
		user      = fs.String("user", "", "")
		allowRoot = fs.String("allow-root", "", "")
		handshake = fs.Duration("handshake-timeout", 0, "")
		logLevel  = fs.String("log-level", "", "")
		asJSON    = fs.Bool("json", false, "")
		mode      = fs.String("mode", "read", "")
		vmid      = fs.Int64("vmid", 0, "")
	)
	// Flags may come before or after NAME (plugins info storage --json).
	var positional []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	var name string
	switch sub {
	case "info", "selftest":
		if len(positional) != 1 {
			fmt.Fprintf(stderr, "felhom-agent plugins %s: want exactly one plugin NAME\n", sub)
			return 2
		}
		name = positional[0]
	default:
		if len(positional) != 0 {
			fmt.Fprintf(stderr, "felhom-agent plugins %s: unexpected argument %q\n", sub, positional[0])
			return 2
		}
	}

	var cfg *config.Config
	pc := config.Defaults().Plugins
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
			return 2
		}
		pc = cfg.Plugins
	}
	level := *logLevel
	if level == "" {
		level = "off"
		if sub == "selftest" {
			level = "warn"
		}
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "felhom-agent", Level: hclog.LevelFromString(level), Output: stderr})
	opts := pluginOptions(pc, log)
	if cfg != nil {
		opts.HostID, opts.Node = cfg.HostID, cfg.Proxmox.Node
	}
	if *dir != "" {
		opts.Dir = *dir
		if *lockFile == "" && *cfgPath == "" {
			opts.LockFile = "" // beside the binaries, not the default /etc path
		}
	}
	if *lockFile != "" {
		opts.LockFile = *lockFile
	}
	if *user != "" {
		opts.User = *user
	}
	if *allowRoot != "" {
		opts.AllowRoot = strings.Split(*allowRoot, ",")
	}
	if *handshake > 0 {
		opts.HandshakeTimeout = *handshake
	}

	switch sub {
	case "list":
		return pluginsList(ctx, opts, *asJSON, stdout, stderr)
	case "info":
		return pluginsInfo(ctx, opts, name, *asJSON, stdout, stderr)
	case "pin":
		return pluginsPin(opts, stdout, stderr)
	}
	var m pluginv1.SelfTestMode
	switch *mode {
	case "read":
		m = pluginv1.SelfTestMode_SELF_TEST_MODE_READ
	case "task":
		m = pluginv1.SelfTestMode_SELF_TEST_MODE_TASK
		if *vmid <= 0 {
			fmt.Fprintln(stderr, "felhom-agent plugins selftest: --mode task needs --vmid N (a scratch guest the checks may change)")
			return 2
		}
	default:
		fmt.Fprintf(stderr, "felhom-agent plugins selftest: --mode %q: want read or task\n", *mode)
		return 2
	}
	if cfg != nil {
		client, err := newProxmoxClient(cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
			return 2
		}
		defer client.CloseIdleConnections()
		opts.API, opts.Waiter = proxmoxAPI{client}, proxmoxWaiter{client.Waiter()}
	}
	return pluginsSelftest(ctx, opts, name, m, *vmid, stdout, stderr)
}

func pluginsList(ctx context.Context, opts pluginhost.Options, asJSON bool, stdout, stderr io.Writer) int {
	sts, err := pluginhost.Inspect(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent plugins list: %v\n", err)
		return 1
	}
	if asJSON {
		return writeJSON(stdout, stderr, sts)
	}
	if len(sts) == 0 {
		fmt.Fprintf(stdout, "no plugins in %s\n", opts.Dir)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tPROTOCOL\tSTATE\tUSER\tCAPABILITIES / REASON")
	for _, st := range sts {
		detail := st.Reason
		if st.State == pluginhost.StateOK {
			ids := make([]string, 0, len(st.Capabilities))
			for _, c := range st.Capabilities {
				id := string(c.ID)
				if c.State == "shadowed" {
					id += " (shadowed)"
				}
				ids = append(ids, id)
			}
			detail = strings.Join(ids, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, dash(st.Version), dash(st.Protocol), st.State, dash(st.User), detail)
	}
	_ = tw.Flush()
	for _, st := range sts {
		for _, r := range st.Refused {
			if st.State == pluginhost.StateRefused && len(st.Refused) == 1 {
				continue // already on its line
			}
			fmt.Fprintf(stdout, "  %s\n", r)
		}
	}
	return 0
}

func pluginsInfo(ctx context.Context, opts pluginhost.Options, name string, asJSON bool, stdout, stderr io.Writer) int {
	opts.Only = []string{name}
	sts, err := pluginhost.Inspect(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent plugins info: %v\n", err)
		return 1
	}
	var st *pluginhost.PluginStatus
	for i := range sts {
		if sts[i].Name == name {
			st = &sts[i]
		}
	}
	if st == nil {
		fmt.Fprintf(stderr, "felhom-agent plugins info: no plugin %q in %s\n", name, opts.Dir)
		return 1
	}
	if asJSON {
		if code := writeJSON(stdout, stderr, st); code != 0 {
			return code
		}
	} else {
		printInfo(stdout, st)
	}
	if st.State != pluginhost.StateOK {
		return 1
	}
	return 0
}

func printInfo(w io.Writer, st *pluginhost.PluginStatus) {
	fmt.Fprintf(w, "plugin    %s\nstate     %s\n", st.Name, st.State)
	if st.Reason != "" {
		fmt.Fprintf(w, "reason    %s\n", st.Reason)
	}
	if st.File != "" {
		fmt.Fprintf(w, "version   %s\nfile      %s\nsha256    %s\nprotocol  %s (sdk %s)\nuser      %s\n",
			st.Version, st.File, st.SHA256, st.Protocol, dash(st.SDKVersion), dash(st.User))
	}
	if len(st.Capabilities) > 0 {
		fmt.Fprintln(w, "capabilities:")
		for _, c := range st.Capabilities {
			root := ""
			if c.NeedsRoot {
				root = ", needs root"
			}
			fmt.Fprintf(w, "  %s (schema %d, %s%s)", c.ID, c.SchemaVersion, c.Class, root)
			if c.State == "shadowed" {
				fmt.Fprintf(w, " shadowed: %s", c.Detail)
			}
			fmt.Fprintln(w)
			for _, s := range c.API {
				fmt.Fprintf(w, "      api %s %s\n", s.Method, s.Path)
			}
		}
	}
	for _, r := range st.Refused {
		fmt.Fprintf(w, "refused   %s\n", r)
	}
	if len(st.Stderr) > 0 {
		fmt.Fprintln(w, "stderr:")
		for _, l := range st.Stderr {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func pluginsPin(opts pluginhost.Options, stdout, stderr io.Writer) int {
	lock := opts.LockFile
	if lock == "" {
		lock = opts.Dir + "/plugins.lock"
	}
	pinned, bad, err := pluginhost.Pin(opts.Dir, lock)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent plugins pin: %v\n", err)
		return 1
	}
	for _, p := range pinned {
		fmt.Fprintf(stdout, "pinned  %s  %s\n", p.SHA256, p.File)
		if p.Warning != "" {
			fmt.Fprintf(stdout, "  warning: %s\n", p.Warning)
		}
	}
	for _, b := range bad {
		fmt.Fprintf(stdout, "skipped %s: %s\n", b.File, b.Reason)
	}
	fmt.Fprintf(stdout, "wrote %s (%d binaries)\n", lock, len(pinned))
	return 0
}

func pluginsSelftest(ctx context.Context, opts pluginhost.Options, name string, mode pluginv1.SelfTestMode, vmid int64, stdout, stderr io.Writer) int {
	opts.Only = []string{name}
	h, err := pluginhost.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent plugins selftest: %v\n", err)
		return 2
	}
	if err := h.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "felhom-agent plugins selftest: %v\n", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Stop(sctx)
	}()
	checks, err := h.SelfTest(ctx, name, mode, vmid)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL plugin.start: %v\n", err)
		return 1
	}
	failed := 0
	for _, c := range checks {
		label := checkStatus(c)
		if label == selftest.Fail {
			failed++
		}
		line := fmt.Sprintf("%s %s (%s)", label, c.Name, fmtDuration(c.Duration))
		if c.Detail != "" {
			line += " " + c.Detail
		}
		fmt.Fprintln(stdout, line)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "selftest %s: %d of %d checks FAILED\n", name, failed, len(checks))
		return 1
	}
	fmt.Fprintf(stdout, "selftest %s: all %d checks passed\n", name, len(checks))
	return 0
}

func fmtDuration(d time.Duration) string {
	if d > 0 && d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%dms", d.Round(time.Millisecond).Milliseconds())
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "felhom-agent: writing JSON: %v\n", err)
		return 1
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
