package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// HostServices is what the core serves back to one plugin over go-plugin's
// broker. Errors that are gRPC statuses pass to the plugin as they are (use
// [PermissionDenied] for scope refusals); others become codes.Internal.
type HostServices interface {
	ProxmoxCall(ctx context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error)
	WaitTask(ctx context.Context, upid string) (*pluginv1.WaitResponse, error)
	Event(ctx context.Context, req *pluginv1.EventRequest) error
}

// Option tunes the host side ([HostPluginSets]) or an in-process plugin
// ([InProcess]).
type Option func(*options)

type options struct {
	coreVersion string
	coreMinor   uint32
	probe       bool
}

func buildOptions(opts []Option) options {
	o := options{coreMinor: ProtocolMinor}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithCoreVersion sets the core version sent in InfoRequest.
func WithCoreVersion(v string) Option { return func(o *options) { o.coreVersion = v } }

// WithCoreMinor makes the host claim an older protocol minor (tests of
// version skew).
func WithCoreMinor(minor uint32) Option { return func(o *options) { o.coreMinor = minor } }

// WithConformanceProbe serves [ProbeCapability] from an in-process plugin.
func WithConformanceProbe() Option { return func(o *options) { o.probe = true } }

// HostPluginSets is ClientConfig.VersionedPlugins for the core: dispensing
// PluginSetKey returns a *PluginClient.
func HostPluginSets(opts ...Option) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolMajor: {PluginSetKey: &grpcPlugin{opts: buildOptions(opts)}},
	}
}

// grpcPlugin is the go-plugin glue: plugin side when srv is set, host side
// always.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv  *server
	opts options
}

func (g *grpcPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if g.srv == nil {
		return errors.New("sdk: this plugin set is for hosts; plugins call sdk.Serve")
	}
	g.srv.register(b, s)
	return nil
}

func (g *grpcPlugin) GRPCClient(doneCtx context.Context, b *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &PluginClient{
		rpc:     pluginv1.NewPluginServiceClient(conn),
		storage: pluginv1.NewStorageServiceClient(conn),
		doneCtx: doneCtx,
		broker:  b,
		opts:    g.opts,
	}, nil
}

// PluginClient is the core's handle on one plugin process. Methods map a
// dead plugin to ErrPluginCrashed and structured failures to *PluginError.
type PluginClient struct {
	rpc     pluginv1.PluginServiceClient
	storage pluginv1.StorageServiceClient
	doneCtx context.Context
	broker  *plugin.GRPCBroker
	opts    options

	mu         sync.Mutex
	info       *pluginv1.InfoResponse
	negotiated uint32
	hostSrv    *grpc.Server
	hostDone   chan struct{}
	closed     bool
}

// ConfigureArgs are the core's side of Configure.
type ConfigureArgs struct {
	// Config is the plugin's own section of the agent config.
	Config map[string]any
	HostID string
	// Node is the Proxmox node this agent runs on.
	Node string
}

// Exited is closed when go-plugin saw the plugin process exit.
func (c *PluginClient) Exited() <-chan struct{} { return c.doneCtx.Done() }

// NegotiatedMinor is min(core minor, plugin minor), known after Info.
func (c *PluginClient) NegotiatedMinor() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.negotiated
}

// Info asks the plugin to describe itself and checks that the protocol
// versions fit. On a *VersionError the response is returned too, for logs.
func (c *PluginClient) Info(ctx context.Context) (*pluginv1.InfoResponse, error) {
	resp, err := c.rpc.Info(ctx, &pluginv1.InfoRequest{CoreProtocolMinor: c.opts.coreMinor, CoreVersion: c.opts.coreVersion})
	if err != nil {
		return nil, hostError(ctx, "plugin info", err)
	}
	ve := &VersionError{
		Plugin: resp.GetName(), CoreMajor: ProtocolMajor, PluginMajor: int(resp.GetProtocolMajor()),
		CoreMinor: c.opts.coreMinor, PluginMinor: resp.GetProtocolMinor(), MinCoreMinor: resp.GetMinCoreProtocolMinor(),
		NegotiatedMinor: min(c.opts.coreMinor, resp.GetProtocolMinor()),
	}
	switch {
	case ve.PluginMajor != ProtocolMajor:
		ve.Upgrade = "plugin"
		if ve.PluginMajor > ProtocolMajor {
			ve.Upgrade = "felhom-agent"
		}
		return resp, ve
	case ve.MinCoreMinor > ve.CoreMinor:
		ve.Upgrade = "felhom-agent"
		return resp, ve
	}
	c.mu.Lock()
	c.info = resp
	c.negotiated = ve.NegotiatedMinor
	c.mu.Unlock()
	return resp, nil
}

