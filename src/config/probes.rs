//! Probe files: finding the ones a config names, loading and validating each
//! (all errors at once), and the shipped probes built into the binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::read_text;
use crate::probe::{ProbeKind, ProbeSpec};
use crate::yaml::{self, FileError, FileErrors, field_error};

/// A probe definition and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedProbe {
    /// The probe file.
    pub(crate) path: PathBuf,
    /// Its definition, with the agent's overrides applied.
    pub spec: ProbeSpec,
}

/// Every shipped probe (`probes/<kind>.yaml`, one a kind), as built into the binary.
pub fn shipped_probes() -> Result<Vec<LoadedProbe>, FileErrors> {
    ProbeKind::ALL
        .iter()
        .map(|kind| parse_probe(&kind.shipped_path(), kind.shipped_text()))
        .collect()
}

/// Load one probe file and check its values.
pub fn load_probe(path: &Path) -> Result<LoadedProbe, FileErrors> {
    parse_probe(path, &read_text(path)?)
}

/// Parse the probe file `text` (read from `path`) and check its values.
fn parse_probe(path: &Path, text: &str) -> Result<LoadedProbe, FileErrors> {
    let spec: ProbeSpec = yaml::parse(path, text)?;
    spec.validate()
        .map_err(|(field, message)| field_error(path, text, field, message))?;
    Ok(LoadedProbe {
        path: path.to_path_buf(),
        spec,
    })
}

/// The probe files named by `entries` (files, or directories whose `*.yaml`
/// and `*.yml` files are all taken), relative paths against `base`; and
/// the entries that name none, each by its index with what is wrong.
pub(super) fn probe_files(
    base: &Path,
    entries: &[PathBuf],
) -> (Vec<PathBuf>, Vec<(usize, String)>) {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let path = base.join(entry);
        if path.is_dir() {
            match yaml_files_in(&path) {
                Ok(listed) if listed.is_empty() => {
                    missing.push((index, format!("{} holds no .yaml file", path.display())));
                }
                Ok(listed) => files.extend(listed),
                Err(message) => missing.push((index, message)),
            }
        } else if path.is_file() {
            files.push(path);
        } else {
            missing.push((index, format!("{} does not exist", path.display())));
        }
    }
    (files, missing)
}

/// The `*.yaml` and `*.yml` files in `dir`, in name order.
fn yaml_files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|ext| ext.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Load and validate every probe file; all errors are returned, not just the first.
pub(super) fn load_probes(files: &[PathBuf]) -> Result<Vec<LoadedProbe>, Vec<FileError>> {
    let mut probes = Vec::new();
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for path in files {
        let loaded = read_text(path)
            .map_err(FileErrors::from)
            .and_then(|text| Ok((parse_probe(path, &text)?, text)));
        match loaded {
            Ok((probe, text)) if !names.insert(probe.spec.name.clone()) => {
                let message = format!("another probe file is also named `{}`", probe.spec.name);
                errors.push(field_error(path, &text, "name", message));
            }
            Ok((probe, _)) => probes.push(probe),
            Err(found) => errors.extend(found.0),
        }
    }
    if errors.is_empty() {
        Ok(probes)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::config::tests::{MOCK, PROBE, TempDir, config};

    #[test]
    fn shipped_probes_are_built_in_and_valid() {
        let probes = shipped_probes().unwrap();
        let names: Vec<&str> = probes.iter().map(|p| p.spec.name.as_str()).collect();
        let kinds: Vec<&str> = ProbeKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names, kinds);
    }

    #[test]
    fn probe_errors_name_file_line_and_field() {
        let dir = TempDir::new("probe");
        dir.write(
            "probes/a.yaml",
            "name: a\nkind: group_message\ngroup_size: 1\n",
        );
        dir.write("probes/b.yaml", "name: b\nkind: group_mesage\n");
        let errors = AgentConfig::load(&dir.write("a.yaml", &config(MOCK))).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].path.ends_with("probes/a.yaml"));
        assert_eq!(errors[0].field.as_deref(), Some("group_size"));
        assert_eq!(errors[0].line, Some(3));
        assert!(errors[1].path.ends_with("probes/b.yaml"));
        assert_eq!(errors[1].line, Some(2));
    }

    #[test]
    fn two_probes_of_one_name_are_an_error_on_its_line() {
        let dir = TempDir::new("twins");
        dir.write("probes/a.yaml", PROBE);
        dir.write("probes/b.yaml", &format!("# the same\n{PROBE}"));
        let errors = AgentConfig::load(&dir.write("a.yaml", &config(MOCK))).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].path.ends_with("probes/b.yaml"));
        assert_eq!(
            (errors[0].field.as_deref(), errors[0].line),
            (Some("name"), Some(2))
        );
        assert!(errors[0].message.contains("also named `gm`"), "{errors:?}");
    }
}
