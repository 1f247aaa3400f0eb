package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// syncBuffer is a goroutine-safe writer for captured output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPVEServesAndWritesConnFile(t *testing.T) {
	dir := t.TempDir()
	connFile := filepath.Join(dir, "pve.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"pve", "--listen", "127.0.0.1:0", "--conn-file", connFile, "--node", "lab1", "--task-duration", "-1ns"}, io.Discard, &stderr)
	}()
	var info connInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := os.ReadFile(connFile)
		if err == nil {
			if err := json.Unmarshal(raw, &info); err != nil {
				t.Fatalf("connection file is not JSON: %v: %s", err, raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection file; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	fi, err := os.Stat(connFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("connection file mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if info.Node != "lab1" || !strings.HasPrefix(info.URL, "https://127.0.0.1:") || len(info.Fingerprint) != 95 ||
		!strings.HasPrefix(info.Tokens["admin"], "root@pam!admin=") || !strings.HasPrefix(info.Tokens["audit"], "root@pam!audit=") {
		t.Fatalf("connection info %+v", info)
	}
	// A client pinning the fingerprint reaches the API with the admin token.
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // verified by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if pvesim.FingerprintOf(cs.PeerCertificates[0].Raw) != info.Fingerprint {
				t.Errorf("pin mismatch: %x", sha256.Sum256(cs.PeerCertificates[0].Raw))
			}
			return nil
		},
	}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, info.URL+"/api2/json/nodes/lab1/qemu/101/status/current", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+info.Tokens["admin"])
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET status: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"vm101"`) {
		t.Errorf("status/current: %s %s", resp.Status, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d; stderr: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("simulator did not stop after cancel")
	}
	if !strings.Contains(stderr.String(), "serving simulated Proxmox VE") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestPVEPrintsConnInfoWithoutFile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"pve", "--listen", "127.0.0.1:0", "--seed=false"}, &stdout, io.Discard)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "}") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d", code)
	}
	var info connInfo
	if err := json.Unmarshal([]byte(stdout.String()), &info); err != nil || info.Node != "pve" {
		t.Errorf("stdout %q: %v", stdout.String(), err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "subcommands: pve"},
		{[]string{"hub"}, 2, `unknown subcommand "hub" (known: pve)`},
		{[]string{"pve", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"pve", "extra"}, 2, "unexpected arguments: extra"},
		{[]string{"pve", "--task-duration", "0s"}, 2, "--task-duration must not be 0"},
		{[]string{"pve", "--log-level", "loud"}, 2, `unknown --log-level "loud"`},
		{[]string{"pve", "--node", "bad_node", "--listen", "127.0.0.1:0"}, 1, `invalid node name "bad_node"`},
		{[]string{"pve", "--listen", "256.0.0.1:99999"}, 1, "listen on 256.0.0.1:99999"},
		{[]string{"pve", "--listen", "127.0.0.1:0", "--conn-file", "/nonexistent-dir/x.json"}, 1, "write connection file: create temporary file in /nonexistent-dir"},
		{[]string{"help"}, 0, "usage: felhom-sim"},
	} {
		var stderr syncBuffer
		code := run(context.Background(), c.args, io.Discard, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}
