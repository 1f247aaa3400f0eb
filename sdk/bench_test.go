package sdk_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// plainHost dispenses a bare PluginService client: the baseline of plain
// go-plugin gRPC with its defaults.
type plainHost struct{ plugin.NetRPCUnsupportedPlugin }

func (plainHost) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (plainHost) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginServiceClient(c), nil
}

var plainSets = map[int]plugin.PluginSet{1: {sdk.PluginSetKey: plainHost{}}}

// launchPlain starts the baseline plugin with go-plugin's defaults.
func launchPlain(tb testing.TB, autoMTLS bool) (*launched, pluginv1.PluginServiceClient) {
	tb.Helper()
	l, err := launch(tb, buildBin(tb, "plainplugin"), launchOpts{autoMTLS: autoMTLS, plugins: plainSets,
		hostTLS: noTLS, noTLSFD: true})
	if err != nil {
		tb.Fatalf("launch plain: %v", err)
	}
	raw, err := mustDispense(l)
	if err != nil {
		tb.Fatal(err)
	}
	return l, raw.(pluginv1.PluginServiceClient)
}

func mustDispense(l *launched) (any, error) {
	rpc, err := l.client.Client()
	if err != nil {
		return nil, err
	}
	return rpc.Dispense(sdk.PluginSetKey)
}

