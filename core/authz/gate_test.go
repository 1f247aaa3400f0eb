package authz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/nonce"
	"gitea.dooplex.hu/admin/felhom-agent/core/authz/sshsig"
	"golang.org/x/crypto/ssh"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var testClasses = map[string]string{
	"storage.list": "read",
	"guest.start":  "benign",
	"guest.delete": "destructive",
	"pbs.prune":    "destructive",
	"odd.thing":    "spicy",
}

func classify(id string) (string, bool) {
	c, ok := testClasses[id]
	return c, ok
}

type operator struct {
	name   string
	signer ssh.Signer
}

func newOperator(t testing.TB, name string) operator {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return operator{name, s}
}

func (o operator) line() string {
	return o.name + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(o.signer.PublicKey())))
}

// sign builds an envelope for capability on host pve1 issued at `at` and
// signs it.
func (o operator) sign(t testing.TB, capability string, destructive bool, at time.Time, edit ...func(*Envelope)) (env, sig []byte) {
	t.Helper()
	id, err := NewOpID(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &Envelope{Version: 1, Host: "pve1", OpID: id, IssuedAt: at, ExpiresAt: at.Add(10 * time.Minute),
		Capability: capability, Params: map[string]any{"vmid": 101}, Destructive: destructive}
	for _, f := range edit {
		f(e)
	}
	env, err = e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err = sshsig.Sign(rand.Reader, o.signer, env, DefaultNamespace, sshsig.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	return env, sig
}

type fixture struct {
	gate       *Gate
	clock      *clock
	store      *nonce.Store
	path       string
	alice, bob operator
	signers    *AllowedSigners
}

var testPolicy = Policy{
	{Principals: []string{"alice@example"}, Capabilities: []string{"guest.*", "pbs.prune", "odd.thing"}},
	{Principals: []string{"*@example"}, Capabilities: []string{"storage.list", "guest.start"}},
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: tEnv}, alice: newOperator(t, "alice@example"), bob: newOperator(t, "bob@example")}
	dir := t.TempDir()
	f.signers = writeSigners(t, dir, f.alice.line(), f.bob.line())
	f.path = filepath.Join(dir, "nonces")
	f.open(t)
	return f
}

// open (re)opens the store and builds a gate on it.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	if f.store != nil {
		f.store.Close()
	}
	s, err := nonce.Open(f.path, nonce.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.store = s
	g, err := NewGate(GateConfig{Host: "pve1", Signers: f.signers, Policy: testPolicy, Classify: classify, Nonces: s, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.gate = g
}

func (f *fixture) check(t *testing.T, req Request) (Decision, error) {
	t.Helper()
	return f.gate.Check(context.Background(), req)
}

func TestGateHub(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		capability string
		want       Reason
		class      Class
	}{
		{"guest.start", "", ClassBenign},
		{"storage.list", "", ClassRead},
		{"guest.delete", ReasonSignatureRequired, ""},
		{"pbs.prune", ReasonSignatureRequired, ""},
		{"guest.explode", ReasonUnknownCapability, ""},
		{"odd.thing", ReasonUnknownCapability, ""},
		{"", ReasonInvalidRequest, ""},
	} {
		d, err := f.check(t, Request{Source: SourceHub, Capability: tc.capability})
		if got := ReasonOf(err); got != tc.want {
			t.Errorf("hub %q: %v, want %q", tc.capability, err, tc.want)
		}
		if tc.want == "" && (d.Class != tc.class || d.Source != SourceHub || d.Principal != "") {
			t.Errorf("hub %q: decision %+v", tc.capability, d)
		}
	}
	env, sig := f.alice.sign(t, "guest.start", false, tEnv)
	if _, err := f.check(t, Request{Source: SourceHub, Capability: "guest.start", Envelope: env, Signature: sig}); ReasonOf(err) != ReasonInvalidRequest {
		t.Errorf("hub request with a signature: %v", err)
	}
	if _, err := f.check(t, Request{Source: "cli", Capability: "guest.start"}); ReasonOf(err) != ReasonInvalidRequest {
		t.Errorf("unknown source: %v", err)
	}
}

func TestGateSignedDestructive(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(tEnv.Add(time.Minute))
	env, sig := f.alice.sign(t, "guest.delete", true, tEnv)
	d, err := f.check(t, Request{Source: SourceSigned, Capability: "guest.delete", Envelope: env, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := ParseEnvelope(env)
	if d.Principal != "alice@example" || d.Capability != "guest.delete" || d.Class != ClassDestructive || d.OpID != parsed.OpID ||
		!d.Destructive || d.KeyFingerprint != ssh.FingerprintSHA256(f.alice.signer.PublicKey()) || d.Params["vmid"] == nil {
		t.Errorf("decision %+v", d)
	}
	if !f.store.Seen(d.OpID) {
		t.Error("accepted op not recorded")
	}

	// Replay: same bytes again, then again after a restart.
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig}); ReasonOf(err) != ReasonReplay {
		t.Errorf("replay: %v", err)
	}
	f.open(t)
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig}); ReasonOf(err) != ReasonReplay {
		t.Errorf("replay after restart: %v", err)
	}

	// bob is listed but no rule lets him delete guests.
	env, sig = f.bob.sign(t, "guest.delete", true, tEnv)
	_, err = f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig})
	if ReasonOf(err) != ReasonCapabilityNotAllowed || !strings.Contains(err.Error(), "bob@example") {
		t.Errorf("bob deletes: %v", err)
	}
	f.assertNotRecorded(t, env)

	// bob may sign a benign op his rule covers.
	env, sig = f.bob.sign(t, "guest.start", false, tEnv)
	if d, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig}); err != nil || d.Principal != "bob@example" {
		t.Errorf("bob starts: %+v %v", d, err)
	}
}

