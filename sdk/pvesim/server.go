package pvesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configure a [Server]. The zero value is usable.
type Options struct {
	// Node is the node name, default "pve".
	Node string
	// Seed adds the seeded guests: LXC 100 "ct100" (running), QEMU 101 "vm101"
	// and LXC 9999 "scratch" (both stopped).
	Seed bool
	// TaskDuration is how long a normal task runs before it finishes. Zero
	// means 200ms; a negative value finishes tasks before the UPID is returned.
	TaskDuration time.Duration
	// NoSuchTaskFor makes task status and log answer 400 "no such task" for this
	// long after dispatch, as a real node does until the task log file exists.
	NoSuchTaskFor time.Duration
	// AuthFailDelay delays every 401 answer (real PVE: 3s). Default 0.
	AuthFailDelay time.Duration
	// LockTimeout is how long a request waits for a guest config lock before
	// "can't lock file ... - got timeout" (real PVE: 10s). Zero means 1s.
	LockTimeout time.Duration
	// Logger receives debug logs; nil discards them.
	Logger hclog.Logger
}

// Stats is a snapshot of per-route request counters. Keys are
// "METHOD /route/template", e.g. "GET /nodes/{node}/tasks/{upid}/status";
// requests that match no route are counted under their literal path.
type Stats struct {
	Requests map[string]int
}

// Server is a simulated Proxmox VE node serving the JSON API over HTTPS.
// All methods are safe for concurrent use.
type Server struct {
	opts Options
	node string
	log  hclog.Logger

	cert        tls.Certificate
	certPEM     []byte
	fingerprint string
	bootTime    time.Time

	routes  []*route
	handler http.Handler
	faults  *Faults

	mu         sync.Mutex
	closed     bool
	users      map[string]*user
	tokens     map[string]*token
	acl        []aclEntry
	roles      map[string]role
	customRole int
	guests     map[int]*guest
	storages   map[string]*storageCfg
	content    map[string][]*volume
	jobs       map[string]*backupJob
	tasks      []*task
	taskByUPID map[string]*task
	pid        uint64
	pstart     uint64
	flocks     map[int]chan struct{}
	stats      map[string]int
	timers     map[*task]*time.Timer

	adminToken string
	auditToken string

	done     chan struct{}
	inflight sync.WaitGroup // HTTP handlers in progress
	bg       sync.WaitGroup // task timers and other background work

	httpSrv  *http.Server
	serveErr chan error
	url      string
}

// New builds a server with its certificate, the default users, tokens and
// storages (and the seeded guests when [Options.Seed] is set). It does not
// listen; call [Server.Listen] or use [Server.Handler] in-process.
func New(opts Options) (*Server, error) {
	if opts.Node == "" {
		opts.Node = "pve"
	}
	if !nodeNameRE.MatchString(opts.Node) {
		return nil, fmt.Errorf("new pvesim server: invalid node name %q", opts.Node)
	}
	if opts.TaskDuration == 0 {
		opts.TaskDuration = 200 * time.Millisecond
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Server{
		opts:       opts,
		node:       opts.Node,
		log:        opts.Logger.Named("pvesim"),
		bootTime:   time.Now().Add(-72 * time.Hour),
		users:      map[string]*user{},
		tokens:     map[string]*token{},
		roles:      builtinRoles(),
		guests:     map[int]*guest{},
		storages:   map[string]*storageCfg{},
		content:    map[string][]*volume{},
		jobs:       map[string]*backupJob{},
		taskByUPID: map[string]*task{},
		pid:        uint64(3000 + time.Now().UnixNano()%4000),
		// The pstart counter starts just below 2^32 so the first two UPIDs
		// carry 8 hex digits and all later ones 9, as on long-running hosts.
		pstart: 0xFFFFFFF4,
		flocks: map[int]chan struct{}{},
		stats:  map[string]int{},
		timers: map[*task]*time.Timer{},
		done:   make(chan struct{}),
	}
	s.faults = newFaults(s)
	if err := s.initTLS(); err != nil {
		return nil, fmt.Errorf("new pvesim server: %w", err)
	}
	if err := s.initAccess(); err != nil {
		return nil, fmt.Errorf("new pvesim server: %w", err)
	}
	s.initStorage()
	if opts.Seed {
		s.seedGuests()
	}
	s.routes = s.buildRoutes()
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Listen starts serving HTTPS on addr (e.g. "127.0.0.1:0") in a goroutine.
func (s *Server) Listen(addr string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("listen: server is closed")
	}
	if s.httpSrv != nil {
		s.mu.Unlock()
		return errors.New("listen: already listening")
	}
	s.mu.Unlock()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true) // pveproxy speaks HTTP/1.1 only; reason phrases need it
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         &protos,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.cert},
			MinVersion:   tls.VersionTLS12,
		},
		ErrorLog: s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	s.mu.Lock()
	s.httpSrv = srv
	s.serveErr = make(chan error, 1)
	s.url = "https://" + ln.Addr().String()
	s.mu.Unlock()
	go func() {
		s.serveErr <- srv.ServeTLS(ln, "", "")
	}()
	return nil
}

// Close stops serving, ends every running task timer and waits for all
// goroutines the server started. Running tasks stay "running" forever.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.httpSrv
	serveErr := s.serveErr
	for t, tm := range s.timers {
		if tm.Stop() {
			s.bg.Done()
		}
		delete(s.timers, t)
	}
	s.mu.Unlock()
	close(s.done)
	var err error
	if srv != nil {
		err = srv.Close()
		if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("serve: %w", serr))
		}
	}
	s.inflight.Wait()
	s.bg.Wait()
	if err != nil {
		return fmt.Errorf("close pvesim server: %w", err)
	}
	return nil
}

// URL is the base URL, e.g. "https://127.0.0.1:PORT" (without /api2/json).
// It is empty until [Server.Listen] succeeded.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Node is the simulated node's name.
func (s *Server) Node() string { return s.node }

// Fingerprint is the SHA-256 of the leaf certificate's DER as uppercase
// colon-separated hex, the format PVE shows as ssl_fingerprint.
func (s *Server) Fingerprint() string { return s.fingerprint }

// CertPEM is the self-signed leaf certificate in PEM form.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.certPEM...) }

// AdminToken is the full "USER@REALM!TOKENID=SECRET" of a token holding the
// Administrator role on "/".
func (s *Server) AdminToken() string { return s.adminToken }

// AuditToken is the full value of a privilege-separated token holding only
// PVEAuditor on "/".
func (s *Server) AuditToken() string { return s.auditToken }

// Faults is the fault-injection control of this server.
func (s *Server) Faults() *Faults { return s.faults }

// Handler is the API handler, for in-process use (httptest). Without a
// hijackable connection, error reason phrases fall back to Go's status texts.
func (s *Server) Handler() http.Handler { return s.handler }

// Stats returns a copy of the per-route request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.stats))
	for k, v := range s.stats {
		m[k] = v
	}
	return Stats{Requests: m}
}

// ResetStats clears the request counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = map[string]int{}
}

// sleepCtx waits d, returning false early when ctx ends or the server closes.
func (s *Server) sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// apiBase is the prefix every API path carries.
const apiBase = "/api2/json"

// relPath strips the API prefix; ok is false for paths outside the API.
func relPath(p string) (string, bool) {
	if p == apiBase {
		return "/", true
	}
	if !strings.HasPrefix(p, apiBase+"/") {
		return "", false
	}
	return p[len(apiBase):], true
}
