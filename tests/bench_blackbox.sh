#!/usr/bin/env bash
# CPU per group_message run of chatprobe's agent against CPU per HTTP GET
# probe of Prometheus' blackbox_exporter, measured side by side in one run
# on this machine (see docs/benchmarks.md; tests/bench/record.sh agent-cpu
# runs it and records the result there).
#
#   bash tests/bench_blackbox.sh [RUNS] [ROUNDS]     # defaults: 1000 and 3
#
# Installs prometheus-blackbox-exporter and nginx-light from Debian if
# missing, starts both on 127.0.0.1 (nginx answers `200 ok`), then, ROUNDS
# times in turn:
# - chatprobe: `chatprobe bench agent --measure cpu --runs RUNS` (release
#   build), which counts the agent process only (its mock backend is a
#   child process, as nginx is not counted for blackbox). Its runs follow
#   one another, each ending in its 20 ms settle window: one run every
#   PERIOD (about 22 ms), which it prints.
# - blackbox, paced: RUNS `/probe?module=http_2xx&target=NGINX` requests,
#   one every PERIOD over one keep-alive connection (tests/pace_requests.py),
#   as Prometheus scrapes it on a schedule, then RUNS `/-/healthy` requests
#   the same way; the exporter's CPU (utime+stime of /proc/PID/stat) per
#   probe, less its CPU per `/-/healthy` request, is what the probe itself
#   costs: serving an HTTP request is the price of blackbox's design, but
#   this charges it only the probe, the stricter comparison.
# - blackbox, back to back: the same through one keep-alive curl, each
#   request sent as the last one is answered: the exporter never goes idle,
#   which no agent run does, so this is blackbox's cheapest case.
# Prints each round, the ratio agent / blackbox net both ways (paced: the
# like-for-like one), and the load average.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-1000}
rounds=${2:-3}
warm_up=200

sudo_cmd=()
[[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
missing=()
command -v prometheus-blackbox-exporter >/dev/null || missing+=(prometheus-blackbox-exporter)
[[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
if ((${#missing[@]})); then
    echo "bench: installing Debian packages: ${missing[*]}" >&2
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 \
        install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages may start their services on install; this script starts its own.
    for service in nginx prometheus-blackbox-exporter; do
        "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
    done
fi

# CHATPROBE names another build to measure (e.g. a copy of an older one).
chatprobe=${CHATPROBE:-target/release/chatprobe}
[[ -x $chatprobe ]] || cargo build --release

work=$(mktemp -d)
pids=()
cleanup() {
    # Ends only the processes this script started.
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port (bound and released; nothing else here takes ports).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls `url` until it answers (at most 10 s).
wait_for() {
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: $1 did not answer within 10 s" >&2
    exit 1
}

# utime+stime of process $1, in clock ticks.
cpu_ticks() {
    # Fields 14 and 15; the name (field 2) has no spaces for these binaries.
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Requests `url` $2 times back to back over one keep-alive connection.
drive() {
    local url=$1 count=$2 config="$work/curl.conf"
    : >"$config"
    for _ in $(seq "$count"); do
        printf 'url = "%s"\noutput = "/dev/null"\n' "$url" >>"$config"
    done
    curl -fsS --config "$config"
}

# Requests `url` $2 times over one keep-alive connection, one every $3 seconds.
pace() {
    python3 tests/pace_requests.py "$1" "$2" "$3"
}

# The exporter's CPU in µs per request to `url` ($2), over `runs` requests
# sent by `drive` or `pace` ($1; the period $3 for `pace`).
exporter_us() {
    local driver=$1 url=$2 before after
    before=$(cpu_ticks "$exporter")
    "$driver" "$url" "$runs" "${@:3}"
    after=$(cpu_ticks "$exporter")
    echo $(((after - before) * 1000000 / tick_hz / runs))
}

# A duration as Rust's `{:?}` prints it (`22.3ms`, `950.1µs`, `1.2s`), in
# seconds; empty if it is not one.
wall_seconds() {
    awk -v d="$1" 'BEGIN {
        if (match(d, /^[0-9.]+/)) { n = substr(d, 1, RLENGTH); unit = substr(d, RLENGTH + 1) }
        scale["s"] = 1; scale["ms"] = 1e-3; scale["µs"] = 1e-6
        if (unit in scale) printf "%.6f", n * scale[unit]
    }'
}

# $1 / $2 to two decimals.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# The smallest and largest of the arguments, as `MIN to MAX`.
min_to_max() {
    printf '%s\n' "$@" | sort -n | sed -n '1p;$p' | paste -sd' ' | sed 's/ / to /'
}

tick_hz=$(getconf CLK_TCK)
nginx_port=$(free_port)
exporter_port=$(free_port)

mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 256; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { return 200 "ok\n"; }
    }
}
CONF
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)

cat >"$work/blackbox.yml" <<CONF
modules:
  http_2xx:
    prober: http
    http:
      preferred_ip_protocol: ip4
CONF
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
    --web.listen-address="127.0.0.1:$exporter_port" --log.level=warn 2>"$work/exporter.log" &
exporter=$!
pids+=("$exporter")

wait_for "http://127.0.0.1:$nginx_port/"
wait_for "http://127.0.0.1:$exporter_port/-/healthy"
probe_url="http://127.0.0.1:$exporter_port/probe?module=http_2xx&target=http://127.0.0.1:$nginx_port/"
healthy_url="http://127.0.0.1:$exporter_port/-/healthy"
if ! curl -fsS "$probe_url" | grep -qx 'probe_success 1'; then
    echo "bench: the blackbox probe of nginx does not succeed" >&2
    exit 1
fi
drive "$probe_url" "$warm_up"
drive "$healthy_url" "$warm_up"

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs per measurement: $runs"
paced_ratios=()
back_to_back_ratios=()
for round in $(seq "$rounds"); do
    agent_out=$("$chatprobe" bench agent --measure cpu --runs "$runs")
    agent_us=$(sed -n 's/^agent CPU per run: *\([0-9]*\) µs$/\1/p' <<<"$agent_out")
    failed=$(sed -n 's/.*; \([0-9]*\) failed).*/\1/p' <<<"$agent_out")
    period=$(wall_seconds "$(sed -n 's/^wall time per run: *//p' <<<"$agent_out")")
    if [[ -z $agent_us || $failed != 0 || -z $period ]]; then
        echo "bench: unexpected output of chatprobe bench agent:" >&2
        echo "$agent_out" >&2
        exit 1
    fi
    paced_probe_us=$(exporter_us pace "$probe_url" "$period")
    paced_net_us=$((paced_probe_us - $(exporter_us pace "$healthy_url" "$period")))
    probe_us=$(exporter_us drive "$probe_url")
    net_us=$((probe_us - $(exporter_us drive "$healthy_url")))
    paced_ratio=$(ratio "$agent_us" "$paced_net_us")
    back_to_back_ratio=$(ratio "$agent_us" "$net_us")
    paced_ratios+=("$paced_ratio")
    back_to_back_ratios+=("$back_to_back_ratio")
    echo "round $round: chatprobe ${agent_us} µs per group_message run, one run every ${period} s;" \
        "blackbox paced the same ${paced_probe_us} µs per probe (net ${paced_net_us} µs): ratio $paced_ratio;" \
        "blackbox back to back ${probe_us} µs per probe (net ${net_us} µs): ratio $back_to_back_ratio"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio chatprobe / blackbox net, paced alike: $(min_to_max "${paced_ratios[@]}")"
echo "ratio chatprobe / blackbox net, blackbox back to back: $(min_to_max "${back_to_back_ratios[@]}")"
