#!/usr/bin/env bash
# test.sh: the whole test suite, the same command CI runs (.ci/run).
# Needs only Go; with gcc present the Go tests run under the race detector,
# with openssh-client present the SSHSIG interop tests run against the real
# ssh-keygen (in CI, CI=true turns "skipped: tool missing" into a failure).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l cmd core sdk plugins examples internal 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...
(cd examples/nfs-storage && go vet ./...)

race=()
if command -v gcc >/dev/null 2>&1; then
	race=(-race)
else
	echo "note: gcc not found, running without the race detector" >&2
fi

step "go test ${race[*]} ./..."
go test "${race[@]}" -count=1 -timeout 12m ./...

step "example third-party plugin (its own module)"
(cd examples/nfs-storage && go test "${race[@]}" -count=1 -timeout 5m ./...)

step "plugin contract (buf lint, breaking change, generated code)"
scripts/proto.sh check

printf '\nall tests passed\n'