func (f *fixture) assertNotRecorded(t *testing.T, env []byte) {
	t.Helper()
	e, err := ParseEnvelope(env)
	if err != nil {
		return
	}
	if f.store.Seen(e.OpID) {
		t.Errorf("rejected op %s used up its op ID", e.OpID)
	}
}

// TestGateSignedRefusals: every refusal has its reason and none of them
// uses up the op ID.
func TestGateSignedRefusals(t *testing.T) {
	f := newFixture(t)
	now := tEnv.Add(time.Minute)
	f.clock.Set(now)
	stranger := newOperator(t, "eve@example")
	type signed struct{ env, sig []byte }
	mk := func(o operator, capability string, destructive bool, edit ...func(*Envelope)) signed {
		e, s := o.sign(t, capability, destructive, tEnv, edit...)
		return signed{e, s}
	}
	good := mk(f.alice, "guest.delete", true)
	cases := []struct {
		name       string
		op         signed
		capability string
		want       Reason
	}{
		{"destructive not declared", mk(f.alice, "guest.delete", false), "", ReasonDestructiveNotDeclared},
		{"unknown key", mk(stranger, "guest.delete", true), "", ReasonUnknownKey},
		{"wrong host", mk(f.alice, "guest.delete", true, func(e *Envelope) { e.Host = "pve2" }), "", ReasonWrongHost},
		{"expired", mk(f.alice, "guest.delete", true, func(e *Envelope) {
			e.IssuedAt, e.ExpiresAt = tEnv.Add(-20*time.Minute), tEnv.Add(-10*time.Minute)
		}), "", ReasonOpExpired},
		{"not yet valid", mk(f.alice, "guest.delete", true, func(e *Envelope) {
			e.IssuedAt, e.ExpiresAt = now.Add(5*time.Minute), now.Add(10*time.Minute)
		}), "", ReasonOpNotYetValid},
		{"window too long", mk(f.alice, "guest.delete", true, func(e *Envelope) { e.ExpiresAt = tEnv.Add(time.Hour) }), "", ReasonOpWindowTooLong},
		{"unknown capability", mk(f.alice, "guest.explode", true), "", ReasonUnknownCapability},
		{"capability mismatch", good, "guest.start", ReasonCapabilityMismatch},
		{"tampered envelope", signed{[]byte(strings.Replace(string(good.env), "101", "102", 1)), good.sig}, "", ReasonBadSignature},
		{"signature of another op", signed{mk(f.alice, "guest.delete", true).env, good.sig}, "", ReasonBadSignature},
		{"empty signature", signed{good.env, nil}, "", ReasonMalformedSignature},
		{"empty envelope", signed{nil, good.sig}, "", ReasonMalformedEnvelope},
	}
	for _, tc := range cases {
		_, err := f.check(t, Request{Source: SourceSigned, Capability: tc.capability, Envelope: tc.op.env, Signature: tc.op.sig})
		if ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
		f.assertNotRecorded(t, tc.op.env)
	}

	// A signed non-envelope is refused as malformed after the signature
	// checks out.
	notEnv := []byte(`{"hello": "world"}`)
	sig, err := sshsig.Sign(rand.Reader, f.alice.signer, notEnv, DefaultNamespace, sshsig.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: notEnv, Signature: sig}); ReasonOf(err) != ReasonMalformedEnvelope {
		t.Errorf("signed non-envelope: %v", err)
	}

	// A cancelled context is not a rejection and uses up nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.gate.Check(ctx, Request{Source: SourceSigned, Envelope: good.env, Signature: good.sig}); !errors.Is(err, context.Canceled) || ReasonOf(err) != "" {
		t.Errorf("cancelled: %v", err)
	}
	f.assertNotRecorded(t, good.env)

	// Without allowed_signers nothing signed passes.
	f.gate.SetSigners(nil)
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: good.env, Signature: good.sig}); ReasonOf(err) != ReasonUnknownKey {
		t.Errorf("no signers: %v", err)
	}
	f.gate.SetSigners(f.signers)
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: good.env, Signature: good.sig}); err != nil {
		t.Errorf("good op after all the refusals: %v", err)
	}
}

