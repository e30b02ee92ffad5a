//! `chatprobe bench reports` works end to end at a tiny size, on SQLite and
//! on a real PostgreSQL (the real numbers come from release builds and are
//! recorded in `docs/benchmarks.md`): every report posted is counted, the
//! store is filled to the size asked (at least), and both pages are timed.

use std::ffi::OsStr;

use super::Store;
use crate::harness::binary::run_args;

/// Runs the benchmark tiny on `store` (a `--store` value) and checks what it printed.
fn tiny_bench_on(store: &str) {
    let args = [
        "bench",
        "reports",
        "--store",
        store,
        "--clients",
        "4",
        "--duration",
        "1s",
        "--fill",
        "20000",
        "--requests",
        "1",
    ];
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let finished = run_args(&args);
    assert!(finished.success, "{}\n{}", finished.stdout, finished.stderr);
    let line = |start: &str| {
        finished
            .stdout
            .lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in {}", finished.stdout))
            .to_owned()
    };
    assert!(line("reports accepted:").contains("4 clients"));
    assert!(
        line("reports refused or failed:").contains(" 0 ("),
        "{}",
        finished.stdout
    );
    let filled = line("store filled:");
    let stored: usize = filled
        .split_whitespace()
        .nth(2)
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no count in `{filled}`"));
    assert!(stored >= 20_000, "{filled}");
    for endpoint in ["GET /: median", "GET /api/reports?hours=24: median"] {
        line(endpoint);
    }
    assert!(line("status page RSS:").contains(&format!("MiB with {stored} reports")));
}

#[test]
fn the_reports_benchmark_runs_tiny_on_sqlite() {
    tiny_bench_on("sqlite");
}

#[test]
fn the_reports_benchmark_runs_tiny_on_postgres() {
    let Some(Store::Postgres(postgres)) = Store::postgres() else {
        return;
    };
    tiny_bench_on(&postgres.url());
}
