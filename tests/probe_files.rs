//! The shipped probe files: exactly one per kind, named after it, each valid.

use std::path::Path;

use chatprobe::probe::{ProbeKind, ProbeSpec, accounts_needed};

const KINDS: [ProbeKind; 5] = [
    ProbeKind::GroupMessage,
    ProbeKind::DeviceSync,
    ProbeKind::LeaveGroup,
    ProbeKind::EditSettings,
    ProbeKind::AddMember,
];

#[test]
fn one_valid_file_per_kind_named_after_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes");
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
    let mut wanted: Vec<String> = KINDS
        .iter()
        .map(|kind| format!("{}.yaml", kind.as_str()))
        .collect();
    wanted.sort();
    assert_eq!(files, wanted);
    for kind in KINDS {
        let path = dir.join(format!("{}.yaml", kind.as_str()));
        let spec: ProbeSpec = chatprobe::yaml::load(&path).expect("probe file parses");
        assert_eq!(spec.validate(), Ok(()), "{}", path.display());
        assert_eq!(spec.kind, kind);
        assert_eq!(spec.name, kind.as_str());
        assert!(accounts_needed(&spec) >= 2);
    }
}
