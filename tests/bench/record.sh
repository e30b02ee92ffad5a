#!/usr/bin/env bash
# Re-measures one benchmark of docs/benchmarks.md: runs its command N times
# and prints its table (each measure's range over the runs, its goal, met or
# not). With --write the table replaces the one between the benchmark's
# markers in docs/benchmarks.md, `<!-- bench NAME -->` and
# `<!-- bench NAME end -->`, so a re-measure is one command and no prose edit.
#
#   bash tests/bench/record.sh --list              # the benchmarks' names
#   bash tests/bench/record.sh NAME [N]            # N runs (default 3); prints the table
#   bash tests/bench/record.sh --write NAME [N]    # ... and writes it into docs/benchmarks.md
#
# A command that starts with `chatprobe` runs target/release/chatprobe (built
# if missing; CHATPROBE names another build). Each run's output is kept in
# target/bench/NAME-RUN.log. Measure on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

names=(agent-devices agent-cpu agent-latency agent-failing-rss agent-leave-outage targets remote-write remote-write-outage
    backend-fanout-100 backend-fanout-1000 backend-group-message-32 backend-group-message-4
    soak status-board status-page status-page-10000 reports reports-postgres synapse prosody time-to-page
    detection soak-pages recovery notify statement)

command=""
labels=() units=() decimals=() goals=() scripts=()

# measure LABEL UNIT DECIMALS GOAL SED: one row of the table. SED is a sed -E
# script that prints a value for each output line it matches: a number, a
# number and a unit (`4.1 ms`, `950.2 µs`, `30000 bytes`: converted to UNIT), or
# `A - B`. GOAL is empty, `<= X`, `>= X`, `== X` or `within X` (|value| ≤ X).
measure() {
    labels+=("$1") units+=("$2") decimals+=("$3") goals+=("$4") scripts+=("$5")
}

# Rust's `{:?}` of a Duration (`4.102ms`, `640.5µs`, `1.2s`) as `NUMBER UNIT`.
dur='([0-9.]+)(ms|µs|ns|s)'