func TestGateClockRollback(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(tEnv.Add(time.Minute))
	env, sig := f.alice.sign(t, "guest.delete", true, tEnv.Add(time.Minute))
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig}); err != nil {
		t.Fatal(err)
	}
	// The clock jumps back 10 minutes; an op signed for that time would
	// otherwise be valid.
	f.clock.Set(tEnv.Add(-9 * time.Minute))
	env, sig = f.alice.sign(t, "guest.delete", true, tEnv.Add(-9*time.Minute))
	_, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig})
	if ReasonOf(err) != ReasonClockRollback {
		t.Fatalf("after clock rollback: %v", err)
	}
	f.assertNotRecorded(t, env)
	// It survives a restart.
	f.open(t)
	if _, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig}); ReasonOf(err) != ReasonClockRollback {
		t.Fatalf("after restart: %v", err)
	}
}

// TestGateCertificatePrincipal: the principal of a certificate-signed op
// comes from the certificate and is what the policy sees.
func TestGateCertificatePrincipal(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(tEnv.Add(time.Minute))
	ca := newOperator(t, "*@example")
	user := newOperator(t, "unused")
	caKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.signer.PublicKey())))
	signers := writeSigners(t, t.TempDir(), "*@example cert-authority "+caKey)
	f.gate.SetSigners(signers)
	for _, principal := range []string{"alice@example", "bob@example"} {
		cert := &ssh.Certificate{Key: user.signer.PublicKey(), CertType: ssh.UserCert, KeyId: principal,
			ValidPrincipals: []string{principal}, ValidAfter: uint64(tEnv.Add(-time.Hour).Unix()), ValidBefore: uint64(tEnv.Add(time.Hour).Unix())}
		if err := cert.SignCert(rand.Reader, ca.signer); err != nil {
			t.Fatal(err)
		}
		cs, err := ssh.NewCertSigner(cert, user.signer)
		if err != nil {
			t.Fatal(err)
		}
		env, sig := operator{principal, cs}.sign(t, "guest.delete", true, tEnv)
		d, err := f.check(t, Request{Source: SourceSigned, Envelope: env, Signature: sig})
		switch principal {
		case "alice@example":
			if err != nil || d.Principal != "alice@example" || d.KeyType != ssh.CertAlgoED25519v01 {
				t.Errorf("alice's certificate: %+v %v", d, err)
			}
		default:
			if ReasonOf(err) != ReasonCapabilityNotAllowed {
				t.Errorf("bob's certificate: %v", err)
			}
		}
	}
}

func TestNewGateValidates(t *testing.T) {
	store := nonce.NewMemory(nonce.Options{})
	good := GateConfig{Host: "pve1", Classify: classify, Nonces: store, Policy: testPolicy}
	for name, edit := range map[string]func(*GateConfig){
		"host":            func(c *GateConfig) { c.Host = "" },
		"classify":        func(c *GateConfig) { c.Classify = nil },
		"nonces":          func(c *GateConfig) { c.Nonces = nil },
		"empty principal": func(c *GateConfig) { c.Policy = Policy{{Principals: []string{""}, Capabilities: []string{"x.y"}}} },
		"no capabilities": func(c *GateConfig) { c.Policy = Policy{{Principals: []string{"a"}}} },
		"comma":           func(c *GateConfig) { c.Policy = Policy{{Principals: []string{"a,b"}, Capabilities: []string{"x.y"}}} },
		"only negated":    func(c *GateConfig) { c.Policy = Policy{{Principals: []string{"!a"}, Capabilities: []string{"x.y"}}} },
	} {
		c := good
		edit(&c)
		if _, err := NewGate(c); err == nil {
			t.Errorf("%s: NewGate accepted a bad config", name)
		}
	}
	if _, err := NewGate(good); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyAllow(t *testing.T) {
	p := Policy{
		{Principals: []string{"*@ops.example", "!intern@ops.example"}, Capabilities: []string{"guest.*", "!guest.delete"}},
		{Principals: []string{"root@example"}, Capabilities: []string{"*"}},
	}
	cases := []struct {
		principals []string
		capability string
		want       string
	}{
		{[]string{"ann@ops.example"}, "guest.start", "ann@ops.example"},
		{[]string{"ann@ops.example"}, "guest.delete", ""},
		{[]string{"intern@ops.example"}, "guest.start", ""},
		{[]string{"intern@ops.example", "root@example"}, "guest.delete", "root@example"},
		{[]string{"*@ops.example"}, "guest.start", "*@ops.example"},
		{nil, "guest.start", ""},
	}
	for _, tc := range cases {
		got, ok := p.Allow(tc.principals, tc.capability)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Allow(%q, %q) = %q, %v; want %q", tc.principals, tc.capability, got, ok, tc.want)
		}
	}
}

func TestReasonsHaveSentences(t *testing.T) {
	for _, r := range Reasons() {
		if r.Sentence() == "rejected" || r.Sentence() == "" {
			t.Errorf("%s has no sentence", r)
		}
	}
	if len(Reasons()) < 18 {
		t.Errorf("only %d reasons", len(Reasons()))
	}
	r := &Rejection{Reason: ReasonReplay, Detail: "op 1", Err: nonce.ErrReplay}
	if !errors.Is(r, nonce.ErrReplay) || r.Error() != "replay: the operation was already used (op 1)" {
		t.Errorf("rejection %q", r.Error())
	}
}
