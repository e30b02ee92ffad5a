//! Fault tolerance with real processes: the backend killed with -9 and
//! restarted under a running agent (it passes again within a bounded number
//! of runs, no agent restart), an agent killed with -9 mid-run and restarted
//! (its predecessor's groups are removed), and SIGTERM draining with cleanup.
//! Synapse and Prosody stopped and started under a running agent are in
//! `tests/matrix_agent.rs` and `tests/xmpp_agent.rs` (their server is already
//! running there). Times are printed, not asserted (they belong in
//! benchmarks); every wait is a bounded poll on a condition.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::harness::binary::{Running, start_agent, start_backend};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::AgentConfig;
use crate::harness::http::{http_client, metric};
use serde_json::{Value, json};

/// `chatprobe_probe_runs_total` of `probe` in eu-west with `result`.
fn runs(text: &str, probe: &str, result: &str) -> f64 {
    let series = format!(
        "chatprobe_probe_runs_total{{probe=\"{probe}\",region=\"eu-west\",result=\"{result}\",target=\"mock\"}}"
    );
    metric(text, &series).unwrap_or(0.0)
}

/// The current value of `runs` on the agent.
fn runs_now(agent: &Running, probe: &str, result: &str) -> f64 {
    runs(&agent.get("/metrics").1, probe, result)
}

/// Polls the agent's metrics until `probe` counts more than `above` runs of
/// `result`; the metrics that showed it.
fn wait_for_runs(agent: &Running, probe: &str, result: &str, above: f64) -> String {
    let (_, text) = agent.poll("/metrics", |_, text| runs(text, probe, result) > above);
    assert!(
        runs(&text, probe, result) > above,
        "{probe} never counted more than {above} {result} runs:\n{}",
        agent.log()
    );
    text
}

/// Failed runs after the backend is back before the first pass: the run in
/// flight when it came back, and the one that finds the kept group of
/// `group_message` gone with the backend's state.
const RUNS_TO_RECOVER: f64 = 2.0;

/// Groups on the backend, by its admin stats.
fn groups(backend: &Running) -> u64 {
    let (status, body) = backend.get("/admin/stats");
    assert_eq!(status, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).expect("stats are JSON");
    stats["groups"].as_u64().expect("group count")
}

/// Polls (bounded) until the backend holds at most `most` groups; true if it did.
fn wait_for_groups_at_most(backend: &Running, most: u64) -> bool {
    let (_, body) = backend.poll("/admin/stats", |_, body| {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|stats| stats["groups"].as_u64())
            .is_some_and(|count| count <= most)
    });
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|stats| stats["groups"].as_u64())
        .is_some_and(|count| count <= most)
}

/// A backend config on a fixed free port, so a restart comes back at the same address.
fn backend_config(dir: &TempDir) -> std::path::PathBuf {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    dir.write("backend.yaml", &format!("listen: 127.0.0.1:{port}\n"))
}

/// Every leave from eu-west answers 503.
fn leave_outage(dir: &TempDir) -> std::path::PathBuf {
    let faults =
        "- name: no-leaves\n  operations: [leave]\n  regions: [eu-west]\n  effect: error\n";
    dir.write("leave-outage.yaml", faults)
}

/// Replaces the backend's faults.
fn put_faults(backend: &Running, faults: Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(crate::harness::backend::put_faults(
        &http_client(),
        &backend.url(),
        &faults,
    ));
}

#[test]
fn the_agent_recovers_from_a_backend_killed_and_restarted_without_restarting() {
    let scratch = TempDir::new("fault-backend-kill");
    let config = backend_config(&scratch);
    let mut backend = start_backend(&config, &[]);
    let agent_config = AgentConfig::write(
        &scratch,
        "eu-west",
        &backend.url(),
        "1s",
        &["group_message"],
    );
    let agent = start_agent(&agent_config.path);
    wait_for_runs(&agent, "group_message", "success", 0.0);

    backend.signal("KILL");
    assert!(backend.wait_exit(Duration::from_secs(10)).is_some());
    let failed = runs_now(&agent, "group_message", "failure");
    wait_for_runs(&agent, "group_message", "failure", failed);

    let restarted_at = Instant::now();
    let _backend = start_backend(&config, &[]);
    let passed = runs_now(&agent, "group_message", "success");
    let failed = runs_now(&agent, "group_message", "failure");
    let text = wait_for_runs(&agent, "group_message", "success", passed);
    eprintln!(
        "first passing run {:?} after the backend came back (interval 1 s)",
        restarted_at.elapsed()
    );
    let failed_meanwhile = runs(&text, "group_message", "failure") - failed;
    assert!(
        failed_meanwhile <= RUNS_TO_RECOVER,
        "{failed_meanwhile} runs failed after the backend came back before one passed:\n{}",
        agent.log()
    );
    assert_eq!(agent.get("/healthz").0, 200, "the same agent still serves");
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
}

#[test]
fn an_agent_killed_mid_run_leaves_no_orphan_groups_once_restarted() {
    let scratch = TempDir::new("fault-agent-kill");
    let config = backend_config(&scratch);
    let faults = leave_outage(&scratch);
    let backend = start_backend(&config, &["--faults", faults.to_str().expect("UTF-8 path")]);
    let kinds = ["edit_settings", "device_sync"];
    let agent_config = AgentConfig::write(&scratch, "eu-west", &backend.url(), "1s", &kinds);
    let mut agent = start_agent(&agent_config.path);
    // Every run leaves its group behind while leaves fail.
    let (_, body) = backend.poll("/admin/stats", |_, body| {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|stats| stats["groups"].as_u64())
            .is_some_and(|count| count >= 4)
    });
    assert!(groups(&backend) >= 4, "{body}");
    agent.signal("KILL");
    assert!(agent.wait_exit(Duration::from_secs(10)).is_some());
    let orphans = groups(&backend);
    eprintln!("{orphans} groups left by the killed agent");

    put_faults(&backend, json!([]));
    let restarted_at = Instant::now();
    let successor = start_agent(&agent_config.path);
    // Each probe's own run holds at most one group at a time.
    assert!(
        wait_for_groups_at_most(&backend, kinds.len() as u64),
        "the orphans stay:\n{}",
        successor.log()
    );
    eprintln!(
        "orphans gone {:?} after the restart (interval 1 s)",
        restarted_at.elapsed()
    );
}

#[test]
fn sigterm_drains_and_cleans_up() {
    let scratch = TempDir::new("fault-sigterm");
    let config = backend_config(&scratch);
    let backend = start_backend(&config, &[]);
    let kinds = ["group_message", "edit_settings"];
    let agent_config = AgentConfig::write(&scratch, "eu-west", &backend.url(), "1s", &kinds);
    let mut agent = start_agent(&agent_config.path);
    wait_for_runs(&agent, "group_message", "success", 0.0);
    assert!(groups(&backend) >= 1, "group_message keeps its group");

    agent.signal("TERM");
    let (status, took) = agent
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", agent.log()));
    eprintln!("drained in {took:?} (limit 5 s)");
    assert!(status.success(), "{status}:\n{}", agent.log());
    assert_eq!(groups(&backend), 0, "shutdown left groups behind");
}
