package sdk

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// ProbeCapability is the hidden capability sdk/plugintest uses to make a
// plugin call an arbitrary API path through the core's proxy, to check that
// the proxy refuses paths outside the declared scopes. It is served only
// when the plugin runs with FELHOM_PLUGINTEST=1 (or in-process with
// [WithConformanceProbe]) and never appears in Info.
const ProbeCapability = "sdk.conformance.probe"

// EnvPluginTest enables [ProbeCapability] when set to "1".
const EnvPluginTest = "FELHOM_PLUGINTEST"

// defaultGrace applies when Shutdown carries no grace.
const defaultGrace = 5 * time.Second

// server is the plugin side of PluginService.
type server struct {
	pluginv1.UnimplementedPluginServiceServer

	p        Plugin
	name     string
	caps     map[string]*Capability
	infoResp *pluginv1.InfoResponse
	storage  StorageBackend
	probe    bool
	log      hclog.Logger

	broker  atomic.Pointer[plugin.GRPCBroker]
	grpcSrv atomic.Pointer[grpc.Server]

	configured atomic.Bool
	health     *stateTable

	mu          sync.Mutex
	configuring bool
	host        *hostClient
	inflight    int
	draining    bool
	idle        chan struct{} // closed when draining and inflight reaches 0

	life     context.Context // ends at shutdown; HealthWatcher runs under it
	endLife  context.CancelFunc
	watchers sync.WaitGroup

	closeOnce      sync.Once
	afterConfigure func() // run once after the first successful Configure
	janitor        *memoryJanitor
	handshakeOut   *os.File // the real stdout, kept for go-plugin's handshake line
}

func newServer(p Plugin, probe bool, log hclog.Logger) (*server, error) {
	info := p.Info()
	if err := validateInfo(info); err != nil {
		return nil, fmt.Errorf("plugin info: %w", err)
	}
	s := &server{
		p:     p,
		name:  info.Name,
		caps:  make(map[string]*Capability, len(info.Capabilities)),
		probe: probe,
		log:   log,
		idle:  make(chan struct{}),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.infoResp = &pluginv1.InfoResponse{
		Name:                 info.Name,
		Version:              info.Version,
		ProtocolMajor:        ProtocolMajor,
		ProtocolMinor:        ProtocolMinor,
		SdkVersion:           SDKVersion,
		MinCoreProtocolMinor: info.MinCoreMinor,
		Features:             []string{FeatureHealthStream},
	}
	ids := make([]string, 0, len(info.Capabilities))
	for i := range info.Capabilities {
		c := info.Capabilities[i]
		s.caps[c.ID] = &c
		ids = append(ids, c.ID)
		s.infoResp.Capabilities = append(s.infoResp.Capabilities, capabilityToProto(&c))
	}
	if sb, ok := p.(StorageBackend); ok {
		s.storage = sb
		s.infoResp.Features = append(s.infoResp.Features, FeatureStorageV1)
	}
	s.health = newStateTable(ids, log)
	return s, nil
}

// register puts the plugin's services on a go-plugin gRPC server.
func (s *server) register(b *plugin.GRPCBroker, g *grpc.Server) {
	s.broker.Store(b)
	pluginv1.RegisterPluginServiceServer(g, s)
	if s.storage != nil {
		pluginv1.RegisterStorageServiceServer(g, &storageServer{s: s})
	}
}

// newGRPCServer is ServeConfig.GRPCServer: it keeps the server so that
// Shutdown can stop it. go-plugin calls it right before printing the
// handshake line, so this is where the real stdout comes back.
func (s *server) newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	g := grpc.NewServer(opts...)
	s.grpcSrv.Store(g)
	if s.handshakeOut != nil {
		os.Stdout = s.handshakeOut
	}
	return g
}

var errNotConfigured = status.Error(codes.FailedPrecondition, "plugin is not configured: call Configure first")

func (s *server) Info(_ context.Context, req *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	if req.GetCoreProtocolMinor() < s.infoResp.GetMinCoreProtocolMinor() {
		s.log.Warn("core protocol is older than this plugin needs",
			"core_minor", req.GetCoreProtocolMinor(), "min_core_minor", s.infoResp.GetMinCoreProtocolMinor(),
			"core_version", req.GetCoreVersion())
	}
	return s.infoResp, nil
}