// Configure serves services to the plugin on the broker (when non-nil) and
// hands the plugin its config. Call Info first.
func (c *PluginClient) Configure(ctx context.Context, args ConfigureArgs, services HostServices) (*pluginv1.ConfigureResponse, error) {
	c.mu.Lock()
	if c.info == nil {
		c.mu.Unlock()
		return nil, errors.New("configure plugin: call Info first (it negotiates the protocol minor)")
	}
	negotiated := c.negotiated
	c.mu.Unlock()
	req := &pluginv1.ConfigureRequest{HostId: args.HostID, Node: args.Node, NegotiatedMinor: negotiated}
	if args.Config != nil {
		cfg, err := structpb.NewStruct(args.Config)
		if err != nil {
			return nil, fmt.Errorf("configure plugin: encode config: %w", err)
		}
		req.Config = cfg
	}
	if services != nil {
		id, err := c.serveHost(services)
		if err != nil {
			return nil, err
		}
		req.HostServicesBrokerId = id
	}
	resp, err := c.rpc.Configure(ctx, req)
	if err != nil {
		return nil, hostError(ctx, "configure plugin", err)
	}
	return resp, nil
}

func (c *PluginClient) serveHost(services HostServices) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errors.New("configure plugin: client is closed")
	}
	if c.hostDone != nil {
		return 0, errors.New("configure plugin: host services are already being served")
	}
	id := c.broker.NextId()
	done := make(chan struct{})
	c.hostDone = done
	hs := &hostServer{s: services}
	go func() {
		defer close(done)
		c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			g := grpc.NewServer(opts...)
			pluginv1.RegisterProxmoxAPIServiceServer(g, hs)
			pluginv1.RegisterTaskWaiterServiceServer(g, hs)
			pluginv1.RegisterHostLogServiceServer(g, hs)
			c.mu.Lock()
			c.hostSrv = g
			if c.closed {
				g.Stop()
			}
			c.mu.Unlock()
			return g
		})
	}()
	return id, nil
}

// Close stops serving host services to the plugin. It does not stop the
// plugin (see Shutdown and go-plugin's Client.Kill).
func (c *PluginClient) Close() {
	c.mu.Lock()
	c.closed = true
	g, done := c.hostSrv, c.hostDone
	c.mu.Unlock()
	if g != nil {
		g.Stop()
	}
	if done != nil && g != nil {
		<-done
	}
}

// Invoke runs a capability. A capability failure returns the response and
// a *PluginError (the same as resp.Error).
func (c *PluginClient) Invoke(ctx context.Context, req *pluginv1.InvokeRequest) (*pluginv1.InvokeResponse, error) {
	resp, err := c.rpc.Invoke(ctx, req)
	if err != nil {
		return nil, hostError(ctx, "invoke "+req.GetCapability(), err)
	}
	if e := resp.GetError(); e != nil {
		return resp, PluginErrorFromProto(e)
	}
	return resp, nil
}

// HealthStream is a plugin's health stream.
type HealthStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	s      grpc.ServerStreamingClient[pluginv1.HealthResponse]
}

// Health opens the plugin's health stream; the first message comes at
// once. End it with Close or by ending ctx.
func (c *PluginClient) Health(ctx context.Context) (*HealthStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.rpc.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		cancel()
		return nil, hostError(ctx, "plugin health", err)
	}
	return &HealthStream{ctx: ctx, cancel: cancel, s: s}, nil
}

