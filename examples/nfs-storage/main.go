// Command felhom-plugin-nfs-storage is a third-party felhom-agent plugin
// that defines, lists and removes NFS storages on a Proxmox VE cluster. It
// is built on the public SDK alone (gitea.dooplex.hu/admin/felhom-agent/sdk)
// and is the example to copy for a storage plugin of your own.
//
// Build it as felhom-plugin-nfs-storage_v<Version>; see README.md.
package main

import (
	"fmt"
	"os"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// Version is the plugin's own semantic version; it is part of the binary's
// file name (felhom-plugin-nfs-storage_v0.1.0) and reported in Info.
const Version = "0.1.0"

// Name is the <name> in felhom-plugin-<name>_v<version>.
const Name = "nfs-storage"

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println(Version)
		return
	}
	sdk.Serve(&nfsPlugin{})
}
