package authz

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/nonce"
)

// BenchmarkGate measures verified signed ops per second end to end
// (SSHSIG ed25519 verify, allowed_signers, envelope, policy, nonce
// record), with the durable store on the test's temp dir and with the
// in-memory set for comparison.
func BenchmarkGate(b *testing.B) {
	alice := newOperator(b, "alice@example")
	dir := b.TempDir()
	signers := writeSigners(b, dir, alice.line())
	for _, mode := range []string{"durable", "memory"} {
		b.Run(mode, func(b *testing.B) {
			var store NonceStore
			if mode == "durable" {
				s, err := nonce.Open(filepath.Join(b.TempDir(), "nonces"), nonce.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				store = s
			} else {
				store = nonce.NewMemory(nonce.Options{})
			}
			g, err := NewGate(GateConfig{Host: "pve1", Signers: signers, Policy: testPolicy, Classify: classify, Nonces: store})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now().Truncate(time.Second)
			reqs := make([]Request, b.N)
			for i := range reqs {
				env, sig := alice.sign(b, "guest.delete", true, now)
				reqs[i] = Request{Source: SourceSigned, Envelope: env, Signature: sig}
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := g.Check(ctx, reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
