package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// Host is the core as a plugin sees it: the scoped Proxmox API proxy, the
// task waiter, the audit log and facts about this host. It is safe for
// concurrent use and valid for the life of the process.
type Host interface {
	// API calls Proxmox through the core. The core holds the token and
	// refuses paths outside the plugin's declared API scopes
	// (errors.Is(err, ErrNotInScope)).
	API() API
	// WaitTask waits, through the core's task waiter, for a Proxmox task
	// (UPID) to end. A task that ends without "OK" or "WARNINGS: n" returns
	// the result and a *TaskError.
	WaitTask(ctx context.Context, upid string) (*TaskResult, error)
	// Event records a structured audit event in the core's log.
	Event(ctx context.Context, kind, message string, fields map[string]string) error
	// Node is the Proxmox node this agent runs on.
	Node() string
	// HostID is the agent's host ID.
	HostID() string
	// NegotiatedMinor is min(core protocol minor, plugin protocol minor).
	NegotiatedMinor() uint32
	// SetState reports a capability's state (Notifier).
	Notifier
}

// API is the core's Proxmox API proxy. Paths are below /api2/json, e.g.
// "/nodes/pve/qemu". Proxmox errors come back as *APIError.
type API interface {
	Get(ctx context.Context, path string, params url.Values) (json.RawMessage, error)
	Post(ctx context.Context, path string, params url.Values) (json.RawMessage, error)
	Put(ctx context.Context, path string, params url.Values) (json.RawMessage, error)
	Delete(ctx context.Context, path string, params url.Values) (json.RawMessage, error)
	// Call is the general form; it also returns the "total" of list calls.
	Call(ctx context.Context, method, path string, params url.Values) (*APIResponse, error)
}

// APIResponse is a successful API answer.
type APIResponse struct {
	// Data is the raw JSON of the response's "data" member.
	Data     json.RawMessage
	Total    int64
	HasTotal bool
}

// TaskResult is how a Proxmox task ended.
type TaskResult struct {
	UPID       string
	ExitStatus string
	// OK is true for "OK" and "WARNINGS: n".
	OK       bool
	Warnings int
	LogTail  []string
	Duration time.Duration
}

// hostClient implements Host over the broker connection to the core.
type hostClient struct {
	plugin string
	node   string
	hostID string
	minor  uint32
	states *stateTable

	mu    sync.Mutex
	conn  *grpc.ClientConn
	api   pluginv1.ProxmoxAPIServiceClient
	tasks pluginv1.TaskWaiterServiceClient
	logs  pluginv1.HostLogServiceClient
}

var _ Host = (*hostClient)(nil)

func (h *hostClient) setConn(conn *grpc.ClientConn) {
	h.conn = conn
	h.api = pluginv1.NewProxmoxAPIServiceClient(conn)
	h.tasks = pluginv1.NewTaskWaiterServiceClient(conn)
	h.logs = pluginv1.NewHostLogServiceClient(conn)
}

func (h *hostClient) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		_ = h.conn.Close()
	}
}

func (h *hostClient) Node() string            { return h.node }
func (h *hostClient) HostID() string          { return h.hostID }
func (h *hostClient) NegotiatedMinor() uint32 { return h.minor }
func (h *hostClient) SetState(capability string, s State, d string) {
	h.states.SetState(capability, s, d)
}
func (h *hostClient) API() API { return hostAPI{h} }

func (h *hostClient) WaitTask(ctx context.Context, upid string) (*TaskResult, error) {
	if h.tasks == nil {
		return nil, ErrNoHostServices
	}
	resp, err := h.tasks.Wait(ctx, &pluginv1.WaitRequest{Upid: upid})
	if err != nil {
		return nil, fmt.Errorf("wait for task %s: %w", upid, fromHostStatus(err))
	}
	res := &TaskResult{
		UPID: resp.GetUpid(), ExitStatus: resp.GetExitStatus(), OK: resp.GetOk(),
		Warnings: int(resp.GetWarnings()), LogTail: resp.GetLogTail(),
		Duration: time.Duration(resp.GetDurationMs()) * time.Millisecond,
	}
	if res.UPID == "" {
		res.UPID = upid
	}
	if !res.OK {
		return res, &TaskError{UPID: res.UPID, ExitStatus: res.ExitStatus, LogTail: res.LogTail}
	}
	return res, nil
}

func (h *hostClient) Event(ctx context.Context, kind, message string, fields map[string]string) error {
	if h.logs == nil {
		return ErrNoHostServices
	}
	if _, err := h.logs.Event(ctx, &pluginv1.EventRequest{Kind: kind, Message: message, Fields: fields}); err != nil {
		return fmt.Errorf("send event %q: %w", kind, fromHostStatus(err))
	}
	return nil
}

type hostAPI struct{ h *hostClient }

func (a hostAPI) Get(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	return a.data(ctx, "GET", path, params)
}

func (a hostAPI) Post(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	return a.data(ctx, "POST", path, params)
}

func (a hostAPI) Put(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	return a.data(ctx, "PUT", path, params)
}

func (a hostAPI) Delete(ctx context.Context, path string, params url.Values) (json.RawMessage, error) {
	return a.data(ctx, "DELETE", path, params)
}

func (a hostAPI) data(ctx context.Context, method, path string, params url.Values) (json.RawMessage, error) {
	r, err := a.Call(ctx, method, path, params)
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

func (a hostAPI) Call(ctx context.Context, method, path string, params url.Values) (*APIResponse, error) {
	if a.h.api == nil {
		return nil, ErrNoHostServices
	}
	req := &pluginv1.CallRequest{Method: method, Path: path}
	if len(params) > 0 {
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			req.Params = append(req.Params, &pluginv1.APIParam{Key: k, Values: params[k]})
		}
	}
	resp, err := a.h.api.Call(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("proxmox %s %s: %w", method, path, fromHostStatus(err))
	}
	if e := resp.GetError(); e != nil {
		return nil, &APIError{Method: method, Path: path, Status: int(e.GetStatus()), Reason: e.GetReason(),
			Message: e.GetMessage(), Errors: e.GetErrors()}
	}
	return &APIResponse{Data: resp.GetData(), Total: resp.GetTotal(), HasTotal: resp.GetHasTotal()}, nil
}

// fromHostStatus maps a host-service gRPC error for plugin code.
func fromHostStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return fmt.Errorf("%w: %s", ErrNotInScope, st.Message())
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	case codes.Unavailable:
		return Errorf(CodeUnavailable, "", "core host services unavailable: %s", st.Message())
	}
	return fmt.Errorf("%s: %s", strings.ToLower(st.Code().String()), st.Message())
}
