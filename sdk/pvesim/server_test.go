package pvesim

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSmokeVersionAndNodes(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	var v map[string]any
	h.get("/version", nil).ok(t, &v)
	if v["version"] != pveVersion || v["release"] != pveRelease || v["repoid"] != pveRepoID {
		t.Errorf("version = %v", v)
	}
	var nodes []map[string]any
	h.get("/nodes", nil).ok(t, &nodes)
	if len(nodes) != 1 || nodes[0]["node"] != "pve" || nodes[0]["status"] != "online" {
		t.Fatalf("nodes = %v", nodes)
	}
	if nodes[0]["ssl_fingerprint"] != h.s.Fingerprint() {
		t.Errorf("ssl_fingerprint = %v, want %s", nodes[0]["ssl_fingerprint"], h.s.Fingerprint())
	}
}

func TestCertificateFollowsPVESSL(t *testing.T) {
	checkLeaks(t)
	s := Start(t, Options{Node: "node1"})
	block, _ := pem.Decode(s.CertPEM())
	if block == nil {
		t.Fatal("CertPEM is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse cert: %v", err)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if strings.Join(ips, ",") != "127.0.0.1,::1" || strings.Join(cert.DNSNames, ",") != "localhost,node1" {
		t.Errorf("SANs = %v %v", ips, cert.DNSNames)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage = %v", cert.ExtKeyUsage)
	}
	if cert.NotBefore.After(time.Now().Add(-12*time.Hour)) || cert.NotAfter.Sub(cert.NotBefore) > 2*365*24*time.Hour {
		t.Errorf("validity %v..%v", cert.NotBefore, cert.NotAfter)
	}
	sum := sha256.Sum256(block.Bytes)
	if got := FingerprintOf(block.Bytes); got != s.Fingerprint() || len(got) != 95 || got[2] != ':' || strings.ToUpper(got) != got {
		t.Errorf("fingerprint %q", got)
	}
	// The served leaf is the one whose fingerprint we report, so pinning works.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL(), "https://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // pinning check
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if sha256.Sum256(leaf.Raw) != sum {
		t.Error("served certificate differs from CertPEM")
	}
}

// rawRequest sends bytes on a TLS connection and returns the response head.
func rawRequest(t *testing.T, s *Server, req string) (statusLine string, rest string) {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL(), "https://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, _ := io.ReadAll(conn)
	line, rest, _ := strings.Cut(string(b), "\r\n")
	return line, rest
}

func TestReasonPhraseOnTheWire(t *testing.T) {
	checkLeaks(t)
	s := Start(t, Options{})
	line, rest := rawRequest(t, s, "GET /api2/json/nodes/pve/qemu/abc/config HTTP/1.1\r\nHost: x\r\nAuthorization: PVEAPIToken="+s.AdminToken()+"\r\n\r\n")
	if line != "HTTP/1.1 400 Parameter verification failed." {
		t.Errorf("status line %q", line)
	}
	if !strings.Contains(rest, "Connection: close") || !strings.Contains(rest, `"vmid":"type check ('integer') failed - got 'abc'"`) {
		t.Errorf("response %q", rest)
	}
	line, _ = rawRequest(t, s, "PATCH /api2/json/version HTTP/1.1\r\nHost: x\r\n\r\n")
	if line != "HTTP/1.1 501 method 'PATCH' not available" {
		t.Errorf("status line %q", line)
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	h := newHarness(t, Options{Seed: true})
	r := h.get("/foo/bar", nil).fails(t, 501, "Method 'GET /foo/bar' not implemented")
	if r.message == nil || *r.message != "Method 'GET /foo/bar' not implemented" || string(r.data) != "null" {
		t.Errorf("body %s", r.body)
	}
	// LXC has no POST on config: the real server answers 501.
	h.post("/nodes/pve/lxc/100/config", m("memory", "1024")).
		fails(t, 501, "Method 'POST /nodes/pve/lxc/100/config' not implemented")
	h.do(h.tok, http.MethodDelete, "/version", nil).fails(t, 501, "Method 'DELETE /version' not implemented")
}

func TestBodyOnGetIs501(t *testing.T) {
	h := newHarness(t, Options{})
	req, _ := http.NewRequest(http.MethodGet, h.s.URL()+apiBase+"/version", strings.NewReader("a=b"))
	req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
	r := h.send(req).fails(t, 501, "Unexpected content for method 'GET'")
	if len(r.body) != 0 {
		t.Errorf("HTTP-layer error should have no body, got %q", r.body)
	}
	req, _ = http.NewRequest(http.MethodDelete, h.s.URL()+apiBase+"/storage/local", strings.NewReader("x=1"))
	req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
	h.send(req).fails(t, 501, "Unexpected content for method 'DELETE'")
}

func TestCloseEndsEverything(t *testing.T) {
	checkLeaks(t)
	s, err := New(Options{Seed: true, TaskDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, c: s.Client(t), tok: s.AdminToken()}
	h.post("/nodes/pve/qemu/101/status/start", nil).upid(t)
	release := s.Faults().Hang("/version")
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, s.URL()+apiBase+"/version", nil)
		req.Header.Set("Authorization", "PVEAPIToken="+h.tok)
		resp, err := h.c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	<-done
	release()
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL(), "https://"), time.Second); err == nil {
		t.Error("listener still open after Close")
	}
}
