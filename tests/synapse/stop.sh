#!/usr/bin/env bash
# Stops a Synapse started by tests/synapse/start.sh DIR.
# Usage: stop.sh [DIR]   (default: target/synapse)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/target/synapse}
pid_file=$dir/homeserver.pid
[[ -f $pid_file ]] || { echo "no Synapse running from $dir" >&2; exit 0; }
pid=$(cat "$pid_file")
kill "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pid_file"; echo "Synapse stopped" >&2; exit 0; }
    sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
rm -f "$pid_file"
