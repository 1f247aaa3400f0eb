package proxmox

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestNormalizeFingerprint(t *testing.T) {
	const want = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	noColon := strings.ReplaceAll(want, ":", "")
	tests := []struct {
		name, in, want, errHas string
	}{
		{"proxmox form", want, want, ""},
		{"lowercase colon", strings.ToLower(want), want, ""},
		{"no colons upper", noColon, want, ""},
		{"no colons lower", strings.ToLower(noColon), want, ""},
		{"surrounding space", "  " + want + "\n", want, ""},
		{"openssl output", "sha256 Fingerprint=" + want, want, ""},
		{"openssl upper", "SHA256 Fingerprint=" + strings.ToLower(want), want, ""},
		{"empty", "", "", "empty"},
		{"sha1 length", want[:59], "", "20 colon-separated groups, want 32"},
		{"too long", want + ":00", "", "33 colon-separated groups"},
		{"short no colon", noColon[:62], "", "62 hex digits, want 64"},
		{"bad group", strings.Replace(want, "AB:CD", "ABC:D", 1), "", "group 1 \"ABC\""},
		{"non-hex", strings.Replace(want, "AB", "AG", 1), "", "'G' is not a hex digit"},
		{"non-hex no colon", "ZZ" + noColon[2:], "", "'Z' is not a hex digit"},
		{"mixed separators", strings.Replace(want, ":", "-", 5), "", "colon-separated groups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeFingerprint(tt.in)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "fingerprint") {
					t.Fatalf("NormalizeFingerprint(%q) error = %v, want one starting with 'fingerprint' and containing %q", tt.in, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeFingerprint(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestPinnedTLSAcceptsMatchingLeaf(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) {
		pveData(w, map[string]any{"version": "9.1.3", "release": "9.1", "repoid": "e5010dce"})
	})
	// The pin in lowercase without colons must work the same.
	c := f.client(t, func(cfg *Config) {
		cfg.Fingerprint = strings.ToLower(strings.ReplaceAll(f.fingerprint(), ":", ""))
	})
	v, err := c.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.Release != "9.1" || v.Version != "9.1.3" || v.RepoID != "e5010dce" {
		t.Fatalf("Version = %+v", v)
	}
}

func TestPinMismatchRefused(t *testing.T) {
	f := newFakePVE(t)
	f.handle("GET /version", func(w http.ResponseWriter, r *http.Request) { pveData(w, map[string]any{}) })
	wrong := strings.Repeat("00:", 31) + "01"
	c := f.client(t, func(cfg *Config) { cfg.Fingerprint = wrong })
	_, err := c.Version(context.Background())
	var pe *PinMismatchError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v (%T), want *PinMismatchError", err, err)
	}
	if pe.Expected != wrong || pe.Got != f.fingerprint() {
		t.Fatalf("PinMismatchError = %+v, want expected %s got %s", pe, wrong, f.fingerprint())
	}
	for _, fp := range []string{wrong, f.fingerprint()} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("error %q lacks fingerprint %s", err, fp)
		}
	}
	if n := f.count("GET /version"); n != 0 {
		t.Errorf("server handled %d requests; the token must not be sent over an unpinned connection", n)
	}
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	if conns != 1 {
		t.Errorf("%d connections, want 1: a pin mismatch must not be retried", conns)
	}
}
