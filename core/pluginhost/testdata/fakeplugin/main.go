// Command fakeplugin is a test binary for core/pluginhost that is not a
// proper felhom plugin. Its behaviour comes from the plugin name in its file
// name (argv[0] is the file name: felhom-plugin-<name>_v<version>), so one
// build serves every refusal test:
//
//	garbage*  prints a line that is not a go-plugin handshake, then sleeps
//	exits*    exits at once with status 3
//	silent*   never answers the handshake
//	cookie*   a go-plugin server expecting another magic cookie
//	proto2*   a felhom-cookie go-plugin server that speaks only protocol 2
//	future*   a felhom-protocol server (go-plugin + plugintls, no sdk.Serve)
//	          whose Info needs core protocol minor 99
//	whoami*   prints its uid, gid, pgid, argv0 and environment, then sleeps
//	plain*    a plain go-plugin gRPC server of PluginService (the benchmark
//	          baseline, started with AutoMTLS by the benchmark's own host)
//
// Any other name exits with status 42, saying so on stderr.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintls"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "felhom-plugin-")
	switch {
	case strings.HasPrefix(name, "garbage"):
		fmt.Println("hello, I am not a plugin")
		time.Sleep(time.Minute)
	case strings.HasPrefix(name, "exits"):
		fmt.Fprintln(os.Stderr, "fakeplugin: exiting at once")
		os.Exit(3)
	case strings.HasPrefix(name, "silent"):
		time.Sleep(time.Minute)
	case strings.HasPrefix(name, "whoami"):
		fmt.Printf("uid=%d gid=%d pgid=%d argv0=%s env=%s\n", os.Getuid(), os.Getgid(), syscall.Getpgrp(), os.Args[0], strings.Join(os.Environ(), ","))
		time.Sleep(time.Minute)
	case strings.HasPrefix(name, "cookie"):
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "OTHER_APP_PLUGIN", MagicCookieValue: "x"},
			Plugins:         plugin.PluginSet{"felhom": &plainPlugin{}},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
	case strings.HasPrefix(name, "proto2"):
		hs := sdk.Handshake
		hs.ProtocolVersion = 2
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]plugin.PluginSet{2: {"felhom": &plainPlugin{}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case strings.HasPrefix(name, "future"):
		tlsCfg, _, err := plugintls.FromEnv(5 * time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakeplugin:", err)
			os.Exit(1)
		}
		n, v, _ := strings.Cut(name, "_v")
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  sdk.Handshake,
			VersionedPlugins: map[int]plugin.PluginSet{1: {"felhom": &plainPlugin{info: &pluginv1.InfoResponse{Name: n, Version: v, ProtocolMajor: 1, MinCoreProtocolMinor: 99}}}},
			GRPCServer:       plugin.DefaultGRPCServer,
			TLSProvider:      func() (*tls.Config, error) { return tlsCfg, nil },
		})
	case strings.HasPrefix(name, "plain"):
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: PlainHandshake,
			Plugins:         plugin.PluginSet{"plain": &plainPlugin{}},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
	default:
		fmt.Fprintf(os.Stderr, "fakeplugin: unexpected name %q: this binary should not have run\n", name)
		os.Exit(42)
	}
}

// PlainHandshake is the baseline's own handshake (the benchmark host uses
// the same values).
var PlainHandshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "PLAIN_BASELINE", MagicCookieValue: "baseline"}

type plainPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	info *pluginv1.InfoResponse
}

func (p *plainPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	info := p.info
	if info == nil {
		info = &pluginv1.InfoResponse{Name: "plain", Version: "1.0.0", ProtocolMajor: 1}
	}
	pluginv1.RegisterPluginServiceServer(s, plainServer{info: info})
	return nil
}

func (p *plainPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, fmt.Errorf("plugin side only")
}

type plainServer struct {
	pluginv1.UnimplementedPluginServiceServer
	info *pluginv1.InfoResponse
}

func (s plainServer) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return s.info, nil
}

func (plainServer) Invoke(_ context.Context, req *pluginv1.InvokeRequest) (*pluginv1.InvokeResponse, error) {
	return &pluginv1.InvokeResponse{}, nil
}
