//! The agent's configuration file: its schema, every default and every
//! validation rule. Loading a config also loads and validates every probe
//! file it names, so a loaded [`AgentConfig`] is ready to run.
//!
//! Values are checked while they are read, so an error names the file, the
//! line and the field (`agent.yaml:7:9: field `targets[0].url`: ...`), and
//! every error of the config and its files comes at once, sorted by line
//! ([`crate::yaml::ErrorList`]).
//!
//! This file holds the top level of the file and every default;
//! `targets.rs` the `targets:` list, `target_files.rs` the target files,
//! `probes.rs` the probe files (the checked scalars are `crate::yaml::values`).

mod probes;
pub mod remote_write;
pub(crate) mod status_page;
mod target_files;
mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub(crate) use crate::yaml::values::{Label, PlainHttpUrl};
pub use probes::{LoadedProbe, load_probe, shipped_probes};
pub(crate) use remote_write::RemoteWriteConfig;
pub(crate) use target_files::TargetSet;
pub(crate) use targets::{AccountsConfig, TargetConfig, TargetLabels};

use crate::yaml::values::{Jitter, Period};
use crate::yaml::{self, ErrorList, FileError};

/// Where the agent serves its endpoints unless `listen` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9464,
));
/// `targets[].request_timeout` unless given.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `jitter` unless given.
pub(crate) const DEFAULT_JITTER: f64 = 0.1;
/// `run_timeout` unless given.
pub(crate) const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// `target_files_refresh` unless given: how often target files are read again.
pub(crate) const DEFAULT_TARGET_FILES_REFRESH: Duration = Duration::from_secs(5);

/// A loaded, validated agent configuration with its probe definitions.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The file it was read from.
    pub(crate) path: PathBuf,
    /// The agent's region (the `region` label).
    pub(crate) region: String,
    /// Address of `/metrics`, `/healthz`, `/readyz` and the status page.
    pub(crate) listen: SocketAddr,
    /// The services to probe, the config's own and those of its target
    /// files; every probe runs against every target.
    pub(crate) targets: TargetSet,
    /// How often the target files are read again.
    pub(crate) target_files_refresh: Duration,
    /// Every probe definition, in file name order.
    pub(crate) probes: Vec<LoadedProbe>,
    /// Fraction of the interval by which each wait is randomly shortened or lengthened.
    pub(crate) jitter: f64,
    /// Safety net on one whole run; a run cut off is a `timeout` failure.
    pub(crate) run_timeout: Duration,
    /// Receivers the agent pushes its series to (`remote_write:`).
    pub(crate) remote_write: Vec<RemoteWriteConfig>,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Required; optional here so that the rest is checked when it fails.
    region: Option<Label>,
    #[serde(default = "defaults::listen")]
    listen: SocketAddr,
    #[serde(default)]
    targets: Vec<TargetConfig>,
    #[serde(default)]
    target_files: Vec<String>,
    #[serde(default = "defaults::target_files_refresh")]
    target_files_refresh: Period,
    #[serde(default)]
    probes: Vec<PathBuf>,
    interval: Option<Period>,
    #[serde(default = "defaults::jitter")]
    jitter: Jitter,
    #[serde(default = "defaults::run_timeout")]
    run_timeout: Period,
    #[serde(default)]
    remote_write: Vec<RemoteWriteConfig>,
}

/// Defaults of every optional config field.
mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::yaml::values::{Jitter, Period};

    pub(super) fn listen() -> SocketAddr {
        super::DEFAULT_LISTEN
    }
    pub(super) fn request_timeout() -> Duration {
        super::DEFAULT_REQUEST_TIMEOUT
    }
    pub(super) fn account_prefix() -> String {
        "chatprobe".to_string()
    }
    pub(super) fn jitter() -> Jitter {
        Jitter(super::DEFAULT_JITTER)
    }
    pub(super) fn run_timeout() -> Period {
        Period(super::DEFAULT_RUN_TIMEOUT)
    }
    pub(super) fn target_files_refresh() -> Period {
        Period(super::DEFAULT_TARGET_FILES_REFRESH)
    }
}

