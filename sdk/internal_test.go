package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// fixedInfo answers Info with a fixed response.
type fixedInfo struct {
	pluginv1.UnimplementedPluginServiceServer
	resp *pluginv1.InfoResponse
}

func (f fixedInfo) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return f.resp, nil
}

// clientFor serves impl on a local socket and returns a PluginClient on it.
func clientFor(t *testing.T, impl pluginv1.PluginServiceServer, opts ...Option) *PluginClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pluginv1.RegisterPluginServiceServer(g, impl)
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
	})
	return &PluginClient{rpc: pluginv1.NewPluginServiceClient(conn), doneCtx: context.Background(), opts: buildOptions(opts)}
}

func TestInfoVersionChecks(t *testing.T) {
	cases := []struct {
		name      string
		resp      *pluginv1.InfoResponse
		opts      []Option
		want      string // error text; "" = accepted
		negotiate uint32
	}{
		{name: "same", resp: &pluginv1.InfoResponse{Name: "p", ProtocolMajor: 1, ProtocolMinor: ProtocolMinor}, negotiate: ProtocolMinor},
		{name: "newer plugin minor is fine", resp: &pluginv1.InfoResponse{Name: "p", ProtocolMajor: 1, ProtocolMinor: 7}, negotiate: ProtocolMinor},
		{name: "older core", resp: &pluginv1.InfoResponse{Name: "p", ProtocolMajor: 1, ProtocolMinor: 4, MinCoreProtocolMinor: 3},
			opts: []Option{WithCoreMinor(2)},
			want: "plugin p needs core protocol >= 1.3, this agent speaks 1.2: upgrade felhom-agent"},
		{name: "newer core", resp: &pluginv1.InfoResponse{Name: "p", ProtocolMajor: 1, ProtocolMinor: 1},
			opts: []Option{WithCoreMinor(5)}, negotiate: 1},
		{name: "major in Info differs", resp: &pluginv1.InfoResponse{Name: "p", ProtocolMajor: 2},
			want: "plugin p speaks protocol 2, this agent speaks 1: upgrade felhom-agent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc := clientFor(t, fixedInfo{resp: c.resp}, c.opts...)
			_, err := pc.Info(context.Background())
			if c.want == "" {
				if err != nil {
					t.Fatalf("Info: %v", err)
				}
				if got := pc.NegotiatedMinor(); got != c.negotiate {
					t.Errorf("NegotiatedMinor = %d, want %d", got, c.negotiate)
				}
				return
			}
			var ve *VersionError
			if !errors.As(err, &ve) || err.Error() != c.want {
				t.Fatalf("Info err = %v, want VersionError %q", err, c.want)
			}
			if _, err := pc.Configure(context.Background(), ConfigureArgs{}, nil); err == nil {
				t.Error("Configure went ahead after a version error")
			}
		})
	}
}

func TestClassifyStartError(t *testing.T) {
	plain := errors.New("timeout while waiting for plugin to start")
	if got := ClassifyStartError("x", plain); got != plain {
		t.Errorf("unrelated error changed: %v", got)
	}
	err := fmt.Errorf("incompatible API version with plugin. Plugin version: %d, Client versions: %d", 3, []int{1, 2})
	var ve *VersionError
	if got := ClassifyStartError("smart", err); !errors.As(got, &ve) || ve.PluginMajor != 3 || ve.Upgrade != "felhom-agent" ||
		got.Error() != "plugin smart speaks protocol 3, this agent speaks 1: upgrade felhom-agent" {
		t.Errorf("ClassifyStartError = %v", got)
	}
}

