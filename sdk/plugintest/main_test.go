package plugintest

import (
	"os"
	"testing"
)

// TestMain runs the kit's own tests under Main: a socket they leak fails
// the run.
func TestMain(m *testing.M) { os.Exit(Main(m)) }
