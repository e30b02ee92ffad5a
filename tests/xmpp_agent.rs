//! The `chatprobe` binary with the shipped `config/xmpp.yaml` pointed at a
//! real Prosody: `once` passes every shipped probe, and the agent reports
//! `connect_error` while the server is down and stays up.

mod common;
mod prosody;

use std::path::PathBuf;
use std::time::Duration;

use chatprobe::probe::ProbeKind;
use common::binary::{self, start_agent};
use common::dir::TempDir;
use common::fixtures::repo_file;
use common::http::metric;
use prosody::Prosody;

/// The shipped probes with deadlines generous enough for a loaded machine
/// (leave_group looks again `latency_objective` after a leave).
fn patient_probes(scratch: &TempDir, kinds: &[&str]) {
    for kind in kinds {
        let shipped = std::fs::read_to_string(repo_file(&format!("probes/{kind}.yaml")))
            .expect("shipped probe file");
        let patient: Vec<String> = shipped
            .lines()
            .map(|line| match line.split(':').next() {
                Some("step_timeout") => "step_timeout: 20s".to_string(),
                Some("delivery_deadline") => "delivery_deadline: 30s".to_string(),
                Some("latency_objective") => "latency_objective: 5s".to_string(),
                _ => line.to_string(),
            })
            .collect();
        scratch.write(&format!("probes/{kind}.yaml"), &patient.join("\n"));
    }
}

/// `config/xmpp.yaml` pointed at `prosody`, the scratch probes and an
/// ephemeral listen port, plus `extra` lines.
fn xmpp_config(scratch: &TempDir, prosody: &Prosody, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_file("config/xmpp.yaml")).expect("config/xmpp.yaml");
    assert!(text.contains("server: 127.0.0.1:5222"), "{text}");
    let text = text
        .replace("127.0.0.1:5222", &prosody.server)
        .replace("listen: 127.0.0.1:9464", "listen: 127.0.0.1:0")
        .replace(
            "- ../probes",
            &format!("- {}", scratch.join("probes").display()),
        );
    scratch.write("xmpp.yaml", &format!("{text}{extra}"))
}

fn start_prosody() -> Option<(tokio::runtime::Runtime, Prosody)> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let prosody = runtime.block_on(Prosody::start())?;
    Some((runtime, prosody))
}

/// Every probe kind's name.
fn kinds() -> Vec<&'static str> {
    ProbeKind::ALL.iter().map(|kind| kind.as_str()).collect()
}

#[test]
fn once_passes_every_shipped_probe_against_prosody() {
    let Some((_runtime, prosody)) = start_prosody() else {
        return;
    };
    let scratch = TempDir::new("xmpp-once");
    patient_probes(&scratch, &kinds());
    let config = xmpp_config(&scratch, &prosody, "");
    let finished = binary::run("once", &config);
    let table = &finished.stdout;
    assert!(
        finished.success,
        "{table}\n{}\n{}",
        finished.stderr,
        prosody.log_tail()
    );
    for kind in kinds() {
        assert!(
            table.lines().any(|line| line.starts_with(kind)
                && line.contains("prosody")
                && line.contains("pass")),
            "{kind} did not pass:\n{table}"
        );
    }
    assert!(
        !table.contains("chatprobe-xmpp"),
        "the password leaked:\n{table}"
    );
}

#[test]
fn agent_reports_connect_error_while_prosody_is_down_and_stays_up() {
    let Some((_runtime, mut prosody)) = start_prosody() else {
        return;
    };
    let scratch = TempDir::new("xmpp-down");
    patient_probes(&scratch, &["group_message"]);
    let config = xmpp_config(&scratch, &prosody, "interval: 1s\n");
    let mut agent = start_agent(&config);
    let success = "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"success\",target=\"prosody\"}";
    let (_, text) = agent.poll("/metrics", |_, text| {
        metric(text, success).unwrap_or(0.0) >= 1.0
    });
    assert!(
        metric(&text, success).unwrap_or(0.0) >= 1.0,
        "{text}\n{}",
        agent.log()
    );

    prosody.stop();
    let connect_errors = |text: &str| {
        text.lines()
            .filter(|line| line.starts_with("chatprobe_operation_failures_total{"))
            .filter(|line| {
                line.contains("reason=\"connect_error\"") && line.contains("target=\"prosody\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let (_, text) = agent.poll("/metrics", |_, text| connect_errors(text) >= 1.0);
    assert!(
        connect_errors(&text) >= 1.0,
        "no connect_error:\n{text}\n{}",
        agent.log()
    );
    assert_eq!(agent.get("/healthz").0, 200, "the agent stays up");
    assert!(
        !agent.log().contains("chatprobe-xmpp"),
        "the password leaked"
    );

    agent.signal("TERM");
    let exited = agent.wait_exit(Duration::from_secs(30));
    assert!(
        exited.is_some_and(|(status, _)| status.success()),
        "no clean exit after SIGTERM:\n{}",
        agent.log()
    );
}
