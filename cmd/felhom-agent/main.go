// Command felhom-agent is the felhom host agent for Proxmox VE.
//
// It runs as a daemon (felhom-agent run), and offers operator subcommands
// (plugins, op) and whole-agent selftests (--selftest). Subcommands live in
// one file each and register themselves in init, so that each area of the
// agent owns its own CLI surface.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"gitea.dooplex.hu/admin/felhom-agent/internal/version"
)

// command is one subcommand: `felhom-agent NAME ARGS...`.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// registerCommand adds a subcommand; called from init in the file that owns it.
func registerCommand(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	if _, dup := commands[name]; dup {
		panic("felhom-agent: duplicate subcommand " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain dispatches: a known subcommand name first, else the top-level
// flags (--version, --config, --selftest) handled by runTop.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version", "-version":
			fmt.Fprintf(stdout, "felhom-agent %s\n", version.Version)
			return 0
		case "help", "-h", "--help", "-help":
			usage(stdout)
			return 0
		}
		if c, ok := commands[args[0]]; ok {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return runTop(ctx, args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "felhom-agent %s: the felhom host agent for Proxmox VE\n\n", version.Version)
	fmt.Fprintln(w, "usage:")
	fmt.Fprintln(w, "  felhom-agent --version")
	fmt.Fprintln(w, "  felhom-agent --config FILE --selftest[=read|task|hub] [-vmid N]")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  felhom-agent %-10s %s\n", n, commands[n].summary)
	}
}
