//! How cheap the status board is: the cost of recording one probe run, and of
//! building the page and the JSON from a full board.
//!
//! `cargo run --release --example status_bench`

use std::time::{Duration, Instant, SystemTime};

use chatprobe::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason};
use chatprobe::status::{StatusBoard, render_page};

const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const PROBES: [&str; 5] = [
    "group_message",
    "device_sync",
    "leave_group",
    "edit_settings",
    "add_member",
];
/// Runs recorded: a day of 15 probes every 2 s.
const RUNS: u64 = 15 * 43_200;
/// How many times the page and the JSON are built.
const RENDERS: u32 = 200;

fn main() -> anyhow::Result<()> {
    let keys: Vec<ProbeKey> = REGIONS
        .iter()
        .flat_map(|region| {
            PROBES.iter().map(|probe| ProbeKey {
                region: (*region).to_owned(),
                target: "mock".to_owned(),
                probe: (*probe).to_owned(),
            })
        })
        .collect();
    let start = SystemTime::now() - Duration::from_secs(RUNS / 15 * 2);
    let outcomes: Vec<ProbeOutcome> = (0..RUNS)
        .map(|run| outcome(start + Duration::from_millis(run * 2_000 / 15), run))
        .collect();

    let board = StatusBoard::new();
    let began = Instant::now();
    for (run, outcome) in outcomes.iter().enumerate() {
        board.record(&keys[run % keys.len()], outcome);
    }
    let recording = began.elapsed();
    println!(
        "record: {RUNS} runs in {:.1} ms, {:.0} ns per run",
        recording.as_secs_f64() * 1e3,
        recording.as_nanos() as f64 / RUNS as f64
    );

    let began = Instant::now();
    let mut page_bytes = 0;
    for _ in 0..RENDERS {
        page_bytes = render_page(&board.snapshot()).len();
    }
    let per_page = began.elapsed() / RENDERS;
    println!(
        "page: {:.2} ms per snapshot + render, {page_bytes} bytes",
        per_page.as_secs_f64() * 1e3
    );

    let began = Instant::now();
    let mut json_bytes = 0;
    for _ in 0..RENDERS {
        json_bytes = serde_json::to_vec(&board.snapshot())?.len();
    }
    let per_json = began.elapsed() / RENDERS;
    println!(
        "json: {:.2} ms per snapshot + serialize, {json_bytes} bytes",
        per_json.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Run number `run`: one in ten fails, with a detail as long as real ones.
fn outcome(started_at: SystemTime, run: u64) -> ProbeOutcome {
    let failures = if run.is_multiple_of(10) {
        vec![Failure {
            operation: Operation::Deliver,
            reason: Reason::NotDelivered,
            detail: format!("message {run} acknowledged, seen by 0 of 4 devices"),
        }]
    } else {
        Vec::new()
    };
    ProbeOutcome {
        started_at,
        duration: Duration::from_millis(150),
        steps: Vec::new(),
        failures,
        messages_expected: 4,
        messages_delivered: 4,
    }
}
