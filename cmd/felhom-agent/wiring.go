package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
	"gitea.dooplex.hu/admin/felhom-agent/core/pluginhost"
	"gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/core/selftest"
	"gitea.dooplex.hu/admin/felhom-agent/internal/version"
)

// pluginOptions maps the config's plugins section to the plugin host's
// options; the caller adds the host identity and the API backends.
func pluginOptions(pc config.Plugins, log hclog.Logger) pluginhost.Options {
	return pluginhost.Options{
		Dir: pc.Dir, LockFile: pc.LockFile, User: pc.User, AllowRoot: pc.AllowRoot, Disabled: pc.Disabled,
		Owners: pc.Owners, HandshakeTimeout: pc.HandshakeTimeout.Duration(), PluginSettings: pc.Settings,
		Logger: log, CoreVersion: version.Version,
	}
}

// agentPluginOptions is pluginOptions with everything a running agent
// gives its plugins: identity, the scoped API proxy and the task waiter.
func agentPluginOptions(cfg *config.Config, client *proxmox.Client, log hclog.Logger) pluginhost.Options {
	opts := pluginOptions(cfg.Plugins, log)
	opts.HostID, opts.Node = cfg.HostID, cfg.Proxmox.Node
	opts.API, opts.Waiter = proxmoxAPI{client}, proxmoxWaiter{client.Waiter()}
	return opts
}

// checkStatus maps a plugin's self-test status to the agent's. A status
// this agent does not know is not a pass.
func checkStatus(c pluginhost.Check) selftest.Status {
	switch c.Status {
	case "pass":
		return selftest.Pass
	case "skip":
		return selftest.Skip
	case "not_applicable":
		return selftest.NotApplicable
	}
	return selftest.Fail
}

// proxmoxAPI adapts core/proxmox's client to the plugin host's API
// backend: Proxmox error answers become *pluginhost.APIError so the plugin
// sees status and message. The token stays inside the client.
type proxmoxAPI struct{ c *proxmox.Client }

func (a proxmoxAPI) Raw(ctx context.Context, method, path string, params url.Values) (json.RawMessage, *int, error) {
	data, total, err := a.c.Raw(ctx, method, path, params)
	var ae *proxmox.APIError
	if errors.As(err, &ae) {
		return nil, nil, &pluginhost.APIError{Status: ae.Status, Reason: ae.Reason, Message: ae.Message, Errors: ae.Errors}
	}
	return data, total, err
}

// proxmoxWaiter adapts core/proxmox's task waiter: a task that ended with
// an error status is a result (OK false), not a transport failure.
type proxmoxWaiter struct{ w *proxmox.Waiter }

func (w proxmoxWaiter) Wait(ctx context.Context, upid string) (pluginhost.TaskResult, error) {
	r, err := w.w.Wait(ctx, upid)
	var tf *proxmox.TaskFailedError
	if errors.As(err, &tf) {
		return pluginhost.TaskResult{UPID: tf.UPID.String(), ExitStatus: tf.ExitStatus, LogTail: tf.LogTail}, nil
	}
	if err != nil {
		return pluginhost.TaskResult{}, err
	}
	return pluginhost.TaskResult{
		UPID: r.UPID.String(), ExitStatus: r.ExitStatus, OK: true, Warnings: r.Warnings, Duration: r.Duration,
	}, nil
}
