//! The status page's configuration file (`chatprobe status-page --config
//! FILE`): its schema, every default and every check. Relative paths in it
//! are resolved against the file's folder. Every error is reported at once,
//! each with its file, line and field; no credential is ever shown, only
//! where it comes from.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::read_text;
use super::remote_write;
use crate::credentials::{Auth, Secret};
use crate::notify::config::NotifyConfig;
use crate::probe::ProbeKind;
use crate::reports::config::{ReportsConfig, ReportsSection, SecretSource};
use crate::yaml::values::{HttpUrl, Label, Period, ScalarVisitor, checked_scalar};
use crate::yaml::{self, ErrorList, FileError};

/// Where the page is served unless `listen` says otherwise (**contract**).
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9465));
/// `title` unless given.
pub(crate) const DEFAULT_TITLE: &str = "chatprobe fleet status";
/// The SQLite file of `store` unless given, beside the config file.
pub(crate) const DEFAULT_STORE_FILE: &str = "status-page.db";
/// `stale_after` unless given.
pub(crate) const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);
/// `incident_step` unless given.
pub(crate) const DEFAULT_INCIDENT_STEP: Duration = Duration::from_secs(15);
/// `incident_window` unless given: the shipped rules' `2m`.
pub(crate) const DEFAULT_INCIDENT_WINDOW: Duration = Duration::from_secs(120);
/// `incident_failed_runs` and `incident_passed_runs` unless given.
pub(crate) const DEFAULT_INCIDENT_RUNS: u32 = 2;
/// The port of a `postgres://` store that names none.
const DEFAULT_POSTGRES_PORT: u16 = 5432;
/// Longest `title`, feature name or region name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest feature description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// A loaded, checked status page configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusPageConfig {
    /// The query API's base URL.
    pub(crate) prometheus_url: String,
    /// How queries authenticate.
    pub(crate) prometheus_auth: Auth,
    /// Where the page is served.
    pub(crate) listen: SocketAddr,
    /// The page's and the feed's title.
    pub(crate) title: String,
    /// The operator's statement (plain text or Markdown).
    pub(crate) notes: Option<PathBuf>,
    /// Where the page keeps what it stores.
    pub(crate) store: StoreLocation,
    /// The words the public page uses for probes and regions.
    pub(crate) public: PublicWording,
    /// Where the operators' token comes from, if operators sign in.
    pub(crate) operator_token: Option<Secret>,
    /// How users' reports are taken and counted (`reports:`).
    pub(crate) reports: ReportsConfig,
    /// "Notify me" and webhooks (`notify:`), when configured.
    pub(crate) notify: Option<NotifyConfig>,
    /// How long without a scrape makes a cell stale.
    pub(crate) stale_after: Duration,
    /// The step incidents are derived at.
    pub(crate) incident_step: Duration,
    /// The window failed runs are counted over to open an incident.
    pub(crate) incident_window: Duration,
    /// Failed runs within the window that open an incident.
    pub(crate) incident_failed_runs: u32,
    /// Passing runs in a row that end one.
    pub(crate) incident_passed_runs: u32,
}

/// Where the status page keeps its data (`store:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreLocation {
    /// An SQLite file (`sqlite:PATH`), created on first start.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://USER@HOST:PORT/DB`).
    Postgres(PostgresUrl),
}

/// A PostgreSQL database as `store:` names it; it holds no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostgresUrl {
    /// The user the page connects as.
    pub(crate) user: String,
    /// The server's host name or address.
    pub(crate) host: String,
    /// The server's port.
    pub(crate) port: u16,
    /// The database.
    pub(crate) database: String,
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => write!(
                f,
                "postgres://{}@{}:{}/{}",
                url.user, url.host, url.port, url.database
            ),
        }
    }
}

/// What the public page calls each probe's feature and each region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicWording {
    /// By probe name: every shipped probe's feature (its kind's words), and
    /// those the file names.
    pub(crate) features: BTreeMap<String, Feature>,
    /// By region label: the regions the file names (others are shown by their label).
    pub(crate) regions: BTreeMap<String, String>,
}

/// A feature of the service as its users know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Feature {
    /// Its name (`Leaving groups`).
    pub(crate) name: String,
    /// One line saying what works when it is operational.
    pub(crate) description: String,
}

