package pluginhost

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// Benchmarks report figures; they assert nothing about speed. Each one has
// a plain go-plugin baseline measured in the same run: the fake binary's
// "plain" mode serves PluginService with plain go-plugin, and the host side
// below starts it with AutoMTLS (P-521), go-plugin's own exec, and the host
// environment inherited, as an application using go-plugin directly would.
//
//	go test -run '^$' -bench . -benchtime 10x ./core/pluginhost

var benchNames = []string{"bencha", "benchb", "benchc", "benchd", "benche"}

func benchDir(b *testing.B) (dir string, plain []string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	files := map[string]string{}
	for i, n := range benchNames {
		files["felhom-plugin-"+n+"_v1.0.0"] = bin(b, testBin)
		files["felhom-plugin-plain"+strconv.Itoa(i)+"_v1.0.0"] = bin(b, fakeBin)
	}
	dir = pluginDir(b, files)
	pin(b, dir)
	for i := range benchNames {
		plain = append(plain, filepath.Join(dir, "felhom-plugin-plain"+strconv.Itoa(i)+"_v1.0.0"))
	}
	// The plain binaries are refused by the host (they are not felhom
	// plugins); keep them out of its way.
	pdir := filepath.Join(filepath.Dir(dir), "plain")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i, p := range plain {
		np := filepath.Join(pdir, filepath.Base(p))
		if err := os.Rename(p, np); err != nil {
			b.Fatal(err)
		}
		plain[i] = np
	}
	return dir, plain
}

func benchLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "felhom-agent", Level: hclog.Error, Output: os.Stderr})
}

// plain go-plugin baseline, host side.
type plainClient struct{ plugin.NetRPCUnsupportedPlugin }

func (plainClient) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("host side only")
}

func (plainClient) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginServiceClient(c), nil
}

var plainHandshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "PLAIN_BASELINE", MagicCookieValue: "baseline"}

// startPlain starts one baseline plugin and makes its first RPC.
func startPlain(path string) (*plugin.Client, pluginv1.PluginServiceClient, error) {
	cmd := exec.Command(path)
	// Its socket goes beside it (removed with the test's temp dir), not
	// into /tmp, where a killed plugin would leave it.
	cmd.Env = []string{plugin.EnvUnixSocketDir + "=" + filepath.Dir(path)}
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plainHandshake, Plugins: plugin.PluginSet{"plain": plainClient{}},
		Cmd: cmd, AutoMTLS: true, AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger: benchLogger(),
	})
	rpc, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, nil, err
	}
	raw, err := rpc.Dispense("plain")
	if err != nil {
		c.Kill()
		return nil, nil, err
	}
	pc := raw.(pluginv1.PluginServiceClient)
	if _, err := pc.Info(context.Background(), &pluginv1.InfoRequest{}); err != nil {
		c.Kill()
		return nil, nil, err
	}
	return c, pc, nil
}

