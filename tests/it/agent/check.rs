//! `chatprobe check`: valid configs pass, invalid ones fail with file, line and field.

use std::path::Path;

use crate::harness::binary;
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{fixture, fixture_path, repo_file};

/// An agent config whose probes are in `probes/` beside it.
const CONFIG: &str = "agent-minimal.yaml";

fn check(config: &Path) -> (bool, String, String) {
    let finished = check_run(config);
    (finished.success, finished.stdout, finished.stderr)
}

fn check_run(config: &Path) -> binary::Finished {
    binary::run("check", config)
}

#[test]
fn valid_config_passes() {
    let scratch = TempDir::new("good");
    scratch.write("probes/gm.yaml", "name: gm\nkind: group_message\n");
    let (ok, stdout, stderr) = check(&scratch.write("agent.yaml", &fixture(CONFIG)));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("ok (region eu-west, targets: mock, probes: gm)"),
        "{stdout}"
    );
}

#[test]
fn shipped_config_passes() {
    let shipped = repo_file("config/agent.yaml");
    let (ok, stdout, stderr) = check(&shipped);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("region eu-west"), "{stdout}");
}

#[test]
fn config_error_names_file_line_and_field() {
    let scratch = TempDir::new("badconfig");
    scratch.write("probes/gm.yaml", "name: gm\nkind: group_message\n");
    let bad_urls = [
        ("127.0.0.1:8080", "relative URL without a base"),
        // The mock backend serves no TLS, so its client speaks plain HTTP only.
        ("https://127.0.0.1:8080", "must be an http:// URL"),
    ];
    for (bad_url, message) in bad_urls {
        let bad = fixture(CONFIG).replace("http://127.0.0.1:8080", bad_url);
        let path = scratch.write("agent.yaml", &bad);
        let (ok, _, stderr) = check(&path);
        assert!(!ok, "{bad_url}");
        let expected = format!("{}:5:", path.display());
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(stderr.contains("field `targets[0].url`"), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}

#[test]
fn every_bad_probe_file_is_reported() {
    let scratch = TempDir::new("badprobe");
    scratch.write(
        "probes/a.yaml",
        "name: a\nkind: group_message\ninterval: 10ms\n",
    );
    scratch.write(
        "probes/b.yaml",
        "name: b\nkind: group_message\nmesages: 3\n",
    );
    let (ok, _, stderr) = check(&scratch.write("agent.yaml", &fixture(CONFIG)));
    assert!(!ok);
    assert!(stderr.contains("probes/a.yaml:3"), "{stderr}");
    assert!(stderr.contains("field `interval`"), "{stderr}");
    assert!(stderr.contains("probes/b.yaml:3"), "{stderr}");
    assert!(stderr.contains("mesages"), "{stderr}");
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

#[test]
fn five_mistakes_are_five_errors_in_one_run_sorted_by_line() {
    let path = fixture_path("bad-input/agent-five-mistakes.yaml");
    check_run(&path).assert_errors_of(&path);
}
