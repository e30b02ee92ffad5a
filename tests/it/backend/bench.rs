//! `chatprobe bench backend` works end to end at a tiny size (the real numbers
//! come from release builds and are recorded in `docs/benchmarks.md`).

use std::time::Duration;

use chatprobe::cmd::bench::backend::{BackendBenchArgs, Report, Workload, measure};

fn tiny(workload: Workload) -> BackendBenchArgs {
    BackendBenchArgs {
        url: None,
        workload,
        devices: 6,
        group_size: 3,
        senders_per_group: 1,
        rooms: 2,
        duration: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn fanout_delivers_every_send_to_every_member() {
    let Report::Fanout(report) = measure(&tiny(Workload::Fanout)).await.unwrap() else {
        panic!("fanout report expected");
    };
    assert_eq!((report.devices, report.groups), (6, 2));
    assert!(report.sends > 0);
    assert_eq!(report.failed_sends, 0);
    assert_eq!(report.expected, report.sends * 3);
    assert_eq!(report.delivered, report.expected, "{report}");
}

#[tokio::test]
async fn group_message_runs_complete() {
    let Report::GroupMessage(report) = measure(&tiny(Workload::GroupMessage)).await.unwrap() else {
        panic!("group-message report expected");
    };
    assert_eq!(report.failed, 0, "{report}");
    assert!(!report.latencies.is_empty());
    assert!(report.to_string().contains("run latency"));
}