func TestHostErrorMapping(t *testing.T) {
	ctx := context.Background()
	if err := hostError(ctx, "op", status.Error(codes.Unavailable, "connection reset")); !errors.Is(err, ErrPluginCrashed) {
		t.Errorf("Unavailable: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := hostError(canceled, "op", status.Error(codes.Canceled, "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Canceled by caller: %v", err)
	}
	if err := hostError(ctx, "op", status.Error(codes.Canceled, "x")); !errors.Is(err, ErrPluginCrashed) {
		t.Errorf("Canceled, not by caller: %v", err)
	}
	// A PluginError survives the status round trip.
	st := toStatus(Errorf(CodeConflict, "digest", "config changed"))
	var pe *PluginError
	if err := hostError(ctx, "op", st); !errors.As(err, &pe) || pe.Code != CodeConflict || pe.Field != "digest" {
		t.Errorf("PluginError round trip: %v", err)
	}
	// Plugin-side "unavailable" must not look like a dead plugin.
	if err := hostError(ctx, "op", toStatus(Errorf(CodeUnavailable, "", "busy"))); errors.Is(err, ErrPluginCrashed) {
		t.Errorf("CodeUnavailable mapped to a crash: %v", err)
	}
}

func TestToProtoErrorClassifies(t *testing.T) {
	cases := []struct {
		err  error
		want pluginv1.ErrorCode
	}{
		{&APIError{Method: "GET", Path: "/x", Status: 403}, pluginv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
		{fmt.Errorf("wrap: %w", &APIError{Status: 596}), pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE},
		{&APIError{Status: 500}, pluginv1.ErrorCode_ERROR_CODE_INTERNAL},
		{&TaskError{UPID: "UPID:x", ExitStatus: "command failed"}, pluginv1.ErrorCode_ERROR_CODE_TASK_FAILED},
		{fmt.Errorf("%w: plugin x may not", ErrNotInScope), pluginv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED},
		{context.DeadlineExceeded, pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE},
		{errors.New("boom"), pluginv1.ErrorCode_ERROR_CODE_INTERNAL},
	}
	for _, c := range cases {
		if got := toProtoError(c.err).GetCode(); got != c.want {
			t.Errorf("toProtoError(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	msg := (&APIError{Method: "PUT", Path: "/nodes/pve/lxc/100/config", Status: 400, Reason: "Parameter verification failed.",
		Errors: map[string]string{"memory": "value must be at least 16\n"}}).Error()
	if msg != "proxmox PUT /nodes/pve/lxc/100/config: 400 Parameter verification failed.; memory: value must be at least 16" {
		t.Errorf("APIError text = %q", msg)
	}
}

func TestParams(t *testing.T) {
	p, err := NewParams(map[string]any{"s": "x", "n": 42, "f": 1.5, "b": true, "null": nil, "big": float64(1 << 60)})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := p.String("s"); v != "x" || err != nil {
		t.Errorf("String = %q, %v", v, err)
	}
	if v, err := p.Int("n"); v != 42 || err != nil {
		t.Errorf("Int = %d, %v", v, err)
	}
	if v, err := p.Bool("b"); !v || err != nil {
		t.Errorf("Bool = %v, %v", v, err)
	}
	var pe *PluginError
	for key, want := range map[string]string{
		"missing": `missing parameter "missing"`, "null": `missing parameter "null"`,
		"f": `parameter "f" must be an integer`, "big": "must be an integer",
	} {
		_, err := p.Int(key)
		if !errors.As(err, &pe) || pe.Field != key || !strings.Contains(pe.Message, want) {
			t.Errorf("Int(%q) err = %v, want %q", key, err, want)
		}
	}
	if _, err := p.String("n"); err == nil || !strings.Contains(err.Error(), "must be a string") {
		t.Errorf("String on a number: %v", err)
	}
	if p.Has("null") || !p.Has("s") || strings.Join(p.Keys(), ",") != "b,big,f,n,null,s" {
		t.Errorf("Has/Keys wrong: %v", p.Keys())
	}
	var dst struct {
		S string `json:"s"`
	}
	if err := p.Decode(&dst); !errors.As(err, &pe) || pe.Field == "" {
		t.Errorf("Decode with unknown keys: %v", err)
	}
	var empty Params
	if empty.Has("x") || empty.Map() != nil {
		t.Error("zero Params is not empty")
	}
}

func TestToStruct(t *testing.T) {
	type res struct {
		Names []string `json:"names"`
		N     int      `json:"n"`
	}
	s, err := toStruct(res{Names: []string{"a"}, N: 2})
	if err != nil || s.AsMap()["n"] != 2.0 {
		t.Errorf("typed result: %v, %v", s, err)
	}
	s, err = toStruct(map[string]any{"list": []string{"a", "b"}}) // not structpb-native: JSON fallback
	if err != nil || len(s.AsMap()["list"].([]any)) != 2 {
		t.Errorf("map with []string: %v, %v", s, err)
	}
	if _, err := toStruct([]int{1}); err == nil {
		t.Error("a JSON array was accepted as a result")
	}
	var nilMap map[string]any
	if s, err := toStruct(nilMap); s != nil || err != nil {
		t.Errorf("nil map: %v, %v", s, err)
	}
}

func FuzzCheckCapabilityID(f *testing.F) {
	for _, s := range []string{"storage.list", "Storage.List", "a", "a.b.c", "sdk.x", "usb.mount_unit", "x..y", "1a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := CheckCapabilityID(id)
		if err == nil {
			if strings.ToLower(id) != id || !strings.Contains(id, ".") {
				t.Fatalf("accepted %q", id)
			}
			return
		}
		// The suggested ID in the message must itself be valid.
		msg := err.Error()
		if i := strings.LastIndex(msg, "e.g. "); i >= 0 {
			if s := msg[i+5:]; CheckCapabilityID(s) != nil {
				t.Fatalf("suggestion %q for %q is invalid", s, id)
			}
		}
	})
}

func TestReadOnlyFileRegions(t *testing.T) {
	smaps := `00400000-009c4000 r-xp 00000000 fe:00 9986433                            /opt/plugin
Size:               5904 kB
Rss:                5840 kB
Anonymous:             0 kB
009c4000-01082000 r--p 005c4000 fe:00 9986433                            /opt/plugin
Rss:                6008 kB
Anonymous:             0 kB
01082000-010f1000 rw-p 00c82000 fe:00 9986433                            /opt/plugin
Anonymous:           100 kB
7f5cb2005000-7f5cb2009000 r--p 001cf000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:            16 kB
7f5cb1e5c000-7f5cb1fb2000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7ffd1c3c6000-7ffd1c3c8000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
7f0000000000-7f0000001000 r--s 00000000 fe:00 1                          /dev/shm/x
Anonymous:             0 kB
`
	got, err := readOnlyFileRegions(strings.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	want := []region{{0x400000, 0x9c4000}, {0x9c4000, 0x1082000}, {0x7f5cb1e5c000, 0x7f5cb1fb2000}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("regions = %x, want %x (writable, copy-on-write, shared and non-file mappings must be left alone)", got, want)
	}
}

func TestReleaseMemoryInThisProcess(t *testing.T) {
	advised, err := ReleaseMemory()
	if err != nil {
		t.Fatal(err)
	}
	if advised < 1<<20 {
		t.Errorf("advised %d bytes; the test binary's own text alone is larger", advised)
	}
	// Still running: the dropped pages fault back in as code runs.
	if got := strings.Repeat("ok", 2); got != "okok" {
		t.Fatal(got)
	}
}
