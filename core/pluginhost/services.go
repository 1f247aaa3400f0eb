package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime/debug"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// hostServices is what the core serves one plugin over the broker: the
// Proxmox API proxy (behind sdk.ScopeGuard, which refuses undeclared
// paths), the task waiter, and HostLog events into the audit ring. The
// API token never leaves the APIBackend.
type hostServices struct {
	h      *Host
	plugin string
}

var _ sdk.HostServices = (*hostServices)(nil)

// Bounds on what one event may store.
const (
	maxEventKind    = 64
	maxEventMessage = 1024
	maxEventFields  = 32
	maxEventValue   = 256
)

func (s *hostServices) ProxmoxCall(ctx context.Context, req *pluginv1.CallRequest) (resp *pluginv1.CallResponse, err error) {
	defer s.recover("ProxmoxCall", &err)
	if s.h.o.API == nil {
		return nil, status.Error(codes.FailedPrecondition, "felhom-agent has no Proxmox API configured")
	}
	params := url.Values{}
	for _, p := range req.GetParams() {
		params[p.GetKey()] = append(params[p.GetKey()], p.GetValues()...)
	}
	data, total, err := s.h.o.API.Raw(ctx, req.GetMethod(), req.GetPath(), params)
	var ae *APIError
	if errors.As(err, &ae) {
		return &pluginv1.CallResponse{Error: &pluginv1.APIError{
			Status: int32(ae.Status), Reason: ae.Reason, Message: ae.Message, Errors: ae.Errors,
		}}, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Unavailable, "proxmox API %s %s: %v", req.GetMethod(), req.GetPath(), err)
	}
	resp = &pluginv1.CallResponse{Data: data}
	if total != nil {
		resp.HasTotal, resp.Total = true, int64(*total)
	}
	return resp, nil
}

func (s *hostServices) WaitTask(ctx context.Context, upid string) (resp *pluginv1.WaitResponse, err error) {
	defer s.recover("WaitTask", &err)
	if s.h.o.Waiter == nil {
		return nil, status.Error(codes.FailedPrecondition, "felhom-agent has no Proxmox task waiter configured")
	}
	r, err := s.h.o.Waiter.Wait(ctx, upid)
	if err != nil && r.UPID == "" {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Unavailable, "wait for task %s: %v", upid, err)
	}
	return &pluginv1.WaitResponse{
		Upid: r.UPID, ExitStatus: r.ExitStatus, Ok: r.OK, Warnings: int32(r.Warnings),
		LogTail: r.LogTail, DurationMs: r.Duration.Milliseconds(),
	}, nil
}

func (s *hostServices) Event(ctx context.Context, req *pluginv1.EventRequest) (err error) {
	defer s.recover("Event", &err)
	ev := AuditEvent{
		Time: time.Now(), Plugin: s.plugin,
		Kind: truncate(req.GetKind(), maxEventKind), Message: truncate(req.GetMessage(), maxEventMessage),
	}
	if len(req.GetFields()) > 0 {
		ev.Fields = make(map[string]string, min(len(req.GetFields()), maxEventFields))
		for k, v := range req.GetFields() {
			if len(ev.Fields) == maxEventFields {
				break
			}
			ev.Fields[truncate(k, maxEventKind)] = truncate(v, maxEventValue)
		}
	}
	s.h.audit.add(ev)
	args := []any{"plugin", s.plugin, "kind", ev.Kind}
	for k, v := range ev.Fields {
		args = append(args, "field."+k, v)
	}
	s.h.log.Info("plugin event: "+ev.Message, args...)
	return nil
}

// recover keeps a panic in the API backend or the waiter (our code, called
// on a gRPC server goroutine) from taking the agent down.
func (s *hostServices) recover(op string, err *error) {
	if r := recover(); r != nil {
		s.h.log.Error("host service panicked", "plugin", s.plugin, "op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "%s failed inside felhom-agent", op)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// deniedLogger logs and audits the scope guard's refusals: a plugin asking
// for a path it did not declare is worth an operator's attention.
type deniedLogger struct {
	sdk.HostServices
	h      *Host
	plugin string
}

func (d *deniedLogger) ProxmoxCall(ctx context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error) {
	resp, err := d.HostServices.ProxmoxCall(ctx, req)
	if status.Code(err) == codes.PermissionDenied {
		d.h.log.Warn("plugin API call refused: not in its declared scopes", "plugin", d.plugin, "method", req.GetMethod(), "path", req.GetPath())
		d.h.audit.add(AuditEvent{Time: time.Now(), Plugin: d.plugin, Kind: "api.denied",
			Message: status.Convert(err).Message(), Fields: map[string]string{"method": truncate(req.GetMethod(), 16), "path": truncate(req.GetPath(), maxEventValue)}})
	}
	return resp, err
}
