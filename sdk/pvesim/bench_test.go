package pvesim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkStatusCurrentTLS measures GET status/current over HTTPS with a
// keep-alive client, the simulator's hottest path in agent tests.
func BenchmarkStatusCurrentTLS(b *testing.B) {
	s := Start(b, Options{Seed: true})
	c := s.Client(b)
	url := s.URL() + apiBase + "/nodes/pve/lxc/100/status/current"
	auth := "PVEAPIToken=" + s.AdminToken()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", auth)
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkStatusCurrentInProcess measures the handler alone.
func BenchmarkStatusCurrentInProcess(b *testing.B) {
	s, err := New(Options{Seed: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	auth := "PVEAPIToken=" + s.AdminToken()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, apiBase+"/nodes/pve/lxc/100/status/current", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkTaskDispatch measures starting and finishing a task (instant).
func BenchmarkTaskDispatch(b *testing.B) {
	s, err := New(Options{Seed: true, TaskDuration: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	auth := "PVEAPIToken=" + s.AdminToken()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, apiBase+"/nodes/pve/qemu/101/status/stop", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
