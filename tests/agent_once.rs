//! `chatprobe once` against the real mock backend: exit 0 when healthy, 1 with a fault.

mod agent_support;

use std::process::Command;

use agent_support::{Backend, scratch_with_probes};

const KINDS: &[&str] = &[
    "group_message",
    "device_sync",
    "leave_group",
    "edit_settings",
    "add_member",
];

fn once(url: &str, tag: &str) -> (bool, String) {
    let scratch = scratch_with_probes(tag, KINDS);
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
    assert!(output.contains("4 of 5 probe runs passed"), "{output}");
}
