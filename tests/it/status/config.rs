//! The status page's config file: `chatprobe check --status-page` on the
//! shipped file and on one with mistakes, and `chatprobe status-page
//! --config` serving from it, a flag overriding the file, blind and against
//! a real Prometheus.

use std::ffi::OsStr;

use crate::harness::binary::{self, start_agent, start_backend, start_status_page_with_config};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, fixture_path, repo_file};
use crate::harness::free_port;
use crate::harness::prometheus::Prometheus;
use serde_json::Value;

/// `chatprobe check --status-page PATH`.
fn check(path: &std::path::Path) -> binary::Finished {
    binary::run_args(&[
        OsStr::new("check"),
        OsStr::new("--status-page"),
        path.as_os_str(),
    ])
}

/// A status page config reading `prometheus_url`, listening on a free port,
/// titled in the file, with notes beside it.
fn write_config(dir: &TempDir, prometheus_url: &str) -> std::path::PathBuf {
    dir.write("notes.md", "# Notes beside the config\n\nA rehearsal.");
    let text = format!(
        "prometheus: {{url: {prometheus_url}}}\nlisten: 127.0.0.1:0\ntitle: Title from the file\nnotes: notes.md\nincident_step: 1s\npublic:\n  regions:\n    eu-west: {{name: Europe (West)}}\n"
    );
    dir.write("status-page.yaml", &text)
}

#[test]
fn the_shipped_config_is_valid() {
    let path = repo_file("config/status-page.yaml");
    let finished = check(&path);
    assert!(finished.success, "{}", finished.stderr);
    for shown in [
        ": ok (prometheus http://127.0.0.1:9090, listen 127.0.0.1:9465",
        "leave_group \"Leaving groups\"",
        "eu-west \"Europe (West)\"",
        "store sqlite:",
        "reports: not_sending not_received out_of_sync cannot_leave groups_reappear settings_fail cannot_add cannot_login (window 15m, at least 10 reporters)",
    ] {
        assert!(
            finished.stdout.contains(shown),
            "{shown}: {}",
            finished.stdout
        );
    }
}

#[test]
fn every_mistake_is_reported_at_once_and_no_password_shown() {
    let path = fixture_path("bad-input/status-page-mistakes.yaml");
    let finished = check(&path);
    finished.assert_errors_of(&path);
    assert!(!finished.stderr.contains("hunter2"), "{}", finished.stderr);
}

#[test]
fn a_blind_page_serves_from_its_config_and_a_flag_overrides_the_title() {
    let dir = TempDir::new("status-page-config-blind");
    // Nothing listens there: the page is blind, and says so.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let config = write_config(&dir, &nowhere);
    let page = start_status_page_with_config(
        &config,
        &[OsStr::new("--title"), OsStr::new("Title from the flag")],
    );
    let (status, _) = page.get("/healthz");
    assert_eq!(status, 200);
    let (status, html) = page.poll("/operators", |status, body| {
        status == 200 && body.contains("Blind: Prometheus cannot be read")
    });
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Blind: Prometheus cannot be read"), "{html}");
    assert!(html.contains("<title>Title from the flag"), "{html}");
    assert!(
        !html.contains("Title from the file"),
        "the flag overrides the file: {html}"
    );
    assert!(
        html.contains("<h3>Notes beside the config</h3>"),
        "the notes, relative to the config file: {html}"
    );
    let (_, public) = page.get("/");
    assert!(
        public.contains("<h3>Notes beside the config</h3>")
            && public.contains(r#"<header class="overall" data-state="unknown">"#),
        "the public page carries the statement and is not green when blind: {public}"
    );
}

#[test]
fn the_page_reads_the_prometheus_its_config_names() {
    let Some(prometheus) = crate::harness::tool(
        "CHATPROBE_PROMETHEUS",
        "prometheus",
        "apt-get install prometheus",
    ) else {
        return;
    };
    let dir = TempDir::new("status-page-config-prometheus");
    let backend = start_backend(&fixture_path("backend.yaml"), &[]);
    let agent_config =
        AgentConfig::write(&dir, "eu-west", &backend.url(), "1s", &["group_message"]);
    let agent = start_agent(&agent_config.path);
    let targets = [("eu-west", agent.addr.to_string())];
    let prometheus = Prometheus::scraping(&prometheus, &dir, &targets, "1s");
    let page = start_status_page_with_config(&write_config(&dir, &prometheus.url), &[]);
    let (status, body) = page.poll("/api/status", |status, body| {
        status == 200 && read_from_prometheus(body).is_ok()
    });
    assert_eq!(status, 200, "{body}");
    if let Err(why) = read_from_prometheus(&body) {
        panic!("{why}");
    }
    let (_, html) = page.get("/");
    assert!(html.contains("<title>Title from the file"), "{html}");
}

/// Whether `/api/status` says Prometheus was read and eu-west's cell is green.
fn read_from_prometheus(body: &str) -> Result<(), String> {
    let status: Value = serde_json::from_str(body).map_err(|error| format!("{error}: {body}"))?;
    let green_in_eu_west = status["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|cell| cell["region"] == "eu-west" && cell["state"] == "green");
    match status["source"]["error"].is_null() && green_in_eu_west {
        true => Ok(()),
        false => Err(format!("not yet read from Prometheus: {status}")),
    }
}
