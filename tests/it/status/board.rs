//! The status board through its public API: recording runs, the snapshot the
//! page and `/api/status` show, its JSON shape and the rendered HTML.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatprobe::outcome::{Failure, Operation, ProbeKey, ProbeOutcome, Reason};
use chatprobe::status::{Health, RECENT_FAILURES, StatusBoard, render_page};

/// 2026-11-23T16:25:00Z.
const T0: u64 = 1_795_451_100;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn key(region: &str, probe: &str) -> ProbeKey {
    ProbeKey {
        region: region.into(),
        target: "mock".into(),
        probe: probe.into(),
    }
}

fn failure(operation: Operation, reason: Reason, detail: &str) -> Failure {
    Failure {
        operation,
        reason,
        detail: detail.into(),
    }
}

/// A run that started at `seconds` after T0, took one second and found `failures`.
fn run(seconds: u64, failures: Vec<Failure>) -> ProbeOutcome {
    ProbeOutcome {
        started_at: at(seconds),
        duration: Duration::from_secs(1),
        steps: Vec::new(),
        failures,
        messages_expected: 6,
        messages_delivered: 6,
    }
}

#[test]
fn an_empty_board_is_unknown() {
    let snapshot = StatusBoard::new().snapshot_at(at(0));
    assert_eq!(snapshot.overall, Health::Unknown);
    assert!(snapshot.cells.is_empty());
    assert!(render_page(&snapshot).contains("No probe run has finished yet"));
}

#[test]
fn each_cell_shows_its_last_run_and_the_worst_wins_overall() {
    let board = StatusBoard::new();
    board.record(&key("eu-west", "group_message"), &run(0, vec![]));
    board.record(
        &key("us-east", "group_message"),
        &run(
            0,
            vec![failure(
                Operation::Deliver,
                Reason::LateDelivery,
                "3.2 s > 2 s",
            )],
        ),
    );
    board.record(
        &key("ap-south", "group_message"),
        &run(
            0,
            vec![
                failure(Operation::Deliver, Reason::NotDelivered, "0 of 4 devices"),
                failure(Operation::Deliver, Reason::LateDelivery, "late"),
            ],
        ),
    );
    let snapshot = board.snapshot_at(at(5));
    let state_of = |region: &str| {
        let cell = snapshot
            .cells
            .iter()
            .find(|cell| cell.key.region == region)
            .expect("a cell per recorded region");
        (cell.state, cell.reasons.clone())
    };
    assert_eq!(state_of("eu-west"), (Health::Green, vec![]));
    assert_eq!(
        state_of("us-east"),
        (Health::Amber, vec![Reason::LateDelivery])
    );
    assert_eq!(
        state_of("ap-south"),
        (
            Health::Red,
            vec![Reason::NotDelivered, Reason::LateDelivery]
        )
    );
    assert_eq!(snapshot.overall, Health::Red);
    assert_eq!(snapshot.cells[0].age_seconds, 4);
}

#[test]
fn a_cell_tracks_its_failing_streak_and_recovers() {
    let board = StatusBoard::new();
    let probe = key("ap-south", "group_message");
    let lost = || vec![failure(Operation::Send, Reason::Timeout, "no answer")];
    board.record(&probe, &run(0, vec![]));
    board.record(&probe, &run(10, lost()));
    board.record(&probe, &run(20, lost()));
    let failing = board.snapshot_at(at(25));
    let cell = &failing.cells[0];
    assert_eq!(cell.state, Health::Red);
    assert_eq!(cell.consecutive_failures, 2);
    assert_eq!(cell.failing_since.map(|t| t.unix_seconds()), Some(T0 + 11));
    assert_eq!(cell.last_success_at.map(|t| t.unix_seconds()), Some(T0 + 1));

    board.record(&probe, &run(30, vec![]));
    let recovered = board.snapshot_at(at(35));
    let cell = &recovered.cells[0];
    assert_eq!(cell.state, Health::Green);
    assert_eq!(cell.consecutive_failures, 0);
    assert_eq!(cell.failing_since, None);
    assert_eq!(recovered.overall, Health::Green);
}

