package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
	"gitea.dooplex.hu/admin/felhom-agent/core/logging"
	"gitea.dooplex.hu/admin/felhom-agent/core/pluginhost"
	"gitea.dooplex.hu/admin/felhom-agent/internal/version"
)

func init() {
	registerCommand("run", "run the agent daemon (plugins supervised until SIGTERM)", runDaemon)
}

// runDaemon is the daemon: it checks the Proxmox API, brings the plugins
// up and supervises them until the context ends (SIGINT/SIGTERM), then
// drains in-flight calls and stops them. The hub loop joins here.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("felhom-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "agent config `file`")
	stopTimeout := fs.Duration("stop-timeout", 20*time.Second, "how long to drain plugins at shutdown")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
		return 2
	}
	log := logging.New(cfg.Log, stderr)
	log.Info("starting", "version", version.Version, "host_id", cfg.HostID, "node", cfg.Proxmox.Node, "pid", os.Getpid())
	client, err := newProxmoxClient(cfg, log)
	if err != nil {
		log.Error("proxmox client", "error", err)
		return 2
	}
	defer client.CloseIdleConnections()
	// A Proxmox API that is down at start is not fatal: the agent is the
	// control plane and keeps trying; the selftest says what is wrong.
	if v, err := client.Version(ctx); err != nil {
		log.Warn("proxmox api not reachable yet", "error", err)
	} else {
		log.Info("proxmox api", "version", v.Version)
	}

	host, err := pluginhost.New(agentPluginOptions(cfg, client, log.Named("plugins")))
	if err != nil {
		log.Error("plugin host", "error", err)
		return 2
	}
	if err := host.Start(ctx); err != nil {
		log.Error("starting plugins", "error", err)
		return 1
	}
	running := 0
	for _, st := range host.Status() {
		if st.State == pluginhost.StateRunning {
			running++ // the plugin host logs each one as it comes up
		} else {
			log.Warn("plugin not running", "plugin", st.Name, "state", st.State, "reason", st.Reason)
		}
	}
	log.Info("agent running", "plugins_running", running)
	<-ctx.Done()
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), *stopTimeout)
	defer cancel()
	if err := host.Stop(sctx); err != nil {
		log.Error("stopping plugins", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
