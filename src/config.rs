//! The agent's configuration file: its schema, every default, and every
//! validation rule in one place. Loading a config also loads and validates
//! every probe file it names, so a loaded [`AgentConfig`] is ready to run.
//!
//! Values are checked while they are read, so an error names the file, the
//! line and the field (`agent.yaml:7:9: field `targets[0].url`: ...`).

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::probe::ProbeSpec;
use crate::yaml::{self, FileError};

/// Where the agent serves its endpoints unless `listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// `targets[].request_timeout` unless given.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `jitter` unless given.
pub const DEFAULT_JITTER: f64 = 0.1;
/// `run_timeout` unless given.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A loaded, validated agent configuration with its probe definitions.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// The agent's region (the `region` label).
    pub region: String,
    /// Address of `/metrics`, `/healthz`, `/readyz` and the status page.
    pub listen: SocketAddr,
    /// The services to probe; every probe runs against every target.
    pub targets: Vec<TargetConfig>,
    /// Every probe definition, in file name order.
    pub probes: Vec<LoadedProbe>,
    /// Fraction of the interval by which each wait is randomly shortened or lengthened.
    pub jitter: f64,
    /// Safety net on one whole run; a run cut off is a `timeout` failure.
    pub run_timeout: Duration,
}

/// A probe definition and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedProbe {
    /// The probe file.
    pub path: PathBuf,
    /// Its definition, with the agent's overrides applied.
    pub spec: ProbeSpec,
}

/// One service to probe, tagged by `kind` (its first key): each service
/// protocol is one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetConfig {
    /// The mock group-chat backend (`chatprobe backend`).
    Mock(MockTarget),
    /// A Matrix homeserver (client-server API v3).
    Matrix(MatrixTarget),
}

/// The `kind` of a target.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TargetKind {
    Mock,
    Matrix,
}

impl<'de> Deserialize<'de> for TargetConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TargetVisitor)
    }
}

/// Reads `kind` first, then the rest of the map straight into that kind's
/// struct, so errors keep their line and field (serde's own internally tagged
/// enums buffer the map and lose both).
struct TargetVisitor;

impl<'de> serde::de::Visitor<'de> for TargetVisitor {
    type Value = TargetConfig;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a target map starting with `kind:`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TargetConfig, A::Error> {
        use serde::de::Error;
        if map.next_key::<String>()?.as_deref() != Some("kind") {
            return Err(A::Error::custom("a target's first key must be `kind`"));
        }
        let kind: TargetKind = map.next_value()?;
        let rest = serde::de::value::MapAccessDeserializer::new(map);
        match kind {
            TargetKind::Mock => MockTarget::deserialize(rest).map(TargetConfig::Mock),
            TargetKind::Matrix => MatrixTarget::deserialize(rest).map(TargetConfig::Matrix),
        }
    }
}

impl TargetConfig {
    /// The target's name (the `target` label).
    pub fn name(&self) -> &str {
        match self {
            TargetConfig::Mock(target) => &target.name.0,
            TargetConfig::Matrix(target) => &target.name.0,
        }
    }

    /// How the probe accounts on this target are named and log in.
    pub fn accounts(&self) -> &AccountsConfig {
        match self {
            TargetConfig::Mock(target) => &target.accounts,
            TargetConfig::Matrix(target) => &target.accounts,
        }
    }
}

/// A `kind: mock` target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockTarget {
    /// The target's name (the `target` label).
    pub name: Label,
    /// Base URL of the backend, e.g. `http://127.0.0.1:8080`.
    pub url: HttpUrl,
    /// Longest wait for one HTTP request or push connection attempt.
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
    /// The probe accounts.
    pub accounts: AccountsConfig,
}

/// A `kind: matrix` target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixTarget {
    /// The target's name (the `target` label).
    pub name: Label,
    /// Base URL of the homeserver's client API, e.g. `https://matrix.example.org`.
    pub homeserver: HttpUrl,
    /// Longest wait for one request (a `/sync` long poll gets this on top of its wait).
    #[serde(with = "humantime_serde", default = "defaults::request_timeout")]
    pub request_timeout: Duration,
    /// Register probe accounts that cannot log in, where the homeserver
    /// allows registration without verification (default: false).
    #[serde(default)]
    pub register: bool,
    /// The probe accounts (names are lower-cased into Matrix localparts).
    pub accounts: AccountsConfig,
}

