//! `chatprobe check`: valid configs pass, invalid ones fail with file, line and field.

mod agent_support;

use std::path::Path;
use std::process::Command;

use agent_support::Scratch;

const CONFIG: &str = "region: eu-west
targets:
  - kind: mock
    name: mock
    url: http://127.0.0.1:8080
    accounts:
      password: pw
probes: [probes]
";

fn check(config: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run chatprobe check");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn valid_config_passes() {
    let scratch = Scratch::new("good");
    scratch.write("probes/gm.yaml", "name: gm\nkind: group_message\n");
    let (ok, stdout, stderr) = check(&scratch.write("agent.yaml", CONFIG));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("ok (region eu-west, targets: mock, probes: gm)"),
        "{stdout}"
    );
}

#[test]
fn shipped_config_passes() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.yaml");
    let (ok, stdout, stderr) = check(&shipped);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("region eu-west"), "{stdout}");
}

#[test]
fn config_error_names_file_line_and_field() {
    let scratch = Scratch::new("badconfig");
    scratch.write("probes/gm.yaml", "name: gm\nkind: group_message\n");
    let bad = CONFIG.replace("http://127.0.0.1:8080", "127.0.0.1:8080");
    let path = scratch.write("agent.yaml", &bad);
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    let expected = format!("{}:5:", path.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("field `targets[0].url`"), "{stderr}");
}

#[test]
fn every_bad_probe_file_is_reported() {
    let scratch = Scratch::new("badprobe");
    scratch.write(
        "probes/a.yaml",
        "name: a\nkind: group_message\ninterval: 10ms\n",
    );
    scratch.write(
        "probes/b.yaml",
        "name: b\nkind: group_message\nmesages: 3\n",
    );
    let (ok, _, stderr) = check(&scratch.write("agent.yaml", CONFIG));
    assert!(!ok);
    assert!(stderr.contains("probes/a.yaml:3"), "{stderr}");
    assert!(stderr.contains("field `interval`"), "{stderr}");
    assert!(stderr.contains("probes/b.yaml:3"), "{stderr}");
    assert!(stderr.contains("mesages"), "{stderr}");
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}