func startPlainAll(b *testing.B, paths []string) []*plugin.Client {
	out := make([]*plugin.Client, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], _, errs[i] = startPlain(p)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return out
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkColdStart5 times a host from New to all 5 plugins registered
// (scan, open, hash, exec, handshake with plugintls, Info, conflicts,
// Configure with host services, registry swap), against plain go-plugin
// with AutoMTLS starting the same number of processes to their first RPC.
// Besides median and max it reports, as medians over the iterations, each
// phase's mean duration over the plugins (<phase>-ms), when the last
// plugin finished hashing and when the last one answered Info (offsets
// from Start), and the CPU time the cold start cost: the host's own
// (hashing, TLS, gRPC, fork) and the plugins' (runtime start, TLS, gRPC).
//
// "hash-cached" gives the Host the hashes a previous Host computed, as a
// restart of an unchanged binary finds them: the cold start minus hashing.
// A real cold start (a new agent process) always hashes every binary.
func BenchmarkColdStart5(b *testing.B) {
	dir, plain := benchDir(b)
	b.Run("pluginhost", func(b *testing.B) {
		benchColdStart(b, dir, benchNames, nil)
	})
	b.Run("pluginhost-hash-cached", func(b *testing.B) {
		time.Sleep(hashSettle) // only files unchanged that long are cached
		warm, err := New(Options{Dir: dir, Logger: benchLogger(), Node: "pve1"})
		if err != nil {
			b.Fatal(err)
		}
		if err := warm.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		_ = warm.Stop(context.Background())
		if len(warm.hashes.m) != len(benchNames) {
			b.Fatalf("%d hashes cached, want %d (binaries changed less than %v ago?)", len(warm.hashes.m), len(benchNames), hashSettle)
		}
		benchColdStart(b, dir, benchNames, func(h *Host) { h.hashes.m = maps.Clone(warm.hashes.m) })
	})
	b.Run("plain-go-plugin-automtls", func(b *testing.B) {
		var ds, hostCPU, plugCPU []time.Duration
		for range b.N {
			c0 := selfCPU()
			t0 := time.Now()
			cs := startPlainAll(b, plain)
			ds = append(ds, time.Since(t0))
			hostCPU = append(hostCPU, selfCPU()-c0)
			b.StopTimer()
			var pc time.Duration
			for _, c := range cs {
				pid, _ := strconv.Atoi(c.ID())
				pc += taskCPU(b, pid)
			}
			plugCPU = append(plugCPU, pc)
			for _, c := range cs {
				c.Kill()
			}
			b.StartTimer()
		}
		b.ReportMetric(ms(percentile(ds, 0.5)), "median-ms")
		b.ReportMetric(ms(percentile(ds, 1)), "max-ms")
		b.ReportMetric(ms(percentile(hostCPU, 0.5)), "host-cpu-ms")
		b.ReportMetric(ms(percentile(plugCPU, 0.5)), "plugins-cpu-ms")
	})
}

// BenchmarkColdStart1 is BenchmarkColdStart5 with one plugin: what one
// plugin costs without the others competing for the CPUs, in time and in
// CPU (host and plugin), with and without hashing.
func BenchmarkColdStart1(b *testing.B) {
	dir, _ := benchDir(b)
	one := benchNames[:1]
	b.Run("pluginhost", func(b *testing.B) {
		benchColdStart(b, dir, one, nil)
	})
	b.Run("pluginhost-hash-cached", func(b *testing.B) {
		time.Sleep(hashSettle)
		warm, err := New(Options{Dir: dir, Logger: benchLogger(), Only: one})
		if err != nil {
			b.Fatal(err)
		}
		if err := warm.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		_ = warm.Stop(context.Background())
		benchColdStart(b, dir, one, func(h *Host) { h.hashes.m = maps.Clone(warm.hashes.m) })
	})
}

// benchColdStart starts a Host running names b.N times; prep adjusts each
// Host before its Start.
func benchColdStart(b *testing.B, dir string, names []string, prep func(*Host)) {
	var ds, hostCPU, plugCPU, lastHash, lastInfo []time.Duration
	var phases [numPhases][]time.Duration
	for range b.N {
		h, err := New(Options{Dir: dir, Logger: benchLogger(), Node: "pve1", Only: names})
		if err != nil {
			b.Fatal(err)
		}
		if prep != nil {
			prep(h)
		}
		c0 := selfCPU()
		t0 := time.Now()
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		hostCPU = append(hostCPU, selfCPU()-c0)
		b.StopTimer()
		var pc time.Duration
		for _, n := range names {
			if h.Registry().Generation(n) == nil {
				b.Fatalf("%s not registered: %+v", n, statusByName(h, n))
			}
			pc += taskCPU(b, statusByName(h, n).PID)
		}
		plugCPU = append(plugCPU, pc)
		var sum [numPhases]time.Duration
		var lh, li time.Time
		for _, st := range h.trace.plugins {
			for p, d := range st.durations() {
				sum[p] += d
			}
			lh = latest(lh, st.at[phaseHash])
			li = latest(li, st.at[phaseInfo])
		}
		for p := range sum {
			phases[p] = append(phases[p], sum[p]/time.Duration(len(h.trace.plugins)))
		}
		if !lh.IsZero() {
			lastHash = append(lastHash, lh.Sub(h.trace.begin))
		}
		lastInfo = append(lastInfo, li.Sub(h.trace.begin))
		_ = h.Stop(context.Background())
		b.StartTimer()
	}
	b.ReportMetric(ms(percentile(ds, 0.5)), "median-ms")
	b.ReportMetric(ms(percentile(ds, 1)), "max-ms")
	for p := range numPhases {
		b.ReportMetric(ms(percentile(phases[p], 0.5)), phaseNames[p]+"-ms")
	}
	if len(lastHash) > 0 {
		b.ReportMetric(ms(percentile(lastHash, 0.5)), "last-hashed-at-ms")
	}
	b.ReportMetric(ms(percentile(lastInfo, 0.5)), "last-info-at-ms")
	b.ReportMetric(ms(percentile(hostCPU, 0.5)), "host-cpu-ms")
	b.ReportMetric(ms(percentile(plugCPU, 0.5)), "plugins-cpu-ms")
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// taskCPU is the CPU time pid (all its threads) has used so far: the
// process CPU clock of another process (clock_getcpuclockid(3)), which,
// unlike /proc/PID/task/*, leaves no /proc dentries that make reaping the
// process slow.
func taskCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^pid<<3|2), &ts); err != nil { // CPUCLOCK_SCHED of the whole process
		b.Fatalf("CPU clock of pid %d: %v", pid, err)
	}
	return time.Duration(ts.Nano())
}

func statusByName(h *Host, name string) PluginStatus {
	for _, st := range h.Status() {
		if st.Name == name {
			return st
		}
	}
	return PluginStatus{}
}

