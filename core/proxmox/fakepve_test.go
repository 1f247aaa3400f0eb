package proxmox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePVE is a small HTTPS server that answers like pveproxy for the calls
// these tests make: exact status lines (custom reason phrases), the JSON
// envelope, and a task engine with list, status and log. sdk/pvesim is
// the full simulator; this one lets unit tests set up exact responses.
type fakePVE struct {
	srv   *httptest.Server
	token string
	node  string

	mu            sync.Mutex
	tasks         map[string]*fakeTask
	counts        map[string]int
	routes        map[string]http.HandlerFunc // "METHOD /path" (path below /api2/json)
	noSuchTaskFor time.Duration
	hideFromList  bool
	observe       func(r *http.Request) // sees every authenticated request
	pid           uint32
	conns         int
}

type fakeTask struct {
	upid     UPID
	created  time.Time
	duration time.Duration
	exit     string
	log      []string
}

func (t *fakeTask) running(now time.Time) bool {
	return now.Sub(t.created) < t.duration
}

func (t *fakeTask) endTime() int64 { return t.created.Add(t.duration).Unix() }

func newFakePVE(t testing.TB) *fakePVE {
	t.Helper()
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	f := &fakePVE{
		token:  "felhom@pve!agent=" + hex.EncodeToString(secret),
		node:   "pve",
		tasks:  map[string]*fakeTask{},
		counts: map[string]int{},
		routes: map[string]http.HandlerFunc{},
		pid:    0x1000,
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	// Refused handshakes (the pin tests) are expected, not noise.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePVE) fingerprint() string {
	sum := sha256.Sum256(f.srv.Certificate().Raw)
	return formatFingerprint(sum[:])
}

func (f *fakePVE) client(t testing.TB, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL:     f.srv.URL,
		Node:        f.node,
		Token:       Token(f.token),
		Fingerprint: f.fingerprint(),
		Retry:       RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func (f *fakePVE) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

func (f *fakePVE) handle(key string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[key] = h
}

// addTask starts a task that runs for d and ends with exit ("OK",
// "WARNINGS: 2", or an error text); log lines precede the TASK line.
func (f *fakePVE) addTask(typ, id string, d time.Duration, exit string, log ...string) string {
	return f.addTaskOn(f.node, typ, id, d, exit, log...)
}

// addTaskOn is addTask for a task on another cluster node.
func (f *fakePVE) addTaskOn(node, typ, id string, d time.Duration, exit string, log ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pid++
	now := time.Now()
	u := UPID{Node: node, PID: f.pid, PStart: 0x2A00 + uint64(f.pid), StartTime: now.Unix(), Type: typ, ID: id, User: "felhom@pve!agent"}
	lines := append([]string(nil), log...)
	switch {
	case exit == "OK":
		lines = append(lines, "TASK OK")
	case strings.HasPrefix(exit, "WARNINGS: "):
		lines = append(lines, "TASK "+exit)
	default:
		lines = append(lines, "TASK ERROR: "+exit)
	}
	task := &fakeTask{upid: u, created: now, duration: d, exit: exit, log: lines}
	f.tasks[u.String()] = task
	return u.String()
}

// writePVE answers like pveproxy: the reason phrase carries the error
// text, which net/http cannot set, so the connection is hijacked.
func writePVE(w http.ResponseWriter, status int, reason string, body any) {
	b, _ := json.Marshal(body)
	if status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = w.Write(b)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("response writer cannot hijack")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, reason, len(b), b)
	_ = buf.Flush()
}

// pveError writes an error the way libpve-http-server-perl >= 5.2 does.
func pveError(w http.ResponseWriter, status int, text string, errs map[string]string) {
	body := map[string]any{"data": nil, "message": text + "\n"}
	if errs != nil {
		body["errors"] = errs
	}
	writePVE(w, status, text, body)
}

func pveData(w http.ResponseWriter, data any, total ...int) {
	body := map[string]any{"data": data}
	if len(total) > 0 {
		body["total"] = total[0]
	}
	writePVE(w, http.StatusOK, "OK", body)
}

func (f *fakePVE) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "PVEAPIToken="+f.token {
		writePVE(w, http.StatusUnauthorized, "authentication failure", map[string]any{"data": nil})
		return
	}
	path := strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix)
	if err := r.ParseForm(); err != nil {
		pveError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	key := f.routeKey(r.Method, path)
	f.mu.Lock()
	if f.observe != nil {
		f.observe(r)
	}
	f.counts[key]++
	h := f.routes[r.Method+" "+path]
	f.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) >= 3 && segs[0] == "nodes" && segs[2] == "tasks" {
		f.serveTasks(w, r, segs)
		return
	}
	pveError(w, http.StatusNotImplemented, fmt.Sprintf("Method '%s %s' not implemented", r.Method, path), nil)
}

