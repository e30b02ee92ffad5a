//! The shipped probe files: exactly one per kind, named after it, each valid.

use std::path::Path;

use chatprobe::probe::{ProbeKind, ProbeSpec, accounts_needed};

#[test]
fn one_valid_file_per_kind_named_after_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("probes");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("probes/ exists")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut wanted: Vec<String> = ProbeKind::ALL
        .iter()
        .map(|kind| format!("{}.yaml", kind.as_str()))
        .collect();
    wanted.sort();
    assert_eq!(files, wanted);
    for &kind in ProbeKind::ALL {
        let path = root.join(kind.shipped_path());
        assert_eq!(path, dir.join(format!("{}.yaml", kind.as_str())));
        let spec: ProbeSpec = chatprobe::yaml::load(&path).expect("probe file parses");
        let text = std::fs::read_to_string(&path).expect("probe file reads");
        assert_eq!(text, kind.shipped_text(), "{} as built in", path.display());
        assert_eq!(spec.validate(), Ok(()), "{}", path.display());
        assert_eq!(spec.kind, kind);
        assert_eq!(spec.name, kind.as_str());
        assert!(accounts_needed(&spec) >= 2);
    }
}

#[test]
fn the_docs_name_every_kind_and_its_main_operation() {
    let doc = |path: &str| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap_or_else(|err| panic!("{path}: {err}"))
    };
    let configuration = doc("docs/configuration.md");
    let timeout_row = configuration
        .lines()
        .find(|line| line.starts_with("| `run_timeout` |"))
        .expect("the config reference has a run_timeout row");
    let runbook = doc("docs/runbook.md");
    let (_, runbook) = runbook
        .split_once("### ChatprobeProbeFailingInManyRegions")
        .expect("the runbook has a ChatprobeProbeFailingInManyRegions section");
    let runbook = runbook.split("\n### ").next().unwrap_or_default();
    for &kind in ProbeKind::ALL {
        let operation = format!("`{}`", kind.main_operation());
        assert!(
            timeout_row.contains(&operation),
            "the run_timeout row does not name {operation}, the main operation of {kind:?}"
        );
        let named = format!("`{}`:", kind.as_str());
        assert!(
            runbook.contains(&named),
            "ChatprobeProbeFailingInManyRegions does not say what {named} checks"
        );
    }
}