// launchSDK starts the demo plugin over plugintls, Info'd and Configure'd.
func launchSDK(tb testing.TB) *launched {
	tb.Helper()
	l, err := launch(tb, buildBin(tb, "demoplugin"), launchOpts{})
	if err != nil {
		tb.Fatalf("launch demo: %v\n%s", err, l.stderr.String())
	}
	ctx := context.Background()
	if _, err := l.pc.Info(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := l.pc.Configure(ctx, sdk.ConfigureArgs{Node: "pve"}, nil); err != nil {
		tb.Fatal(err)
	}
	return l
}

func reportPercentiles(b *testing.B, prefix string, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(at(0.50), prefix+"p50-µs")
	b.ReportMetric(at(0.99), prefix+"p99-µs")
}

// BenchmarkInvokeNoop: a no-op capability through sdk.PluginClient over the
// plugintls channel vs the same-shaped no-op RPC on plain go-plugin gRPC
// (no TLS, go-plugin defaults). The paired form alternates both calls in
// one loop so both see the same machine state, and reports the ratio.
func BenchmarkInvokeNoop(b *testing.B) {
	ctx := context.Background()
	req := &pluginv1.InvokeRequest{Capability: "demo.noop", SchemaVersion: 1}
	warm := func(f func() error) {
		for range 500 {
			if err := f(); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("sdk-plugintls", func(b *testing.B) {
		l := launchSDK(b)
		call := func() error { _, err := l.pc.Invoke(ctx, req); return err }
		warm(call)
		d := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t := time.Now()
			if err := call(); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		reportPercentiles(b, "", d)
	})
	b.Run("goplugin-plain", func(b *testing.B) {
		_, c := launchPlain(b, false)
		call := func() error { _, err := c.Info(ctx, &pluginv1.InfoRequest{}); return err }
		warm(call)
		d := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t := time.Now()
			if err := call(); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		reportPercentiles(b, "", d)
	})
	b.Run("paired", func(b *testing.B) {
		l := launchSDK(b)
		_, c := launchPlain(b, false)
		sdkCall := func() error { _, err := l.pc.Invoke(ctx, req); return err }
		plainCall := func() error { _, err := c.Info(ctx, &pluginv1.InfoRequest{}); return err }
		warm(sdkCall)
		warm(plainCall)
		ds := make([]time.Duration, 0, b.N)
		dp := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t := time.Now()
			if err := sdkCall(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t))
			t = time.Now()
			if err := plainCall(); err != nil {
				b.Fatal(err)
			}
			dp = append(dp, time.Since(t))
		}
		slices.Sort(ds)
		slices.Sort(dp)
		reportPercentiles(b, "sdk-", ds)
		reportPercentiles(b, "plain-", dp)
		if len(dp) > 0 {
			b.ReportMetric(float64(ds[len(ds)/2])/float64(dp[len(dp)/2]), "p50-ratio")
		}
	})
}

// BenchmarkColdStart: launch -> handshake -> first RPC answered, for one
// plugin process, with plugintls vs go-plugin's AutoMTLS (and no TLS as a
// floor). Process teardown is not timed.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	sdkBin := buildBin(b, "demoplugin")
	buildBin(b, "plainplugin")
	run := func(b *testing.B, start func() (*launched, error)) {
		var d []time.Duration
		for range b.N {
			t := time.Now()
			l, err := start()
			if err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
			b.StopTimer()
			l.kill()
			b.StartTimer()
		}
		reportPercentiles(b, "", d)
	}
	b.Run("plugintls", func(b *testing.B) {
		run(b, func() (*launched, error) {
			l, err := launch(b, sdkBin, launchOpts{})
			if err != nil {
				return nil, err
			}
			_, err = l.pc.Info(ctx)
			return l, err
		})
	})
	// Five plugins at once, as the agent starts them: time until all five
	// answered their first RPC.
	b.Run("plugintls-5-parallel", func(b *testing.B) {
		var d []time.Duration
		for range b.N {
			t := time.Now()
			ls := make([]*launched, 5)
			errs := make(chan error, 5)
			for i := range ls {
				go func() {
					l, err := launch(b, sdkBin, launchOpts{})
					ls[i] = l
					if err == nil {
						_, err = l.pc.Info(ctx)
					}
					errs <- err
				}()
			}
			for range ls {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			d = append(d, time.Since(t))
			b.StopTimer()
			for _, l := range ls {
				l.kill()
			}
			b.StartTimer()
		}
		reportPercentiles(b, "", d)
	})
	for _, mtls := range []bool{true, false} {
		name := "goplugin-automtls"
		if !mtls {
			name = "goplugin-notls"
		}
		b.Run(name, func(b *testing.B) {
			run(b, func() (*launched, error) {
				l, err := launch(b, buildBin(b, "plainplugin"), launchOpts{autoMTLS: mtls, plugins: plainSets, hostTLS: noTLS, noTLSFD: true})
				if err != nil {
					return nil, err
				}
				raw, err := mustDispense(l)
				if err != nil {
					return nil, err
				}
				_, err = raw.(pluginv1.PluginServiceClient).Info(ctx, &pluginv1.InfoRequest{})
				return l, err
			})
		})
	}
}

// BenchmarkIdleRSS reports the memory of an idle, configured plugin
// process (from /proc/PID/status, MiB) next to the plain go-plugin
// baseline, and what the SDK's ReleaseMemory costs the next call: each
// iteration launches both, idles 2.5 s (the SDK releases after 1 s), reads
// the figures, then times the first no-op call on each.
func BenchmarkIdleRSS(b *testing.B) {
	ctx := context.Background()
	var sdkM, plainM []map[string]float64
	var sdkFirst, plainFirst []time.Duration
	req := &pluginv1.InvokeRequest{Capability: "demo.noop", SchemaVersion: 1}
	for range b.N {
		l := launchSDK(b)
		p, c := launchPlain(b, false)
		if _, err := c.Info(ctx, &pluginv1.InfoRequest{}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		sdkM = append(sdkM, procStatus(b, l.cmd.Process.Pid))
		plainM = append(plainM, procStatus(b, p.cmd.Process.Pid))
		t := time.Now()
		if _, err := l.pc.Invoke(ctx, req); err != nil {
			b.Fatal(err)
		}
		sdkFirst = append(sdkFirst, time.Since(t))
		t = time.Now()
		if _, err := c.Info(ctx, &pluginv1.InfoRequest{}); err != nil {
			b.Fatal(err)
		}
		plainFirst = append(plainFirst, time.Since(t))
		b.StopTimer()
		l.kill()
		p.kill()
		b.StartTimer()
	}
	for _, k := range []string{"VmRSS", "RssAnon", "RssFile"} {
		b.ReportMetric(median(sdkM, k), "sdk-"+k+"-MiB")
		b.ReportMetric(median(plainM, k), "plain-"+k+"-MiB")
	}
	slices.Sort(sdkFirst)
	slices.Sort(plainFirst)
	b.ReportMetric(float64(sdkFirst[len(sdkFirst)/2].Microseconds()), "sdk-first-call-µs")
	b.ReportMetric(float64(plainFirst[len(plainFirst)/2].Microseconds()), "plain-first-call-µs")
}

func median(ms []map[string]float64, k string) float64 {
	v := make([]float64, 0, len(ms))
	for _, m := range ms {
		v = append(v, m[k])
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func procStatus(tb testing.TB, pid int) map[string]float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 2 && fields[1] == "kB" {
			n, _ := strconv.ParseFloat(fields[0], 64)
			out[k] = n / 1024
		}
	}
	return out
}
