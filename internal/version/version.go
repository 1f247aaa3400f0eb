// Package version holds the agent's version, overridable at link time:
//
//	go build -ldflags "-X gitea.dooplex.hu/admin/felhom-agent/internal/version.Version=v0.4.1" ./cmd/felhom-agent
package version

// Version is the agent's semantic version. The plugin protocol has its own
// version in sdk/proto; each bundled plugin carries its own as well.
var Version = "v0.4.0"