# A benchmark named $1: its command, as the table shows it, and its measures.
define() {
    case $1 in
    agent-devices)
        command="chatprobe bench agent --measure devices --devices 10000"
        measure "RSS with the devices" MiB 1 "<= 150" 's/^agent RSS with devices: +([0-9.]+) MiB$/\1/p'
        measure "RSS before setup" MiB 1 "" 's/^agent RSS before: +([0-9.]+) MiB$/\1/p'
        measure "RSS a device" KiB 1 "" 's/^per device: +([0-9.]+) KiB$/\1/p'
        measure "push sockets open at the backend" "" 0 "== 10000" 's/^push sockets at backend: +([0-9]+)$/\1/p' ;;
    agent-cpu)
        command="bash tests/bench_blackbox.sh 1000 3"
        measure "agent CPU per group_message run" µs 0 "" 's/^round [0-9]+: chatprobe ([0-9]+) µs per group_message run.*/\1/p'
        measure "one run every" ms 0 "" 's/^round .* one run every ([0-9.]+) s;.*/\1 s/p'
        measure "blackbox_exporter CPU per probe, paced alike" µs 0 "" 's/^round .*blackbox paced the same ([0-9]+) µs per probe .*/\1/p'
        measure "blackbox_exporter net CPU per probe, paced alike" µs 0 "" 's/^round .*blackbox paced the same [0-9]+ µs per probe \(net (-?[0-9]+) µs\).*/\1/p'
        measure "ratio agent / blackbox, paced alike" × 2 "<= 0.6" 's/^round .*blackbox paced .*: ratio ([0-9.]+); blackbox back.*/\1/p'
        measure "blackbox_exporter CPU per probe, back to back" µs 0 "" 's/^round .*blackbox back to back ([0-9]+) µs per probe .*/\1/p'
        measure "blackbox_exporter net CPU per probe, back to back" µs 0 "" 's/^round .*back to back [0-9]+ µs per probe \(net (-?[0-9]+) µs\).*/\1/p'
        measure "ratio agent / blackbox, back to back" × 2 "" 's/^round .*back to back .*: ratio ([0-9.]+)$/\1/p' ;;
    agent-latency)
        command="chatprobe bench agent --measure latency --delay 50ms --samples 300"
        measure "delivery latency error p50" ms 2 "" 's/^error p50: +([0-9]+) µs$/\1 µs/p'
        measure "delivery latency error p99" ms 2 "<= 1" 's/^error p99: +([0-9]+) µs$/\1 µs/p'
        measure "delivery latency error max" ms 1 "" 's/^error max: +([0-9]+) µs$/\1 µs/p' ;;
    agent-failing-rss)
        command="chatprobe bench agent --measure failing-rss --failing-runs 10000"
        measure "lowest RSS sample" MiB 1 "" 's/^RSS range: +([0-9.]+) to .*/\1/p'
        measure "highest RSS sample" MiB 1 "" 's/^RSS range: +[0-9.]+ to ([0-9.]+) MiB.*/\1/p'
        measure "wall time" s 0 "" "s/^wall time: +$dur$/\\1 \\2/p"
        measure "highest sample against the first" % 1 "within 10" 's/^RSS range: .*\(([+-]?[0-9.]+) % of the first sample\)$/\1/p' ;;
    agent-leave-outage)
        command="chatprobe bench agent --measure leave-outage --outage 10m"
        measure "runs during the outage" "" 0 "" 's/^runs during the outage: +([0-9]+) .*/\1/p'
        measure "runs that created no group (bound reached)" "" 0 "" 's/^runs during the outage: +[0-9]+ \(([0-9]+) created no group.*/\1/p'
        measure "most groups during it" "" 0 "<= 10" 's/^most groups during it: +([0-9]+) .*/\1/p'
        measure "groups after one run once leaves work" "" 0 "== 0" 's/^groups after one run: +([0-9]+) .*/\1/p' ;;
    targets)
        command="chatprobe bench targets --targets 1000 --shrink-to 500"
        measure "every target ran once, after start" s 1 "" 's/^every target ran once: +([0-9.]+) s after start$/\1/p'
        measure "CPU in steady state, of one core" % 2 "<= 5" 's/^CPU in steady state: +([0-9.]+) % of one core.*/\1/p'
        measure "RSS in steady state" MiB 1 "<= 200" 's/^RSS in steady state: +([0-9.]+) MiB.*/\1/p'
        measure "failed runs" "" 0 "== 0" 's/^runs so far: +[0-9]+ passed, ([0-9]+) failed.*/\1/p'
        measure "one /metrics scrape" MB 1 "" 's/^one \/metrics scrape: +([0-9.]+) MB in .*/\1/p'
        measure "one /metrics scrape" ms 0 "" 's/^one \/metrics scrape: .* in ([0-9]+) ms$/\1/p'
        measure "file shrunk to 500: change applied, series gone" s 1 "<= 40" 's/^file shrunk to [0-9]+: change applied .* after ([0-9.]+) s$/\1/p'
        measure "file shrunk to 500: removed targets' groups left" s 1 "<= 40" "s/^removed targets' groups left on the backend after ([0-9.]+) s$/\1/p" ;;
    remote-write)
        command="chatprobe bench targets --targets 1000 --remote-write --outage 3m"
        measure "CPU scraped every 15 s, of one core" % 2 "" 's/^CPU in steady state: +([0-9.]+) % of one core.*/\1/p'
        measure "CPU pushing every 15 s, unscraped, of one core" % 2 "" 's/^pushing instead .*: CPU ([0-9.]+) % of one core.*/\1/p'
        measure "CPU pushing / scraped, within a run" × 2 "<= 1.2" 's/^pushing \/ scraped CPU: +([0-9.]+)x$/\1/p'
        measure "RSS scraped" MiB 1 "" 's/^RSS in steady state: +([0-9.]+) MiB.*/\1/p'
        measure "RSS pushing" MiB 1 "" 's/^RSS pushing: +([0-9.]+) MiB.*/\1/p'
        measure "on the wire" kB/s 0 "" 's/^on the wire: +([0-9.]+) kB\/s.*/\1/p'
        measure "receiver answering 503 for 3 min: RSS max" MiB 1 "" 's/^receiver answering 503 for [^:]*: RSS max ([0-9.]+) MiB.*/\1/p'
        measure "receiver answering 503 for 3 min: queue" MiB 1 "<= 64" 's/^receiver answering 503 .*, queue ([0-9.]+) MiB at its end$/\1/p'
        measure "receiver back: queue empty" s 1 "" 's/^receiver back: queue empty after ([0-9.]+) s$/\1/p' ;;
    remote-write-outage)
        command="chatprobe bench targets --targets 1000 --remote-write --outage 10m"
        measure "receiver answering 503 for 10 min: RSS max" MiB 1 "" 's/^receiver answering 503 for [^:]*: RSS max ([0-9.]+) MiB.*/\1/p'
        measure "receiver answering 503 for 10 min: queue" MiB 1 "<= 64" 's/^receiver answering 503 .*, queue ([0-9.]+) MiB at its end$/\1/p'
        measure "samples dropped with the queue full" "" 0 "" 's/^samples dropped, queue full: ([0-9]+) .*/\1/p'
        measure "receiver back: queue empty" s 1 "" 's/^receiver back: queue empty after ([0-9.]+) s$/\1/p' ;;
    backend-fanout-100 | backend-fanout-1000)
        local size=${1#backend-fanout-} senders=32
        [[ $size == 1000 ]] && senders=16
        command="chatprobe bench backend --devices 1000 --group-size $size --senders-per-group $senders --duration 10s"
        measure "sends" /s 0 "" 's/^sends: [0-9]+ \(([0-9]+)\/s\).*/\1/p'
        measure "failed sends" "" 0 "== 0" 's/^sends: .*, failed sends: ([0-9]+)$/\1/p'
        measure "push deliveries" /s 0 "" 's/^push deliveries: [0-9]+ in the window \(([0-9]+)\/s\).*/\1/p'
        measure "deliveries lost after the drain" "" 0 "== 0" 's/^push deliveries: .*after drain ([0-9]+) of ([0-9]+) expected$/\2 - \1/p' ;;
    backend-group-message-32 | backend-group-message-4)
        command="chatprobe bench backend --workload group-message --rooms ${1#backend-group-message-} --duration 10s"
        measure "runs" /s 0 "" 's/^runs: [0-9]+ \(([0-9]+)\/s\).*/\1/p'
        measure "failed runs" "" 0 "== 0" 's/^runs: .*, failed runs: ([0-9]+), .*/\1/p'
        measure "deliveries" /s 0 "" 's/^runs: .*, deliveries: [0-9]+ \(([0-9]+)\/s\)$/\1/p'
        measure "run latency p50" ms 2 "" "s/^run latency: p50 $dur, .*/\\1 \\2/p"
        measure "run latency p99" ms 1 "" "s/^run latency: .*, p99 $dur, .*/\\1 \\2/p" ;;
    soak)
        command="chatprobe bench soak --duration 30m --interval 5s"
        measure "runs" "" 0 "" 's/^soak: ([0-9]+) runs in .*/\1/p'
        measure "false failures" "" 0 "== 0" 's/^soak: .*, ([0-9]+) false failures$/\1/p' ;;
    status-board)
        command="cargo run --release --example status_bench"
        measure "recording a run" ns 0 "" 's/^record: .*, ([0-9]+) ns per run$/\1/p'
        measure "snapshot and page" ms 2 "" 's/^page: ([0-9.]+) ms per .*/\1/p'
        measure "page size" KB 0 "" 's/^page: .*, ([0-9]+) bytes$/\1 bytes/p'
        measure "snapshot and JSON" ms 2 "" 's/^json: ([0-9.]+) ms per .*/\1/p'
        measure "JSON size" KB 0 "" 's/^json: .*, ([0-9]+) bytes$/\1 bytes/p' ;;
    status-page | status-page-10000)
        command="chatprobe bench status-page --targets 1000 --probes 5 --regions 3 --rules dashboards/rules.yml"
        [[ $1 == status-page-10000 ]] && command="chatprobe bench status-page --targets 10000 --probes 1 --regions 1 --failing 100 --rules dashboards/rules.yml"
        measure "every cell on the page, after the page started" s 0 "" 's/^every cell on the page: +([0-9.]+) s after .*/\1/p'
        local endpoint
        for endpoint in / /operators /api/status /api/incidents /feed.atom /cells; do
            local pattern=${endpoint//\//\\/}
            measure "GET $endpoint, median" ms 1 "" "s/^GET $pattern(\\?[^:]*)?: median ([0-9.]+) ms, .*/\\2/p"
            measure "GET $endpoint, max" ms 1 "<= 1000" "s/^GET $pattern(\\?[^:]*)?: median [0-9.]+ ms, max ([0-9.]+) ms, .*/\\2/p"
        done
        measure "status page RSS" MiB 1 "<= 200" 's/^status page RSS: +([0-9.]+) MiB.*/\1/p'
        measure "status page CPU, of one core" % 1 "" 's/^status page CPU: +([0-9.]+) % .*/\1/p'
        measure "Prometheus queries per refresh, median" "" 0 "" 's/^queries per refresh: +median ([0-9]+), .*/\1/p'
        measure "Prometheus queries per refresh, max" "" 0 "" 's/^queries per refresh: +median [0-9]+, max ([0-9]+)$/\1/p'
        measure "samples Prometheus read per refresh, median" "" 0 "" 's/^samples per refresh: +median ([0-9]+), .*/\1/p'
        measure "points returned per refresh, median" "" 0 "" 's/^points per refresh: +median ([0-9]+), .*/\1/p'
        measure "a refresh takes, median" ms 0 "" 's/^a refresh takes: +median ([0-9]+) ms, .*/\1/p'
        measure "Prometheus CPU, of one core" % 1 "" 's/^Prometheus CPU: +([0-9.]+) % .*/\1/p'
        measure "ongoing incidents" "" 0 "" 's/^ongoing incidents: +([0-9]+) .*/\1/p' ;;
    reports | reports-postgres)
        command="chatprobe bench reports --store sqlite --clients 64 --duration 10s --fill 1000000"
        local rate_goal=">= 5000"
        if [[ $1 == reports-postgres ]]; then
            command="chatprobe bench reports --store postgres --clients 64 --duration 10s --fill 1000000"
            rate_goal=""
        fi
        measure "reports accepted, 64 clients, distinct reporters" /s 0 "$rate_goal" 's/^reports accepted: +[0-9]+ in [0-9.]+ s \(([0-9]+)\/s\).*/\1/p'
        measure "reports refused or failed" "" 0 "== 0" 's/^reports refused or failed: +([0-9]+) .*/\1/p'
        measure "report latency p50" ms 1 "" 's/^report latency: +p50 ([0-9.]+) ms, .*/\1/p'
        measure "report latency p99" ms 1 "<= 50" 's/^report latency: .*, p99 ([0-9.]+) ms, .*/\1/p'
        measure "status page RSS, 1,000,000 reports stored" MiB 1 "<= 150" 's/^status page RSS: +([0-9.]+) MiB with .*/\1/p'
        measure "GET / with 1,000,000 reports, median" ms 1 "<= 100" 's/^GET \/: median ([0-9.]+) ms, .*/\1/p'
        measure "GET /api/reports?hours=24 with 1,000,000 reports, median" ms 1 "" 's/^GET \/api\/reports\?hours=24: median ([0-9.]+) ms, .*/\1/p' ;;
    synapse | prosody)
        local area=matrix
        [[ $1 == prosody ]] && area=xmpp
        command="cargo test --release --test it -- --ignored --nocapture $area::group_message_against"
        measure "$1: run mean" ms 1 "" "s/^$1 +run mean +([0-9.]+) ms .*/\\1/p"
        measure "$1: run median" ms 1 "" "s/^$1 +run mean .* median +([0-9.]+) ms .*/\\1/p"
        measure "$1: 4 concurrent" runs/s 1 "" "s/^$1 +run mean .* ([0-9.]+) runs\/s with .*/\\1/p"
        measure "mock: run mean" ms 1 "" 's/^mock +run mean +([0-9.]+) ms .*/\1/p'
        measure "mock: run median" ms 1 "" 's/^mock +run mean .* median +([0-9.]+) ms .*/\1/p'
        measure "mock: 4 concurrent" runs/s 1 "" 's/^mock +run mean .* ([0-9.]+) runs\/s with .*/\1/p'
        measure "mock faster, run mean" × 1 "" 's/^ratio .*: latency ([0-9.]+)x faster.*/\1/p'
        measure "mock higher, 4 concurrent" × 1 "" 's/^ratio .*, throughput ([0-9.]+)x higher$/\1/p' ;;
    time-to-page)
        command="cargo test --test it alerts::alerting_e2e -- --nocapture"
        measure "page firing after the second region's fault" s 1 "<= 45" 's/^alerting e2e: .* page firing in Prometheus ([0-9.]+) s after .*/\1/p'
        measure "regional warning after the first region's fault" s 1 "" 's/^alerting e2e: .*\(regional warning: ([0-9.]+) s after the first\).*/\1/p' ;;
    detection)
        command="bash tests/bench/detection.sh 1"
        measure "first critical alert after onset" s 1 "<= 15" 's/^detection: first critical alert ([0-9.]+) s after onset$/\1/p' ;;
    statement)
        command="bash tests/bench/detection.sh --statement 1"
        measure "drafted statement published on / after onset" s 1 "<= 60" 's/^statement: drafted statement on \/ ([0-9.]+) s after onset$/\1/p'
        measure "incident_opened webhook received after onset" s 1 "" 's/^statement: incident_opened webhook received ([0-9.]+) s after onset$/\1/p' ;;
    notify)
        command="chatprobe bench notify --subscribers 10000"
        measure "last back-online mail accepted after the statement" s 1 "<= 60" 's/^last mail accepted: +([0-9.]+) s after the statement$/\1/p'
        measure "mails per second" "" 0 "" 's/^mails: +([0-9]+)\/s$/\1/p'
        measure "mails accepted" "" 0 "== 10000" 's/^mails accepted: +([0-9]+) for .*/\1/p'
        measure "status page RSS while sending" MiB 1 "" 's/^status page RSS: .* ([0-9.]+) MiB max while sending$/\1/p' ;;
    soak-pages)
        command="bash tests/bench/detection.sh --soak 30m"
        measure "probe runs" "" 0 "" 's/^soak: runs ([0-9]+)$/\1/p'
        measure "failed runs" "" 0 "== 0" 's/^soak: failed runs ([0-9]+)$/\1/p'
        measure "alerts fired (but the Watchdog)" "" 0 "== 0" 's/^soak: alerts fired ([0-9]+) .*/\1/p'
        measure "pages" "" 0 "== 0" 's/^soak: pages ([0-9]+)$/\1/p' ;;
    recovery)
        command="cargo test --test it agent::fault_tolerance -- --nocapture"
        measure "first pass after the backend is back" s 1 "" "s/^first passing run $dur after .*/\\1 \\2/p"
        measure "killed agent's groups gone after its restart" s 1 "" "s/^orphans gone $dur after .*/\\1 \\2/p"
        measure "SIGTERM drained" ms 0 "<= 5000" "s/^drained in $dur .*/\\1 \\2/p" ;;
    *) return 1 ;;
    esac
}

