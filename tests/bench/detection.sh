#!/usr/bin/env bash
# Detection benchmark: `chatprobe demo` (2 s probes, three regions) scraped by
# a real Prometheus every 5 s that evaluates the shipped dashboards/rules.yml
# every 5 s, as dashboards/prometheus.yml ships.
#
#   bash tests/bench/detection.sh [ROUNDS]        # time to page, ROUNDS times (default 3)
#   bash tests/bench/detection.sh --statement [ROUNDS]  # time to the first public word
#   bash tests/bench/detection.sh --soak DURATION # a healthy soak: failed runs and alerts fired
#
# Time to page: a send outage (503 on every send) in eu-west and us-east
# starts ONSET after the demo starts; the script polls Prometheus' alerts
# every 100 ms and prints the seconds from onset until
# ChatprobeProbeFailingInManyRegions (the critical page) is firing.
#
# First public word: a send outage (503) in ap-south starts ONSET after the
# demo starts; beside the stack a `chatprobe status-page` reads that
# Prometheus, with `notify` publishing drafted statements at once (`publish:
# auto`, `hold: 0s`) and a webhook to a local receiver. The script polls `/`
# every 100 ms and prints the seconds from onset until the drafted statement
# is published there ("Update from our checks"), then until the receiver got
# the `incident_opened` post.
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

# Starts `chatprobe status-page` on the stack's Prometheus with notify
# publishing at once and a webhook to a receiver that appends each post's
# arrival time and event to $work/webhook.log; sets page_url.
start_status_page() {
    local page_port hook_port
    page_port=$(free_port) hook_port=$(free_port)
    : > "$work/webhook.log"
    python3 - "$hook_port" "$work/webhook.log" 2>"$work/webhook.err" <<'PY' &
import http.server, json, sys, time
port, log = int(sys.argv[1]), sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        event = json.loads(body).get("event", "?")
        with open(log, "a") as out:
            out.write(f"{time.time()} {event}\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
    pids+=($!)
    cat > "$work/status-page.yaml" <<YAML
prometheus: {url: "$prom_url"}
listen: 127.0.0.1:$page_port
store: sqlite:status-page.db
notify:
  base_url: http://127.0.0.1:$page_port
  publish: auto
  hold: 0s
  webhooks:
    - url: http://127.0.0.1:$hook_port/
      secret_env: DETECTION_WEBHOOK_SECRET
YAML
    DETECTION_WEBHOOK_SECRET=detection "$chatprobe" status-page --config "$work/status-page.yaml" \
        2>"$work/status-page.log" &
    pids+=($!)
    page_url="http://127.0.0.1:$page_port"
    wait_for "$page_url/healthz"
}

# Seconds from onset to now, as the lines print them.
since_onset() { python3 -c "import time; print(f'{time.time() - $started - $onset:.1f}')"; }

time_to_statement() {
    cat > "$work/outage.yaml" <<YAML
- name: send-outage
  operations: [send]
  regions: [ap-south]
  effect: error
  status: 503
  after: ${onset}s
YAML
    rm -f "$work/status-page.db"*
    start_stack "$work/outage.yaml"
    start_status_page
    local deadline=$(( ${started%.*} + onset + 120 )) on_page="" hooked=""
    while (( $(date +%s) < deadline )) && [[ -z $on_page || -z $hooked ]]; do
        if [[ -z $on_page ]] && curl -sf "$page_url/" | grep -q "Update from our checks"; then
            on_page=$(since_onset)
        fi
        if [[ -z $hooked ]] && grep -q " incident_opened$" "$work/webhook.log"; then
            hooked=$(python3 -c "
import sys
at = next(float(l.split()[0]) for l in open(sys.argv[1]) if l.split()[1] == 'incident_opened')
print(f'{at - $started - $onset:.1f}')" "$work/webhook.log")
        fi
        sleep 0.1
    done
    [[ -n $on_page ]] || { echo "detection: no statement on / within 120 s of onset" >&2; exit 1; }
    [[ -n $hooked ]] || { echo "detection: no incident_opened webhook within 120 s of onset" >&2; exit 1; }
    echo "statement: drafted statement on / $on_page s after onset"
    echo "statement: incident_opened webhook received $hooked s after onset"
    stop_stack
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
--statement)
    for _ in $(seq 1 "${2:-3}"); do time_to_statement; done ;;
*)
    rounds=${1:-3}
    for _ in $(seq 1 "$rounds"); do time_to_page; done ;;
esac
