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
cargo test
