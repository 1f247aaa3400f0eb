package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

const testFP = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"

// validJSON builds a config with a token generated at run time.
func validJSON(t *testing.T, secret string) []byte {
	t.Helper()
	m := map[string]any{
		"host_id": "pve-1",
		"proxmox": map[string]any{
			"url":         "https://127.0.0.1:8006",
			"node":        "pve",
			"token":       "felhom@pve!agent=" + secret,
			"fingerprint": testFP,
		},
		"hub": map[string]any{"url": "https://hub.example", "token": "hub-" + secret},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func TestParseValidNormalisesFingerprint(t *testing.T) {
	cfg, err := Parse(validJSON(t, randomSecret(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ToUpper(testFP); cfg.Proxmox.Fingerprint != want {
		t.Fatalf("fingerprint = %q, want %q", cfg.Proxmox.Fingerprint, want)
	}
	if cfg.Plugins.User != "nobody" || cfg.Authz.Namespace != "felhom-op" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

// TestFingerprintForms: the forms an operator pastes are normalised to
// what Proxmox prints; anything that is not a SHA-256 is refused by name.
func TestFingerprintForms(t *testing.T) {
	secret := randomSecret(t)
	parse := func(fp string) (*Config, error) {
		var m map[string]any
		if err := json.Unmarshal(validJSON(t, secret), &m); err != nil {
			t.Fatal(err)
		}
		m["proxmox"].(map[string]any)["fingerprint"] = fp
		b, _ := json.Marshal(m)
		return Parse(b, nil)
	}
	want := strings.ToUpper(testFP)
	for _, in := range []string{want, testFP, strings.ReplaceAll(testFP, ":", ""), " " + want + "\n"} {
		cfg, err := parse(in)
		if err != nil || cfg.Proxmox.Fingerprint != want {
			t.Errorf("fingerprint %q: got %v, %v", in, cfg, err)
		}
	}
	for _, bad := range []string{"", "AB:CD", strings.Repeat("zz", 32), "sha256:" + testFP, want + ":00"} {
		if _, err := parse(bad); err == nil || !strings.Contains(err.Error(), "proxmox.fingerprint:") {
			t.Errorf("fingerprint %q: got %v, want a proxmox.fingerprint error", bad, err)
		}
	}
}

func TestValidationErrorsNameTheField(t *testing.T) {
	secret := randomSecret(t)
	base := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal(validJSON(t, secret), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	px := func(m map[string]any) map[string]any { return m["proxmox"].(map[string]any) }
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"unknown top key", func(m map[string]any) { m["hostid"] = "x" }, "hostid: unknown key (did you mean \"host_id\"?)"},
		{"unknown nested key", func(m map[string]any) { px(m)["tokn"] = "x" }, "proxmox.tokn: unknown key (did you mean \"token\"?)"},
		{"missing host id", func(m map[string]any) { delete(m, "host_id") }, "host_id: required"},
		{"missing url", func(m map[string]any) { delete(px(m), "url") }, "proxmox.url: required"},
		{"plain http", func(m map[string]any) { px(m)["url"] = "http://127.0.0.1:8006" }, "proxmox.url: \"http://127.0.0.1:8006\" must use https"},
		{"url without host", func(m map[string]any) { px(m)["url"] = "https://" }, "proxmox.url: \"https://\" has no host"},
		{"malformed url", func(m map[string]any) { px(m)["url"] = "https://[::1" }, "proxmox.url: \"https://[::1\" is not a URL"},
		{"missing node", func(m map[string]any) { delete(px(m), "node") }, "proxmox.node: required"},
		{"bad node", func(m map[string]any) { px(m)["node"] = "-pve" }, "proxmox.node: \"-pve\" is not a valid"},
		{"missing token", func(m map[string]any) { delete(px(m), "token") }, "proxmox.token: required"},
		{"malformed token", func(m map[string]any) { px(m)["token"] = "root@pam:" + secret }, "proxmox.token: malformed"},
		{"missing fingerprint", func(m map[string]any) { delete(px(m), "fingerprint") }, "proxmox.fingerprint: required"},
		{"malformed fingerprint", func(m map[string]any) { px(m)["fingerprint"] = "AB:CD:EF" }, "proxmox.fingerprint: want a SHA-256"},
		{"bad duration", func(m map[string]any) { px(m)["timeout"] = "thirty" }, "invalid duration \"thirty\""},
		{"wrong type", func(m map[string]any) { m["host_id"] = 7 }, "host_id: expected string"},
		{"bad level", func(m map[string]any) { m["log"] = map[string]any{"level": "loud"} }, "log.level: \"loud\""},
		{"relative plugin dir", func(m map[string]any) { m["plugins"] = map[string]any{"dir": "plugins"} }, "plugins.dir: \"plugins\" must be an absolute path"},
		{"bad policy", func(m map[string]any) {
			m["authz"] = map[string]any{"policy": []any{map[string]any{"principals": []any{"a@b"}}}}
		}, "authz.policy[0].capabilities: at least one"},
		{"unknown key in list", func(m map[string]any) {
			m["authz"] = map[string]any{"policy": []any{map[string]any{"principal": []any{"a@b"}}}}
		}, "authz.policy[0].principal: unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.edit(m)
			b, _ := json.Marshal(m)
			_, err := Parse(b, nil)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not contain %q", err, tc.field)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error leaks the secret: %q", err)
			}
		})
	}
}

func TestSyntaxErrorHasPosition(t *testing.T) {
	_, err := Parse([]byte("{\n  \"host_id\": \"a\",\n  \"proxmox\": {,}\n}"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("want line 3 in error, got %v", err)
	}
}

func TestEnvOverlayWins(t *testing.T) {
	secret, envSecret := randomSecret(t), randomSecret(t)
	env := []string{
		"FELHOM_AGENT_PROXMOX_TOKEN=felhom@pve!agent=" + envSecret,
		"FELHOM_AGENT_PROXMOX_NODE=pve2",
		"FELHOM_AGENT_PLUGINS_ALLOW_ROOT=usb, smart",
		"FELHOM_AGENT_PROXMOX_TIMEOUT=5s",
		"UNRELATED=1",
	}
	cfg, err := Parse(validJSON(t, secret), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Proxmox.Token.Reveal() != "felhom@pve!agent="+envSecret || cfg.Proxmox.Node != "pve2" {
		t.Fatalf("env did not win: node=%q", cfg.Proxmox.Node)
	}
	if got := strings.Join(cfg.Plugins.AllowRoot, "|"); got != "usb|smart" {
		t.Fatalf("allow_root = %q", got)
	}
	if cfg.Proxmox.Timeout.D.Seconds() != 5 {
		t.Fatalf("timeout = %v", cfg.Proxmox.Timeout)
	}
}

func TestEnvOnlyConfig(t *testing.T) {
	env := []string{
		"FELHOM_AGENT_HOST_ID=h1",
		"FELHOM_AGENT_PROXMOX_URL=https://10.0.0.1:8006",
		"FELHOM_AGENT_PROXMOX_NODE=pve",
		"FELHOM_AGENT_PROXMOX_TOKEN=a@pve!agent=" + randomSecret(t),
		"FELHOM_AGENT_PROXMOX_FINGERPRINT=" + strings.ReplaceAll(testFP, ":", ""),
	}
	if _, err := Parse(nil, env); err != nil {
		t.Fatal(err)
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"FELHOM_AGENT_PROXMOX_TOKN=x", "FELHOM_AGENT_PROXMOX_TOKN: unknown variable"},
		{"FELHOM_AGENT_PROXMOX_TIMEOUT=soon", "FELHOM_AGENT_PROXMOX_TIMEOUT: invalid duration"},
	} {
		_, err := Parse(validJSON(t, randomSecret(t)), []string{tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.env, err, tc.want)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(p, []byte(`{"host_id": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadEnv(p, nil)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "host_id") {
		t.Fatalf("want file and field in error, got %v", err)
	}
	if _, err := LoadEnv(filepath.Join(t.TempDir(), "missing.json"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestSecretsNeverPrinted proves no secret appears in the printed config
// or in log lines that carry the config or its secret fields.
func TestSecretsNeverPrinted(t *testing.T) {
	secret := randomSecret(t)
	cfg, err := Parse(validJSON(t, secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	for _, json := range []bool{false, true} {
		l := hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: json, Level: hclog.Trace})
		l.Info("config loaded", "config", cfg, "token", cfg.Proxmox.Token, "proxmox", cfg.Proxmox, "hub", &cfg.Hub)
	}
	printed := []string{
		cfg.Redacted(),
		fmt.Sprintf("%v %+v %#v %s %q %x", cfg, cfg, cfg, cfg.Proxmox.Token, cfg.Proxmox.Token, cfg.Proxmox.Token),
		logs.String(),
	}
	for i, p := range printed {
		if strings.Contains(p, secret) {
			t.Fatalf("output %d leaks the secret:\n%s", i, p)
		}
	}
	if !strings.Contains(cfg.Redacted(), redacted) {
		t.Fatalf("Redacted() shows no redaction marker:\n%s", cfg.Redacted())
	}
	if cfg.Proxmox.Token.Reveal() == "" {
		t.Fatal("Reveal lost the value")
	}
}

func TestEnvNamesCoverEveryField(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{"FELHOM_AGENT_HOST_ID", "FELHOM_AGENT_PROXMOX_TOKEN", "FELHOM_AGENT_HUB_INTERVAL", "FELHOM_AGENT_PLUGINS_ALLOW_ROOT", "FELHOM_AGENT_AUTHZ_ALLOWED_SIGNERS"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("%s missing from EnvNames", want)
		}
	}
}

func TestFieldErrorType(t *testing.T) {
	_, err := Parse([]byte(`{"proxmox":{}}`), nil)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "host_id" {
		t.Fatalf("want *FieldError for host_id, got %#v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"host_id":"a","proxmox":{"url":"https://x:8006","node":"pve","token":"a@pve!b=c","fingerprint":"` + testFP + `"}}`))
	f.Add([]byte(`{"authz":{"policy":[{"principals":["*"],"capabilities":["guest.*"]}]}}`))
	f.Add([]byte(`{"plugins":{"settings":{"storage":{"x":1}}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, nil)
		if err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Parse accepted a config Validate refuses: %v", err)
			}
			_ = cfg.Redacted()
		}
	})
}