#[test]
fn recent_failures_keep_only_the_newest_and_list_them_newest_first() {
    let board = StatusBoard::new();
    let probe = key("ap-south", "group_message");
    for second in 0..(RECENT_FAILURES as u64 + 20) {
        let detail = format!("run {second}");
        let lost = failure(Operation::Deliver, Reason::NotDelivered, &detail);
        board.record(&probe, &run(second, vec![lost]));
    }
    let snapshot = board.snapshot_at(at(100));
    let details: Vec<&str> = snapshot
        .recent_failures
        .iter()
        .map(|row| row.failure.detail.as_str())
        .collect();
    assert_eq!(details.len(), RECENT_FAILURES);
    assert_eq!(details[0], "run 69");
    assert_eq!(details[RECENT_FAILURES - 1], "run 20");
}

#[test]
fn long_details_are_shortened() {
    let board = StatusBoard::new();
    let huge = "x".repeat(100_000);
    let noisy = failure(Operation::Send, Reason::HttpError, &huge);
    board.record(&key("eu-west", "group_message"), &run(0, vec![noisy]));
    let snapshot = board.snapshot_at(at(2));
    let kept = &snapshot.recent_failures[0].failure.detail;
    assert!(kept.chars().count() <= chatprobe::status::DETAIL_MAX_CHARS + 1);
    assert!(kept.ends_with('…'));
}

#[test]
fn the_trend_counts_each_probes_runs_over_the_last_hour() {
    let board = StatusBoard::new();
    let lost = || vec![failure(Operation::Send, Reason::Timeout, "")];
    let late = || vec![failure(Operation::Deliver, Reason::LateDelivery, "")];
    board.record(&key("eu-west", "group_message"), &run(0, vec![]));
    board.record(&key("ap-south", "group_message"), &run(0, lost()));
    board.record(&key("us-east", "group_message"), &run(0, late()));
    board.record(&key("eu-west", "leave_group"), &run(30, vec![]));
    let snapshot = board.snapshot_at(at(40));
    let probes: Vec<&str> = snapshot.trends.iter().map(|t| t.probe.as_str()).collect();
    assert_eq!(probes, ["group_message", "leave_group"]);
    let trend = &snapshot.trends[0];
    assert_eq!(trend.bucket_seconds, 10);
    assert_eq!(trend.runs.len(), 360);
    let newest = trend.runs.len() - 1;
    // Runs finished at +1 s, in the bucket four before the one holding +40 s.
    assert_eq!(trend.runs[newest - 4], 3);
    assert_eq!(trend.failed[newest - 4], 1);
    assert_eq!(trend.degraded[newest - 4], 1);
    assert_eq!(trend.runs.iter().sum::<u32>(), 3);
    assert_eq!(trend.start.unix_seconds(), T0 + 40 - 3590);
}

