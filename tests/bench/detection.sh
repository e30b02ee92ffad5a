#!/usr/bin/env bash
# Detection benchmark: `chatprobe demo` (2 s probes, three regions) scraped by
# a real Prometheus every 5 s that evaluates the shipped dashboards/rules.yml
# every 5 s, as dashboards/prometheus.yml ships.
#
#   bash tests/bench/detection.sh [ROUNDS]        # time to page, ROUNDS times (default 3)
#   bash tests/bench/detection.sh --soak DURATION # a healthy soak: failed runs and alerts fired
#
# Time to page: a send outage (503 on every send) in eu-west and us-east
# starts ONSET after the demo starts; the script polls Prometheus' alerts
# every 100 ms and prints the seconds from onset until
# ChatprobeProbeFailingInManyRegions (the critical page) is firing.
#
# Soak: the healthy demo for DURATION (humantime, e.g. 30m); prints the
# probes' failed runs and every alert that fired but the Watchdog, read from
# Prometheus at the end (pages are the critical ones).
#
# Needs prometheus on PATH or in $CHATPROBE_PROMETHEUS (tests/setup.sh
# installs it) and a release build (built if missing; CHATPROBE= names
# another binary). Everything listens on 127.0.0.1 and stops at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

onset=40
prometheus=${CHATPROBE_PROMETHEUS:-$(command -v prometheus || true)}
[[ -x $prometheus ]] || { echo "detection: prometheus not found (apt-get install prometheus, or bash tests/setup.sh)" >&2; exit 1; }
chatprobe=${CHATPROBE:-target/release/chatprobe}
[[ -n ${CHATPROBE:-} ]] || cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Polls URL until it answers, at most 30 s.
wait_for() {
    for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
    echo "detection: $1 never answered" >&2; exit 1
}

# Starts the demo (with SCENARIO, if given) and a Prometheus scraping it;
# sets demo_pid, prom_url and started (epoch seconds, when the demo started).
start_stack() {
    local scenario=$1 demo_port prom_port
    demo_port=$(free_port) prom_port=$(free_port)
    local args=(demo --listen "127.0.0.1:$demo_port" --interval 2s)
    [[ -n $scenario ]] && args+=(--scenario "$scenario")
    started=$(date +%s.%N)
    "$chatprobe" "${args[@]}" 2>"$work/demo.log" &
    demo_pid=$!
    pids+=("$demo_pid")
    cat > "$work/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s
rule_files: ["$PWD/dashboards/rules.yml"]
scrape_configs:
  - job_name: chatprobe
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:$demo_port"]
YAML
    rm -rf "$work/tsdb"
    "$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
        --web.listen-address="127.0.0.1:$prom_port" 2>"$work/prometheus.log" &
    pids+=($!)
    prom_url="http://127.0.0.1:$prom_port"
    wait_for "127.0.0.1:$demo_port/healthz"
    wait_for "$prom_url/-/ready"
}

stop_stack() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}

# Prometheus' instant query $1, as JSON.
query() { curl -sf "$prom_url/api/v1/query" --data-urlencode "query=$1"; }

time_to_page() {
    cat > "$work/outage.yaml" <<YAML
- name: send-outage
  operations: [send]
  regions: [eu-west, us-east]
  effect: error
  status: 503
  after: ${onset}s
YAML
    start_stack "$work/outage.yaml"
    local deadline=$(( ${started%.*} + onset + 120 ))
    while (( $(date +%s) < deadline )); do
        if query 'ALERTS{alertname="ChatprobeProbeFailingInManyRegions",alertstate="firing"}' \
            | grep -q '"alertname":"ChatprobeProbeFailingInManyRegions"'; then
            python3 -c "import time; print(f'detection: first critical alert {time.time() - $started - $onset:.1f} s after onset')"
            stop_stack
            return 0
        fi
        sleep 0.1
    done
    echo "detection: no page within 120 s of onset" >&2
    exit 1
}

soak() {
    local seconds
    seconds=$(python3 -c "
import re,sys
units={'s':1,'m':60,'h':3600}
print(sum(int(n)*units[u] for n,u in re.findall(r'(\d+)([smh])', sys.argv[1])))" "$1")
    (( seconds > 0 )) || { echo "detection: --soak takes a duration like 30m" >&2; exit 1; }
    start_stack ""
    sleep "$seconds"
    # One more scrape and evaluation, so the last runs are counted.
    sleep 11
    local window="$((seconds + 60))s"
    query "sum(chatprobe_probe_runs_total)" | python3 -c "import json,sys; r=json.load(sys.stdin)['data']['result']; print('soak: runs', int(float(r[0]['value'][1])) if r else 0)"
    query 'sum(chatprobe_probe_runs_total{result="failure"})' | python3 -c "import json,sys; r=json.load(sys.stdin)['data']['result']; print('soak: failed runs', int(float(r[0]['value'][1])) if r else 0)"
    query "count by (alertname, severity) (max_over_time(ALERTS{alertstate=\"firing\",alertname!=\"ChatprobeWatchdog\"}[$window]))" \
        | python3 -c "
import json,sys
rows=json.load(sys.stdin)['data']['result']
pages=[r['metric']['alertname'] for r in rows if r['metric'].get('severity')=='critical']
print('soak: alerts fired', len(rows), sorted(r['metric']['alertname'] for r in rows))
print('soak: pages', len(pages))"
    stop_stack
}

case ${1:-} in
--soak) soak "${2:?--soak takes a duration}" ;;
*)
    rounds=${1:-3}
    for _ in $(seq 1 "$rounds"); do time_to_page; done ;;
esac
