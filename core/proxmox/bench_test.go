package proxmox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/pvesim"
)

// naiveWait is what most Proxmox clients do (see research §8): poll the
// task's status once per interval until it stops. One goroutine and one
// status call per task per interval.
func naiveWait(ctx context.Context, c *Client, upid string, interval time.Duration) (string, error) {
	u, err := ParseUPID(upid)
	if err != nil {
		return "", err
	}
	for {
		st, err := c.TaskStatus(ctx, u)
		if err == nil && st.Status == "stopped" {
			return st.ExitStatus, nil
		}
		if err != nil && !isNoSuchTask(err) {
			return "", err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// BenchmarkWait100Tasks has pvesim run 100 concurrent qmcreate tasks of
// 1s each (their ends spread by dispatch) and waits for them with the
// shared per-node poller and with a naive per-task 1s status poll. It
// reports the API calls the simulator answered while waiting and the wall
// time per batch of 100.
func BenchmarkWait100Tasks(b *testing.B) {
	const n = 100
	for _, mode := range []string{"shared-poller", "naive-1s-status"} {
		b.Run(mode, func(b *testing.B) {
			sim, err := pvesim.New(pvesim.Options{TaskDuration: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			if err := sim.Listen("127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = sim.Close() })
			c, err := New(Config{BaseURL: sim.URL(), Node: sim.Node(), Token: Token(sim.AdminToken()), Fingerprint: sim.Fingerprint()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.CloseIdleConnections)
			w := NewWaiter(c, WaiterOptions{})
			ctx := context.Background()
			var calls int
			var wall time.Duration
			batch := 0
			for b.Loop() {
				upids := make([]string, n)
				for i := range upids {
					vmid := 1000 + batch*n + i
					if err := c.Do(ctx, "POST", "/nodes/"+sim.Node()+"/qemu", map[string]any{"vmid": vmid}, &upids[i]); err != nil {
						b.Fatal(err)
					}
				}
				batch++
				sim.ResetStats()
				start := time.Now()
				var wg sync.WaitGroup
				for _, u := range upids {
					wg.Go(func() {
						var err error
						if mode == "shared-poller" {
							_, err = w.Wait(ctx, u)
						} else {
							_, err = naiveWait(ctx, c, u, time.Second)
						}
						if err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				wall += time.Since(start)
				for _, v := range sim.Stats().Requests {
					calls += v
				}
			}
			b.ReportMetric(float64(calls)/float64(b.N), "api-calls/op")
			b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "ms/op")
		})
	}
}

// BenchmarkWaitLatency measures how long after a task ends Wait returns,
// with the default waiter options, for 20 concurrent tasks of known
// duration (100ms..2s) per op. It reports the median and 90th percentile.
func BenchmarkWaitLatency(b *testing.B) {
	const n = 20
	for _, mode := range []string{"shared-poller", "naive-1s-status"} {
		b.Run(mode, func(b *testing.B) {
			f := newFakePVE(b)
			c := f.client(b)
			w := NewWaiter(c, WaiterOptions{})
			var mu sync.Mutex
			var lat []time.Duration
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range n {
					d := 100*time.Millisecond + time.Duration(i)*95*time.Millisecond
					upid := f.addTask("vzsnapshot", fmt.Sprint(100+i), d, "OK")
					f.mu.Lock()
					end := f.tasks[upid].created.Add(d)
					f.mu.Unlock()
					wg.Go(func() {
						var err error
						if mode == "shared-poller" {
							_, err = w.Wait(context.Background(), upid)
						} else {
							_, err = naiveWait(context.Background(), c, upid, time.Second)
						}
						if err != nil {
							b.Error(err)
						}
						l := time.Since(end)
						mu.Lock()
						lat = append(lat, l)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.9), "p90-ms")
		})
	}
}
