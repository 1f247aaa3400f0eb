package pvestorage

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// CheckStatus is a selftest check's outcome.
type CheckStatus int

const (
	Pass CheckStatus = iota + 1
	Fail
	Skip
	NotApplicable
)

func (s CheckStatus) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case Skip:
		return "SKIP"
	case NotApplicable:
		return "N/A"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Check is one selftest check result.
type Check struct {
	Name       string
	Capability string
	Status     CheckStatus
	Detail     string
	Duration   time.Duration
}

// Scratch storage used by the task selftest. It is defined disabled and
// limited to this node: Proxmox only activates (mkdir, mount) an enabled
// storage, so defining and removing it changes one entry in storage.cfg
// and nothing on any file system.
const (
	ScratchID   = "felhom-selftest"
	ScratchPath = "/var/lib/felhom-agent/selftest-storage"
)

// ScratchSpec is the scratch storage the task selftest defines on node.
func ScratchSpec(node string) Spec {
	return Spec{ID: ScratchID, Type: "dir", Content: []string{"backup"}, Nodes: []string{node},
		Disable: true, Options: map[string]string{"path": ScratchPath}}
}

type checker struct {
	checks []Check
}

func (c *checker) run(name, capability string, f func() (CheckStatus, string)) CheckStatus {
	start := time.Now()
	st, detail := f()
	c.checks = append(c.checks, Check{Name: name, Capability: capability, Status: st, Detail: detail,
		Duration: time.Since(start)})
	return st
}

func failed(err error) (CheckStatus, string) { return Fail, err.Error() }

// SelfTestRead runs the checks that change nothing: the storage list is
// reachable, each active storage answers its status, and the content of
// one backup-capable storage can be listed.
func (s *Service) SelfTestRead(ctx context.Context) []Check {
	var c checker
	var list []Storage
	listOK := c.run("storage list reachable", "storage.list", func() (CheckStatus, string) {
		var err error
		if list, err = s.List(ctx, ListFilter{}); err != nil {
			return failed(err)
		}
		return Pass, fmt.Sprintf("%d storages on node %s", len(list), s.Node)
	}) == Pass
	if !listOK {
		c.run("active storages answer status", "storage.status", func() (CheckStatus, string) {
			return Skip, "the storage list failed"
		})
		c.run("backup storage content listable", "storage.content", func() (CheckStatus, string) {
			return Skip, "the storage list failed"
		})
		return c.checks
	}
	var active []Storage
	for _, st := range list {
		if st.Active {
			active = append(active, st)
		}
	}
	if len(active) == 0 {
		c.run("active storages answer status", "storage.status", func() (CheckStatus, string) {
			return Skip, "no storage is active on this node"
		})
	}
	for _, st := range active {
		c.run("status of storage "+st.ID, "storage.status", func() (CheckStatus, string) {
			got, err := s.Status(ctx, st.ID)
			switch {
			case err != nil:
				return failed(err)
			case !got.Active:
				return Fail, "listed as active but its status says inactive"
			case got.Type != st.Type:
				return Fail, fmt.Sprintf("listed as type %s but its status says %s", st.Type, got.Type)
			}
			return Pass, fmt.Sprintf("%s, %d of %d bytes used", got.Type, got.Used, got.Total)
		})
	}
	c.run("backup storage content listable", "storage.content", func() (CheckStatus, string) {
		for _, st := range active {
			if !st.Allows("backup") {
				continue
			}
			items, err := s.Content(ctx, st.ID, ContentFilter{Content: "backup"})
			if err != nil {
				return failed(err)
			}
			return Pass, fmt.Sprintf("%d backups on %s", len(items), st.ID)
		}
		return NotApplicable, "no active storage on this node allows backup content"
	})
	return c.checks
}

