//! `chatprobe demo`: backend and three regions in one process, one /metrics
//! for all, a summary line per run, and a scenario that hits one region only.

use crate::harness::binary::start_demo;
use crate::harness::fixtures::fixture_path;
use crate::harness::http::metric;

fn series(name: &str, probe: &str, region: &str, extra: &str) -> String {
    format!("{name}{{{extra}probe=\"{probe}\",region=\"{region}\",target=\"mock\"}}")
}

#[test]
fn demo_serves_three_regions_and_replays_a_scenario() {
    let scenario = fixture_path("faults/ap-south-send-outage.yaml");
    let mut demo = start_demo(&scenario);
    let passed = |region| {
        let mut text = String::from("chatprobe_probe_runs_total{probe=\"group_message\",region=\"");
        text.push_str(region);
        text.push_str("\",result=\"success\",target=\"mock\"}");
        text
    };
    let failed = series(
        "chatprobe_operation_failures_total",
        "group_message",
        "ap-south",
        "operation=\"send\",",
    )
    .replace("region=", "reason=\"http_error\",region=");
    let (_, text) = demo.poll("/metrics", |_, text| {
        metric(text, &passed("eu-west")).unwrap_or(0.0) >= 1.0
            && metric(text, &passed("us-east")).unwrap_or(0.0) >= 1.0
            && metric(text, &failed).unwrap_or(0.0) >= 1.0
    });
    assert!(
        metric(&text, &passed("eu-west")).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, &passed("us-east")).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(metric(&text, &failed).unwrap_or(0.0) >= 1.0, "{text}");
    assert_eq!(metric(&text, &passed("ap-south")), Some(0.0), "{text}");
    // Every failure series exists at 0 from the start; these must stay there.
    for region in ["eu-west", "us-east"] {
        let failures = format!(
            "chatprobe_operation_failures_total{{operation=\"send\",probe=\"group_message\",reason=\"http_error\",region=\"{region}\",target=\"mock\"}}"
        );
        assert_eq!(
            metric(&text, &failures).unwrap_or(0.0),
            0.0,
            "{region} failed too:\n{text}"
        );
    }
    assert!(
        demo.count_lines(|line| line.contains(" eu-west ") && line.contains(" pass ")) >= 1,
        "{}",
        demo.log()
    );
    assert!(
        demo.count_lines(|line| line.contains(" ap-south ")
            && line.contains(" FAIL ")
            && line.contains("send/http_error"))
            >= 1,
        "{}",
        demo.log()
    );
    assert_eq!(demo.get("/").0, 200);
    demo.stop_cleanly("TERM");
}
