#!/usr/bin/env bash
# demo.sh: the agent's main job on its embedded default, the simulators.
# Builds everything, starts the Proxmox VE simulator on loopback, points the
# agent at it (URL, node, token and pinned fingerprint come from the
# simulator's conn file) and runs the read selftest, then the task selftest
# on the simulator's scratch guest 9999, with the bundled plugins.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh bin >/dev/null
work=$(mktemp -d)
sim_pid=""
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

bin/felhom-sim pve --listen 127.0.0.1:0 --log-level warn --conn-file "$work/pve.json" --agent-env "$work/agent.env" &
sim_pid=$!
for _ in $(seq 1 100); do
	[ -s "$work/agent.env" ] && break
	sleep 0.05
done
[ -s "$work/agent.env" ] || { echo "demo: the simulator did not start" >&2; exit 1; }

# The agent's plugin directory must be root-owned and not group/world
# writable; copy the bundled plugins into a private one and pin them.
mkdir -m 0755 "$work/plugins"
cp bin/plugins/* "$work/plugins/"
set -a
# shellcheck disable=SC1091
. "$work/agent.env"
FELHOM_AGENT_HOST_ID=demo-host
FELHOM_AGENT_DATA_DIR="$work/data"
FELHOM_AGENT_PLUGINS_DIR="$work/plugins"
FELHOM_AGENT_PLUGINS_LOCK_FILE="$work/plugins.lock"
FELHOM_AGENT_AUTHZ_ALLOWED_SIGNERS="$work/allowed_signers"
set +a
if [ "$(id -u)" != 0 ]; then
	echo "demo: not root: plugins are launched as the current user" >&2
	export FELHOM_AGENT_PLUGINS_USER="$(id -un)"
fi
bin/felhom-agent plugins pin --dir "$work/plugins" --lock-file "$work/plugins.lock"
echo
bin/felhom-agent --selftest
echo
bin/felhom-agent --selftest=task -vmid 9999
