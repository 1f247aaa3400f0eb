package pvesim

import (
	"fmt"
	"strconv"
	"strings"
)

// handlePower serves status/{start,stop,shutdown,reboot}.
func (s *Server) handlePower(kind guestKind, op string) handlerFunc {
	return func(q *request) (any, error) {
		vmid, _ := strconv.Atoi(q.str("vmid"))
		if q.bool("skiplock") && q.auth.authID != rootUser {
			return nil, paramError1("skiplock", "Only root may use this option.")
		}
		skiplock := q.bool("skiplock")
		s.mu.Lock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		var running bool
		if err == nil {
			running = g.running
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		// Checks the API does before forking a worker.
		switch {
		case kind == kindLXC && op == "start" && running:
			return nil, die("CT %d already running", vmid)
		case kind == kindLXC && op != "start" && !running:
			return nil, die("CT %d not running", vmid)
		case kind == kindQemu && op == "reboot" && !running:
			return nil, die("VM %d not running", vmid)
		}
		if kind == kindLXC {
			// pve-container takes the config lock around forking the worker.
			unlock, lerr := s.lockGuest(q.ctx, kind, vmid)
			if lerr != nil {
				return nil, lerr
			}
			unlock()
		}
		return s.startGuestTask(q, kind, vmid, taskSpec{
			typ: kind.taskType(op), id: strconv.Itoa(vmid),
			run: func(tc *taskCtx) error {
				return s.withGuest(tc, kind, vmid, func(g *guest) error {
					switch op {
					case "start":
						g.setRunning(true)
					case "stop", "shutdown":
						g.setRunning(false)
					case "reboot":
						g.setRunning(true)
					}
					return nil
				})
			},
		}, func(tc *taskCtx, g *guest) error {
			if !skiplock {
				if err := g.checkLock(); err != nil {
					return taskErr(err)
				}
			}
			if kind == kindQemu && op == "start" && g.running {
				return fmt.Errorf("VM %d already running", vmid)
			}
			if kind == kindLXC && op == "start" && g.running {
				return fmt.Errorf("CT %d already running", vmid)
			}
			return nil
		})
	}
}

func (s *Server) handleDestroy(kind guestKind) handlerFunc {
	return func(q *request) (any, error) {
		vmid, _ := strconv.Atoi(q.str("vmid"))
		if q.bool("skiplock") && q.auth.authID != rootUser {
			return nil, paramError1("skiplock", "Only root may use this option.")
		}
		force := q.bool("force")
		skiplock := q.bool("skiplock")
		s.mu.Lock()
		g, err := s.loadGuest(kind, q.str("vmid"))
		if err == nil {
			switch {
			case g.conf["protection"] == "1":
				err = die("can't remove %s %d - protection mode enabled", kind.word(), vmid)
			case kind == kindQemu && g.running:
				err = die("VM %d is running - destroy failed", vmid)
			case kind == kindLXC && g.running && !force:
				err = die("unable to destroy CT %d - container is running", vmid)
			}
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return s.startGuestTask(q, kind, vmid, taskSpec{
			typ: kind.taskType("destroy"), id: strconv.Itoa(vmid),
			run: func(tc *taskCtx) error {
				return s.withGuest(tc, kind, vmid, func(g *guest) error {
					if g.running {
						g.setRunning(false)
					}
					for _, v := range s.removeGuestVolumes(vmid) {
						if st := s.storages[strings.SplitN(v, ":", 2)[0]]; st != nil && (st.typ == "lvmthin" || st.typ == "lvm") {
							tc.logLocked("  Logical volume \"%s\" successfully removed.", strings.SplitN(v, ":", 2)[1])
						}
					}
					delete(s.guests, vmid)
					return nil
				})
			},
		}, func(tc *taskCtx, g *guest) error {
			if !skiplock {
				if err := g.checkLock(); err != nil {
					return taskErr(err)
				}
			}
			return nil
		})
	}
}