// BenchmarkHash5 is the share of the cold start spent hashing: the five
// binaries hashed in parallel, as Start does.
func BenchmarkHash5(b *testing.B) {
	dir, _ := benchDir(b)
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	fi, _ := os.Stat(filepath.Join(dir, "felhom-plugin-bencha_v1.0.0"))
	var ds []time.Duration
	for range b.N {
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, n := range benchNames {
			wg.Add(1)
			go func() {
				defer wg.Done()
				bin, err := openBinary(d, "felhom-plugin-"+n+"_v1.0.0")
				if err != nil {
					b.Error(err)
					return
				}
				defer bin.close()
				if _, err := bin.hash(); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		ds = append(ds, time.Since(t0))
	}
	b.ReportMetric(ms(percentile(ds, 0.5)), "median-ms")
	b.ReportMetric(float64(fi.Size())/1e6, "binary-MB")
}

const invokeCalls = 2000

// BenchmarkInvokeNoop measures single no-op calls one after another:
// Host.Invoke (registry lookup, in-flight count, sdk client, plugintls)
// against a plain go-plugin (AutoMTLS) gRPC call of the same RPC. Each of
// the b.N rounds makes invokeCalls timed calls after warming up; p50/p99
// are over all calls.
func BenchmarkInvokeNoop(b *testing.B) {
	dir, plain := benchDir(b)
	b.Run("pluginhost", func(b *testing.B) {
		h, err := New(Options{Dir: dir, Logger: benchLogger(), Only: []string{"bencha"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer h.Stop(context.Background())
		ctx := context.Background()
		call := func() error {
			_, err := h.Invoke(ctx, "bencha.noop", nil, "", "")
			return err
		}
		reportCalls(b, call)
	})
	b.Run("plain-go-plugin-automtls", func(b *testing.B) {
		c, pc, err := startPlain(plain[0])
		if err != nil {
			b.Fatal(err)
		}
		defer c.Kill()
		ctx := context.Background()
		req := &pluginv1.InvokeRequest{Capability: "plain.noop", SchemaVersion: 1}
		call := func() error {
			_, err := pc.Invoke(ctx, req)
			return err
		}
		reportCalls(b, call)
	})
}

func reportCalls(b *testing.B, call func() error) {
	b.Helper()
	for range 500 {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	ds := make([]time.Duration, 0, b.N*invokeCalls)
	b.ResetTimer()
	for range b.N {
		for range invokeCalls {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
	}
	b.StopTimer()
	b.ReportMetric(us(percentile(ds, 0.5)), "p50-µs")
	b.ReportMetric(us(percentile(ds, 0.99)), "p99-µs")
}

// BenchmarkMemoryAtRest reads VmRSS, RssAnon and RssFile of the host (this
// test process) and of each of 5 plugins after 2 s idle, for pluginhost and
// for the plain go-plugin baseline. The host figures include the test
// framework.
func BenchmarkMemoryAtRest(b *testing.B) {
	dir, plain := benchDir(b)
	b.Run("pluginhost", func(b *testing.B) {
		for range b.N {
		}
		runtime.GC()
		before := rss(b, os.Getpid())
		h, err := New(Options{Dir: dir, Logger: benchLogger(), Node: "pve1"})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer h.Stop(context.Background())
		var pids []int
		for _, st := range h.Status() {
			pids = append(pids, st.PID)
		}
		reportRSS(b, before, pids)
	})
	b.Run("plain-go-plugin-automtls", func(b *testing.B) {
		for range b.N {
		}
		runtime.GC()
		before := rss(b, os.Getpid())
		cs := startPlainAll(b, plain)
		defer func() {
			for _, c := range cs {
				c.Kill()
			}
		}()
		var pids []int
		for _, c := range cs {
			pid, _ := strconv.Atoi(c.ID())
			pids = append(pids, pid)
		}
		reportRSS(b, before, pids)
	})
}

type rssInfo struct{ vm, anon, file float64 } // MiB

func rss(b *testing.B, pid int) rssInfo {
	b.Helper()
	var out rssInfo
	for field, dst := range map[string]*float64{"VmRSS": &out.vm, "RssAnon": &out.anon, "RssFile": &out.file} {
		v, err := procStatus(pid, field)
		if err != nil {
			b.Fatal(err)
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
		if err != nil {
			b.Fatalf("%s of %d = %q", field, pid, v)
		}
		*dst = kb / 1024
	}
	return out
}

func reportRSS(b *testing.B, before rssInfo, pids []int) {
	b.Helper()
	time.Sleep(2 * time.Second)
	runtime.GC()
	after := rss(b, os.Getpid())
	var sum, maxVM rssInfo
	for _, pid := range pids {
		r := rss(b, pid)
		sum.vm += r.vm
		sum.anon += r.anon
		sum.file += r.file
		maxVM.vm = max(maxVM.vm, r.vm)
	}
	n := float64(len(pids))
	b.ReportMetric(before.vm, "host-before-VmRSS-MiB")
	b.ReportMetric(after.vm, "host-VmRSS-MiB")
	b.ReportMetric(after.anon, "host-RssAnon-MiB")
	b.ReportMetric(sum.vm/n, "plugin-VmRSS-MiB")
	b.ReportMetric(maxVM.vm, "plugin-max-VmRSS-MiB")
	b.ReportMetric(sum.anon/n, "plugin-RssAnon-MiB")
	b.ReportMetric(sum.file/n, "plugin-RssFile-MiB")
	b.ReportMetric(n, "plugins")
}