impl AgentConfig {
    /// Read and validate the config at `path` and every probe file it names;
    /// every error, sorted by line within each file.
    pub fn load(path: &Path) -> Result<AgentConfig, Vec<FileError>> {
        let text = read_text(path).map_err(|err| vec![err])?;
        let read = yaml::read::<ConfigFile>(path, &text);
        let mut errors = ErrorList::new(path, &text, read.errors);
        let Some(file) = read.value else {
            return Err(errors.into_errors());
        };
        if file.region.is_none() {
            errors.field("region", "missing field `region`");
        }
        if file.targets.is_empty() && file.target_files.is_empty() {
            errors.field(
                "targets",
                "name at least one target, here or through `target_files`",
            );
        }
        if file.probes.is_empty() {
            errors.field("probes", "name at least one probe file");
        }
        if let Some((index, message)) = remote_write::duplicate_url(&file.remote_write) {
            errors.field(&format!("remote_write[{index}].url"), message);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let inline = target_files::place_targets(path, &text, file.targets, "targets");
        let targets = TargetSet::load(path, base, inline, &file.target_files)
            .map_err(|found| errors.extend(found))
            .ok();
        let (probe_files, missing) = probes::probe_files(base, &file.probes);
        for (index, message) in missing {
            errors.field(&format!("probes[{index}]"), message);
        }
        let probes = probes::load_probes(&probe_files)
            .map_err(|found| errors.extend(found))
            .ok();
        errors.finish()?;
        let (Some(Label(region)), Some(targets), Some(mut probes)) = (file.region, targets, probes)
        else {
            return Err(vec![FileError::new(path, None, "cannot be loaded")]);
        };
        if let Some(interval) = file.interval {
            for probe in &mut probes {
                probe.spec.interval = interval.0;
            }
        }
        Ok(AgentConfig {
            path: path.to_path_buf(),
            region,
            listen: file.listen,
            targets,
            target_files_refresh: file.target_files_refresh.0,
            probes,
            jitter: file.jitter.0,
            run_timeout: file.run_timeout.0,
            remote_write: file.remote_write,
        })
    }
}

/// The text of the file at `path`.
pub(crate) fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path)
        .map_err(|err| FileError::new(path, None, format!("cannot read: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const PROBE: &str = "name: gm\nkind: group_message\ninterval: 5s\n";

    /// A temporary directory removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(super) fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "chatprobe-config-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("probes")).unwrap();
            TempDir(dir)
        }

        pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(super) fn config(targets: &str) -> String {
        format!("region: eu-west\ntargets:\n{targets}probes: [probes]\n")
    }

    pub(super) const MOCK: &str = "  - kind: mock\n    name: mock\n    url: http://127.0.0.1:8080\n    accounts: {password: pw}\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let dir = TempDir::new("minimal");
        dir.write("probes/gm.yaml", PROBE);
        let loaded = AgentConfig::load(&dir.write("a.yaml", &config(MOCK))).unwrap();
        assert_eq!(loaded.listen, DEFAULT_LISTEN);
        assert_eq!(loaded.jitter, 0.1);
        assert_eq!(loaded.run_timeout, Duration::from_secs(60));
        assert_eq!(loaded.probes.len(), 1);
        assert_eq!(loaded.probes[0].spec.interval, Duration::from_secs(5));
        let accounts = loaded.targets.targets()[0].accounts().clone();
        assert_eq!(
            accounts.account_name("eu-west", "gm", 2),
            "chatprobe-eu-west-gm-2"
        );
    }

    #[test]
    fn interval_override_applies_to_every_probe() {
        let dir = TempDir::new("override");
        dir.write("probes/gm.yaml", PROBE);
        let text = format!("interval: 2s\n{}", config(MOCK));
        let loaded = AgentConfig::load(&dir.write("a.yaml", &text)).unwrap();
        assert_eq!(loaded.probes[0].spec.interval, Duration::from_secs(2));
    }

    pub(super) fn first_error(dir: &TempDir, text: &str) -> FileError {
        AgentConfig::load(&dir.write("a.yaml", text))
            .unwrap_err()
            .remove(0)
    }

    #[test]
    fn bad_url_names_line_and_field() {
        let dir = TempDir::new("url");
        dir.write("probes/gm.yaml", PROBE);
        let bad = "  - kind: mock\n    name: mock\n    url: ftp://x\n";
        let err = first_error(&dir, &config(bad));
        assert_eq!(err.field.as_deref(), Some("targets[0].url"), "{err}");
        assert_eq!(err.line, Some(5), "{err}");
        let err = first_error(&dir, &format!("jitter: 0.9\n{}", config(MOCK)));
        assert_eq!(
            (err.field.as_deref(), err.line),
            (Some("jitter"), Some(1)),
            "{err}"
        );
        let err = first_error(&dir, &format!("run_timeout: 5ms\n{}", config(MOCK)));
        assert_eq!(
            (err.field.as_deref(), err.line),
            (Some("run_timeout"), Some(1)),
            "{err}"
        );
    }

    #[test]
    fn missing_probe_path_and_duplicate_targets_are_named() {
        let dir = TempDir::new("paths");
        let text = format!("region: eu-west\ntargets:\n{MOCK}probes: [nowhere.yaml]\n");
        let err = first_error(&dir, &text);
        assert_eq!(err.field.as_deref(), Some("probes[0]"));
        assert_eq!(err.line, Some(7));
        dir.write("probes/gm.yaml", PROBE);
        let err = first_error(&dir, &config(&format!("{MOCK}{MOCK}")));
        assert!(err.message.contains("two targets"), "{err}");
    }
}
