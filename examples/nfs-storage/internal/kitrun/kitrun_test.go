package kitrun

import (
	"os"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/plugintest"
)

func TestKit(t *testing.T) {
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skip(EnvBinary + " is not set: this test is run by broken_test.go")
	}
	plugintest.Run(t, plugintest.Config{Binary: bin})
}