impl PublicWording {
    /// The feature `probe` checks, by its name for users (else the probe's name).
    pub(crate) fn feature_name<'a>(&'a self, probe: &'a str) -> &'a str {
        self.features
            .get(probe)
            .map_or(probe, |feature| feature.name.as_str())
    }

    /// `region`'s display name (else its label).
    pub(crate) fn region_name<'a>(&'a self, region: &'a str) -> &'a str {
        self.regions.get(region).map_or(region, String::as_str)
    }

    /// The shipped words: each kind's feature for the probe named after it.
    fn shipped() -> PublicWording {
        let features = ProbeKind::ALL
            .iter()
            .map(|kind| {
                let words = kind.public_words();
                let feature = Feature {
                    name: words.name.to_string(),
                    description: words.description.to_string(),
                };
                (kind.as_str().to_string(), feature)
            })
            .collect();
        PublicWording {
            features,
            regions: BTreeMap::new(),
        }
    }
}

impl StatusPageConfig {
    /// The settings of a page that has no config file: every default, the
    /// store beside the working directory.
    pub(crate) fn without_file(prometheus_url: String) -> StatusPageConfig {
        StatusPageConfig {
            prometheus_url,
            prometheus_auth: Auth::None,
            listen: DEFAULT_LISTEN,
            title: DEFAULT_TITLE.to_string(),
            notes: None,
            store: StoreLocation::Sqlite(PathBuf::from(DEFAULT_STORE_FILE)),
            public: PublicWording::shipped(),
            operator_token: None,
            reports: ReportsConfig::default(),
            notify: None,
            stale_after: DEFAULT_STALE_AFTER,
            incident_step: DEFAULT_INCIDENT_STEP,
            incident_window: DEFAULT_INCIDENT_WINDOW,
            incident_failed_runs: DEFAULT_INCIDENT_RUNS,
            incident_passed_runs: DEFAULT_INCIDENT_RUNS,
        }
    }

    /// Read and check the file at `path`; every error, sorted by line.
    pub(crate) fn load(path: &Path) -> Result<StatusPageConfig, Vec<FileError>> {
        let text = read_text(path).map_err(|err| vec![err])?;
        let read = yaml::read::<ConfigFile>(path, &text);
        let mut errors = ErrorList::new(path, &text, read.errors);
        let Some(file) = read.value else {
            return Err(errors.into_errors());
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |file: &Path| base.join(file);
        let prometheus_auth = match &file.prometheus {
            Some(section) => prometheus_auth(section, &resolve, &mut errors),
            None => {
                errors.field("prometheus", "missing field `prometheus`");
                Auth::None
            }
        };
        let operator_token = operator_token(&file, &resolve, &mut errors);
        let public = public_wording(file.public, &mut errors);
        let reports = match file.reports.check() {
            Ok(reports) => placed_reports(reports, &resolve),
            Err(problems) => {
                for (field, message) in problems {
                    errors.field(&format!("reports.{field}"), message);
                }
                ReportsConfig::default()
            }
        };
        let notify = file.notify.map(|notify| notify.placed(resolve));
        let ca_file = notify
            .as_ref()
            .and_then(|notify| notify.smtp.as_ref())
            .and_then(|smtp| smtp.ca_file.as_deref());
        if let Some(Err(message)) = ca_file.map(crate::notify::smtp::ca_certificates) {
            errors.field("notify.smtp.ca_file", message);
        }
        errors.finish()?;
        let Some(prometheus) = file.prometheus else {
            return Err(vec![FileError::new(
                path,
                None,
                "missing field `prometheus`",
            )]);
        };
        let store = match file
            .store
            .unwrap_or(StoreUrl::Sqlite(DEFAULT_STORE_FILE.into()))
        {
            StoreUrl::Sqlite(file) => StoreLocation::Sqlite(resolve(&file)),
            StoreUrl::Postgres(url) => StoreLocation::Postgres(url),
        };
        let runs = |count: Option<RunCount>| count.map_or(DEFAULT_INCIDENT_RUNS, |count| count.0);
        let duration = |period: Option<Period>, default| period.map_or(default, |period| period.0);
        Ok(StatusPageConfig {
            prometheus_url: prometheus.url.0,
            prometheus_auth,
            listen: file.listen.unwrap_or(DEFAULT_LISTEN),
            title: file
                .title
                .map_or_else(|| DEFAULT_TITLE.to_string(), |t| t.0),
            notes: file.notes.as_deref().map(resolve),
            store,
            public,
            operator_token,
            reports,
            notify,
            stale_after: duration(file.stale_after, DEFAULT_STALE_AFTER),
            incident_step: duration(file.incident_step, DEFAULT_INCIDENT_STEP),
            incident_window: duration(file.incident_window, DEFAULT_INCIDENT_WINDOW),
            incident_failed_runs: runs(file.incident_failed_runs),
            incident_passed_runs: runs(file.incident_passed_runs),
        })
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Required; optional here so that the rest is checked when it fails.
    prometheus: Option<PrometheusSection>,
    listen: Option<SocketAddr>,
    title: Option<Name>,
    notes: Option<PathBuf>,
    store: Option<StoreUrl>,
    #[serde(default)]
    public: PublicSection,
    operator_token_env: Option<String>,
    operator_token_file: Option<PathBuf>,
    #[serde(default)]
    reports: ReportsSection,
    notify: Option<NotifyConfig>,
    stale_after: Option<Period>,
    incident_step: Option<Period>,
    incident_window: Option<Period>,
    incident_failed_runs: Option<RunCount>,
    incident_passed_runs: Option<RunCount>,
}

/// `prometheus:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusSection {
    url: HttpUrl,
    bearer_token_file: Option<PathBuf>,
    bearer_token_env: Option<String>,
    basic_auth_file: Option<PathBuf>,
    basic_auth_env: Option<String>,
}

/// `public:` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicSection {
    #[serde(default)]
    features: BTreeMap<Label, FeatureEntry>,
    #[serde(default)]
    regions: BTreeMap<Label, RegionEntry>,
}

