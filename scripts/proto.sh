#!/usr/bin/env bash
# proto.sh: the one command for the plugin contract's generated code.
#
#   scripts/proto.sh gen      regenerate sdk/proto/pluginv1 from the .proto files
#   scripts/proto.sh check    buf lint + breaking-change check against the last
#                             released contract + generated code up to date
#   scripts/proto.sh release  snapshot the current contract as the released one
#
# Tools come from the Go module proxy at pinned versions (buf's remote
# registry and remote plugins are not used: generation runs the local
# protoc-gen-go and protoc-gen-go-grpc).
set -euo pipefail
cd "$(dirname "$0")/../sdk/proto"

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
RELEASED=released/felhom.plugin.v1.binpb

TOOLS="${FELHOM_TOOLS_DIR:-$(go env GOPATH)/felhom-tools}"
export PATH="$TOOLS:$PATH"

tools() {
	mkdir -p "$TOOLS"
	[ -x "$TOOLS/buf" ] && "$TOOLS/buf" --version 2>/dev/null | grep -qx "${BUF_VERSION#v}" ||
		GOBIN="$TOOLS" go install "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
	[ -x "$TOOLS/protoc-gen-go" ] && "$TOOLS/protoc-gen-go" --version | grep -q "$PROTOC_GEN_GO_VERSION" ||
		GOBIN="$TOOLS" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
	[ -x "$TOOLS/protoc-gen-go-grpc" ] && "$TOOLS/protoc-gen-go-grpc" --version | grep -q "${PROTOC_GEN_GO_GRPC_VERSION#v}" ||
		GOBIN="$TOOLS" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
}

case "${1:-}" in
gen)
	tools
	buf generate
	echo "proto: regenerated sdk/proto/pluginv1"
	;;
check)
	tools
	buf lint
	echo "proto: buf lint ok"
	buf breaking --against "$RELEASED"
	echo "proto: no breaking change against $RELEASED"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cp -r pluginv1 "$tmp/committed"
	buf generate
	if ! diff -r "$tmp/committed" pluginv1; then
		cp -r "$tmp/committed/." pluginv1/
		echo "proto: generated code is stale: run scripts/proto.sh gen and commit" >&2
		exit 1
	fi
	echo "proto: generated code up to date"
	;;
release)
	tools
	mkdir -p released
	buf build -o "$RELEASED"
	echo "proto: wrote $RELEASED"
	;;
*)
	echo "usage: scripts/proto.sh gen|check|release" >&2
	exit 2
	;;
esac