/// How probe accounts are named and which password they use. Account names
/// are `{prefix}-{region}-{probe}-{i}`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAccounts")]
pub struct AccountsConfig {
    /// First part of every account name.
    pub prefix: String,
    /// The password every probe account uses (never logged).
    pub password: String,
}

impl fmt::Debug for AccountsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountsConfig")
            .field("prefix", &self.prefix)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AccountsConfig {
    /// The name of account `index` of `probe` in `region`.
    pub fn account_name(&self, region: &str, probe: &str, index: usize) -> String {
        format!("{}-{region}-{probe}-{index}", self.prefix)
    }
}

/// `accounts:` as written: the password given literally, from an environment
/// variable, or from a file (exactly one of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    #[serde(default = "defaults::account_prefix")]
    prefix: String,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

impl TryFrom<RawAccounts> for AccountsConfig {
    type Error = String;

    fn try_from(raw: RawAccounts) -> Result<Self, String> {
        check_label(&raw.prefix).map_err(|err| format!("prefix {err}"))?;
        let password = match (raw.password, raw.password_env, raw.password_file) {
            (None, None, None) => {
                return Err("give one of password, password_env, password_file".into());
            }
            (Some(password), None, None) => password,
            (None, Some(var), None) => std::env::var(&var)
                .map_err(|_| format!("password_env: environment variable `{var}` is not set"))?,
            (None, None, Some(path)) => std::fs::read_to_string(&path)
                .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|err| format!("password_file: cannot read {}: {err}", path.display()))?,
            _ => return Err("give only one of password, password_env, password_file".into()),
        };
        if password.is_empty() {
            return Err("the password is empty".into());
        }
        Ok(AccountsConfig {
            prefix: raw.prefix,
            password,
        })
    }
}

/// A label value (region, target name, account prefix): letters, digits, `_`, `-`, `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(pub String);

impl TryFrom<String> for Label {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        check_label(&value)?;
        Ok(Label(value))
    }
}

fn check_label(value: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if value.is_empty() || value.len() > 64 || !value.chars().all(allowed) {
        return Err(format!(
            "`{value}` must be 1 to 64 letters, digits, `_`, `-` or `.`"
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl TryFrom<String> for HttpUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let url = reqwest::Url::parse(&value).map_err(|err| format!("`{value}`: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("`{value}` must be an http:// or https:// URL"));
        }
        Ok(HttpUrl(value))
    }
}

/// A jitter fraction between 0 and 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Jitter(f64);

impl TryFrom<String> for Jitter {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let fraction: f64 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a number"))?;
        if !(0.0..=0.5).contains(&fraction) {
            return Err(format!("{value} must be between 0 and 0.5"));
        }
        Ok(Jitter(fraction))
    }
}

/// A humantime duration (`250ms`, `1m30s`) of at least 100ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period(Duration);

impl TryFrom<String> for Period {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let duration =
            humantime::parse_duration(&value).map_err(|err| format!("`{value}`: {err}"))?;
        if duration < Duration::from_millis(100) {
            return Err(format!("`{value}` must be at least 100ms"));
        }
        Ok(Period(duration))
    }
}

/// Implements `Deserialize` for types checked from their scalar text, with the
/// check run while the scalar is read, so an error carries its line.
macro_rules! checked_scalar {
    ($($name:ident),+) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(ScalarVisitor(std::marker::PhantomData))
            }
        }
    )+};
}

checked_scalar!(Label, HttpUrl, Jitter, Period);

/// Turns any scalar into text and checks it with `T::try_from`.
struct ScalarVisitor<T>(std::marker::PhantomData<T>);

impl<T: TryFrom<String, Error = String>> serde::de::Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar value")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        T::try_from(value.to_string()).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    region: Label,
    #[serde(default = "defaults::listen")]
    listen: SocketAddr,
    targets: Vec<TargetConfig>,
    probes: Vec<PathBuf>,
    interval: Option<Period>,
    #[serde(default = "defaults::jitter")]
    jitter: Jitter,
    #[serde(default = "defaults::run_timeout")]
    run_timeout: Period,
}

/// Defaults of every optional config field.
mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9464))
    }
    pub fn request_timeout() -> Duration {
        super::DEFAULT_REQUEST_TIMEOUT
    }
    pub fn account_prefix() -> String {
        "chatprobe".to_string()
    }
    pub fn jitter() -> super::Jitter {
        super::Jitter(super::DEFAULT_JITTER)
    }
    pub fn run_timeout() -> super::Period {
        super::Period(super::DEFAULT_RUN_TIMEOUT)
    }
}

