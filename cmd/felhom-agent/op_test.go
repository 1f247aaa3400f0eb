package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz"
)

func runOpT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = runOp(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestOpNew(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "op.json")
	before := time.Now().Truncate(time.Second)
	code, _, stderr := runOpT(t, "new", "--capability", "guest.delete", "--host", "pve1",
		"--param", "vmid=101", "--param", "purge=true", "--param", "name=web 1", "--param", "zip=007",
		"--param", "neg=-5", "--param", "ratio=1.5", "--param-str", "id=42", "--ttl", "5m", "--destructive", "-o", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "ssh-keygen -Y sign -n felhom-op -f KEY "+file) {
		t.Errorf("no signing hint in stderr: %q", stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env, err := authz.ParseEnvelope(data)
	if err != nil {
		t.Fatalf("op new wrote an envelope the agent refuses: %v\n%s", err, data)
	}
	if env.Host != "pve1" || env.Capability != "guest.delete" || !env.Destructive || len(env.OpID) != 32 {
		t.Errorf("envelope %+v", env)
	}
	if env.IssuedAt.Before(before) || env.IssuedAt.After(time.Now()) || env.ExpiresAt.Sub(env.IssuedAt) != 5*time.Minute {
		t.Errorf("window %v .. %v", env.IssuedAt, env.ExpiresAt)
	}
	want := map[string]any{"vmid": json.Number("101"), "purge": true, "name": "web 1", "zip": "007",
		"neg": json.Number("-5"), "ratio": "1.5", "id": "42"}
	for k, v := range want {
		if env.Params[k] != v {
			t.Errorf("param %s = %#v, want %#v", k, env.Params[k], v)
		}
	}
	if len(env.Params) != len(want) {
		t.Errorf("params %v", env.Params)
	}

	// Two runs give two op IDs; without -o the envelope goes to stdout.
	code, stdout, _ := runOpT(t, "new", "--capability", "guest.start", "--host", "pve1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	env2, err := authz.ParseEnvelope([]byte(stdout))
	if err != nil || env2.OpID == env.OpID || env2.Destructive || env2.ExpiresAt.Sub(env2.IssuedAt) != 10*time.Minute {
		t.Errorf("stdout envelope %+v, %v", env2, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"new", "--host", "pve1"}, "--capability"},
		{[]string{"new", "--capability", "guest.start"}, "--host"},
		{[]string{"new", "--capability", "Guest Start", "--host", "pve1"}, "capability"},
		{[]string{"new", "--capability", "guest.start", "--host", "pve 1"}, "host"},
		{[]string{"new", "--capability", "guest.start", "--host", "pve1", "--param", "novalue"}, "KEY=VALUE"},
		{[]string{"new", "--capability", "guest.start", "--host", "pve1", "--param", "a=1", "--param-str", "a=2"}, "twice"},
		{[]string{"new", "--capability", "guest.start", "--host", "pve1", "--ttl", "0s"}, "positive"},
		{[]string{"new", "--capability", "guest.start", "--host", "pve1", "extra"}, "unexpected"},
		{[]string{"bogus"}, "unknown subcommand"},
		{nil, "usage"},
	} {
		code, _, stderr := runOpT(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
	if _, _, stderr := runOpT(t, "new", "--capability", "guest.start", "--host", "pve1", "--ttl", "1h"); !strings.Contains(stderr, "warning") {
		t.Errorf("no warning for a 1h ttl: %q", stderr)
	}
}

func keygen(t *testing.T, stdin []byte, args ...string) {
	t.Helper()
	path, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ssh-keygen not found (install openssh-client): %v", err)
		}
		t.Skipf("ssh-keygen not found: %v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestOpVerify: an op made by `op new` and signed by ssh-keygen verifies;
// each way it can be wrong is a rejection with exit 1.
func TestOpVerify(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "alice")
	keygen(t, nil, "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", key)
	other := filepath.Join(dir, "eve")
	keygen(t, nil, "-q", "-t", "ed25519", "-N", "", "-f", other)
	pub, _ := os.ReadFile(key + ".pub")
	evePub, _ := os.ReadFile(other + ".pub")
	allowed := filepath.Join(dir, "allowed_signers")
	os.WriteFile(allowed, []byte("alice@example "+string(pub)), 0o600)
	wrongAllowed := filepath.Join(dir, "eve_signers")
	os.WriteFile(wrongAllowed, []byte("eve@example "+string(evePub)), 0o600)
	badAllowed := filepath.Join(dir, "bad_signers")
	os.WriteFile(badAllowed, []byte("alice@example\n"), 0o600)

	op := filepath.Join(dir, "op.json")
	if code, _, stderr := runOpT(t, "new", "--capability", "guest.delete", "--host", "pve1", "--param", "vmid=101", "--destructive", "-o", op); code != 0 {
		t.Fatal(stderr)
	}
	keygen(t, nil, "-Y", "sign", "-n", "felhom-op", "-f", key, op) // writes op.json.sig
	env, _ := authz.ParseEnvelope(mustRead(t, op))

	// Valid, twice (verify never uses up the op), flags before or after OPFILE.
	for _, args := range [][]string{
		{"verify", "--allowed-signers", allowed, "--host", "pve1", op},
		{"verify", op, "--allowed-signers", allowed, "--signature", op + ".sig", "--host", "pve1"},
	} {
		code, stdout, stderr := runOpT(t, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", args, code, stdout, stderr)
		}
		for _, want := range []string{"valid: signed by alice@example", "op id:       " + env.OpID, "capability:  guest.delete",
			`params:      {"vmid":101}`, "destructive: true", "host:        pve1\n", "(10m0s)", allowed + ":1", "ssh-ed25519 SHA256:"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	}
	if _, stdout, _ := runOpT(t, "verify", "--allowed-signers", allowed, op); !strings.Contains(stdout, "not checked") {
		t.Errorf("no note that the host was not checked:\n%s", stdout)
	}

	tampered := filepath.Join(dir, "tampered.json")
	os.WriteFile(tampered, bytes.Replace(mustRead(t, op), []byte("101"), []byte("102"), 1), 0o600)
	late := env.ExpiresAt.Add(time.Minute).Format(time.RFC3339)
	for _, tc := range []struct {
		args []string
		want authz.Reason
	}{
		{[]string{"--host", "pve2", op}, authz.ReasonWrongHost},
		{[]string{"--namespace", "other-ns", op}, authz.ReasonNamespaceMismatch},
		{[]string{"--signature", op + ".sig", tampered}, authz.ReasonBadSignature},
		{[]string{"--time", late, op}, authz.ReasonOpExpired},
		{[]string{"--max-ttl", "5m", op}, authz.ReasonOpWindowTooLong},
		{[]string{"--signature", op, op}, authz.ReasonMalformedSignature},
	} {
		args := append([]string{"verify", "--allowed-signers", allowed}, tc.args...)
		code, stdout, _ := runOpT(t, args...)
		if code != 1 || !strings.Contains(stdout, "rejected: "+string(tc.want)+": "+tc.want.Sentence()) {
			t.Errorf("%q: exit %d, output %q; want 1 with %s", tc.args, code, stdout, tc.want)
		}
	}
	if code, stdout, _ := runOpT(t, "verify", "--allowed-signers", wrongAllowed, op); code != 1 || !strings.Contains(stdout, "unknown_key") {
		t.Errorf("unknown key: exit %d %q", code, stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", op}, "--allowed-signers"},
		{[]string{"verify", "--allowed-signers", allowed}, "OPFILE"},
		{[]string{"verify", "--allowed-signers", badAllowed, op}, badAllowed + ":1: missing key"},
		{[]string{"verify", "--allowed-signers", allowed, filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"verify", "--allowed-signers", allowed, "--time", "yesterday", op}, "--time"},
	} {
		code, _, stderr := runOpT(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpRegistered: the op subcommand is reachable from the top level.
func TestOpRegistered(t *testing.T) {
	var o, e bytes.Buffer
	if code := runMain(context.Background(), []string{"op", "help"}, &o, &e); code != 0 || !strings.Contains(o.String(), "felhom-agent op verify") {
		t.Errorf("felhom-agent op help: exit %d\n%s%s", code, o.String(), e.String())
	}
}
