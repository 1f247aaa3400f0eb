package selftest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/proxmox"
)

// ReadChecks are the read-only checks of the agent's Proxmox access: the
// pinned TLS connection and the token (version), the node, the cluster
// view the heartbeat is built from, and the task list the waiter polls.
func ReadChecks(c *proxmox.Client, node string) []Check {
	return []Check{
		{Name: "proxmox.api (TLS pin + token)", StopOnFail: true, Run: func(ctx context.Context) (string, error) {
			v, err := c.Version(ctx)
			if err != nil {
				return "", err
			}
			return "pve-manager " + v.Version, nil
		}},
		{Name: "proxmox.node_status", Run: func(ctx context.Context) (string, error) {
			s, err := c.NodeStatus(ctx, node)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("node %s up %s, %d cpus, mem %d/%d MiB", node,
				(time.Duration(s.Uptime) * time.Second).String(), s.CPUThreads, s.MemoryUsed>>20, s.MemoryTotal>>20), nil
		}},
		{Name: "proxmox.cluster_resources", Run: func(ctx context.Context) (string, error) {
			rs, err := c.ClusterResources(ctx, "")
			if err != nil {
				return "", err
			}
			var qemu, lxc, storages int
			for _, r := range rs {
				switch r.Type {
				case "qemu":
					qemu++
				case "lxc":
					lxc++
				case "storage":
					storages++
				}
			}
			return fmt.Sprintf("%d qemu, %d lxc, %d storages in one call", qemu, lxc, storages), nil
		}},
		{Name: "proxmox.tasks", Run: func(ctx context.Context) (string, error) {
			_, total, err := c.Tasks(ctx, node, proxmox.TaskListOptions{Source: "all", Limit: 1})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("task list readable (%d tasks)", total), nil
		}},
	}
}

// TaskChecks are the reversible task round trip on a scratch guest:
// snapshot -> rollback -> delete snapshot, then a config write of a
// description marker that is verified and undone. Every step's task is
// waited on until its exit status says OK; every config write passes the
// digest it read, so a concurrent change is detected, not overwritten.
func TaskChecks(c *proxmox.Client, node string, vmid int) []Check {
	var (
		guest    proxmox.GuestRef
		snapName = "felhomselftest" + randomSuffix()
		orig     proxmox.GuestConfig
		hadDesc  bool
		marker   = "felhom-agent selftest marker " + randomSuffix()
	)
	return []Check{
		{Name: "task.find_guest", StopOnFail: true, Run: func(ctx context.Context) (string, error) {
			rs, err := c.ClusterResources(ctx, "vm")
			if err != nil {
				return "", err
			}
			for _, r := range rs {
				if r.VMID == vmid && r.GuestKind() != "" {
					if r.Node != "" && r.Node != node {
						return "", fmt.Errorf("guest %d is on node %s, not this node %s", vmid, r.Node, node)
					}
					if r.Lock != "" {
						return "", fmt.Errorf("guest %d is locked (%s)", vmid, r.Lock)
					}
					guest = proxmox.GuestRef{Node: node, Kind: r.GuestKind(), VMID: vmid}
					return fmt.Sprintf("%s %q (%s)", guest, r.Name, r.Status), nil
				}
			}
			return "", fmt.Errorf("guest %d not found on this cluster", vmid)
		}},
		{Name: "task.snapshot_create", StopOnFail: true, Run: func(ctx context.Context) (string, error) {
			res, err := c.CreateSnapshot(ctx, guest, snapName, "felhom-agent selftest", false)
			return taskDetail(res, err)
		}},
		{Name: "task.snapshot_listed", Run: func(ctx context.Context) (string, error) {
			snaps, err := c.Snapshots(ctx, guest)
			if err != nil {
				return "", err
			}
			for _, s := range snaps {
				if s.Name == snapName {
					return fmt.Sprintf("%s among %d snapshots", snapName, len(snaps)), nil
				}
			}
			return "", fmt.Errorf("snapshot %s missing from the list", snapName)
		}},
		{Name: "task.snapshot_rollback", Run: func(ctx context.Context) (string, error) {
			return taskDetail(c.RollbackSnapshot(ctx, guest, snapName))
		}},
		{Name: "task.snapshot_delete", Run: func(ctx context.Context) (string, error) {
			return taskDetail(c.DeleteSnapshot(ctx, guest, snapName, false))
		}},
		{Name: "task.config_read", StopOnFail: true, Run: func(ctx context.Context) (string, error) {
			var err error
			orig, err = c.GuestConfig(ctx, guest)
			if err != nil {
				return "", err
			}
			_, hadDesc = orig.Values["description"]
			return "digest " + shortDigest(orig.Digest), nil
		}},
		{Name: "task.config_write_marker", StopOnFail: true, Run: func(ctx context.Context) (string, error) {
			return taskDetail(c.SetGuestConfig(ctx, guest, proxmox.ConfigUpdate{
				Set:    map[string]string{"description": marker},
				Digest: orig.Digest,
			}))
		}},
		{Name: "task.config_verify_marker", Run: func(ctx context.Context) (string, error) {
			gc, err := c.GuestConfig(ctx, guest)
			if err != nil {
				return "", err
			}
			if gc.Description() != proxmox.NormalizeDescription(marker) {
				return "", fmt.Errorf("description is %q, want the marker", gc.Description())
			}
			if gc.Digest == orig.Digest {
				return "", errors.New("digest did not change after the write")
			}
			return "marker present, digest " + shortDigest(gc.Digest), nil
		}},
		{Name: "task.config_restore", Run: func(ctx context.Context) (string, error) {
			gc, err := c.GuestConfig(ctx, guest)
			if err != nil {
				return "", err
			}
			u := proxmox.ConfigUpdate{Digest: gc.Digest}
			if hadDesc {
				u.Set = map[string]string{"description": proxmox.NormalizeDescription(orig.Values["description"])}
			} else {
				u.Delete = []string{"description"}
			}
			return taskDetail(c.SetGuestConfig(ctx, guest, u))
		}},
		{Name: "task.config_verify_restored", Run: func(ctx context.Context) (string, error) {
			gc, err := c.GuestConfig(ctx, guest)
			if err != nil {
				return "", err
			}
			got, present := gc.Values["description"]
			switch {
			case hadDesc && proxmox.NormalizeDescription(got) != orig.Description():
				return "", fmt.Errorf("description is %q, want the original %q", proxmox.NormalizeDescription(got), orig.Description())
			case !hadDesc && present:
				return "", fmt.Errorf("description %q left behind", got)
			}
			return "original description restored", nil
		}},
	}
}

func taskDetail(res proxmox.MutateResult, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if res.Task == nil {
		return "synchronous, 2xx", nil
	}
	d := fmt.Sprintf("%s %s", res.Task.UPID.Type, res.Task.ExitStatus)
	if res.Task.Warnings > 0 {
		d += " (success with warnings)"
	}
	return d, nil
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func randomSuffix() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	}
	return hex.EncodeToString(b)
}
