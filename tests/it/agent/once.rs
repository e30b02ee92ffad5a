//! `chatprobe once` against the real mock backend: exit 0 when healthy, 1 with a fault.

use crate::harness::backend::Backend;
use crate::harness::binary;
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, fixture_path};
use chatprobe::probe::ProbeKind;

/// Every probe kind's name.
fn kinds() -> Vec<&'static str> {
    ProbeKind::ALL.iter().map(|kind| kind.as_str()).collect()
}

fn once(url: &str, tag: &str) -> (bool, String) {
    let scratch = TempDir::new(tag);
    let config = AgentConfig::write(&scratch, "eu-west", url, "1s", &kinds());
    let finished = binary::run("once", &config.path);
    let (stdout, stderr) = (finished.stdout, finished.stderr);
    (finished.success, format!("{stdout}\n{stderr}"))
}

#[test]
fn healthy_backend_passes_every_probe() {
    let backend = Backend::start();
    let (ok, output) = once(&backend.url, "once-healthy");
    assert!(ok, "{output}");
    for kind in kinds() {
        let row = output
            .lines()
            .find(|line| line.starts_with(kind))
            .unwrap_or_default();
        assert!(row.contains(" pass "), "{kind}: {output}");
    }
    let all = ProbeKind::ALL.len();
    let passed = format!("{all} of {all} probe runs passed");
    assert!(output.contains(&passed), "{output}");
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
    let passed = format!(
        "{} of {} probe runs passed",
        ProbeKind::ALL.len() - 1,
        ProbeKind::ALL.len()
    );
    assert!(output.contains(&passed), "{output}");
}