func (s *server) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	if s.configuring || s.configured.Load() {
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "Configure was already called for this process")
	}
	s.configuring = true
	s.mu.Unlock()

	host, err := s.dialHost(req)
	if err == nil {
		var cfg Config
		if req.GetConfig() != nil {
			cfg = req.GetConfig().AsMap()
		}
		err = s.safeConfigure(ctx, host, cfg)
		if err != nil {
			host.close()
		}
	}
	s.mu.Lock()
	s.configuring = false
	if err != nil {
		s.mu.Unlock()
		s.log.Error("configure failed", "error", err)
		return nil, toStatus(err)
	}
	s.host = host
	s.configured.Store(true)
	s.mu.Unlock()

	if hw, ok := s.p.(HealthWatcher); ok {
		s.watchers.Add(1)
		go func() {
			defer s.watchers.Done()
			hw.WatchHealth(s.life, s.health)
		}()
	}
	if s.afterConfigure != nil {
		s.afterConfigure()
	}
	return &pluginv1.ConfigureResponse{States: s.health.snapshot()}, nil
}

func (s *server) safeConfigure(ctx context.Context, host Host, cfg Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("Configure panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = Errorf(CodeInternal, "", "Configure panicked: %v", r)
		}
	}()
	return s.p.Configure(ctx, host, cfg)
}

func (s *server) dialHost(req *pluginv1.ConfigureRequest) (*hostClient, error) {
	h := &hostClient{node: req.GetNode(), hostID: req.GetHostId(), minor: req.GetNegotiatedMinor(), states: s.health, plugin: s.name}
	id := req.GetHostServicesBrokerId()
	if id == 0 {
		return h, nil
	}
	b := s.broker.Load()
	if b == nil {
		return nil, Errorf(CodeInternal, "", "no go-plugin broker to reach host services")
	}
	conn, err := b.Dial(id)
	if err != nil {
		return nil, Errorf(CodeUnavailable, "", "dial host services (broker id %d): %v", id, err)
	}
	h.setConn(conn)
	return h, nil
}

// enter counts an in-flight call; false once draining.
func (s *server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight++
	if s.janitor != nil {
		s.janitor.touch()
	}
	return true
}

func (s *server) leave() {
	s.mu.Lock()
	s.inflight--
	if s.draining && s.inflight == 0 {
		close(s.idle)
	}
	s.mu.Unlock()
}

// beginDrain refuses new calls and returns a channel closed when the
// in-flight ones are done.
func (s *server) beginDrain() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.draining {
		s.draining = true
		if s.inflight == 0 {
			close(s.idle)
		}
	}
	return s.idle
}

func (s *server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

var shuttingDown = &pluginv1.PluginError{Code: pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "plugin is shutting down"}

func (s *server) Invoke(ctx context.Context, req *pluginv1.InvokeRequest) (*pluginv1.InvokeResponse, error) {
	if !s.configured.Load() {
		return nil, errNotConfigured
	}
	if !s.enter() {
		return &pluginv1.InvokeResponse{Error: shuttingDown}, nil
	}
	defer s.leave()
	id := req.GetCapability()
	c, ok := s.caps[id]
	if !ok {
		if s.probe && id == ProbeCapability {
			c = probeCapability
		} else {
			return &pluginv1.InvokeResponse{Error: &pluginv1.PluginError{
				Code:    pluginv1.ErrorCode_ERROR_CODE_UNKNOWN_CAPABILITY,
				Message: fmt.Sprintf("plugin %s has no capability %q", s.name, id),
			}}, nil
		}
	}
	if v := req.GetSchemaVersion(); v > c.SchemaVersion {
		return &pluginv1.InvokeResponse{Error: &pluginv1.PluginError{
			Code:    pluginv1.ErrorCode_ERROR_CODE_INVALID_PARAMS,
			Message: fmt.Sprintf("capability %q speaks schema %d, the caller asked for %d: upgrade plugin %s", id, c.SchemaVersion, v, s.name),
		}}, nil
	}
	call := &Call{
		Capability:    id,
		SchemaVersion: req.GetSchemaVersion(),
		Params:        Params{s: req.GetParams()},
		OpID:          req.GetOpId(),
		Principal:     req.GetPrincipal(),
		Host:          s.host,
	}
	result, err := s.runHandler(ctx, c, call)
	resp := &pluginv1.InvokeResponse{Upids: call.tasks()}
	if err != nil {
		resp.Error = toProtoError(err)
		return resp, nil
	}
	if result != nil {
		st, err := toStruct(result)
		if err != nil {
			resp.Error = &pluginv1.PluginError{Code: pluginv1.ErrorCode_ERROR_CODE_INTERNAL,
				Message: fmt.Sprintf("capability %q returned a result that cannot be sent: %v", id, err)}
			return resp, nil
		}
		resp.Result = st
	}
	return resp, nil
}

func (s *server) runHandler(ctx context.Context, c *Capability, call *Call) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("capability panicked", "capability", c.ID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			result, err = nil, Errorf(CodeInternal, "", "capability %q panicked: %v", c.ID, r)
		}
	}()
	return c.Handler(ctx, call)
}

