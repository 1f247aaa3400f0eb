package authz

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/nonce"
)

// Source is where an invocation comes from.
type Source string

// Sources.
const (
	// SourceHub: the hub's desired state, unsigned.
	SourceHub Source = "hub"
	// SourceSigned: an operator-signed envelope.
	SourceSigned Source = "signed"
)

// Class is a capability's risk class, as the registry declares it.
type Class string

// Classes.
const (
	ClassRead        Class = "read"
	ClassBenign      Class = "benign"
	ClassDestructive Class = "destructive"
)

// NonceStore records op IDs; *nonce.Store is the durable one.
type NonceStore interface {
	// CheckClock fails with nonce.ErrClockRollback when now is behind an
	// op already accepted.
	CheckClock(now time.Time) error
	// Record stores the op ID durably before the op runs, failing with
	// nonce.ErrReplay when it is already there.
	Record(opID string, expiresAt, issuedAt time.Time) error
}

var (
	_ NonceStore = (*nonce.Store)(nil)
	_ NonceStore = (*nonce.Memory)(nil)
)

// GateConfig configures a [Gate].
type GateConfig struct {
	// Host is this host's ID; envelopes must name it. Required.
	Host string
	// Signers is the allowed_signers file; nil refuses every signed op
	// (unknown_key) until SetSigners.
	Signers *AllowedSigners
	// Namespace is the SSHSIG namespace; "" means DefaultNamespace.
	Namespace string
	// Policy says which principals may run which capabilities.
	Policy Policy
	// Classify returns a capability's class ("read", "benign",
	// "destructive") and whether it exists. Required.
	Classify func(capID string) (class string, ok bool)
	// Nonces is the replay store. Required.
	Nonces NonceStore
	// Skew (default 30s) and MaxTTL (default 15m) are the envelope's time
	// rules.
	Skew   time.Duration
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Gate decides whether an invocation may run. It is safe for concurrent
// use.
type Gate struct {
	cfg     GateConfig
	signers atomic.Pointer[AllowedSigners]
}

// NewGate checks cfg and returns a gate.
func NewGate(cfg GateConfig) (*Gate, error) {
	if cfg.Host == "" {
		return nil, errors.New("new gate: host is empty")
	}
	if cfg.Classify == nil {
		return nil, errors.New("new gate: no capability classifier")
	}
	if cfg.Nonces == nil {
		return nil, errors.New("new gate: no nonce store")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("new gate: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Gate{cfg: cfg}
	g.signers.Store(cfg.Signers)
	return g, nil
}

// SetSigners swaps in a reloaded allowed_signers file.
func (g *Gate) SetSigners(s *AllowedSigners) { g.signers.Store(s) }

// Request is one invocation to decide on.
type Request struct {
	Source Source
	// Capability is required for SourceHub; for SourceSigned it is taken
	// from the envelope and, when set here too, must be the same.
	Capability string
	// Envelope and Signature are the signed op (SourceSigned only): the
	// envelope file's exact bytes and its SSHSIG signature, armored or raw.
	Envelope  []byte
	Signature []byte
}

// Decision is an allowed invocation. For a signed op, run exactly
// Capability with Params.
type Decision struct {
	Source     Source
	Capability string
	Class      Class
	// Principal is the identity whose policy rule allowed the op (signed
	// only), and KeyFingerprint/KeyType the signing key.
	Principal      string
	KeyFingerprint string
	KeyType        string
	// OpID, Params, IssuedAt, ExpiresAt, Destructive come from the
	// envelope (signed only).
	OpID        string
	Params      map[string]any
	IssuedAt    time.Time
	ExpiresAt   time.Time
	Destructive bool
}

// Check decides on req. It returns a *Rejection when the invocation may
// not run, or the context's error when ctx ended first. For a signed op
// the pipeline is: clock rollback check, SSHSIG and allowed_signers,
// envelope form, capability and class, host and time window, declared
// destructiveness, policy, and last the durable nonce record: an op ID is
// used up only by an op that passed everything else, and only a
// recorded op is allowed.
func (g *Gate) Check(ctx context.Context, req Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("check op: %w", err)
	}
	switch req.Source {
	case SourceHub:
		return g.checkHub(req)
	case SourceSigned:
		return g.checkSigned(ctx, req)
	}
	return Decision{}, reject(ReasonInvalidRequest, nil, "unknown source %q", req.Source)
}

func (g *Gate) classify(capID string) (Class, error) {
	c, ok := g.cfg.Classify(capID)
	if !ok {
		return "", reject(ReasonUnknownCapability, nil, "capability %q", capID)
	}
	switch cl := Class(c); cl {
	case ClassRead, ClassBenign, ClassDestructive:
		return cl, nil
	}
	return "", reject(ReasonUnknownCapability, nil, "capability %q has unknown class %q", capID, c)
}

func (g *Gate) checkHub(req Request) (Decision, error) {
	if len(req.Envelope) != 0 || len(req.Signature) != 0 {
		return Decision{}, reject(ReasonInvalidRequest, nil, "a hub request carries no envelope or signature; use source %q", SourceSigned)
	}
	if req.Capability == "" {
		return Decision{}, reject(ReasonInvalidRequest, nil, "no capability")
	}
	class, err := g.classify(req.Capability)
	if err != nil {
		return Decision{}, err
	}
	if class == ClassDestructive {
		return Decision{}, reject(ReasonSignatureRequired, nil, "capability %q is destructive", req.Capability)
	}
	return Decision{Source: SourceHub, Capability: req.Capability, Class: class}, nil
}

func (g *Gate) checkSigned(ctx context.Context, req Request) (Decision, error) {
	if len(req.Envelope) == 0 {
		return Decision{}, reject(ReasonMalformedEnvelope, nil, "empty envelope")
	}
	if len(req.Signature) == 0 {
		return Decision{}, reject(ReasonMalformedSignature, nil, "empty signature")
	}
	now := g.cfg.Now()
	if err := g.cfg.Nonces.CheckClock(now); err != nil {
		return Decision{}, nonceRejection(err)
	}
	v := Verifier{Signers: g.signers.Load(), Namespace: g.cfg.Namespace, Now: func() time.Time { return now }}
	res, err := v.FindPrincipals(req.Envelope, req.Signature)
	if err != nil {
		return Decision{}, err
	}
	env, err := ParseEnvelope(req.Envelope)
	if err != nil {
		return Decision{}, err
	}
	if req.Capability != "" && req.Capability != env.Capability {
		return Decision{}, reject(ReasonCapabilityMismatch, nil, "request %q, signed op %q", req.Capability, env.Capability)
	}
	class, err := g.classify(env.Capability)
	if err != nil {
		return Decision{}, err
	}
	if err := env.Check(EnvelopeChecks{Host: g.cfg.Host, Skew: g.cfg.Skew, MaxTTL: g.cfg.MaxTTL}, now); err != nil {
		return Decision{}, err
	}
	if class == ClassDestructive && !env.Destructive {
		return Decision{}, reject(ReasonDestructiveNotDeclared, nil, "capability %q is destructive; the envelope must say \"destructive\": true", env.Capability)
	}
	principal, ok := g.cfg.Policy.Allow(res.Principals, env.Capability)
	if !ok {
		return Decision{}, reject(ReasonCapabilityNotAllowed, nil, "no policy rule lets %q run %q", res.Principals, env.Capability)
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("check op %s: %w", env.OpID, err)
	}
	if err := g.cfg.Nonces.Record(env.OpID, env.ExpiresAt, env.IssuedAt); err != nil {
		return Decision{}, nonceRejection(err)
	}
	return Decision{
		Source:         SourceSigned,
		Capability:     env.Capability,
		Class:          class,
		Principal:      principal,
		KeyFingerprint: res.KeyFingerprint,
		KeyType:        res.KeyType,
		OpID:           env.OpID,
		Params:         env.Params,
		IssuedAt:       env.IssuedAt,
		ExpiresAt:      env.ExpiresAt,
		Destructive:    env.Destructive,
	}, nil
}

func nonceRejection(err error) *Rejection {
	switch {
	case errors.Is(err, nonce.ErrReplay):
		return reject(ReasonReplay, err, "%v", err)
	case errors.Is(err, nonce.ErrClockRollback):
		return reject(ReasonClockRollback, err, "%v", err)
	case errors.Is(err, nonce.ErrExpired):
		return reject(ReasonOpExpired, err, "%v", err)
	}
	return reject(ReasonNonceStoreFailure, err, "the op was not recorded, so it does not run")
}
