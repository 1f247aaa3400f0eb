package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewValidatesConfig(t *testing.T) {
	good := Config{
		BaseURL:     "https://pve.example:8006",
		Node:        "pve",
		Token:       "root@pam!agent=6c3f3f4e-0b7c-4b4e-9b0e-1a2b3c4d5e6f",
		Fingerprint: strings.Repeat("AB:", 31) + "AB",
	}
	if _, err := New(good); err != nil {
		t.Fatalf("New(good) = %v", err)
	}
	tests := []struct {
		name   string
		mod    func(*Config)
		errHas string
	}{
		{"http scheme", func(c *Config) { c.BaseURL = "http://pve:8006" }, "base URL \"http://pve:8006\": scheme must be https"},
		{"no host", func(c *Config) { c.BaseURL = "https://" }, "base URL \"https://\": no host"},
		{"credentials in URL", func(c *Config) { c.BaseURL = "https://u:p@pve:8006" }, "base URL: must not contain credentials"},
		{"other path", func(c *Config) { c.BaseURL = "https://pve:8006/foo" }, "unexpected path \"/foo\""},
		{"bad node", func(c *Config) { c.Node = "-pve" }, "node \"-pve\""},
		{"empty node", func(c *Config) { c.Node = "" }, "node \"\""},
		{"bad token", func(c *Config) { c.Token = "root@pam:secret" }, "token: no '='"},
		{"no fingerprint", func(c *Config) { c.Fingerprint = "" }, "fingerprint: empty"},
		{"bad fingerprint", func(c *Config) { c.Fingerprint = "AB:CD" }, "fingerprint: has 2 colon-separated groups"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
	// The /api2/json suffix is accepted and not doubled.
	cfg := good
	cfg.BaseURL = "https://pve.example:8006/api2/json/"
	c, err := New(cfg)
	if err != nil || c.baseURL != "https://pve.example:8006" {
		t.Fatalf("New with /api2/json suffix: base %q, %v", c.baseURL, err)
	}
}

func TestDoSendsParamsLikePVEExpects(t *testing.T) {
	f := newFakePVE(t)
	type seen struct {
		method, query, ctype, auth string
		form                       url.Values
	}
	got := make(chan seen, 4)
	record := func(w http.ResponseWriter, r *http.Request) {
		// r.Form merges query and body; PostForm has the body alone.
		got <- seen{r.Method, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.PostForm}
		pveData(w, nil)
	}
	f.handle("GET /nodes/pve/qemu/100/config", record)
	f.handle("POST /nodes/pve/qemu/100/config", record)
	f.handle("DELETE /nodes/pve/qemu/100/snapshot/s1", record)
	c := f.client(t)
	ctx := context.Background()

	if err := c.Do(ctx, "GET", "/nodes/pve/qemu/100/config", map[string]any{"current": true, "snapshot": "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.query != "current=1&snapshot=s1" || len(s.form) != 0 {
		t.Errorf("GET: query %q body %v; want params in the query only", s.query, s.form)
	}
	if s.auth != "PVEAPIToken="+f.token {
		t.Errorf("Authorization = %q", s.auth)
	}

	if err := c.Do(ctx, "POST", "/nodes/pve/qemu/100/config", map[string]any{"memory": 2048, "onboot": false, "tags": []string{"a", "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	s = <-got
	if s.query != "" || s.form.Get("memory") != "2048" || s.form.Get("onboot") != "0" || len(s.form["tags"]) != 2 {
		t.Errorf("POST: query %q body %v; want params form-encoded in the body", s.query, s.form)
	}
	if s.ctype != "application/x-www-form-urlencoded" {
		t.Errorf("POST Content-Type = %q", s.ctype)
	}

	if err := c.Do(ctx, "DELETE", "/nodes/pve/qemu/100/snapshot/s1", url.Values{"force": {"1"}}, nil); err != nil {
		t.Fatal(err)
	}
	// PVE answers a body on DELETE with 501, so params go in the query.
	if s = <-got; s.query != "force=1" || len(s.form) != 0 {
		t.Errorf("DELETE: query %q body %v", s.query, s.form)
	}

	if err := c.Do(ctx, "GET", "/x", map[string]any{"bad": struct{}{}}, nil); err == nil || !strings.Contains(err.Error(), `param "bad"`) {
		t.Errorf("unsupported param type: %v", err)
	}
	for _, p := range []string{"nodes/pve", "/a/../b", "/a/%2e%2E/b", "/a?x=1", "/a b", "/a/%zz"} {
		if err := c.Do(ctx, "GET", p, nil, nil); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	if err := c.Do(ctx, "PATCH", "/x", nil, nil); err == nil || !strings.Contains(err.Error(), "method not supported") {
		t.Errorf("PATCH: %v", err)
	}
}

func TestRawReturnsDataAndTotal(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /nodes/pve/tasks", func(w http.ResponseWriter, r *http.Request) {
		pveData(w, []map[string]any{{"upid": "x"}}, 37)
	})
	f.handle("PUT /nodes/pve/lxc/100/config", func(w http.ResponseWriter, r *http.Request) { pveData(w, nil) })
	c := f.client(t)
	data, total, err := c.Raw(context.Background(), "GET", "/nodes/pve/tasks", nil)
	if err != nil {
		t.Fatal(err)
	}
	if total == nil || *total != 37 || string(data) != `[{"upid":"x"}]` {
		t.Fatalf("Raw = %s, total %v", data, total)
	}
	data, total, err = c.Raw(context.Background(), "PUT", "/nodes/pve/lxc/100/config", url.Values{"cores": {"2"}})
	if err != nil || total != nil || string(data) != "null" {
		t.Fatalf("Raw PUT = %s, %v, %v", data, total, err)
	}
}

// pveErrorCase is a response PVE really gives, and what it must map to.
type pveErrorCase struct {
	name   string
	status int
	reason string
	errs   map[string]string
	class  error
	check  func(t *testing.T, err error)
}

var pveErrorCases = []pveErrorCase{
	{
		name: "permission", status: 403, reason: "Permission check failed (/vms/100, VM.Audit)", class: ErrPermission,
		check: func(t *testing.T, err error) {
			var pe *PermissionError
			if !errors.As(err, &pe) || pe.Path != "/vms/100" || len(pe.Privileges) != 1 || pe.Privileges[0] != "VM.Audit" || pe.AnyOf {
				t.Errorf("PermissionError = %+v", pe)
			}
		},
	},
	{
		name: "permission any", status: 403, reason: "Permission check failed (/vms/100, VM.Snapshot|VM.Snapshot.Rollback)", class: ErrPermission,
		check: func(t *testing.T, err error) {
			var pe *PermissionError
			if !errors.As(err, &pe) || pe.Path != "/vms/100" || !pe.AnyOf ||
				strings.Join(pe.Privileges, ",") != "VM.Snapshot,VM.Snapshot.Rollback" {
				t.Errorf("PermissionError = %+v", pe)
			}
		},
	},
	{
		name: "permission bare", status: 403, reason: "Permission check failed", class: ErrPermission,
		check: func(t *testing.T, err error) {
			var pe *PermissionError
			if !errors.As(err, &pe) || pe.Path != "" || pe.Privileges != nil {
				t.Errorf("PermissionError = %+v", pe)
			}
		},
	},
	{
		name: "permission root only", status: 403,
		reason: "Permission check failed (changing feature flags for privileged container is only allowed for root@pam)", class: ErrPermission,
		check: func(t *testing.T, err error) {
			var pe *PermissionError
			if !errors.As(err, &pe) || pe.Path != "" || !strings.Contains(pe.Detail, "only allowed for root@pam") {
				t.Errorf("PermissionError = %+v", pe)
			}
		},
	},
	{
		name: "params", status: 400, reason: "Parameter verification failed.", class: ErrInvalidParams,
		errs: map[string]string{"vmid": "value must have a minimum value of 100", "foo": "property is not defined in schema and the schema does not allow additional properties"},
		check: func(t *testing.T, err error) {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Errors["vmid"] != "value must have a minimum value of 100" || len(pe.Errors) != 2 {
				t.Errorf("ParamError = %+v", pe)
			}
			if !strings.Contains(err.Error(), "vmid: value must have a minimum value of 100") {
				t.Errorf("error text %q lacks the parameter message", err)
			}
		},
	},
	{name: "config missing", status: 500, reason: "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist", class: ErrNotFound},
	{name: "no such", status: 500, reason: "no such logical volume pve/vm-100-disk-0", class: ErrNotFound},
	{name: "404", status: 404, reason: "Not Found", class: ErrNotFound},
	{name: "exists", status: 500, reason: "unable to create VM 100 - VM 100 already exists on node 'pve'", class: ErrAlreadyExists},
	{name: "not implemented", status: 501, reason: "Method 'POST /nodes/pve/lxc/100/config' not implemented", class: ErrNotImplemented},
	{
		name: "lock timeout", status: 500, reason: "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", class: ErrLockTimeout,
		check: func(t *testing.T, err error) {
			var le *LockTimeoutError
			if !errors.As(err, &le) || le.File != "/var/lock/qemu-server/lock-100.conf" {
				t.Errorf("LockTimeoutError = %+v", le)
			}
		},
	},
	{name: "digest", status: 500, reason: "detected modified configuration - file changed by other user? Try again.", class: ErrConfigChanged},
	{name: "595", status: 595, reason: "Connection refused", class: ErrUnreachable},
	{name: "596", status: 596, reason: "Connection timed out", class: ErrUnreachable},
	{name: "597", status: 597, reason: "Broken pipe", class: ErrUnreachable},
	{name: "599", status: 599, reason: "Too many redirections", class: ErrUnreachable},
	{name: "auth", status: 401, reason: "authentication failure", class: ErrAuth},
	{name: "server", status: 500, reason: "VM 100 is running - destroy failed", class: ErrServer},
}

func TestErrorsAreTyped(t *testing.T) {
	f := newFakePVE(t)
	c := f.client(t, func(cfg *Config) { cfg.Retry.MaxAttempts = 1 })
	all := []error{ErrAuth, ErrPermission, ErrInvalidParams, ErrNotFound, ErrAlreadyExists, ErrNotImplemented,
		ErrLockTimeout, ErrConfigChanged, ErrUnreachable, ErrServer}
	for _, tc := range pveErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/errors/" + strings.ReplaceAll(tc.name, " ", "-")
			f.handle("POST "+path, func(w http.ResponseWriter, r *http.Request) {
				pveError(w, tc.status, tc.reason, tc.errs)
			})
			err := c.Do(context.Background(), "POST", path, nil, nil)
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if apiErr.Status != tc.status || apiErr.Reason != tc.reason || apiErr.Method != "POST" || apiErr.Path != path {
				t.Errorf("APIError = %+v", apiErr)
			}
			if apiErr.Message != tc.reason {
				t.Errorf("Message = %q, want the body message %q", apiErr.Message, tc.reason)
			}
			for _, class := range all {
				if errors.Is(err, class) != (class == tc.class) {
					t.Errorf("errors.Is(err, %v) = %v", class, !(class == tc.class))
				}
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error text %q lacks the server's text", err)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
		})
	}
}

func TestErrorFallsBackToBodyMessage(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /cluster/resources", func(w http.ResponseWriter, r *http.Request) {
		// A multi-line text makes pveproxy send a bare status line.
		writePVE(w, 500, "", map[string]any{"data": nil, "message": "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout\nmore\n"})
	})
	c := f.client(t, func(cfg *Config) { cfg.Retry.MaxAttempts = 1 })
	err := c.Do(context.Background(), "GET", "/cluster/resources", nil, nil)
	var le *LockTimeoutError
	if !errors.As(err, &le) || le.File != "/run/lock/lxc/pve-config-105.lock" {
		t.Fatalf("error = %v; want the lock timeout read from the body message", err)
	}
}

func TestGetRetriesTransientFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		reason string
	}{
		{"503", 503, "Service Unavailable"},
		{"596", 596, "Connection timed out"},
		{"lock timeout", 500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePVE(t)
			var calls atomic.Int32
			f.handle("GET /nodes/pve/status", func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= 2 {
					pveError(w, tc.status, tc.reason, nil)
					return
				}
				pveData(w, map[string]any{"uptime": 42, "cpu": "0.25", "loadavg": []string{"0.5", "0.4", "0.3"}})
			})
			c := f.client(t)
			st, err := c.NodeStatus(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			if calls.Load() != 3 || st.Uptime != 42 || st.CPU != 0.25 || len(st.LoadAvg) != 3 {
				t.Fatalf("calls %d, status %+v", calls.Load(), st)
			}
		})
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFakePVE(t)
	var calls atomic.Int32
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		pveError(w, 502, "Bad Gateway", nil)
	})
	c := f.client(t, func(cfg *Config) { cfg.Retry.MaxAttempts = 3 })
	_, err := c.Version(context.Background())
	if !errors.Is(err, ErrServer) || calls.Load() != 3 {
		t.Fatalf("err %v after %d calls; want 502 after 3", err, calls.Load())
	}
}