usage() {
    echo "usage: bash tests/bench/record.sh [--write] NAME [N]   (names: --list)" >&2
    exit 2
}

write=false
case ${1:-} in
--list) printf '%s\n' "${names[@]}"; exit 0 ;;
--write) write=true; shift ;;
esac
name=${1:-}
runs=${2:-3}
[[ -n $name && $runs =~ ^[1-9][0-9]*$ ]] || usage
define "$name" || { echo "record: no benchmark named $name (see --list)" >&2; exit 2; }

chatprobe=${CHATPROBE:-target/release/chatprobe}
if [[ $command == chatprobe\ * && -z ${CHATPROBE:-} && ! -x $chatprobe ]]; then
    cargo build --release
fi
# Benchmarks of many devices need a socket each.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p target/bench
loads=()
load() { cut -d' ' -f1 /proc/loadavg; }
for run in $(seq "$runs"); do
    log=target/bench/$name-$run.log
    echo "record: $name, run $run of $runs: $command (output in $log)" >&2
    loads+=("$(load)")
    if [[ $command == chatprobe\ * ]]; then
        read -ra args <<<"${command#chatprobe }"
        "$chatprobe" "${args[@]}" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    else
        bash -c "$command" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    fi
    loads+=("$(load)")
done

# The smallest and largest of the values on stdin, formatted to $1 decimals
# with thousands separators, as `MIN to MAX` (or one value), then a tab,
# the raw MIN and MAX.
range() {
    sort -g | awk -v d="$1" '
        function fmt(x,   s, sign, whole, frac, out) {
            s = sprintf("%." d "f", x); sign = ""
            if (substr(s, 1, 1) == "-") { sign = "-"; s = substr(s, 2) }
            whole = s; frac = ""
            if (index(s, ".")) { whole = substr(s, 1, index(s, ".") - 1); frac = substr(s, index(s, ".")) }
            out = ""
            while (length(whole) > 3) { out = "," substr(whole, length(whole) - 2) out; whole = substr(whole, 1, length(whole) - 3) }
            return sign whole out frac
        }
        NR == 1 { min = $1 } { max = $1 }
        END {
            if (NR == 0) exit 1
            text = (fmt(min) == fmt(max)) ? fmt(min) : fmt(min) " to " fmt(max)
            print text "\t" min "\t" max
        }'
}