// SelfTestTask runs the read checks, then defines the scratch storage
// ([ScratchSpec]), updates it under its digest, checks that Proxmox refuses
// a stale digest, and removes it. The scratch storage is removed on every
// path once defined, even when ctx ends.
func (s *Service) SelfTestTask(ctx context.Context) []Check {
	var c checker
	c.checks = s.SelfTestRead(ctx)
	spec := ScratchSpec(s.Node)

	attempted := false // set once a POST may have created the scratch storage
	defined := c.run("define scratch storage "+ScratchID, "storage.define", func() (CheckStatus, string) {
		note, st, err := s.clearLeftover(ctx)
		if err != nil || st != Pass {
			if err != nil {
				return failed(err)
			}
			return st, note
		}
		attempted = true
		got, err := s.Define(ctx, spec, false, "")
		if err != nil {
			return failed(err)
		}
		if got.ID != ScratchID || got.Type != "dir" || got.Enabled {
			return Fail, fmt.Sprintf("defined storage reads back as %+v, want a disabled dir storage", got)
		}
		return Pass, strings.TrimSpace(note + " defined disabled dir storage at " + ScratchPath + " on node " + s.Node)
	}) == Pass
	if !attempted {
		return c.checks
	}
	var before Config
	c.run("update scratch storage under its digest", "storage.define", func() (CheckStatus, string) {
		if !defined {
			return Skip, "the scratch storage was not defined"
		}
		var err error
		if before, err = s.Config(ctx, ScratchID); err != nil {
			return failed(err)
		}
		upd := spec
		upd.Content = []string{"backup", "iso"}
		if _, err := s.Define(ctx, upd, true, before.Digest); err != nil {
			return failed(err)
		}
		after, err := s.Config(ctx, ScratchID)
		if err != nil {
			return failed(err)
		}
		if !equalSets(after.Content, upd.Content) {
			return Fail, fmt.Sprintf("content reads back as %v, want %v", after.Content, upd.Content)
		}
		if after.Digest == before.Digest {
			return Fail, "the digest did not change with the configuration"
		}
		return Pass, "content updated; digest changed"
	})
	c.run("stale digest refused", "storage.define", func() (CheckStatus, string) {
		if before.Digest == "" {
			return Skip, "no digest was read"
		}
		q := url.Values{"content": {"backup"}, "digest": {before.Digest}}
		_, err := s.API.Call(ctx, "PUT", "/storage/"+ScratchID, q)
		if err == nil {
			return Fail, "Proxmox accepted a write with a stale digest"
		}
		if err = classify(err, "update with stale digest"); CodeOf(err) != CodeConflict {
			return Fail, fmt.Sprintf("want a conflict, got: %v", err)
		}
		return Pass, "refused as a conflict"
	})
	// Remove even when ctx has ended: the scratch entry must not stay.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	c.run("remove scratch storage "+ScratchID, "storage.remove", func() (CheckStatus, string) {
		err := s.Remove(cctx, ScratchID)
		switch {
		case !defined && CodeOf(err) == CodeNotFound:
			return Skip, "the failed define left nothing to remove"
		case err != nil:
			return failed(err)
		}
		if _, err := s.Config(cctx, ScratchID); CodeOf(err) != CodeNotFound {
			return Fail, fmt.Sprintf("still readable after removal (%v)", err)
		}
		return Pass, "removed; no longer in the storage configuration"
	})
	return c.checks
}

// clearLeftover makes sure the scratch ID is free. A scratch storage left
// by an interrupted run on this node is removed; any other storage with
// that ID is left alone.
func (s *Service) clearLeftover(ctx context.Context) (string, CheckStatus, error) {
	cur, err := s.Config(ctx, ScratchID)
	switch {
	case CodeOf(err) == CodeNotFound:
		return "", Pass, nil
	case err != nil:
		return "", Fail, err
	}
	if cur.Type == "dir" && cur.Options["path"] == ScratchPath && cur.Disable {
		if !equalSets(cur.Nodes, []string{s.Node}) {
			return fmt.Sprintf("storage %s is in use by the selftest of node(s) %s", ScratchID,
				strings.Join(cur.Nodes, ",")), Skip, nil
		}
		if err := s.Remove(ctx, ScratchID); err != nil {
			return "", Fail, fmt.Errorf("remove leftover scratch storage: %w", err)
		}
		return "removed a leftover from an interrupted selftest;", Pass, nil
	}
	return fmt.Sprintf("a storage named %s exists and is not a felhom scratch storage; not touching it", ScratchID), Fail, nil
}
