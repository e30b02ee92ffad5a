//! `chatprobe status-page`: its options (**contract**: documented in
//! `docs/configuration.md`, "Status page flags") and the command, which
//! serves the fleet's status page ([`crate::status_page`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};

use crate::notify::config::{NotifyConfig, SecretSource};
use crate::reports::config::ReportsConfig;
use crate::status_page::incidents::IncidentRule;
use crate::status_page::prometheus::{Auth, Secret};
use crate::status_page::{DEFAULT_LISTEN, StatusPageOptions};
use crate::store::{DEFAULT_STORE, StoreUrl};

/// `chatprobe status-page`: the fleet's status page, from Prometheus.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("prometheus_auth").multiple(false)))]
#[command(group(ArgGroup::new("operator_token").multiple(false)))]
pub struct StatusPageArgs {
    /// Base URL of a Prometheus-compatible query API (Prometheus, Thanos, Mimir's `/prometheus`).
    #[arg(long, value_name = "URL")]
    pub(crate) prometheus: String,
    /// Where the page is served.
    #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// Title of the page and the feed.
    #[arg(long, default_value = "chatprobe fleet status", value_name = "TEXT")]
    pub(crate) title: String,
    /// The operator's statement (plain text or Markdown), shown on top and in the feed; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub(crate) notes: Option<PathBuf>,
    /// A file holding a bearer token for Prometheus (re-read before every query).
    #[arg(long, group = "prometheus_auth", value_name = "FILE")]
    pub(crate) prometheus_bearer_token_file: Option<PathBuf>,
    /// An environment variable holding a bearer token for Prometheus.
    #[arg(long, group = "prometheus_auth", value_name = "VAR")]
    pub(crate) prometheus_bearer_token_env: Option<String>,
    /// A file holding `USER:PASSWORD` for Prometheus' basic authentication.
    #[arg(long, group = "prometheus_auth", value_name = "FILE")]
    pub(crate) prometheus_basic_auth_file: Option<PathBuf>,
    /// An environment variable holding `USER:PASSWORD` for Prometheus' basic authentication.
    #[arg(long, group = "prometheus_auth", value_name = "VAR")]
    pub(crate) prometheus_basic_auth_env: Option<String>,
    /// A cell Prometheus has not scraped for this long is marked stale.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) stale_after: Duration,
    /// Resolution of the incident history (at most the probes' interval for exact times).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) incident_step: Duration,
    /// Failed runs are counted over this window to open an incident (the shipped rules' 2m).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) incident_window: Duration,
    /// Failed runs within the window that, the last run failed, open an incident.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub(crate) incident_failed_runs: u32,
    /// Passing runs in a row, in every region and target involved, that end an incident.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub(crate) incident_passed_runs: u32,
    /// Where reports are kept: `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, default_value = DEFAULT_STORE, value_parser = parse_store, value_name = "URL")]
    pub(crate) store: StoreUrl,
    /// A YAML file holding the `reports:` settings (trusted proxies, window, problems, limits); default: the shipped ones.
    #[arg(long, value_name = "FILE")]
    pub(crate) reports: Option<PathBuf>,
    /// A YAML file holding the `notify:` settings (base URL, SMTP, webhooks); default: no notifications.
    #[arg(long, value_name = "FILE")]
    pub(crate) notify: Option<PathBuf>,
    /// An environment variable holding the operators' token (for `POST /api/statements`).
    #[arg(long, group = "operator_token", value_name = "VAR")]
    pub(crate) operator_token_env: Option<String>,
    /// A file holding the operators' token.
    #[arg(long, group = "operator_token", value_name = "FILE")]
    pub(crate) operator_token_file: Option<PathBuf>,
    /// A region reports may name besides those Prometheus shows (repeatable).
    #[arg(long = "region", value_parser = parse_region, value_name = "NAME")]
    pub(crate) regions: Vec<String>,
}

/// `--region`, a label value.
fn parse_region(text: &str) -> Result<String, String> {
    crate::yaml::values::check_label(text).map(|()| text.to_string())
}

/// `--store`, checked before anything connects.
fn parse_store(text: &str) -> Result<StoreUrl, String> {
    StoreUrl::parse(text).map_err(|error| error.to_string())
}

impl StatusPageArgs {
    /// How queries authenticate, from whichever flag was given.
    fn auth(&self) -> Auth {
        let file = |path: &PathBuf| Secret::File(path.clone());
        let env = |name: &String| Secret::Env(name.clone());
        if let Some(secret) = self.prometheus_bearer_token_file.as_ref().map(file) {
            Auth::Bearer(secret)
        } else if let Some(secret) = self.prometheus_bearer_token_env.as_ref().map(env) {
            Auth::Bearer(secret)
        } else if let Some(secret) = self.prometheus_basic_auth_file.as_ref().map(file) {
            Auth::Basic(secret)
        } else if let Some(secret) = self.prometheus_basic_auth_env.as_ref().map(env) {
            Auth::Basic(secret)
        } else {
            Auth::None
        }
    }

    /// The options these arguments stand for (reading `--reports`).
    pub(crate) fn options(&self) -> anyhow::Result<StatusPageOptions> {
        let reports = match &self.reports {
            Some(path) => crate::yaml::load::<ReportsConfig>(path)?,
            None => ReportsConfig::default(),
        };
        let notify = match &self.notify {
            Some(path) => Some(crate::yaml::load::<NotifyConfig>(path)?),
            None => None,
        };
        let operator_token = match (&self.operator_token_env, &self.operator_token_file) {
            (Some(variable), _) => Some(SecretSource::Env(variable.clone())),
            (None, Some(path)) => Some(SecretSource::File(path.clone())),
            (None, None) => None,
        };
        Ok(StatusPageOptions {
            prometheus: self.prometheus.clone(),
            auth: self.auth(),
            listen: self.listen,
            title: self.title.clone(),
            notes: self.notes.clone(),
            stale_after: self.stale_after,
            step: self.incident_step,
            rule: IncidentRule {
                window: self.incident_window,
                failed_runs: self.incident_failed_runs.max(1),
                passed_runs: self.incident_passed_runs.max(1),
            },
            store: self.store.clone(),
            reports,
            regions: self.regions.clone(),
            notify,
            operator_token,
        })
    }
}

/// `chatprobe status-page`: serves the page `args` describe until `shutdown`.
pub async fn run(
    args: StatusPageArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::status_page::run(args.options()?, shutdown).await
}
