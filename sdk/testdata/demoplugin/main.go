// Command demoplugin serves the SDK's demo plugin as a real plugin process
// for the SDK's process tests and benchmarks. With DEMO_STDOUT_NOISE=1 it
// prints to stdout before the handshake, which the SDK must survive.
package main

import (
	"fmt"
	"os"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
	"gitea.dooplex.hu/admin/felhom-agent/sdk/internal/demoplugin"
)

type noisy struct{ *demoplugin.Plugin }

func (n noisy) Info() sdk.Info {
	fmt.Println("stray stdout noise from Info")
	return n.Plugin.Info()
}

func main() {
	if os.Getenv("DEMO_STDOUT_NOISE") == "1" {
		sdk.Serve(noisy{demoplugin.New()})
	}
	sdk.Serve(demoplugin.New())
}