impl AgentConfig {
    /// Read and validate the config at `path` and every probe file it names.
    pub fn load(path: &Path) -> Result<AgentConfig, Vec<FileError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| vec![FileError::new(path, None, format!("cannot read: {err}"))])?;
        let file: ConfigFile = yaml::parse(path, &text).map_err(|err| vec![err])?;
        let located = |field: &str, message: String| FileError {
            line: key_line(&text, field),
            ..FileError::new(path, Some(field.to_string()), message)
        };
        check_targets(&file.targets).map_err(|message| vec![located("targets", message)])?;
        if file.probes.is_empty() {
            return Err(vec![located(
                "probes",
                "name at least one probe file".into(),
            )]);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let probe_files = probe_files(base, &file.probes)
            .map_err(|(index, message)| vec![located(&format!("probes[{index}]"), message)])?;
        let mut probes = load_probes(&probe_files)?;
        if let Some(interval) = file.interval {
            for probe in &mut probes {
                probe.spec.interval = interval.0;
            }
        }
        Ok(AgentConfig {
            path: path.to_path_buf(),
            region: file.region.0,
            listen: file.listen,
            targets: file.targets,
            probes,
            jitter: file.jitter.0,
            run_timeout: file.run_timeout.0,
        })
    }
}

fn check_targets(targets: &[TargetConfig]) -> Result<(), String> {
    if targets.is_empty() {
        return Err("name at least one target".into());
    }
    let mut names = BTreeSet::new();
    for target in targets {
        if !names.insert(target.name()) {
            return Err(format!("two targets are named `{}`", target.name()));
        }
    }
    Ok(())
}

/// The probe files named by `entries` (files, or directories whose `*.yaml`
/// and `*.yml` files are all taken), relative paths against `base`.
fn probe_files(base: &Path, entries: &[PathBuf]) -> Result<Vec<PathBuf>, (usize, String)> {
    let mut files = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let path = base.join(entry);
        if path.is_dir() {
            let listed = yaml_files_in(&path).map_err(|message| (index, message))?;
            if listed.is_empty() {
                return Err((index, format!("{} holds no .yaml file", path.display())));
            }
            files.extend(listed);
        } else if path.is_file() {
            files.push(path);
        } else {
            return Err((index, format!("{} does not exist", path.display())));
        }
    }
    Ok(files)
}

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
fn load_probes(files: &[PathBuf]) -> Result<Vec<LoadedProbe>, Vec<FileError>> {
    let mut probes = Vec::new();
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for path in files {
        match load_probe(path) {
            Ok(probe) if !names.insert(probe.spec.name.clone()) => {
                let message = format!("another probe file is also named `{}`", probe.spec.name);
                errors.push(probe_field_error(path, "name", message));
            }
            Ok(probe) => probes.push(probe),
            Err(err) => errors.push(err),
        }
    }
    if errors.is_empty() {
        Ok(probes)
    } else {
        Err(errors)
    }
}

/// Load one probe file and check its values.
pub fn load_probe(path: &Path) -> Result<LoadedProbe, FileError> {
    let spec: ProbeSpec = yaml::load(path)?;
    spec.validate()
        .map_err(|(field, message)| probe_field_error(path, field, message))?;
    Ok(LoadedProbe {
        path: path.to_path_buf(),
        spec,
    })
}

/// The shipped probe files (`probes/`), built into the binary for `demo`.
const SHIPPED_PROBES: [(&str, &str); 5] = [
    (
        "probes/group_message.yaml",
        include_str!("../probes/group_message.yaml"),
    ),
    (
        "probes/device_sync.yaml",
        include_str!("../probes/device_sync.yaml"),
    ),
    (
        "probes/leave_group.yaml",
        include_str!("../probes/leave_group.yaml"),
    ),
    (
        "probes/edit_settings.yaml",
        include_str!("../probes/edit_settings.yaml"),
    ),
    (
        "probes/add_member.yaml",
        include_str!("../probes/add_member.yaml"),
    ),
];

