package proxmox

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzNormalizeFingerprint(f *testing.F) {
	for _, s := range []string{
		"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
		"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
		"sha256 Fingerprint=AB:CD",
		"", ":", "::::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizeFingerprint(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fingerprint") {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if len(out) != 95 || strings.ToUpper(out) != out {
			t.Fatalf("NormalizeFingerprint(%q) = %q: not 32 uppercase colon-separated bytes", s, out)
		}
		if again, err := NormalizeFingerprint(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q, %v", out, again, err)
		}
	})
}

func FuzzParsePermission(f *testing.F) {
	for _, s := range []string{
		"Permission check failed (/vms/100, VM.Audit)",
		"Permission check failed (/vms/100, VM.Snapshot|VM.Snapshot.Rollback)",
		"Permission check failed",
		"Permission check failed (URI '/x' not available with API token, need proper ticket.)",
		"Permission check failed (/, )",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pe, ok := parsePermission(s)
		if !ok {
			return
		}
		if pe.Path != "" {
			if len(pe.Privileges) == 0 || pe.AnyOf != (len(pe.Privileges) > 1) {
				t.Fatalf("%q: %+v", s, pe)
			}
			// Rendered back the way PVE does, it parses to the same.
			again, ok := parsePermission("Permission check failed (" + pe.Path + ", " + strings.Join(pe.Privileges, "|") + ")")
			if !ok || again.Path != pe.Path || strings.Join(again.Privileges, "|") != strings.Join(pe.Privileges, "|") {
				t.Fatalf("%q: %+v does not round-trip (%+v)", s, pe, again)
			}
		}
		_ = pe.Error()
	})
}

// FuzzResponseDecoding feeds arbitrary response bodies through the
// lenient decoders and the error classifier.
func FuzzResponseDecoding(f *testing.F) {
	for _, s := range []string{
		`{"data":{"cpu":"0.5","uptime":12,"loadavg":["0.1","0.2","0.3"]}}`,
		`{"data":null,"message":"can't lock file '/x' - got timeout\n","errors":{"vmid":"bad"}}`,
		`{"data":[{"n":1,"t":"no content"}],"total":"1"}`,
		`{"data":{"template":"1","vmid":"100","shared":true}}`,
		`{"data":"UPID:pve:00001234:00ABCDEF:5F000000:qmstart:100:root@pam:"}`,
		`nonsense`,
	} {
		f.Add(s, 500, "reason")
	}
	f.Fuzz(func(t *testing.T, body string, status int, reason string) {
		var env envelope
		if json.Unmarshal([]byte(body), &env) == nil {
			var ns nodeStatusWire
			_ = json.Unmarshal(env.Data, &ns)
			var rs []resourceWire
			_ = json.Unmarshal(env.Data, &rs)
			var raw map[string]json.RawMessage
			if json.Unmarshal(env.Data, &raw) == nil {
				for _, v := range raw {
					jsonScalarString(v)
				}
			}
			_, _, _ = taskID(env.Data)
		}
		e := newAPIError("GET", "/x", status, reason, env.Message, nil)
		if e.Error() == "" {
			t.Fatal("empty error text")
		}
		if e.Class() != nil && status >= 200 && status < 300 {
			t.Fatalf("2xx classified as %v", e.Class())
		}
	})
}
