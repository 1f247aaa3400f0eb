package sdk

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/hashicorp/go-plugin"
)

// Protocol versions.
//
// ProtocolMajor is go-plugin's protocol version (VersionedPlugins key): it
// changes only when the wire breaks, and a core and a plugin with no major
// in common cannot talk. Inside a major, ProtocolMinor grows with additive
// changes (new fields, RPCs, capability flags); the effective minor of a
// connection is the lower of both sides'.
//
//	1.0  felhom.plugin.v1: Info, Configure, Health stream, SelfTest, Report,
//	     Invoke, Shutdown; StorageService; host services on the broker.
const (
	ProtocolMajor = 1
	ProtocolMinor = 0
)

// SDKVersion is this SDK's version, reported in Info.
const SDKVersion = "0.1.0"

// PluginSetKey is the name the plugin is dispensed under.
const PluginSetKey = "felhom"

// Handshake is the go-plugin handshake shared by the core and every
// plugin. The cookie is a UX guard (a plugin run by hand says so), not a
// security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolMajor,
	MagicCookieKey:   "FELHOM_PLUGIN",
	MagicCookieValue: "c0b7e1d9a4f2-felhom-plugin-8e3a5d61f0b4",
}

// Feature names a plugin reports in Info.features.
const (
	FeatureHealthStream = "health.stream"
	FeatureStorageV1    = "storage.v1"
)

// VersionError says that a core and a plugin cannot work together and
// which side to upgrade.
type VersionError struct {
	Plugin string
	// CoreMajor/PluginMajor are the go-plugin protocol majors.
	CoreMajor, PluginMajor int
	// CoreMinor is this core's minor; PluginMinor the plugin's;
	// MinCoreMinor the oldest core minor the plugin accepts.
	CoreMinor, PluginMinor, MinCoreMinor uint32
	// NegotiatedMinor is min(CoreMinor, PluginMinor).
	NegotiatedMinor uint32
	// Upgrade is "felhom-agent" or "plugin": the side that is too old.
	Upgrade string
}

func (e *VersionError) Error() string {
	if e.PluginMajor != e.CoreMajor {
		if e.Upgrade == "felhom-agent" {
			return fmt.Sprintf("plugin %s speaks protocol %d, this agent speaks %d: upgrade felhom-agent",
				e.Plugin, e.PluginMajor, e.CoreMajor)
		}
		return fmt.Sprintf("plugin %s speaks protocol %d, this agent speaks %d: upgrade the plugin (rebuild it with a newer felhom sdk)",
			e.Plugin, e.PluginMajor, e.CoreMajor)
	}
	return fmt.Sprintf("plugin %s needs core protocol >= %d.%d, this agent speaks %d.%d: upgrade felhom-agent",
		e.Plugin, e.CoreMajor, e.MinCoreMinor, e.CoreMajor, e.CoreMinor)
}

var incompatibleRE = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (\d+), Client versions: \[([\d ]*)\]`)

// ClassifyStartError turns go-plugin's major-version negotiation failure
// from Client.Start/Client into a *VersionError naming the side to
// upgrade; other errors are returned unchanged.
func ClassifyStartError(pluginName string, err error) error {
	if err == nil {
		return nil
	}
	m := incompatibleRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	pm, _ := strconv.Atoi(m[1])
	ve := &VersionError{Plugin: pluginName, CoreMajor: ProtocolMajor, PluginMajor: pm, CoreMinor: ProtocolMinor}
	if pm > ProtocolMajor {
		ve.Upgrade = "felhom-agent"
	} else {
		ve.Upgrade = "plugin"
	}
	return ve
}
