// Command felhom-sim runs simulators of the services felhom-agent talks to,
// for development, demos and plugin authors' tests.
//
//	felhom-sim pve --listen 127.0.0.1:8006 --conn-file pve.json [--agent-env agent.env] [--node pve] [--task-duration 200ms]
//
// The pve subcommand serves a simulated Proxmox VE node (package
// sdk/pvesim) until SIGINT or SIGTERM and writes the connection details
// (URL, node, certificate fingerprint, API tokens) as JSON to the
// connection file, readable by the owner only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// subcommands maps each simulator to its entry point.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"pve": runPVE,
}

func knownSubcommands() string {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stderr, "usage: felhom-sim <subcommand> [flags]\nsubcommands: %s\n", knownSubcommands())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "felhom-sim: unknown subcommand %q (known: %s)\n", args[0], knownSubcommands())
		return 2
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

// connInfo is the connection file's content.
type connInfo struct {
	URL         string            `json:"url"`
	Node        string            `json:"node"`
	Fingerprint string            `json:"fingerprint"`
	Tokens      map[string]string `json:"tokens"`
}

func runPVE(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("felhom-sim pve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8006", "address to serve HTTPS on")
	agentEnv := fs.String("agent-env", "", "also write FELHOM_AGENT_PROXMOX_* variables (admin token) to this `file`, for the agent's environment overlay")
	connFile := fs.String("conn-file", "", "write connection details (URL, fingerprint, tokens) as JSON to this file; stdout if empty")
	node := fs.String("node", "pve", "node name")
	taskDuration := fs.Duration("task-duration", 200*time.Millisecond, "how long a task runs (negative: finish immediately)")
	seed := fs.Bool("seed", true, "create the seeded guests (CT 100, VM 101, CT 9999)")
	noSuchTask := fs.Duration("no-such-task-for", 0, "answer 'no such task' for this long after a task starts")
	authFailDelay := fs.Duration("auth-fail-delay", 0, "delay 401 answers (real PVE: 3s)")
	lockTimeout := fs.Duration("lock-timeout", time.Second, "how long to wait for a guest config lock (real PVE: 10s)")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "felhom-sim pve: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if *taskDuration == 0 {
		fmt.Fprintln(stderr, "felhom-sim pve: --task-duration must not be 0 (use a negative value for instant tasks)")
		return 2
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(stderr, "felhom-sim pve: unknown --log-level %q\n", *logLevel)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "felhom-sim", Level: level, Output: stderr})

	s, err := pvesim.New(pvesim.Options{
		Node:          *node,
		Seed:          *seed,
		TaskDuration:  *taskDuration,
		NoSuchTaskFor: *noSuchTask,
		AuthFailDelay: *authFailDelay,
		LockTimeout:   *lockTimeout,
		Logger:        logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "felhom-sim pve: %v\n", err)
		return 1
	}
	if err := s.Listen(*listen); err != nil {
		fmt.Fprintf(stderr, "felhom-sim pve: %v\n", err)
		_ = s.Close()
		return 1
	}
	info := connInfo{
		URL:         s.URL(),
		Node:        s.Node(),
		Fingerprint: s.Fingerprint(),
		Tokens:      map[string]string{"admin": s.AdminToken(), "audit": s.AuditToken()},
	}
	buf, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "felhom-sim pve: encode connection details: %v\n", err)
		_ = s.Close()
		return 1
	}
	buf = append(buf, '\n')
	if *connFile == "" {
		_, _ = stdout.Write(buf)
	} else if err := writeFileAtomic(*connFile, buf, 0o600); err != nil {
		fmt.Fprintf(stderr, "felhom-sim pve: write connection file: %v\n", err)
		_ = s.Close()
		return 1
	}
	if *agentEnv != "" {
		env := fmt.Sprintf("FELHOM_AGENT_PROXMOX_URL=%s\nFELHOM_AGENT_PROXMOX_NODE=%s\nFELHOM_AGENT_PROXMOX_FINGERPRINT=%s\nFELHOM_AGENT_PROXMOX_TOKEN=%s\n",
			s.URL(), s.Node(), s.Fingerprint(), s.AdminToken())
		if err := writeFileAtomic(*agentEnv, []byte(env), 0o600); err != nil {
			fmt.Fprintf(stderr, "felhom-sim pve: write agent env file: %v\n", err)
			_ = s.Close()
			return 1
		}
	}
	logger.Info("serving simulated Proxmox VE", "url", s.URL(), "node", s.Node(), "fingerprint", s.Fingerprint(), "conn_file", *connFile)

	<-ctx.Done()
	logger.Info("shutting down")
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "felhom-sim pve: %v\n", err)
		return 1
	}
	return 0
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
