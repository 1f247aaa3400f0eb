package pvesim

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"
)

// Start builds a server with opts, serves it on 127.0.0.1:0 and closes it
// when the test ends. It fails the test on error.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("start pvesim: %v", err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		_ = s.Close()
		t.Fatalf("start pvesim: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close pvesim: %v", err)
		}
	})
	return s
}

// Client returns an HTTP client that trusts the server's certificate. Its
// idle connections are closed when the test ends.
func (s *Server) Client(t testing.TB) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.cert.Leaf)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		// pveproxy speaks HTTP/1.1 only.
		ForceAttemptHTTP2: false,
		IdleConnTimeout:   30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
