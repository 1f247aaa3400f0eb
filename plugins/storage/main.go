// Command felhom-plugin-storage is felhom-agent's bundled storage plugin:
// it lists Proxmox VE storages with their status and content, and defines,
// updates and removes storages in the cluster configuration, all through
// the core's scoped API proxy (no exec, no root). It also serves the typed
// StorageService for every storage type.
//
// The binary is named felhom-plugin-storage_v<Version>;
// `felhom-plugin-storage --version` prints Version for build scripts.
package main

import (
	"fmt"
	"os"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// Version is this plugin's own semantic version (without "v"); it is part
// of the binary's file name and reported in Info.
const Version = "0.1.0"

// Name is the <name> in felhom-plugin-<name>_v<version>.
const Name = "storage"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println(Version)
		return
	}
	sdk.Serve(newPlugin())
}