// routeKey names a request like pvesim's Stats do.
func (f *fakePVE) routeKey(method, path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) >= 2 && segs[0] == "nodes" {
		segs[1] = "{node}"
		if len(segs) >= 4 && segs[2] == "tasks" {
			segs[3] = "{upid}"
		}
	}
	return method + " /" + strings.Join(segs, "/")
}

func (f *fakePVE) serveTasks(w http.ResponseWriter, r *http.Request, segs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if len(segs) == 3 && r.Method == http.MethodGet {
		since, _ := strconv.ParseInt(r.Form.Get("since"), 10, 64)
		start, _ := strconv.Atoi(r.Form.Get("start"))
		limit := 50
		if l := r.Form.Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		var all []*fakeTask
		for _, t := range f.tasks {
			if f.hideFromList || t.upid.Node != segs[1] || t.upid.StartTime < since || now.Sub(t.created) < f.noSuchTaskFor {
				continue
			}
			all = append(all, t)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].upid.PID > all[j].upid.PID })
		out := []map[string]any{}
		for i, t := range all {
			if i < start || len(out) >= limit {
				continue
			}
			e := map[string]any{"upid": t.upid.String(), "node": t.upid.Node, "type": t.upid.Type, "id": t.upid.ID,
				"user": t.upid.UserID(), "tokenid": t.upid.TokenID(), "starttime": t.upid.StartTime,
				"pid": t.upid.PID, "pstart": t.upid.PStart}
			if t.running(now) {
				e["status"] = "RUNNING"
			} else {
				e["status"] = t.exit
				e["endtime"] = t.endTime()
			}
			out = append(out, e)
		}
		pveData(w, out, len(all))
		return
	}
	if len(segs) < 5 {
		pveError(w, http.StatusNotImplemented, "Method not implemented", nil)
		return
	}
	raw, _ := url.PathUnescape(segs[3])
	if _, err := ParseUPID(raw); err != nil {
		pveError(w, http.StatusBadRequest, "Parameter verification failed.", map[string]string{"upid": "unable to parse worker upid"})
		return
	}
	t := f.tasks[raw]
	if t == nil || now.Sub(t.created) < f.noSuchTaskFor {
		pveError(w, http.StatusBadRequest, "Parameter verification failed.", map[string]string{"upid": "no such task"})
		return
	}
	switch segs[4] {
	case "status":
		st := map[string]any{"upid": raw, "node": t.upid.Node, "type": t.upid.Type, "id": t.upid.ID,
			"user": t.upid.UserID(), "tokenid": t.upid.TokenID(), "starttime": t.upid.StartTime, "pid": t.upid.PID, "status": "running"}
		if !t.running(now) {
			st["status"] = "stopped"
			st["exitstatus"] = t.exit
		}
		pveData(w, st)
	case "log":
		start, _ := strconv.Atoi(r.Form.Get("start"))
		limit := 50
		if l := r.Form.Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		lines := t.log
		if t.running(now) {
			lines = lines[:len(lines)-1]
		}
		out := []map[string]any{}
		for i := start; i < len(lines) && (limit == 0 || i < start+limit); i++ {
			out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
		}
		if len(lines) == 0 {
			out = append(out, map[string]any{"n": 1, "t": "no content"})
		}
		pveData(w, out, len(lines))
	default:
		pveError(w, http.StatusNotImplemented, "Method not implemented", nil)
	}
}
