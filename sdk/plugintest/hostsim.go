package plugintest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// simHost serves the core's host services to the plugin under test,
// backed by a pvesim server and its admin token, the way the core backs
// them with the real node. Scope enforcement sits in front of it
// (sdk.ScopeGuard); simHost records what got through.
type simHost struct {
	sim    *pvesim.Server
	client *http.Client
	token  string

	mu     sync.Mutex
	calls  []string // "METHOD /clean/path" that reached the simulator
	events []*pluginv1.EventRequest
}

func (h *simHost) ProxmoxCall(ctx context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error) {
	h.mu.Lock()
	h.calls = append(h.calls, req.GetMethod()+" "+req.GetPath())
	h.mu.Unlock()
	params := url.Values{}
	for _, p := range req.GetParams() {
		params[p.GetKey()] = append(params[p.GetKey()], p.GetValues()...)
	}
	status, reason, env, err := h.do(ctx, req.GetMethod(), req.GetPath(), params)
	if err != nil {
		return nil, err
	}
	resp := &pluginv1.CallResponse{Data: env.Data}
	if env.Total != nil {
		resp.HasTotal, resp.Total = true, *env.Total
	}
	if status >= 300 {
		msg := env.Message
		if msg == "" {
			msg = reason
		}
		resp.Data = nil
		resp.Error = &pluginv1.APIError{Status: int32(status), Reason: reason, Message: msg, Errors: env.Errors}
	}
	return resp, nil
}

type envelope struct {
	Data    json.RawMessage   `json:"data"`
	Total   *int64            `json:"total"`
	Errors  map[string]string `json:"errors"`
	Message string            `json:"message"`
}

func (h *simHost) do(ctx context.Context, method, path string, params url.Values) (int, string, envelope, error) {
	u := h.sim.URL() + "/api2/json" + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, "", envelope{}, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", "PVEAPIToken="+h.token)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, "", envelope{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, "", envelope{}, fmt.Errorf("read %s %s: %w", method, path, err)
	}
	var env envelope
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &env); err != nil && resp.StatusCode < 300 {
			return 0, "", envelope{}, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	return resp.StatusCode, reason, env, nil
}

// WaitTask polls the task's status like the core's waiter: until it
// stopped, then "OK" or "WARNINGS: n" is success.
func (h *simHost) WaitTask(ctx context.Context, upid string) (*pluginv1.WaitResponse, error) {
	parts := strings.Split(upid, ":")
	if len(parts) < 3 || parts[0] != "UPID" {
		return nil, fmt.Errorf("wait for task: %q is not a UPID", upid)
	}
	base := "/nodes/" + parts[1] + "/tasks/" + url.PathEscape(upid)
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		status, _, env, err := h.do(ctx, http.MethodGet, base+"/status", nil)
		if err != nil {
			return nil, fmt.Errorf("wait for task %s: %w", upid, err)
		}
		switch {
		case status == 400 && strings.Contains(env.Errors["upid"], "no such task"):
			// The task log does not exist yet; a real node says so briefly.
		case status >= 300:
			return nil, fmt.Errorf("wait for task %s: status %d %v", upid, status, env.Errors)
		default:
			var st struct {
				Status     string `json:"status"`
				ExitStatus string `json:"exitstatus"`
			}
			if err := json.Unmarshal(env.Data, &st); err != nil {
				return nil, fmt.Errorf("wait for task %s: decode status: %w", upid, err)
			}
			if st.Status == "stopped" {
				return h.finished(ctx, upid, base, st.ExitStatus, time.Since(start)), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for task %s: %w", upid, ctx.Err())
		case <-tick.C:
		}
	}
}

func (h *simHost) finished(ctx context.Context, upid, base, exit string, took time.Duration) *pluginv1.WaitResponse {
	resp := &pluginv1.WaitResponse{Upid: upid, ExitStatus: exit, DurationMs: took.Milliseconds()}
	if exit == "OK" {
		resp.Ok = true
	} else if n, ok := strings.CutPrefix(exit, "WARNINGS: "); ok {
		resp.Ok = true
		w, _ := strconv.Atoi(n)
		resp.Warnings = int32(w)
	}
	if status, _, env, err := h.do(ctx, http.MethodGet, base+"/log", url.Values{"limit": {"500"}}); err == nil && status < 300 {
		var lines []struct {
			T string `json:"t"`
		}
		if json.Unmarshal(env.Data, &lines) == nil {
			if len(lines) > 10 {
				lines = lines[len(lines)-10:]
			}
			for _, l := range lines {
				resp.LogTail = append(resp.LogTail, l.T)
			}
		}
	}
	return resp
}

func (h *simHost) Event(_ context.Context, req *pluginv1.EventRequest) error {
	h.mu.Lock()
	h.events = append(h.events, req)
	h.mu.Unlock()
	return nil
}

// takeCalls returns and forgets the API calls seen so far.
func (h *simHost) takeCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}