// Recv returns the next health message. io.EOF means the plugin ended the
// stream (it is shutting down); ErrPluginCrashed that it died.
func (h *HealthStream) Recv() (*pluginv1.HealthResponse, error) {
	m, err := h.s.Recv()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, hostError(h.ctx, "plugin health", err)
	}
	return m, nil
}

// Close ends the stream.
func (h *HealthStream) Close() { h.cancel() }

// SelfTest runs the plugin's checks.
func (c *PluginClient) SelfTest(ctx context.Context, mode pluginv1.SelfTestMode, scratchVMID int64) (*pluginv1.SelfTestResponse, error) {
	resp, err := c.rpc.SelfTest(ctx, &pluginv1.SelfTestRequest{Mode: mode, ScratchVmid: scratchVMID})
	if err != nil {
		return nil, hostError(ctx, "plugin selftest", err)
	}
	return resp, nil
}

// reportSlack is how much longer than the budget the host waits, for the
// answer's transport.
const reportSlack = 50 * time.Millisecond

// Report collects the plugin's HostReport sections. The plugin gets budget
// as its deadline; the call waits at most budget plus a small slack.
func (c *PluginClient) Report(ctx context.Context, budget time.Duration) (*pluginv1.ReportResponse, error) {
	if budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, budget+reportSlack)
		defer cancel()
	}
	resp, err := c.rpc.Report(ctx, &pluginv1.ReportRequest{BudgetMs: budget.Milliseconds()})
	if err != nil {
		return nil, hostError(ctx, "plugin report", err)
	}
	return resp, nil
}

// Shutdown asks the plugin to finish in-flight calls within grace and
// exit. The plugin disappearing during the call counts as success.
func (c *PluginClient) Shutdown(ctx context.Context, grace time.Duration) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, grace+2*time.Second)
		defer cancel()
	}
	_, err := c.rpc.Shutdown(ctx, &pluginv1.ShutdownRequest{GraceMs: grace.Milliseconds()})
	if status.Code(err) == codes.Unavailable {
		return nil
	}
	if err != nil {
		return hostError(ctx, "plugin shutdown", err)
	}
	return nil
}

// Storage returns the plugin's storage service, or nil when its Info did
// not report FeatureStorageV1 (or Info was not called).
func (c *PluginClient) Storage() *StorageClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info == nil {
		return nil
	}
	for _, f := range c.info.GetFeatures() {
		if f == FeatureStorageV1 {
			return &StorageClient{rpc: c.storage}
		}
	}
	return nil
}

// hostServer adapts HostServices to the three gRPC services.
type hostServer struct {
	pluginv1.UnimplementedProxmoxAPIServiceServer
	pluginv1.UnimplementedTaskWaiterServiceServer
	pluginv1.UnimplementedHostLogServiceServer
	s HostServices
}

func (h *hostServer) Call(ctx context.Context, req *pluginv1.CallRequest) (*pluginv1.CallResponse, error) {
	resp, err := h.s.ProxmoxCall(ctx, req)
	if err != nil {
		return nil, hostStatus(err)
	}
	return resp, nil
}

func (h *hostServer) Wait(ctx context.Context, req *pluginv1.WaitRequest) (*pluginv1.WaitResponse, error) {
	resp, err := h.s.WaitTask(ctx, req.GetUpid())
	if err != nil {
		return nil, hostStatus(err)
	}
	return resp, nil
}

func (h *hostServer) Event(ctx context.Context, req *pluginv1.EventRequest) (*pluginv1.EventResponse, error) {
	if err := h.s.Event(ctx, req); err != nil {
		return nil, hostStatus(err)
	}
	return &pluginv1.EventResponse{}, nil
}

func hostStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// PermissionDenied is the error a host's API proxy returns for a call
// outside the plugin's scopes: gRPC PermissionDenied naming plugin, method
// and path. The plugin sees errors.Is(err, ErrNotInScope).
func PermissionDenied(pluginName, method, path string) error {
	return status.Errorf(codes.PermissionDenied, "plugin %s may not call %s %q: not in its declared API scopes", pluginName, method, path)
}
