// Command plainplugin is a baseline for the SDK's benchmarks and version
// tests: plain go-plugin over gRPC with go-plugin's defaults (AutoMTLS when
// the host asks for it), serving only an empty PluginService.Info.
// PLAIN_MAJOR picks the protocol major it offers (default 1).
package main

import (
	"context"
	"os"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

type infoOnly struct {
	pluginv1.UnimplementedPluginServiceServer
}

func (infoOnly) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return &pluginv1.InfoResponse{}, nil
}

type plain struct{ plugin.NetRPCUnsupportedPlugin }

func (plain) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServiceServer(s, infoOnly{})
	return nil
}

func (plain) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	major := 1
	if v, err := strconv.Atoi(os.Getenv("PLAIN_MAJOR")); err == nil {
		major = v
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{major: {sdk.PluginSetKey: plain{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	})
}
