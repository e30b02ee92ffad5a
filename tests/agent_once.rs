//! `chatprobe once` against the real mock backend: exit 0 when healthy, 1 with a fault.

mod agent_support;

use std::process::Command;

use agent_support::{Backend, scratch_with_probes};
use chatprobe::probe::ProbeKind;

/// Every probe kind's name.
fn kinds() -> Vec<&'static str> {
    ProbeKind::ALL.iter().map(|kind| kind.as_str()).collect()
}

fn once(url: &str, tag: &str) -> (bool, String) {
    let scratch = scratch_with_probes(tag, &kinds());
    let config = agent_support::agent_config("eu-west", url, &scratch.0.join("probes"), "1s");
    let path = scratch.write("agent.yaml", &config);
    let output = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["once", "--config"])
        .arg(&path)
        .output()
        .expect("run chatprobe once");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.success(), format!("{stdout}\n{stderr}"))
}

#[test]
fn healthy_backend_passes_every_probe() {
    let backend = Backend::start("");
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
    let backend = Backend::start(
        "- name: settings-down\n  operations: [edit_settings]\n  regions: [eu-west]\n  effect: error\n  status: 503\n",
    );
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
