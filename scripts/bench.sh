#!/usr/bin/env bash
# bench.sh: run the project's headline benchmarks in one go and print their
# output (a few minutes on 2 vCPUs). Several need root (plugins run as
# nobody); run on a quiet machine, since the cold-start figures are
# CPU-bound. Each benchmark states what it compares against; see the
# comments in the *_test.go files for the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
	echo "== go test -run '^\$' $*"
	go test -run '^$' "$@"
	echo
}

# Plugin host: cold start of 5 plugins (per-phase breakdown, CPU, the plain
# go-plugin AutoMTLS baseline), 1 plugin, hashing, invoke, memory at rest.
run -bench . -benchtime 10x ./core/pluginhost
# sdk: no-op invoke (paired with plain go-plugin), cold start to the first
# RPC, idle memory. IdleRSS idles 2.5 s per iteration, so it runs few.
run -bench 'InvokeNoop' -benchtime 2000x ./sdk
run -bench 'ColdStart' -benchtime 100x ./sdk
run -bench 'IdleRSS' -benchtime 3x ./sdk
run -bench . -benchtime 3x ./core/proxmox
run -bench . -benchtime 2s ./core/authz/...
run -bench . -benchtime 2s ./core/registry