/// One entry of `public.features`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureEntry {
    name: Name,
    description: Option<Description>,
}

/// One entry of `public.regions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    name: Name,
}

/// How `prometheus:` authenticates: its one credential, each readable now;
/// an error on the field at fault otherwise.
fn prometheus_auth(
    section: &PrometheusSection,
    resolve: &impl Fn(&Path) -> PathBuf,
    errors: &mut ErrorList,
) -> Auth {
    let file = |path: &Option<PathBuf>| path.as_deref().map(|path| Secret::File(resolve(path)));
    let env = |name: &Option<String>| name.clone().map(Secret::Env);
    let given = [
        (
            "bearer_token_file",
            file(&section.bearer_token_file).map(Auth::Bearer),
        ),
        (
            "bearer_token_env",
            env(&section.bearer_token_env).map(Auth::Bearer),
        ),
        (
            "basic_auth_file",
            file(&section.basic_auth_file).map(Auth::Basic),
        ),
        (
            "basic_auth_env",
            env(&section.basic_auth_env).map(Auth::Basic),
        ),
    ];
    let mut readable = true;
    for (key, auth) in &given {
        if let Some(Auth::Bearer(secret) | Auth::Basic(secret)) = auth
            && let Err(message) = secret.read()
        {
            errors.field(&format!("prometheus.{key}"), message.to_string());
            readable = false;
        }
    }
    let field = given
        .iter()
        .find(|(_, auth)| auth.is_some())
        .map_or("prometheus", |(key, _)| key);
    match remote_write::one_credential(given.map(|(_, auth)| auth)) {
        Ok(auth) => auth,
        Err(message) => {
            if readable {
                errors.field(&format!("prometheus.{field}"), message);
            }
            Auth::None
        }
    }
}

/// Where the operators' token comes from: at most one of
/// `operator_token_env` and `operator_token_file`, readable now.
fn operator_token(
    file: &ConfigFile,
    resolve: &impl Fn(&Path) -> PathBuf,
    errors: &mut ErrorList,
) -> Option<Secret> {
    let (field, secret) = match (&file.operator_token_env, &file.operator_token_file) {
        (None, None) => return None,
        (Some(name), None) => ("operator_token_env", Secret::Env(name.clone())),
        (None, Some(path)) => ("operator_token_file", Secret::File(resolve(path))),
        (Some(_), Some(_)) => {
            let message = "give only one of operator_token_env, operator_token_file";
            errors.field("operator_token_file", message);
            return None;
        }
    };
    match secret.read() {
        Ok(_) => Some(secret),
        Err(message) => {
            errors.field(field, message.to_string());
            None
        }
    }
}

