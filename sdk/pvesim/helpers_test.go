package pvesim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkLeaks fails the test if it leaves goroutines behind. Call it first so
// its cleanup runs after the server's and client's.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	})
}

// harness is a started simulator plus a client trusting it.
type harness struct {
	t   *testing.T
	s   *Server
	c   *http.Client
	tok string // default token
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	checkLeaks(t)
	s := Start(t, opts)
	return &harness{t: t, s: s, c: s.Client(t), tok: s.AdminToken()}
}

// apiResp is a decoded API answer.
type apiResp struct {
	code    int
	status  string // "400 Parameter verification failed."
	reason  string
	header  http.Header
	body    []byte
	data    json.RawMessage
	total   *int
	message *string
	errors  map[string]string
}

// do sends a request with the given token ("" for none). GET/DELETE
// parameters go in the query string, POST/PUT ones in a form body.
func (h *harness) do(token, method, path string, params url.Values) *apiResp {
	h.t.Helper()
	u := h.s.URL() + apiBase + path
	var body io.Reader
	if params != nil {
		if method == http.MethodGet || method == http.MethodDelete {
			u += "?" + params.Encode()
		} else {
			body = strings.NewReader(params.Encode())
		}
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		h.t.Fatalf("build request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set("Authorization", "PVEAPIToken="+token)
	}
	return h.send(req)
}

// doJSON sends a JSON body.
func (h *harness) doJSON(token, method, path string, body any) *apiResp {
	h.t.Helper()
	buf, err := json.Marshal(body)
	if err != nil {
		h.t.Fatalf("marshal body: %v", err)
	}
	req, err := http.NewRequest(method, h.s.URL()+apiBase+path, bytes.NewReader(buf))
	if err != nil {
		h.t.Fatalf("build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "PVEAPIToken="+token)
	return h.send(req)
}

func (h *harness) send(req *http.Request) *apiResp {
	h.t.Helper()
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	r := &apiResp{code: resp.StatusCode, status: resp.Status, header: resp.Header, body: b}
	r.reason = strings.TrimSpace(strings.TrimPrefix(resp.Status, http.StatusText(0)))
	if i := strings.IndexByte(resp.Status, ' '); i >= 0 {
		r.reason = resp.Status[i+1:]
	}
	if len(b) > 0 {
		var env struct {
			Data    json.RawMessage   `json:"data"`
			Total   *int              `json:"total"`
			Message *string           `json:"message"`
			Errors  map[string]string `json:"errors"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			h.t.Fatalf("%s %s: body is not JSON: %v: %q", req.Method, req.URL.Path, err, b)
		}
		r.data, r.total, r.message, r.errors = env.Data, env.Total, env.Message, env.Errors
	}
	return r
}

// get/post/put/del use the harness token.
func (h *harness) get(path string, params url.Values) *apiResp {
	h.t.Helper()
	return h.do(h.tok, http.MethodGet, path, params)
}
func (h *harness) post(path string, params url.Values) *apiResp {
	h.t.Helper()
	return h.do(h.tok, http.MethodPost, path, params)
}
func (h *harness) put(path string, params url.Values) *apiResp {
	h.t.Helper()
	return h.do(h.tok, http.MethodPut, path, params)
}
func (h *harness) del(path string, params url.Values) *apiResp {
	h.t.Helper()
	return h.do(h.tok, http.MethodDelete, path, params)
}

// ok asserts a 200 answer and decodes data into v (if non-nil).
func (r *apiResp) ok(t *testing.T, v any) *apiResp {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("want 200, got %q body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if v != nil {
		// Start from zero: json.Unmarshal merges into existing maps.
		rv := reflect.ValueOf(v).Elem()
		rv.Set(reflect.Zero(rv.Type()))
		if err := json.Unmarshal(r.data, v); err != nil {
			t.Fatalf("decode data %s: %v", r.data, err)
		}
	}
	return r
}

// fails asserts an error answer with code and the given reason phrase.
func (r *apiResp) fails(t *testing.T, code int, reason string) *apiResp {
	t.Helper()
	if r.code != code || r.reason != reason {
		t.Fatalf("want %d %q, got %q body %s", code, reason, r.status, r.body)
	}
	return r
}

// upid decodes a UPID answer.
func (r *apiResp) upid(t *testing.T) string {
	t.Helper()
	var s string
	r.ok(t, &s)
	if _, ok := decodeUPID(s); !ok {
		t.Fatalf("not a UPID: %q", s)
	}
	return s
}

// m builds url.Values from pairs.
func m(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

type taskStatus struct {
	UPID       string `json:"upid"`
	Node       string `json:"node"`
	PID        int64  `json:"pid"`
	PStart     int64  `json:"pstart"`
	StartTime  int64  `json:"starttime"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	User       string `json:"user"`
	TokenID    string `json:"tokenid"`
	Status     string `json:"status"`
	ExitStatus string `json:"exitstatus"`
}

// wait polls a task until it stops and returns its final status.
func (h *harness) wait(upid string) taskStatus {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := h.get("/nodes/"+h.s.Node()+"/tasks/"+url.PathEscape(upid)+"/status", nil)
		if r.code == http.StatusOK {
			var st taskStatus
			r.ok(h.t, &st)
			if st.Status == "stopped" {
				return st
			}
		} else if r.code != http.StatusBadRequest {
			h.t.Fatalf("task status: %s %s", r.status, r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("task %s did not finish", upid)
	return taskStatus{}
}

// finish completes a running task now, whatever its duration, so tests can
// look at a task's intermediate state without racing its timer.
func (h *harness) finish(upid string) {
	h.t.Helper()
	h.s.finishEarly(upid)
}

// taskLog returns all log lines of a task.
func (h *harness) taskLog(upid string) []string {
	h.t.Helper()
	var lines []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	h.get("/nodes/"+h.s.Node()+"/tasks/"+url.PathEscape(upid)+"/log", m("limit", "0")).ok(h.t, &lines)
	var out []string
	for _, l := range lines {
		out = append(out, l.T)
	}
	return out
}

// config reads a guest config.
func (h *harness) config(kind string, vmid string) map[string]any {
	h.t.Helper()
	var c map[string]any
	h.get("/nodes/"+h.s.Node()+"/"+kind+"/"+vmid+"/config", nil).ok(h.t, &c)
	return c
}