func (s *server) Health(_ *pluginv1.HealthRequest, stream grpc.ServerStreamingServer[pluginv1.HealthResponse]) error {
	if !s.configured.Load() {
		return errNotConfigured
	}
	changed, unsubscribe := s.health.subscribe()
	defer unsubscribe()
	for {
		if err := stream.Send(&pluginv1.HealthResponse{Capabilities: s.health.snapshot(), UnixMs: time.Now().UnixMilli()}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.health.done:
			return nil
		case <-changed:
		}
	}
}

func (s *server) SelfTest(ctx context.Context, req *pluginv1.SelfTestRequest) (*pluginv1.SelfTestResponse, error) {
	if !s.configured.Load() {
		return nil, errNotConfigured
	}
	if !s.enter() {
		return nil, toStatus(PluginErrorFromProto(shuttingDown))
	}
	defer s.leave()
	st, ok := s.p.(SelfTester)
	if !ok {
		return &pluginv1.SelfTestResponse{Checks: []*pluginv1.CheckResult{{
			Name: "selftest", Status: pluginv1.CheckStatus_CHECK_STATUS_SKIP, Detail: "plugin " + s.name + " has no self-test",
		}}}, nil
	}
	mode := SelfTestMode(req.GetMode())
	if mode != SelfTestRead && mode != SelfTestTask {
		return nil, toStatus(Errorf(CodeInvalidParams, "mode", "self-test mode must be read or task"))
	}
	var checks []Check
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("SelfTest panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				checks = append(checks, Check{Name: "selftest.panic", Status: Fail, Detail: fmt.Sprint(r)})
			}
		}()
		checks = st.SelfTest(ctx, mode, req.GetScratchVmid())
	}()
	out := &pluginv1.SelfTestResponse{Checks: make([]*pluginv1.CheckResult, 0, len(checks))}
	for _, c := range checks {
		out.Checks = append(out.Checks, &pluginv1.CheckResult{
			Name: c.Name, Status: checkStatusToProto(c.Status), Detail: c.Detail,
			DurationUs: c.Duration.Microseconds(), Capability: c.Capability,
		})
	}
	return out, nil
}

func (s *server) Report(ctx context.Context, req *pluginv1.ReportRequest) (*pluginv1.ReportResponse, error) {
	if !s.configured.Load() {
		return nil, errNotConfigured
	}
	r, ok := s.p.(Reporter)
	if !ok {
		return &pluginv1.ReportResponse{}, nil
	}
	if !s.enter() {
		return nil, toStatus(PluginErrorFromProto(shuttingDown))
	}
	defer s.leave()
	if b := req.GetBudgetMs(); b > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(b)*time.Millisecond)
		defer cancel()
	}
	var sections []ReportSection
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("Report panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = Errorf(CodeInternal, "", "Report panicked: %v", r)
			}
		}()
		sections, err = r.Report(ctx)
		return err
	}()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pluginv1.ReportResponse{Sections: make([]*pluginv1.ReportSection, 0, len(sections))}
	for _, sec := range sections {
		data, err := toStruct(sec.Data)
		if err != nil {
			return nil, toStatus(Errorf(CodeInternal, "", "report section %q: %v", sec.Name, err))
		}
		out.Sections = append(out.Sections, &pluginv1.ReportSection{Name: sec.Name, Data: data})
	}
	return out, nil
}

