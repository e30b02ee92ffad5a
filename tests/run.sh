#!/usr/bin/env bash
# The whole test suite, as the README gives it: installs the outside tools the
# tests need (see tests/setup.sh), then runs formatting, lints and every test
# with those tools required (a missing tool fails the run instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
source target/tools.env

export CHATPROBE_REQUIRE_TOOLS=1
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --no-run

# The alerting end to end spends its ~3.5 minutes waiting on Prometheus' and
# Alertmanager's clocks (alert `for:` and `keep_firing_for` windows), not on
# the CPU: it runs beside the rest of the suite, its output shown at the end.
alerting_test=alerts::alerting_e2e::one_region_warns_two_regions_page_and_recovery_resolves
alerting_log=target/alerting_e2e.log
cargo test --test it -- --exact "$alerting_test" >"$alerting_log" 2>&1 &
alerting_pid=$!
rest_status=0
cargo test --no-fail-fast -- --skip "$alerting_test" || rest_status=$?
alerting_status=0
wait "$alerting_pid" || alerting_status=$?
echo "---- alerts::alerting_e2e (ran beside the rest) ----"
cat "$alerting_log"
if [ "$rest_status" -ne 0 ] || [ "$alerting_status" -ne 0 ]; then
    echo "test suite failed (rest: exit $rest_status, alerting_e2e: exit $alerting_status)" >&2
    exit 1
fi