#[test]
fn the_json_has_the_documented_fields() {
    let board = StatusBoard::new();
    let lost = failure(Operation::Deliver, Reason::NotDelivered, "0 of 4 devices");
    board.record(&key("ap-south", "group_message"), &run(0, vec![lost]));
    let json = serde_json::to_value(board.snapshot_at(at(3))).expect("serializable");

    assert_eq!(json["generated_at"], "2026-11-23T16:25:03Z");
    assert_eq!(json["overall"], "red");
    let cell = &json["cells"][0];
    for (field, expected) in [
        ("region", "ap-south"),
        ("target", "mock"),
        ("probe", "group_message"),
        ("state", "red"),
        ("last_run_at", "2026-11-23T16:25:01Z"),
        ("failing_since", "2026-11-23T16:25:01Z"),
    ] {
        assert_eq!(cell[field], expected, "cells[0].{field}");
    }
    assert_eq!(cell["reasons"], serde_json::json!(["not_delivered"]));
    assert_eq!(cell["age_seconds"], 2);
    assert_eq!(cell["duration_seconds"], 1.0);
    assert_eq!(cell["consecutive_failures"], 1);
    assert_eq!(cell["last_success_at"], serde_json::Value::Null);
    assert_eq!(cell["messages_expected"], 6);
    assert_eq!(cell["messages_delivered"], 6);
    assert_eq!(
        cell["failures"][0],
        serde_json::json!({
            "operation": "deliver",
            "reason": "not_delivered",
            "reason_text": "sent but never delivered",
            "detail": "0 of 4 devices",
        })
    );
    assert_eq!(
        json["recent_failures"][0],
        serde_json::json!({
            "at": "2026-11-23T16:25:01Z",
            "region": "ap-south",
            "target": "mock",
            "probe": "group_message",
            "operation": "deliver",
            "reason": "not_delivered",
            "reason_text": "sent but never delivered",
            "detail": "0 of 4 devices",
        })
    );
    let trend = &json["trends"][0];
    assert_eq!(trend["probe"], "group_message");
    assert_eq!(trend["bucket_seconds"], 10);
    for series in ["runs", "failed", "degraded"] {
        assert_eq!(
            trend[series].as_array().map(Vec::len),
            Some(360),
            "{series}"
        );
    }
}