/// The shipped words with the file's own over them; a feature of a probe
/// that is no kind's shipped one must say what it is.
fn public_wording(section: PublicSection, errors: &mut ErrorList) -> PublicWording {
    let mut wording = PublicWording::shipped();
    for (Label(probe), entry) in section.features {
        let description = match (entry.description, wording.features.get(&probe)) {
            (Some(Description(description)), _) => description,
            (None, Some(shipped)) => shipped.description.clone(),
            (None, None) => {
                let message =
                    format!("`{probe}` is no shipped probe, so its feature needs a description");
                errors.field(&format!("public.features.{probe}"), message);
                continue;
            }
        };
        let feature = Feature {
            name: entry.name.0,
            description,
        };
        wording.features.insert(probe, feature);
    }
    wording.regions = section
        .regions
        .into_iter()
        .map(|(Label(region), entry)| (region, entry.name.0))
        .collect();
    wording
}

/// A one-line text a user reads (a title, a feature's or region's name): 1
/// to [`MAX_NAME_CHARS`] characters.
struct Name(String);

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        one_line(&value, MAX_NAME_CHARS)?;
        Ok(Name(value))
    }
}

/// A feature's one-line description: 1 to [`MAX_DESCRIPTION_CHARS`] characters.
struct Description(String);

impl TryFrom<String> for Description {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        one_line(&value, MAX_DESCRIPTION_CHARS)?;
        Ok(Description(value))
    }
}

/// Checks that `value` is one line of 1 to `max_chars` characters, not only blanks.
fn one_line(value: &str, max_chars: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains(['\n', '\r']) {
        return Err("must be one line".into());
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(format!("is {chars} characters; at most {max_chars}"));
    }
    Ok(())
}

/// A count of runs of the incident rule: at least 1.
struct RunCount(u32);

impl TryFrom<String> for RunCount {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.parse::<u32>() {
            Ok(count) if count >= 1 => Ok(RunCount(count)),
            _ => Err(format!(
                "`{value}` must be a whole number of runs, at least 1"
            )),
        }
    }
}

/// `reports:` with its secret file, if any, taken from the config's folder.
fn placed_reports(
    mut reports: ReportsConfig,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> ReportsConfig {
    if let Some(SecretSource::File(path)) = &reports.secret {
        reports.secret = Some(SecretSource::File(resolve(path)));
    }
    reports
}

/// A store URL given as a flag (`--store`): a relative SQLite path is the
/// working directory's.
pub(crate) fn store_flag(text: &str) -> Result<StoreLocation, String> {
    match StoreUrl::try_from(text.to_string())? {
        StoreUrl::Sqlite(path) => Ok(StoreLocation::Sqlite(path)),
        StoreUrl::Postgres(url) => Ok(StoreLocation::Postgres(url)),
    }
}

/// `store:` as written: `sqlite:PATH` (relative to the config file's
/// folder) or `postgres://USER@HOST:PORT/DB`.
enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

impl TryFrom<String> for StoreUrl {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        if let Some(file) = value.strip_prefix("sqlite:") {
            if file.is_empty() {
                return Err("`sqlite:` needs a file: `sqlite:PATH`".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(file)));
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return postgres_url(&value).map(StoreUrl::Postgres);
        }
        Err(format!(
            "`{value}` is neither `sqlite:PATH` nor `postgres://USER@HOST:PORT/DB`"
        ))
    }
}

/// `value`, a `postgres://` URL, checked to be `USER@HOST[:PORT]/DB` with no
/// password, query or fragment.
fn postgres_url(value: &str) -> Result<PostgresUrl, String> {
    let form = "the form is postgres://USER@HOST:PORT/DB";
    let url = reqwest::Url::parse(value).map_err(|err| format!("`{value}`: {err}"))?;
    if url.password().is_some() {
        return Err("a password may not be written in the store URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{value}` has a query or fragment; {form}"));
    }
    let user = url.username();
    let host = url.host_str().unwrap_or_default();
    let database = url.path().trim_start_matches('/');
    if user.is_empty() || host.is_empty() || database.is_empty() || database.contains('/') {
        return Err(format!("`{value}` lacks a user, host or database; {form}"));
    }
    Ok(PostgresUrl {
        user: user.to_string(),
        host: host.to_string(),
        port: url.port().unwrap_or(DEFAULT_POSTGRES_PORT),
        database: database.to_string(),
    })
}