func (s *server) Shutdown(ctx context.Context, req *pluginv1.ShutdownRequest) (*pluginv1.ShutdownResponse, error) {
	s.drain(ctx, time.Duration(req.GetGraceMs())*time.Millisecond)
	// The stop waits for this handler (and its response) to finish; it
	// cannot finish gracefully while go-plugin's stdio and broker streams
	// stay open, so it is cut short once the response had time to leave.
	if g := s.grpcSrv.Load(); g != nil {
		go stopServer(g, 100*time.Millisecond)
	}
	return &pluginv1.ShutdownResponse{}, nil
}

// drain refuses new calls, waits up to grace for in-flight ones, runs the
// plugin's Closer (once, within what is left of grace) and ends the health
// streams. Shutdown, SIGTERM and the end of Serve all come through here.
func (s *server) drain(ctx context.Context, grace time.Duration) {
	if grace <= 0 {
		grace = defaultGrace
	}
	deadline := time.Now().Add(grace)
	idle := s.beginDrain()
	t := time.NewTimer(grace)
	select {
	case <-idle:
	case <-t.C:
		s.log.Warn("shutdown grace ran out with calls still running", "grace", grace)
	case <-ctx.Done():
	}
	t.Stop()
	s.endLife()
	s.closeOnce.Do(func() {
		c, ok := s.p.(Closer)
		if !ok {
			return
		}
		cctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := c.Close(cctx); err != nil {
			s.log.Warn("plugin Close failed", "error", err)
		}
	})
	s.health.close()
	s.closeHost()
}

func stopServer(g *grpc.Server, patience time.Duration) {
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.Stop()
		<-done
	}
}

func (s *server) closeHost() {
	s.mu.Lock()
	h := s.host
	s.mu.Unlock()
	if h != nil {
		h.close()
	}
}

// stop ends everything the server started (in-process use and Serve's
// end), waiting at most patience for the plugin's HealthWatcher to return.
func (s *server) stop(patience time.Duration) {
	s.endLife()
	s.health.close()
	done := make(chan struct{})
	go func() {
		s.watchers.Wait()
		close(done)
	}()
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("WatchHealth did not return after shutdown", "waited", patience)
	}
	s.closeHost()
}

// probeCapability lets sdk/plugintest make the plugin call any API path.
var probeCapability = &Capability{
	ID: ProbeCapability, SchemaVersion: 1, Class: Read,
	Handler: func(ctx context.Context, call *Call) (any, error) {
		method, err := call.Params.String("method")
		if err != nil {
			return nil, err
		}
		path, err := call.Params.String("path")
		if err != nil {
			return nil, err
		}
		if call.Host == nil {
			return nil, ErrNoHostServices
		}
		resp, err := call.Host.API().Call(ctx, method, path, nil)
		if err != nil {
			return nil, err
		}
		return map[string]any{"data": string(resp.Data)}, nil
	},
}

// stateTable holds each capability's state and wakes health streams.
type stateTable struct {
	log    hclog.Logger
	mu     sync.Mutex
	order  []string
	states map[string]*pluginv1.CapabilityState
	subs   map[chan struct{}]struct{}
	done   chan struct{}
	closed bool
}

func newStateTable(ids []string, log hclog.Logger) *stateTable {
	t := &stateTable{log: log, order: ids, states: make(map[string]*pluginv1.CapabilityState, len(ids)),
		subs: map[chan struct{}]struct{}{}, done: make(chan struct{})}
	for _, id := range ids {
		t.states[id] = &pluginv1.CapabilityState{Id: id, State: pluginv1.State_STATE_AVAILABLE}
	}
	return t
}

// SetState implements Notifier.
func (t *stateTable) SetState(capability string, s State, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.states[capability]
	if !ok {
		t.log.Warn("SetState for an undeclared capability ignored", "capability", capability)
		return
	}
	ps := stateToProto(s)
	if cur.State == ps && cur.Detail == detail {
		return
	}
	t.states[capability] = &pluginv1.CapabilityState{Id: capability, State: ps, Detail: detail}
	for ch := range t.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (t *stateTable) snapshot() []*pluginv1.CapabilityState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*pluginv1.CapabilityState, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, t.states[id]) // entries are replaced, never mutated
	}
	return out
}

func (t *stateTable) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	t.subs[ch] = struct{}{}
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		delete(t.subs, ch)
		t.mu.Unlock()
	}
}

func (t *stateTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
}