func TestNoRetryForMutationsOrFinalErrors(t *testing.T) {
	f := newFakePVE(t)
	var posts, gets atomic.Int32
	f.handle("POST /nodes/pve/qemu/100/status/start", func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		pveError(w, 503, "Service Unavailable", nil)
	})
	f.handle("GET /nodes/pve/qemu/100/config", func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		pveError(w, 500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist", nil)
	})
	c := f.client(t)
	if _, err := c.Start(context.Background(), GuestRef{Kind: QEMU, VMID: 100}); err == nil {
		t.Fatal("start succeeded")
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("POST sent %d times; mutations must never be retried", n)
	}
	if _, err := c.GuestConfig(context.Background(), GuestRef{Kind: QEMU, VMID: 100}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GuestConfig err = %v", err)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("GET of a missing config sent %d times; a final error must not be retried", n)
	}
}

func TestRetryNetworkErrorAndHonourContext(t *testing.T) {
	f := newFakePVE(t)
	var calls atomic.Int32
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Drop the connection mid-request: a network error.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		pveData(w, map[string]any{"version": "9.1.3"})
	})
	c := f.client(t)
	if v, err := c.Version(context.Background()); err != nil || v.Version != "9.1.3" || calls.Load() != 2 {
		t.Fatalf("Version = %+v, %v after %d calls", v, err, calls.Load())
	}

	// With long backoffs, cancelling the context ends the retry loop at once.
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) { pveError(w, 503, "Service Unavailable", nil) })
	slow := f.client(t, func(cfg *Config) { cfg.Retry = RetryPolicy{MaxAttempts: 10, BaseDelay: time.Hour, MaxDelay: time.Hour} })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := slow.Version(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrServer) {
		t.Fatalf("err = %v; want the deadline and the last error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %s", d)
	}
}

func TestAttemptTimeout(t *testing.T) {
	f := newFakePVE(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) { <-release })
	c := f.client(t, func(cfg *Config) {
		// Long enough for a TLS handshake on a loaded machine.
		cfg.Timeout = 300 * time.Millisecond
		cfg.Retry.MaxAttempts = 2
	})
	_, err := c.Version(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want the attempt deadline", err)
	}
	if n := f.count("GET /version"); n != 2 {
		t.Errorf("%d attempts, want 2 (a timed-out GET is retried)", n)
	}
}

func TestAuthFailure(t *testing.T) {
	f := newFakePVE(t)
	c := f.client(t, func(cfg *Config) { cfg.Token = "felhom@pve!agent=wrong-secret" })
	_, err := c.Version(context.Background())
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error reveals the secret: %v", err)
	}
}

func TestDecodeErrorNotRetried(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = w.Write([]byte("<html>not json</html>"))
	})
	c := f.client(t)
	var out json.RawMessage
	err := c.Do(context.Background(), "GET", "/version", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "decode response envelope") {
		t.Fatalf("err = %v", err)
	}
	if n := f.count("GET /version"); n != 1 {
		t.Errorf("%d attempts; a malformed 200 must not be retried", n)
	}
}