#[test]
fn the_page_marks_each_cell_for_machines_and_people() {
    let board = StatusBoard::new();
    let lost = failure(Operation::Send, Reason::NotDelivered, "acked, never seen");
    board.record(&key("ap-south", "group_message"), &run(0, vec![lost]));
    board.record(&key("eu-west", "group_message"), &run(0, vec![]));
    board.record(&key("eu-west", "leave_group"), &run(0, vec![]));
    let html = render_page(&board.snapshot_at(at(3)));

    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(html.contains(
        r#"data-probe="group_message" data-region="ap-south" data-target="mock" data-state="red" data-reasons="not_delivered""#
    ));
    assert!(html.contains(
        r#"data-probe="group_message" data-region="eu-west" data-target="mock" data-state="green" data-reasons="""#
    ));
    // ap-south never ran leave_group: the grid still has the cell, without data.
    assert!(html.contains(
        r#"data-probe="leave_group" data-region="ap-south" data-target="mock" data-state="unknown""#
    ));
    assert!(html.contains("sent but never delivered"));
    assert!(html.contains("Failing: 1 of 3 checks in ap-south"));
    assert!(html.contains(r#"<header class="overall" data-state="red">"#));
    assert_eq!(html.matches("<svg").count(), 2, "one chart per probe");
    assert!(
        html.contains("<h2>Last 5 minutes</h2>"),
        "a young board's charts start near its first run"
    );
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn the_charts_span_the_whole_hour_once_the_board_has_that_much_history() {
    let board = StatusBoard::new();
    board.record(&key("eu-west", "group_message"), &run(0, vec![]));
    board.record(&key("eu-west", "leave_group"), &run(20 * 60, vec![]));
    let after_21_minutes = render_page(&board.snapshot_at(at(21 * 60)));
    assert!(after_21_minutes.contains("<h2>Last 22 minutes</h2>"));
    let after_2_hours = render_page(&board.snapshot_at(at(2 * 60 * 60)));
    assert!(after_2_hours.contains("<h2>Last 5 minutes</h2>"));
    assert!(after_2_hours.contains("no runs in this window"));
    let after_59_minutes = render_page(&board.snapshot_at(at(59 * 60)));
    assert!(after_59_minutes.contains("<h2>Last 60 minutes</h2>"));
}

#[test]
fn an_hour_of_runs_is_drawn_in_at_most_120_bars_a_chart() {
    let board = StatusBoard::new();
    for second in (0..3600).step_by(10) {
        board.record(&key("eu-west", "group_message"), &run(second, vec![]));
    }
    let html = render_page(&board.snapshot_at(at(3600)));
    assert!(html.contains("<h2>Last 60 minutes</h2>"));
    assert!(html.contains("runs per 30 s"));
    let bars = html.matches("<g><title>").count();
    assert!((100..=120).contains(&bars), "{bars} bars");
}

#[test]
fn a_month_of_runs_keeps_the_board_the_same_size() {
    let board = StatusBoard::new();
    let lost = || vec![failure(Operation::Deliver, Reason::NotDelivered, "lost")];
    let month = 30 * 24 * 3600;
    for second in (0..month).step_by(60) {
        for region in ["eu-west", "us-east", "ap-south"] {
            let failures = if region == "ap-south" { lost() } else { vec![] };
            board.record(&key(region, "group_message"), &run(second, failures));
        }
    }
    let snapshot = board.snapshot_at(at(month));
    assert_eq!(snapshot.cells.len(), 3);
    assert_eq!(snapshot.recent_failures.len(), RECENT_FAILURES);
    assert_eq!(snapshot.trends.len(), 1);
    assert_eq!(snapshot.trends[0].runs.len(), 360);
    // Only the window's runs are counted: one a minute in each region, and
    // the last run finished a minute before `now`.
    assert_eq!(snapshot.trends[0].runs.iter().sum::<u32>(), 3 * 59);
    let cell = snapshot
        .cells
        .iter()
        .find(|cell| cell.key.region == "ap-south")
        .expect("ap-south cell");
    assert_eq!(cell.consecutive_failures, month / 60);
}

#[test]
fn the_page_escapes_everything_that_came_from_the_network() {
    let board = StatusBoard::new();
    let hostile = r#"<script>alert(1)</script><img src=x onerror="alert(2)">"#;
    let injected = failure(Operation::Send, Reason::HttpError, hostile);
    let hostile_key = ProbeKey {
        region: "<b>r</b>".into(),
        target: "\"><i>t".into(),
        probe: "p'<u>".into(),
    };
    board.record(&hostile_key, &run(0, vec![injected]));
    let html = render_page(&board.snapshot_at(at(3)));

    for raw in ["<script", "<img", "<b>r", "<i>t", "<u>"] {
        assert!(!html.contains(raw), "{raw} must be escaped");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("onerror=&quot;alert(2)&quot;"));
    assert!(html.contains("data-region=\"&lt;b&gt;r&lt;/b&gt;\""));
    assert!(html.contains("data-target=\"&quot;&gt;&lt;i&gt;t\""));
    assert!(html.contains("data-probe=\"p&#39;&lt;u&gt;\""));
}

#[test]
fn the_board_is_shared_across_threads() {
    let board = std::sync::Arc::new(StatusBoard::new());
    let writers: Vec<_> = ["eu-west", "us-east", "ap-south"]
        .into_iter()
        .map(|region| {
            let board = board.clone();
            std::thread::spawn(move || {
                for second in 0..200 {
                    board.record(&key(region, "group_message"), &run(second, vec![]));
                }
            })
        })
        .collect();
    for _ in 0..50 {
        let _ = board.snapshot_at(at(300));
    }
    for writer in writers {
        writer.join().expect("writer finished");
    }
    let snapshot = board.snapshot_at(at(300));
    assert_eq!(snapshot.cells.len(), 3);
    assert_eq!(snapshot.trends[0].runs.iter().sum::<u32>(), 600);
}

#[test]
fn probes_removed_by_a_reload_leave_the_board() {
    let board = StatusBoard::new();
    let kept = key("eu-west", "group_message");
    board.record(&kept, &run(0, vec![]));
    board.record(&key("eu-west", "leave_group"), &run(0, vec![]));
    board.retain_probes([&kept]);
    let snapshot = board.snapshot_at(at(10));
    let probes: Vec<&str> = snapshot
        .cells
        .iter()
        .map(|c| c.key.probe.as_str())
        .collect();
    assert_eq!(probes, ["group_message"]);
    let trends: Vec<&str> = snapshot.trends.iter().map(|t| t.probe.as_str()).collect();
    assert_eq!(trends, ["group_message"]);
}