/// Every shipped probe, as built into the binary.
pub fn shipped_probes() -> Result<Vec<LoadedProbe>, FileError> {
    SHIPPED_PROBES
        .iter()
        .map(|(name, text)| {
            let path = Path::new(name);
            let spec: ProbeSpec = yaml::parse(path, text)?;
            spec.validate()
                .map_err(|(field, message)| FileError::new(path, Some(field.into()), message))?;
            Ok(LoadedProbe {
                path: path.to_path_buf(),
                spec,
            })
        })
        .collect()
}

/// An error about `field` of a probe file, with the field's line when it is written there.
fn probe_field_error(path: &Path, field: &str, message: String) -> FileError {
    let line = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| key_line(&text, field));
    FileError {
        line,
        ..FileError::new(path, Some(field.to_string()), message)
    }
}

/// The 1-based line of the top-level key named by `field` (`probes[2]` looks for `probes`).
fn key_line(text: &str, field: &str) -> Option<usize> {
    let key = field.split(['[', '.']).next()?;
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "name: gm\nkind: group_message\ninterval: 5s\n";

    /// A temporary directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "chatprobe-config-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("probes")).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
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

    fn config(targets: &str) -> String {
        format!("region: eu-west\ntargets:\n{targets}probes: [probes]\n")
    }

    const MOCK: &str = "  - kind: mock\n    name: mock\n    url: http://127.0.0.1:8080\n    accounts: {password: pw}\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let dir = TempDir::new("minimal");
        dir.write("probes/gm.yaml", PROBE);
        let loaded = AgentConfig::load(&dir.write("a.yaml", &config(MOCK))).unwrap();
        assert_eq!(loaded.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(loaded.jitter, 0.1);
        assert_eq!(loaded.run_timeout, Duration::from_secs(60));
        assert_eq!(loaded.probes.len(), 1);
        assert_eq!(loaded.probes[0].spec.interval, Duration::from_secs(5));
        let accounts = loaded.targets[0].accounts();
        assert_eq!(
            accounts.account_name("eu-west", "gm", 2),
            "chatprobe-eu-west-gm-2"
        );
    }

    #[test]
    fn matrix_target_reads_with_defaults() {
        let dir = TempDir::new("matrix");
        dir.write("probes/gm.yaml", PROBE);
        let matrix = "  - kind: matrix\n    name: synapse\n    homeserver: http://127.0.0.1:8008\n    accounts: {password: pw}\n";
        let loaded = AgentConfig::load(&dir.write("a.yaml", &config(matrix))).unwrap();
        let TargetConfig::Matrix(target) = &loaded.targets[0] else {
            panic!("not a matrix target: {:?}", loaded.targets[0]);
        };
        assert_eq!(target.homeserver.0, "http://127.0.0.1:8008");
        assert_eq!(target.request_timeout, Duration::from_secs(10));
        assert!(!target.register);
        assert_eq!(loaded.targets[0].name(), "synapse");
        let typo = "  - kind: matrix\n    name: synapse\n    url: http://127.0.0.1:8008\n";
        let err = first_error(&dir, &config(typo));
        assert!(err.message.contains("url"), "{err}");
    }

    #[test]
    fn shipped_probes_are_built_in_and_valid() {
        let probes = shipped_probes().unwrap();
        let names: Vec<&str> = probes.iter().map(|p| p.spec.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "group_message",
                "device_sync",
                "leave_group",
                "edit_settings",
                "add_member"
            ]
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

    fn first_error(dir: &TempDir, text: &str) -> FileError {
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
    fn unknown_target_field_and_kind_are_rejected() {
        let dir = TempDir::new("kind");
        dir.write("probes/gm.yaml", PROBE);
        let typo = "  - kind: mock\n    name: mock\n    url: http://x\n    colour: red\n";
        let err = first_error(&dir, &config(typo));
        assert!(err.message.contains("colour"), "{err}");
        assert!(err.line.is_some(), "{err}");
        let kind = "  - kind: carrier-pigeon\n    name: mock\n    url: http://x\n";
        let err = first_error(&dir, &config(kind));
        assert!(err.message.contains("carrier-pigeon"), "{err}");
    }

    #[test]
    fn password_sources_are_exclusive() {
        let dir = TempDir::new("password");
        dir.write("probes/gm.yaml", PROBE);
        let both = "  - kind: mock\n    name: mock\n    url: http://x\n    accounts:\n      password: a\n      password_env: B\n";
        let err = first_error(&dir, &config(both));
        assert!(err.to_string().contains("only one of"), "{err}");
        assert_eq!(err.field.as_deref(), Some("targets[0].accounts"));
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
