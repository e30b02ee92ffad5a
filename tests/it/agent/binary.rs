//! The `agent` binary against the real mock backend: endpoints, readiness,
//! every contract metric, SIGHUP reload (a bad config keeps the old one; a new
//! `listen` moves the endpoints), SIGTERM drain.

use std::net::{SocketAddr, TcpListener};

use crate::harness::backend::Backend;
use crate::harness::binary::start_agent;
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, fixture_path, probe_file};
use crate::harness::http::{http_get, metric, poll_get};

/// Every `/metrics` series name the design lists (**contract**).
const CONTRACT: &[&str] = &[
    "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"success\",target=\"mock\"}",
    "chatprobe_probe_runs_total{probe=\"edit_settings\",region=\"eu-west\",result=\"failure\",target=\"mock\"}",
    "chatprobe_probe_success{probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_probe_duration_seconds_count{probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_operation_duration_seconds_count{operation=\"send\",probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_operation_failures_total{operation=\"edit_settings\",probe=\"edit_settings\",reason=\"settings_rejected\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_messages_expected_total{probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_messages_delivered_total{probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_last_run_timestamp_seconds{probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    "chatprobe_probe_panics_total{probe=\"group_message\",region=\"eu-west\",target=\"mock\"}",
    concat!(
        "chatprobe_build_info{version=\"",
        env!("CARGO_PKG_VERSION"),
        "\"}"
    ),
    "process_cpu_seconds_total",
];

#[test]
fn endpoints_readiness_metrics_and_sigterm() {
    // Logins take 6 s during the first 12 s, so the first round cannot finish early;
    // settings changes always fail.
    let backend = Backend::with_faults(&fixture_path("faults/slow-login-no-settings.yaml"));
    let scratch = TempDir::new("agent-endpoints");
    let kinds = ["group_message", "edit_settings"];
    let config = AgentConfig::write(&scratch, "eu-west", &backend.url, "1s", &kinds);
    config.rewrite(
        &config
            .text
            .replace("request_timeout: 5s", "request_timeout: 20s"),
    );
    let mut agent = start_agent(&config.path);

    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(agent.get("/readyz").0, 503, "{}", agent.log());
    let (status, _) = agent.poll("/readyz", |status, _| status == 200);
    assert_eq!(status, 200, "{}", agent.log());

    let (_, text) = agent.poll("/metrics", |_, text| {
        CONTRACT.iter().all(|series| metric(text, series).is_some())
            && metric(text, CONTRACT[0]).unwrap_or(0.0) >= 1.0
            && metric(text, CONTRACT[5]).unwrap_or(0.0) >= 1.0
    });
    for series in CONTRACT {
        assert!(metric(&text, series).is_some(), "missing {series}:\n{text}");
    }
    assert!(metric(&text, CONTRACT[0]).unwrap() >= 1.0, "{text}");
    assert!(metric(&text, CONTRACT[5]).unwrap() >= 1.0, "{text}");
    // Both results exist for every probe from the start.
    let failures = "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"failure\",target=\"mock\"}";
    assert!(metric(&text, failures).is_some(), "{text}");
    assert!(!text.contains("test-password"));
    assert!(!agent.log().contains("test-password"));

    agent.stop_cleanly("TERM");
    assert!(agent.log().contains("\"stopped\""), "{}", agent.log());
}

#[test]
fn sighup_with_a_bad_config_keeps_the_old_one_and_a_good_one_applies() {
    let backend = Backend::start();
    let scratch = TempDir::new("agent-reload");
    let config = AgentConfig::write(
        &scratch,
        "eu-west",
        &backend.url,
        "500ms",
        &["group_message"],
    );
    let good = &config.text;
    let mut agent = start_agent(&config.path);
    let runs = "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"success\",target=\"mock\"}";
    agent.poll("/metrics", |_, text| {
        metric(text, runs).unwrap_or(0.0) >= 1.0
    });

    config.rewrite(&good.replace("url: http", "url: ftp"));
    agent.signal("HUP");
    let rejected = agent.wait_for_line(|line| line.contains("reload rejected"));
    let rejected = rejected.unwrap_or_else(|| panic!("no rejection logged:\n{}", agent.log()));
    assert!(rejected.contains("targets[0].url"), "{rejected}");
    let before = metric(&agent.get("/metrics").1, runs).unwrap();
    let (_, text) = agent.poll("/metrics", |_, text| {
        metric(text, runs).unwrap_or(0.0) >= before + 2.0
    });
    assert!(
        metric(&text, runs).unwrap() >= before + 2.0,
        "old config stopped running:\n{}",
        agent.log()
    );

    scratch.write("probes/add_member.yaml", &probe_file("add_member"));
    config.rewrite(good);
    agent.signal("HUP");
    assert!(
        agent
            .wait_for_line(|line| line.contains("config reloaded"))
            .is_some(),
        "{}",
        agent.log()
    );
    let added = "chatprobe_probe_runs_total{probe=\"add_member\",region=\"eu-west\",result=\"success\",target=\"mock\"}";
    let (_, text) = agent.poll("/metrics", |_, text| {
        metric(text, added).unwrap_or(0.0) >= 1.0
    });
    assert!(
        metric(&text, added).unwrap() >= 1.0,
        "{text}\n{}",
        agent.log()
    );

    agent.stop_cleanly("INT");
}

#[test]
fn sighup_moves_the_endpoints_and_rejects_an_address_it_cannot_bind() {
    let backend = Backend::start();
    let scratch = TempDir::new("agent-listen");
    let config = AgentConfig::write(&scratch, "eu-west", &backend.url, "1s", &["group_message"]);
    let mut agent = start_agent(&config.path);
    let first = agent.addr;
    assert_eq!(agent.get("/healthz").0, 200);
    let listen_on = |addr: SocketAddr| {
        config.rewrite(
            &config
                .text
                .replace("listen: 127.0.0.1:0", &format!("listen: {addr}")),
        )
    };

    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
    let taken_addr = taken.local_addr().expect("local address");
    listen_on(taken_addr);
    agent.signal("HUP");
    let rejected = agent.wait_for_line(|line| line.contains("reload rejected"));
    let rejected = rejected.unwrap_or_else(|| panic!("no rejection logged:\n{}", agent.log()));
    assert!(rejected.contains(&taken_addr.to_string()), "{rejected}");
    assert_eq!(agent.get("/healthz").0, 200, "still on {first}");

    let moved_to = SocketAddr::from(([127, 0, 0, 1], crate::harness::free_port()));
    listen_on(moved_to);
    agent.signal("HUP");
    let reloaded = agent.wait_for_line(|line| line.contains("config reloaded"));
    assert!(reloaded.is_some(), "{}", agent.log());
    assert_eq!(http_get(moved_to, "/healthz").0, 200, "{}", agent.log());
    assert_eq!(
        http_get(first, "/healthz").0,
        0,
        "the old address is closed"
    );
    let runs = "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"success\",target=\"mock\"}";
    let (_, text) = poll_get(moved_to, "/metrics", |_, text| {
        metric(text, runs).unwrap_or(0.0) >= 1.0
    });
    assert!(metric(&text, runs).unwrap_or(0.0) >= 1.0, "{text}");
    drop(taken);
}

#[test]
fn a_hanging_service_never_piles_runs_up() {
    // Every send hangs; each run then lasts at least the 2 s step timeout, so
    // with a 200 ms interval overlapping runs would finish far more often.
    let backend = Backend::with_faults(&fixture_path("faults/send-hang.yaml"));
    let scratch = TempDir::new("agent-hang");
    let config = AgentConfig::write(
        &scratch,
        "eu-west",
        &backend.url,
        "200ms",
        &["group_message"],
    );
    let started = std::time::Instant::now();
    let agent = start_agent(&config.path);
    let failed = "chatprobe_probe_runs_total{probe=\"group_message\",region=\"eu-west\",result=\"failure\",target=\"mock\"}";
    let (_, text) = agent.poll("/metrics", |_, text| {
        metric(text, failed).unwrap_or(0.0) >= 3.0
    });
    let elapsed = started.elapsed().as_secs_f64();
    let runs = metric(&text, failed).unwrap();
    assert!(runs >= 3.0, "{text}");
    assert!(
        runs <= elapsed / 2.0 + 1.0,
        "{runs} runs in {elapsed:.1}s overlap"
    );
    let timeouts = "chatprobe_operation_failures_total{operation=\"send\",probe=\"group_message\",reason=\"timeout\",region=\"eu-west\",target=\"mock\"}";
    assert!(metric(&text, timeouts).unwrap_or(0.0) >= 1.0, "{text}");
}
