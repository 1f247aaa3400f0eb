package proxmox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkNoGoroutineLeak fails the test if goroutines started during it are
// still running once its cleanups (servers, idle connections) are done.
// Call it first, so that its cleanup runs last.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// fastWaiter polls quickly so tests take milliseconds.
func fastWaiter(c *Client, mod ...func(*WaiterOptions)) *Waiter {
	o := WaiterOptions{MinInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond, ListGrace: 100 * time.Millisecond}
	for _, m := range mod {
		m(&o)
	}
	return NewWaiter(c, o)
}

func TestWaitSuccess(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	c := f.client(t)
	w := fastWaiter(c)
	upid := f.addTask("qmstart", "100", 80*time.Millisecond, "OK", "starting VM 100")
	res, err := w.Wait(context.Background(), upid)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitStatus != "OK" || res.Warnings != 0 || res.UPID.String() != upid {
		t.Fatalf("result %+v", res)
	}
	if res.EndTime.IsZero() || res.Duration < 0 {
		t.Errorf("EndTime %v Duration %v", res.EndTime, res.Duration)
	}
	st := w.Stats()
	if st.StatusCalls != 0 || st.ListCalls == 0 || st.LogCalls != 0 {
		t.Errorf("stats %+v: want list polls only", st)
	}
	if n := f.count("GET /nodes/{node}/tasks/{upid}/status"); n != 0 {
		t.Errorf("server saw %d status calls", n)
	}
}

func TestWaitWarningsIsSuccess(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	w := fastWaiter(f.client(t))
	upid := f.addTask("vzcreate", "300", 20*time.Millisecond, "WARNINGS: 2", "WARN: a", "WARN: b")
	res, err := w.Wait(context.Background(), upid)
	if err != nil {
		t.Fatalf("WARNINGS must be success: %v", err)
	}
	if res.Warnings != 2 || res.ExitStatus != "WARNINGS: 2" {
		t.Fatalf("result %+v", res)
	}
}

func TestWaitFailureCarriesLogTail(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	w := fastWaiter(f.client(t))
	var log []string
	for i := 1; i <= 30; i++ {
		log = append(log, fmt.Sprintf("line %d", i))
	}
	exit := "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"
	upid := f.addTask("qmsnapshot", "100", 30*time.Millisecond, exit, log...)
	_, err := w.Wait(context.Background(), upid)
	var tf *TaskFailedError
	if !errors.As(err, &tf) {
		t.Fatalf("err = %v (%T), want *TaskFailedError", err, err)
	}
	if tf.ExitStatus != exit || tf.UPID.String() != upid {
		t.Errorf("TaskFailedError %+v", tf)
	}
	if len(tf.LogTail) != 20 || tf.LogTail[0] != "line 12" || tf.LogTail[19] != "TASK ERROR: "+exit {
		t.Errorf("LogTail = %q; want lines 12..30 and the TASK ERROR line", tf.LogTail)
	}
	// The exit text is classified like a synchronous error would be.
	var le *LockTimeoutError
	if !errors.Is(err, ErrLockTimeout) || !errors.As(err, &le) || le.File != "/var/lock/qemu-server/lock-100.conf" {
		t.Errorf("task error not classified as lock timeout: %v", err)
	}
	if !strings.Contains(err.Error(), "qmsnapshot 100") || !strings.Contains(err.Error(), exit) {
		t.Errorf("error text %q", err)
	}
	if !IsTaskFailed(err) {
		t.Error("IsTaskFailed = false")
	}

	// A short log takes one read.
	before := w.Stats().LogCalls
	upid = f.addTask("qmdelsnapshot", "100", 0, "snapshot 'x' does not exist", "deleting")
	_, err = w.Wait(context.Background(), upid)
	if !errors.As(err, &tf) || len(tf.LogTail) != 2 || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, tail %q", err, tf.LogTail)
	}
	if n := w.Stats().LogCalls - before; n != 1 {
		t.Errorf("%d log reads for a 2-line log, want 1", n)
	}
}

func TestWaitToleratesEarlyNoSuchTask(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	f.noSuchTaskFor = 250 * time.Millisecond // hidden from list and status at first
	w := fastWaiter(f.client(t), func(o *WaiterOptions) { o.ListGrace = 20 * time.Millisecond; o.NoSuchTaskGrace = 5 * time.Second })
	upid := f.addTask("vzstart", "100", 0, "OK")
	res, err := w.Wait(context.Background(), upid)
	if err != nil || res.ExitStatus != "OK" {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
	if f.count("GET /nodes/{node}/tasks/{upid}/status") == 0 {
		t.Error("the 400 no-such-task path was not exercised")
	}
}

func TestWaitNoSuchTaskAfterGrace(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	w := fastWaiter(f.client(t), func(o *WaiterOptions) {
		o.ListGrace = 20 * time.Millisecond
		o.NoSuchTaskGrace = 150 * time.Millisecond
	})
	ghost := UPID{Node: "pve", PID: 1, PStart: 1, StartTime: time.Now().Unix(), Type: "qmstart", ID: "100", User: "root@pam"}
	_, err := w.Wait(context.Background(), ghost.String())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such task") {
		t.Fatalf("err = %v, want ErrNotFound with the server's text", err)
	}
}

