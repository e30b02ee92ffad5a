//! `chatprobe once` against the real mock backend: exit 0 when healthy, 1 with a fault.

mod common;

use common::backend::Backend;
use common::binary;
use common::dir::TempDir;
use common::fixtures::{AgentConfig, fixture_path};

const KINDS: &[&str] = &[
    "group_message",
    "device_sync",
    "leave_group",
    "edit_settings",
    "add_member",
];

fn once(url: &str, tag: &str) -> (bool, String) {
    let scratch = TempDir::new(tag);
    let config = AgentConfig::write(&scratch, "eu-west", url, "1s", KINDS);
    let finished = binary::run("once", &config.path);
    let (stdout, stderr) = (finished.stdout, finished.stderr);
    (finished.success, format!("{stdout}\n{stderr}"))
}

#[test]
fn healthy_backend_passes_every_probe() {
    let backend = Backend::start();
    let (ok, output) = once(&backend.url, "once-healthy");
    assert!(ok, "{output}");
    for kind in KINDS {
        let row = output
            .lines()
            .find(|line| line.starts_with(kind))
            .unwrap_or_default();
        assert!(row.contains(" pass "), "{kind}: {output}");
    }
    assert!(output.contains("5 of 5 probe runs passed"), "{output}");
}

#[test]
fn a_fault_fails_the_run_with_its_reason() {
    let backend = Backend::with_faults(&fixture_path("faults/eu-west-settings-down.yaml"));
    let (ok, output) = once(&backend.url, "once-fault");
    assert!(!ok, "{output}");
    let row = output
        .lines()
        .find(|line| line.starts_with("edit_settings"))
        .unwrap_or_default();
    assert!(row.contains(" FAIL "), "{output}");
    assert!(
        output.contains("failure  edit_settings    settings_rejected"),
        "{output}"
    );
    assert!(output.contains("4 of 5 probe runs passed"), "{output}");
}
