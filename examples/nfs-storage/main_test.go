package main

import (
	"os"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintest"
)

// TestMain runs the tests under the kit's Main: go-plugin makes its unix
// sockets (and the kit the plugin's socket directory) in a temp dir of the
// run's own, so a socket the tests leak fails the run.
func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }
