package pvesim

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestProxyError(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	f := h.s.Faults()
	f.ProxyError("/nodes/pve/status", 596)
	f.ProxyError("/api2/json/nodes/pve/lxc/100", 595)
	r := h.get("/nodes/pve/status", nil).fails(t, 596, "Connection timed out")
	if len(r.body) != 0 {
		t.Errorf("596 body %q", r.body)
	}
	h.get("/nodes/pve/lxc/100/status/current", nil).fails(t, 595, "Connection refused")
	h.get("/nodes/pve/qemu/101/status/current", nil).ok(t, nil)
	f.Clear()
	h.get("/nodes/pve/status", nil).ok(t, nil)
}

func TestTransient(t *testing.T) {
	h := newHarness(t, Options{})
	h.s.Faults().Transient("/version", 2, 503)
	h.get("/version", nil).fails(t, 503, "Service Unavailable")
	r := h.get("/version", nil).fails(t, 503, "Service Unavailable")
	if r.message == nil || *r.message != "Service Unavailable\n" {
		t.Errorf("body %s", r.body)
	}
	h.get("/version", nil).ok(t, nil)
	if got := h.s.Stats().Requests["GET /version"]; got != 3 {
		t.Errorf("faulted requests counted %d times, want 3", got)
	}
}

func TestHang(t *testing.T) {
	h := newHarness(t, Options{})
	release := h.s.Faults().Hang("/nodes/pve/storage")
	got := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, h.s.URL()+apiBase+"/nodes/pve/storage", nil)
		req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
		resp, err := h.c.Do(req)
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case code := <-got:
		t.Fatalf("hung request returned %d before release", code)
	case <-time.After(100 * time.Millisecond):
	}
	h.get("/version", nil).ok(t, nil) // other paths are unaffected
	release()
	if code := <-got; code != http.StatusOK {
		t.Errorf("released request got %d", code)
	}
	// A hanging request ends with its context.
	release = h.s.Faults().Hang("/nodes/pve/storage")
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.s.URL()+apiBase+"/nodes/pve/storage", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
	start := time.Now()
	resp, err := h.c.Do(req)
	// The client gives up at its deadline; racing that, it may still read
	// the 596 the server writes once it sees the request context end.
	switch {
	case err == nil:
		resp.Body.Close()
		if resp.StatusCode != 596 {
			t.Errorf("request under Hang got %q", resp.Status)
		}
	case !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("request under Hang ended after %v, before its deadline", d)
	}
}

func TestMatchTask(t *testing.T) {
	for _, c := range []struct {
		pattern, typ string
		want         bool
	}{
		{"qmsnapshot", "qmsnapshot", true},
		{"qm*", "qmstart", true},
		{"*", "vzdump", true},
		{"qm*", "vzstart", false},
		{"[", "[", true},
		{"[", "x", false},
	} {
		if got := matchTask(c.pattern, c.typ); got != c.want {
			t.Errorf("matchTask(%q, %q) = %v", c.pattern, c.typ, got)
		}
	}
}
