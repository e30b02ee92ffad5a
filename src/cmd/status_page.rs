//! `chatprobe status-page`: its options (**contract**: documented in
//! `docs/configuration.md`, "Status page flags") and the command, which
//! serves the fleet's status page ([`crate::status_page`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};

use crate::config::status_page::{StatusPageConfig, StoreLocation, store_flag};
use crate::credentials::{Auth, Secret};
use crate::status_page::StatusPageOptions;
use crate::status_page::incidents::IncidentRule;
use crate::yaml::FileErrors;

/// `chatprobe status-page`: the fleet's status page, from Prometheus. Each
/// flag given overrides the config file's value; the defaults are the file's.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("prometheus_auth").multiple(false)))]
pub struct StatusPageArgs {
    /// The status page's config file (YAML, see docs/status-page.md); the flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Base URL of a Prometheus-compatible query API (Prometheus, Thanos, Mimir's `/prometheus`).
    #[arg(long, value_name = "URL", required_unless_present = "config")]
    pub(crate) prometheus: Option<String>,
    /// Where the page is served (default 127.0.0.1:9465).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Title of the page and the feed (default "chatprobe fleet status").
    #[arg(long, value_name = "TEXT")]
    pub(crate) title: Option<String>,
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
    /// A cell Prometheus has not scraped for this long is marked stale (default 1m).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) stale_after: Option<Duration>,
    /// Resolution of the incident history, at most the probes' interval for exact times (default 15s).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) incident_step: Option<Duration>,
    /// Failed runs are counted over this window to open an incident (default 2m, the shipped rules').
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) incident_window: Option<Duration>,
    /// Failed runs within the window that, the last run failed, open an incident (default 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub(crate) incident_failed_runs: Option<u32>,
    /// Passing runs in a row, in every region and target involved, that end an incident (default 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub(crate) incident_passed_runs: Option<u32>,
    /// Where the page keeps users' reports: `sqlite:PATH` or `postgres://USER@HOST:PORT/DB` (default sqlite:status-page.db).
    #[arg(long, value_parser = store_flag, value_name = "URL")]
    pub(crate) store: Option<StoreLocation>,
}

impl StatusPageArgs {
    /// How queries authenticate, when a flag says.
    fn auth(&self) -> Option<Auth> {
        let file = |path: &PathBuf| Secret::File(path.clone());
        let env = |name: &String| Secret::Env(name.clone());
        let given = [
            self.prometheus_bearer_token_file
                .as_ref()
                .map(file)
                .map(Auth::Bearer),
            self.prometheus_bearer_token_env
                .as_ref()
                .map(env)
                .map(Auth::Bearer),
            self.prometheus_basic_auth_file
                .as_ref()
                .map(file)
                .map(Auth::Basic),
            self.prometheus_basic_auth_env
                .as_ref()
                .map(env)
                .map(Auth::Basic),
        ];
        given.into_iter().flatten().next()
    }

    /// The config file's settings (or the defaults without one) with every
    /// flag given over them.
    pub(crate) fn config(&self) -> Result<StatusPageConfig, FileErrors> {
        let mut config = match (&self.config, &self.prometheus) {
            (Some(path), _) => StatusPageConfig::load(path).map_err(FileErrors)?,
            (None, url) => StatusPageConfig::without_file(url.clone().unwrap_or_default()),
        };
        override_with(&mut config.prometheus_url, self.prometheus.clone());
        override_with(&mut config.prometheus_auth, self.auth());
        override_with(&mut config.listen, self.listen);
        override_with(&mut config.title, self.title.clone());
        override_with(&mut config.notes, self.notes.clone().map(Some));
        override_with(&mut config.stale_after, self.stale_after);
        override_with(&mut config.incident_step, self.incident_step);
        override_with(&mut config.incident_window, self.incident_window);
        override_with(&mut config.incident_failed_runs, self.incident_failed_runs);
        override_with(&mut config.incident_passed_runs, self.incident_passed_runs);
        override_with(&mut config.store, self.store.clone());
        Ok(config)
    }
}

/// `slot`, replaced by `flag` when the flag was given.
fn override_with<T>(slot: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *slot = value;
    }
}

/// The options the status page runs with, from its settings.
pub(crate) fn options(config: StatusPageConfig) -> StatusPageOptions {
    StatusPageOptions {
        prometheus: config.prometheus_url,
        auth: config.prometheus_auth,
        listen: config.listen,
        title: config.title,
        notes: config.notes,
        stale_after: config.stale_after,
        step: config.incident_step,
        rule: IncidentRule {
            window: config.incident_window,
            failed_runs: config.incident_failed_runs,
            passed_runs: config.incident_passed_runs,
        },
        store: config.store,
        public: config.public,
        operator_token: config.operator_token,
        reports: config.reports,
        notify: config.notify,
    }
}

/// The runtime the page runs on: a worker a core, malloc limited to two
/// arenas first (see `crate::status_page::heap`).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    crate::status_page::heap::limit_arenas();
    tokio::runtime::Runtime::new()
}

/// `chatprobe status-page`: serves the page `args` describe until `shutdown`.
pub async fn run(
    args: StatusPageArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::status_page::run(options(args.config()?), shutdown).await
}