# Each value a script printed, as a number in $1 (the measure's unit).
normalize() {
    awk -v unit="$1" 'BEGIN { s["s"] = 1; s["ms"] = 1e-3; s["µs"] = 1e-6; s["ns"] = 1e-9; s["KB"] = 1e3; s["bytes"] = 1 }
        NF == 3 && $2 == "-" { print $1 - $3; next }
        NF == 2 && ($2 in s) && (unit in s) { printf "%.9g\n", $1 * s[$2] / s[unit]; next }
        { print $1 }'
}

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 |
    sed -E 's/\((R|TM)\)//g; s/ [0-9]+-Core//; s/ (Processor|CPU)//g; s/ +/ /g; s/ $//')
machine="$(nproc) × $model, load $(printf '%s\n' "${loads[@]}" | range 1 | cut -f1)"
if [[ ($command == chatprobe\ * && $chatprobe == */debug/*) || ($command == cargo\ * && $command != *--release*) ]]; then
    machine+=", debug build"
fi

table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
    echo "| command | machine | runs | measure | range over the runs | goal | met |"
    echo "|---|---|---|---|---|---|---|"
    for i in "${!labels[@]}"; do
        unit=${units[i]} goal=${goals[i]}
        found=$(for run in $(seq "$runs"); do sed -nE "${scripts[i]}" "target/bench/$name-$run.log"; done | normalize "$unit")
        if [[ -z $found ]] || ! summary=$(range "${decimals[i]}" <<<"$found"); then
            echo "record: no value of \"${labels[i]}\" in target/bench/$name-*.log" >&2
            exit 1
        fi
        IFS=$'\t' read -r text low high <<<"$summary"
        suffix=${unit:+ $unit}
        [[ $unit == /s || $unit == × ]] && suffix=$unit
        shown="" met=""
        if [[ -n $goal ]]; then
            read -r op bound <<<"$goal"
            met=$(awk -v op="$op" -v b="$bound" -v lo="$low" -v hi="$high" 'BEGIN {
                ok = (op == "<=") ? hi <= b : (op == ">=") ? lo >= b : (op == "==") ? lo == b && hi == b : hi <= b && lo >= -b
                print ok ? "yes" : "no" }')
            case $op in
            "<=") shown="≤ $bound" ;; ">=") shown="≥ $bound" ;; "==") shown="$bound" ;; within) shown="±$bound" ;;
            esac
            shown+=$suffix
        fi
        if ((i == 0)); then
            printf '| `%s` | %s | %s | %s | %s | %s | %s |\n' "$command" "$machine" "$runs" "${labels[i]}" "$text$suffix" "$shown" "$met"
        else
            printf '| | | | %s | %s | %s | %s |\n' "${labels[i]}" "$text$suffix" "$shown" "$met"
        fi
    done
} >"$table"
cat "$table"

if $write; then
    doc=docs/benchmarks.md
    begin="<!-- bench $name -->" end="<!-- bench $name end -->"
    grep -qxF "$begin" "$doc" && grep -qxF "$end" "$doc" || {
        echo "record: $doc lacks the markers $begin and $end" >&2
        exit 1
    }
    awk -v begin="$begin" -v end="$end" -v table="$table" '
        $0 == begin { print; print ""; while ((getline line < table) > 0) print line; print ""; skip = 1; next }
        $0 == end { skip = 0 }
        !skip' "$doc" >"$doc.new"
    mv "$doc.new" "$doc"
    echo "record: $doc updated between $begin and $end" >&2
fi