func TestWaitCancelReturnsPromptly(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	w := fastWaiter(f.client(t))
	upid := f.addTask("vzdump", "100", time.Hour, "OK")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := w.Wait(ctx, upid)
		done <- err
	}()
	time.Sleep(60 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled itself", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
	if n := f.count("DELETE /nodes/{node}/tasks/{upid}"); n != 0 {
		t.Errorf("cancel stopped the task on the server (%d DELETEs)", n)
	}
	waitFor(t, func() bool { return w.Stats().Pollers == 0 }, "poller to stop after the last wait")

	// An expired context returns at once without polling.
	calls := f.count("GET /nodes/{node}/tasks")
	if _, err := w.Wait(ctx, upid); err != context.Canceled {
		t.Fatalf("err = %v", err)
	}
	if f.count("GET /nodes/{node}/tasks") != calls {
		t.Error("a wait with a done context polled")
	}
}

func TestWaitConcurrentSharesOnePollPerTick(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	w := fastWaiter(f.client(t))
	const n = 100
	upids := make([]string, n)
	for i := range upids {
		upids[i] = f.addTask("qmstart", fmt.Sprint(100+i), time.Duration(50+3*i)*time.Millisecond, "OK")
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, u := range upids {
		wg.Go(func() {
			if _, err := w.Wait(context.Background(), u); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := w.Stats()
	lists := f.count("GET /nodes/{node}/tasks")
	if uint64(lists) != st.ListCalls || st.ListCalls > st.Ticks {
		t.Errorf("server saw %d task-list reads, waiter made %d in %d ticks; want at most one per tick", lists, st.ListCalls, st.Ticks)
	}
	if s := f.count("GET /nodes/{node}/tasks/{upid}/status"); s != 0 || st.StatusCalls != 0 {
		t.Errorf("%d per-task status calls (waiter counted %d); want none", s, st.StatusCalls)
	}
	if st.Ticks >= n {
		t.Errorf("%d ticks for %d tasks: polls are not shared", st.Ticks, n)
	}
	t.Logf("%d tasks, %d ticks, %d list calls", n, st.Ticks, lists)
}

func TestWaitFallsBackToStatusWhenNotListed(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	f.hideFromList = true // e.g. the list is filtered differently than expected
	w := fastWaiter(f.client(t), func(o *WaiterOptions) { o.ListGrace = 30 * time.Millisecond })
	upid := f.addTask("qmconfig", "101", 100*time.Millisecond, "OK")
	if _, err := w.Wait(context.Background(), upid); err != nil {
		t.Fatal(err)
	}
	if w.Stats().StatusCalls == 0 {
		t.Error("no status fallback")
	}
}

func TestWaitSameTaskTwiceAndSeveralNodes(t *testing.T) {
	checkNoGoroutineLeak(t)
	f := newFakePVE(t)
	w := fastWaiter(f.client(t))
	a := f.addTask("qmstart", "100", 150*time.Millisecond, "OK")
	b := f.addTaskOn("pve2", "vzstart", "200", 150*time.Millisecond, "WARNINGS: 1")
	var wg sync.WaitGroup
	results := make([]TaskResult, 3)
	errs := make([]error, 3)
	for i, u := range []string{a, a, b} {
		wg.Go(func() { results[i], errs[i] = w.Wait(context.Background(), u) })
	}
	waitFor(t, func() bool { return w.Stats().Pollers == 2 }, "one poller per node")
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("wait %d: %v", i, err)
		}
	}
	if results[2].Warnings != 1 || results[2].UPID.Node != "pve2" {
		t.Errorf("pve2 result %+v", results[2])
	}
	waitFor(t, func() bool { return w.Stats().Pollers == 0 }, "pollers to stop")
	// A later wait starts a fresh poller.
	if _, err := w.Wait(context.Background(), f.addTask("qmstop", "100", 0, "OK")); err != nil {
		t.Fatal(err)
	}
}

func TestWaitRejectsBadUPID(t *testing.T) {
	f := newFakePVE(t)
	_, err := fastWaiter(f.client(t)).Wait(context.Background(), "UPID:pve:bad")
	if err == nil || !strings.HasPrefix(err.Error(), "wait for task: parse UPID") {
		t.Fatalf("err = %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
