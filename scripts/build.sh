#!/usr/bin/env bash
# build.sh: build the agent, the simulators and the bundled plugins into
# bin/. Plugins are named felhom-plugin-<name>_v<version>, the version
# taken from the plugin's own `const Version` (each plugin is versioned on
# its own), and stripped: the plugin host hashes every binary it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bin}"
mkdir -p "$out/plugins"
go build -o "$out/felhom-agent" ./cmd/felhom-agent
go build -o "$out/felhom-sim" ./cmd/felhom-sim
for dir in plugins/*/; do
	name=$(basename "$dir")
	ls "$dir"*.go >/dev/null 2>&1 || continue
	ver=$(sed -n 's/^\s*\(const \)\?Version\s*=\s*"\([0-9][^"]*\)".*/\2/p' "$dir"*.go | head -n1)
	if [ -z "$ver" ]; then
		echo "build: $dir has no const Version = \"x.y.z\"" >&2
		exit 1
	fi
	# Static (no dynamic loader, no libc): smaller resident set, faster start.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/plugins/felhom-plugin-${name}_v${ver}" "./$dir"
done
chmod 0755 "$out/plugins" "$out"/plugins/*
echo "built into $out/: felhom-agent felhom-sim $(cd "$out/plugins" && ls | tr '\n' ' ')"
