package proxmox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestTokenValidate(t *testing.T) {
	const secret = "5b1e3f0c-7d2a-4e39-9c51-0f6a8d2b4c71"
	tests := []struct {
		tok, errHas string
	}{
		{"root@pam!agent=" + secret, ""},
		{"felhom@pve!felhom-agent.v1=" + secret, ""},
		{"svc.user@ldap-corp!t_1=" + secret, ""},
		{"root@pam!agent=abc=def", "token ID is not"}, // PVE splits at the last '='
		{"", "empty"},
		{"root@pam!agent", "no '='"},
		{"root@pam=" + secret, "token ID is not USER@REALM!TOKENID"},
		{"root!agent=" + secret, "token ID is not"},
		{"root@pam!1agent=" + secret, "token ID is not"},
		{"root@pam!a=" + secret, "token ID is not"}, // token names need 2+ characters
		{"ro ot@pam!agent=" + secret, "token ID is not"},
		{"root@pam!agent=", "secret after '=' is empty"},
		{"root@pam!agent=abc;def", "not allowed"},
		{"root@pam!agent=abc def", "not allowed"},
		{"root@pam!agent=abc\ndef", "not allowed"},
	}
	for _, tt := range tests {
		err := Token(tt.tok).Validate()
		if tt.errHas == "" {
			if err != nil {
				t.Errorf("Validate(%q) = %v, want nil", tt.tok, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "token") {
			t.Errorf("Validate(%q) = %v, want an error naming the token and containing %q", tt.tok, err, tt.errHas)
			continue
		}
		if i := strings.LastIndexByte(tt.tok, '='); i >= 0 && len(tt.tok[i+1:]) > 3 && strings.Contains(err.Error(), tt.tok[i+1:]) {
			t.Errorf("Validate(%q) error %q reveals the secret", tt.tok, err)
		}
	}
}

func TestTokenNeverPrintsSecret(t *testing.T) {
	const secret = "0d6f5c2e-91ab-4b6e-8a3f-2c7d9e1f4a55"
	tok := Token("root@pam!agent=" + secret)
	cfg := Config{BaseURL: "https://pve.example:8006", Node: "pve", Token: tok, Fingerprint: strings.Repeat("AB", 32)}
	var logBuf bytes.Buffer
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Trace})
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(struct{ Token Token }{tok})
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]string{
		"String":  tok.String(),
		"%v":      fmt.Sprintf("%v", tok),
		"%+v cfg": fmt.Sprintf("%+v", cfg),
		"%#v cfg": fmt.Sprintf("%#v", cfg),
		"%s cfg":  fmt.Sprint(cfg),
		"json":    string(js),
		"client":  c.String(),
		"%v cli":  fmt.Sprintf("%v", c),
	}
	for name, s := range outs {
		if strings.Contains(s, secret) {
			t.Errorf("%s output reveals the secret: %s", name, s)
		}
	}
	if got := tok.String(); got != "root@pam!agent=REDACTED" {
		t.Errorf("String() = %q", got)
	}
	if !strings.Contains(c.String(), "root@pam!agent") {
		t.Errorf("client String %q should name the token ID", c.String())
	}
	hclogged := logBuf.String()
	c.log.Info("probe", "token", tok)
	if strings.Contains(logBuf.String(), secret) {
		t.Errorf("logging the token revealed the secret: %s", hclogged)
	}
}