checked_scalar!(Name, Description, RunCount, StoreUrl);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TempDir;

    fn load(dir: &TempDir, text: &str) -> Result<StatusPageConfig, Vec<FileError>> {
        StatusPageConfig::load(&dir.write("status-page.yaml", text))
    }

    #[test]
    fn a_minimal_file_gets_every_default() {
        let dir = TempDir::new("sp-minimal");
        let loaded = load(&dir, "prometheus: {url: http://127.0.0.1:9090}\n").unwrap();
        let expected = StatusPageConfig {
            store: StoreLocation::Sqlite(dir.0.join("status-page.db")),
            ..StatusPageConfig::without_file("http://127.0.0.1:9090".into())
        };
        assert_eq!(loaded, expected);
        let words = &loaded.public.features["leave_group"];
        assert_eq!(words.name, "Leaving groups");
        assert_eq!(loaded.public.features.len(), ProbeKind::ALL.len());
    }

    #[test]
    fn relative_paths_are_the_config_files_and_words_override_the_shipped() {
        let dir = TempDir::new("sp-paths");
        dir.write("token", "s3cret\n");
        let text = "prometheus:\n  url: https://prom.example.net\n  bearer_token_file: token\nnotes: notes.md\nstore: sqlite:data/page.db\noperator_token_file: token\npublic:\n  features:\n    group_message: {name: Group chats}\n    custom: {name: Calls, description: Calls connect.}\n  regions:\n    eu-west: {name: Europe}\n";
        let loaded = load(&dir, text).unwrap();
        assert_eq!(
            loaded.prometheus_auth,
            Auth::Bearer(Secret::File(dir.0.join("token")))
        );
        assert_eq!(loaded.notes, Some(dir.0.join("notes.md")));
        assert_eq!(
            loaded.store,
            StoreLocation::Sqlite(dir.0.join("data/page.db"))
        );
        assert_eq!(
            loaded.operator_token,
            Some(Secret::File(dir.0.join("token")))
        );
        let group = &loaded.public.features["group_message"];
        assert_eq!(group.name, "Group chats");
        assert!(group.description.starts_with("Messages you send"));
        assert_eq!(
            loaded.public.features["custom"].description,
            "Calls connect."
        );
        assert_eq!(loaded.public.regions["eu-west"], "Europe");
    }

    #[test]
    fn a_postgres_store_is_parsed_and_a_password_refused() {
        let url = postgres_url("postgres://page@db.internal/status").unwrap();
        assert_eq!(
            (
                url.user.as_str(),
                url.host.as_str(),
                url.port,
                url.database.as_str()
            ),
            ("page", "db.internal", 5432, "status")
        );
        let shown = StoreLocation::Postgres(postgres_url("postgresql://u@h:6543/d").unwrap());
        assert_eq!(shown.to_string(), "postgres://u@h:6543/d");
        let refused = [
            ("postgres://u:hunter2@h/d", "password"),
            ("postgres://h/d", "lacks a user"),
            ("postgres://u@h/", "lacks a user, host or database"),
            ("postgres://u@h/d?sslmode=off", "query"),
        ];
        for (value, message) in refused {
            let err = postgres_url(value).unwrap_err();
            assert!(err.contains(message), "{value}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn the_notify_section_is_read_with_its_files_placed_and_its_mistakes_on_their_line() {
        let dir = TempDir::new("sp-notify");
        let text = "prometheus: {url: 'http://x'}\nnotify:\n  base_url: https://status.example\n  \
                    smtp: {server: 'mail.example:587', from: a@example.com, username: u, password_file: smtp-password}\n  \
                    webhooks: [{url: 'https://hooks.example/a', secret_file: hook-secret}]\n";
        let config = load(&dir, text).expect("valid");
        let notify = config.notify.expect("a notify section");
        let password = notify.smtp.and_then(|smtp| smtp.password);
        assert_eq!(
            password,
            Some(SecretSource::File(dir.0.join("smtp-password")))
        );
        assert_eq!(
            notify.webhooks[0].secret,
            SecretSource::File(dir.0.join("hook-secret"))
        );
        assert_eq!(
            load(&dir, "prometheus: {url: 'http://x'}\n")
                .map(|c| c.notify)
                .ok(),
            Some(None)
        );
        let bad = "prometheus: {url: 'http://x'}\nnotify:\n  base_url: https://status.example\n  \
                   smtp: {server: 'mail.example:25', tls: plain, from: a@example.com}\n";
        let errors = load(&dir, bad).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{shown:?}");
        assert!(
            errors[0]
                .field
                .as_deref()
                .is_some_and(|field| field.starts_with("notify")),
            "{shown:?}"
        );
        assert!(shown[0].contains("loopback"), "{shown:?}");
    }

    #[test]
    fn the_smtp_ca_file_is_the_config_folders_and_must_hold_a_certificate() {
        let dir = TempDir::new("sp-ca-file");
        let smtp = |ca: &str| {
            format!(
                "prometheus: {{url: 'http://x'}}\nnotify:\n  base_url: https://status.example\n  smtp:\n    \
                 server: 'mail.example:465'\n    tls: tls\n    from: a@example.com\n    ca_file: {ca}\n"
            )
        };
        let missing = load(&dir, &smtp("ca.pem")).unwrap_err();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(
            (missing[0].field.as_deref(), missing[0].line),
            (Some("notify.smtp.ca_file"), Some(8))
        );
        assert!(
            missing[0].to_string().contains("cannot read"),
            "{missing:?}"
        );
        dir.write("not-a-ca.pem", "hello\n");
        let no_pem = load(&dir, &smtp("not-a-ca.pem")).unwrap_err();
        assert!(
            no_pem[0].to_string().contains("holds no PEM certificate"),
            "{no_pem:?}"
        );
        dir.write(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let config = load(&dir, &smtp("ca.pem")).expect("valid");
        let placed = config.notify.and_then(|notify| notify.smtp?.ca_file);
        assert_eq!(placed, Some(dir.0.join("ca.pem")));
    }

    #[test]
    fn every_error_comes_at_once_and_no_secret_is_shown() {
        let dir = TempDir::new("sp-errors");
        dir.write("basic", "no-colon-s3cret\n");
        let text = "prometheus:\n  url: ftp://x\n  basic_auth_file: basic\ntitle: ''\nstore: mysql://x\nincident_failed_runs: 0\noperator_token_env: CHATPROBE_TEST_UNSET_TOKEN\npublic:\n  features:\n    calls: {name: Calls}\nreports: {window: 2h}\n";
        let errors = load(&dir, text).unwrap_err();
        let fields: Vec<(Option<&str>, Option<usize>)> = errors
            .iter()
            .map(|error| (error.field.as_deref(), error.line))
            .collect();
        assert_eq!(
            fields,
            [
                (Some("prometheus.url"), Some(2)),
                (Some("title"), Some(4)),
                (Some("store"), Some(5)),
                (Some("incident_failed_runs"), Some(6)),
                (Some("operator_token_env"), Some(7)),
                (Some("public.features.calls"), Some(10)),
                (Some("reports.window"), Some(11)),
            ],
            "{errors:?}"
        );
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(shown[4].contains("`CHATPROBE_TEST_UNSET_TOKEN` is not set"));
        assert!(shown[5].contains("needs a description"), "{shown:?}");
        assert!(
            shown[6].contains("field `reports.window`: must be between 1m and 1h"),
            "{shown:?}"
        );
        let only_auth = "prometheus:\n  url: http://x\n  basic_auth_file: basic\n";
        let errors = load(&dir, only_auth).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains(":3: field `prometheus.basic_auth_file`"),
            "{shown:?}"
        );
        assert!(shown[0].contains("USER:PASSWORD"), "{shown:?}");
        assert!(
            shown.iter().all(|line| !line.contains("s3cret")),
            "{shown:?}"
        );
    }

    #[test]
    fn the_doc_lists_every_kinds_public_words() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/status-page.md");
        let doc = std::fs::read_to_string(path).expect("docs/status-page.md is readable");
        for kind in ProbeKind::ALL {
            let words = kind.public_words();
            let row = format!(
                "| `{}` | {} | {} |",
                kind.as_str(),
                words.name,
                words.description
            );
            assert!(
                doc.contains(&row),
                "docs/status-page.md lacks the row {row}"
            );
        }
    }
}
