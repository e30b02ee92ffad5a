#!/usr/bin/env bash
# Starts a local Synapse for probing by hand (e.g. `chatprobe once --config
# config/matrix.yaml`): configures DIR on first use, starts the server in the
# background and waits until it answers. Stop it with tests/synapse/stop.sh DIR.
# Usage: start.sh [DIR] [PORT]   (defaults: target/synapse, 8008)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/target/synapse}
port=${2:-8008}
synapse=$(bash "$root/tests/synapse/install.sh")
[[ -f $dir/homeserver.yaml ]] || bash "$root/tests/synapse/configure.sh" "$dir" "$port" "$synapse" >/dev/null
"$synapse" --config-path "$dir/homeserver.yaml" --daemonize
for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/_matrix/client/versions" >/dev/null; then
        echo "Synapse is up on http://127.0.0.1:$port (pid $(cat "$dir/homeserver.pid"), logs in $dir)" >&2
        exit 0
    fi
    sleep 0.2
done
echo "Synapse did not answer within 60s; see $dir/homeserver.log" >&2
exit 1
