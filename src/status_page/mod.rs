//! The fleet's status page (`chatprobe status-page`): every region's and
//! target's health, incidents, 90-day uptime and an Atom feed, built only
//! from Prometheus' query API (any compatible one: Thanos, Mimir), with or
//! without the shipped recording rules.
//!
//! Data flows one way: [`prometheus`] (the query API) → [`samples`] (the
//! contract metrics as steps per cell, narrowed by [`selector`]) →
//! [`last_hour`] (the last hour, folded into the agent's snapshot),
//! [`incidents`], [`uptime`] → [`aggregate`], [`sections`] and the shared
//! renderer of [`crate::status`], [`feed`] → [`routes`]. [`source`] reads
//! incrementally into its mirror; [`refresher`] is the one task that does,
//! on a fixed cadence, trimming the heap
//! after each ([`heap`]); [`notes`] is the operator's statement.

pub(crate) mod aggregate;
pub(crate) mod feed;
pub(crate) mod heap;
pub(crate) mod incidents;
pub(crate) mod last_hour;
mod manual;
pub(crate) mod notes;
pub(crate) mod prometheus;
pub(crate) mod public;
pub(crate) mod refresher;
pub(crate) mod routes;
pub(crate) mod samples;
pub(crate) mod sections;
pub(crate) mod selector;
pub(crate) mod source;
pub(crate) mod statements;
pub(crate) mod uptime;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::notify::config::Publish;

use crate::config::status_page::{PublicWording, StoreLocation};
use crate::credentials::{Auth, Secret};
use incidents::IncidentRule;
use prometheus::PrometheusClient;
use source::FleetSource;

use crate::metrics::{NotifyMetrics, ReportMetrics, StatusPageMetrics};
use crate::notify::Notify;
use crate::notify::config::NotifyConfig;
use crate::notify::operator::OperatorToken;
use crate::reports::config::ReportsConfig;
use crate::reports::regions::KnownRegions;
use crate::reports::{Reports, upkeep};
use crate::store::Store;

/// What `chatprobe status-page` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct StatusPageOptions {
    /// The query API's base URL.
    pub(crate) prometheus: String,
    /// How queries authenticate.
    pub(crate) auth: Auth,
    /// Where the page is served.
    pub(crate) listen: SocketAddr,
    /// The page's and the feed's title.
    pub(crate) title: String,
    /// The operator's statement (plain text or Markdown).
    pub(crate) notes: Option<PathBuf>,
    /// How long without a scrape makes a cell stale.
    pub(crate) stale_after: Duration,
    /// The step incidents are derived at.
    pub(crate) step: Duration,
    /// When incidents open and end.
    pub(crate) rule: IncidentRule,
    /// Where the page keeps what it stores.
    pub(crate) store: StoreLocation,
    /// The words of the public page for probes and regions.
    pub(crate) public: PublicWording,
    /// Where the operators' token comes from, if operators sign in.
    pub(crate) operator_token: Option<Secret>,
    /// How reports are taken and counted.
    pub(crate) reports: ReportsConfig,
    /// Notifications, when configured.
    pub(crate) notify: Option<NotifyConfig>,
}

/// Serves the fleet page until `shutdown` resolves.
pub(crate) async fn run(
    options: StatusPageOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = PrometheusClient::new(&options.prometheus, options.auth)
        .context("building the Prometheus client")?;
    let report_metrics = ReportMetrics::default();
    let store = Store::open(&options.store, report_metrics.clone())
        .await
        .with_context(|| format!("opening the store {}", options.store))?;
    let regions = KnownRegions::new(options.public.regions.keys().cloned());
    let reports_store = store.clone();
    let reports = Arc::new(Reports::new(
        options.reports,
        store,
        regions.clone(),
        report_metrics.clone(),
    )?);
    let notify_metrics = NotifyMetrics::default();
    let operator = options
        .operator_token
        .as_ref()
        .map(OperatorToken::read)
        .transpose()?;
    let notify_me = options
        .notify
        .as_ref()
        .is_some_and(|config| config.smtp.is_some());
    let notify = match options.notify {
        Some(config) => {
            let notify = Notify::open(
                config,
                reports_store.clone(),
                Arc::clone(&reports),
                operator,
                options.title.clone(),
                options.public.clone(),
                notify_metrics.clone(),
            )
            .await?;
            Some(Arc::new(notify))
        }
        None => None,
    };
    let prometheus = client.base().to_owned();
    let source = FleetSource {
        client,
        rule: options.rule,
        step: options.step,
        stale_after: options.stale_after,
    };
    let shown = refresher::spawn(source);
    let wording = options.public.clone();
    let page = routes::Page {
        prometheus,
        shown: shown.clone(),
        title: options.title,
        notes: options.notes.map(notes::NotesFile::new),
        public: options.public,
        regions,
        store: reports_store.clone(),
        reports: Arc::clone(&reports),
        notify_me,
        notify: notify.clone(),
    };
    let mut router = routes::router(page)
        .merge(crate::reports::routes::routes(Arc::clone(&reports)))
        .merge(crate::endpoints::metrics_router(Arc::new(
            StatusPageMetrics::new(report_metrics, notify_metrics),
        )));
    let mut background = vec![tokio::spawn(upkeep::run(Arc::clone(&reports)))];
    if let Some(notify) = &notify {
        router = router.merge(crate::notify::routes::routes(Arc::clone(notify)));
        background.push(tokio::spawn(notify.sender()?.run()));
        background.push(tokio::spawn(crate::notify::upkeep::run(Arc::clone(notify))));
        match notify.config.publish {
            Publish::Auto => background.push(tokio::spawn(statements::publish(
                shown,
                Arc::clone(notify),
                wording,
                notify.config.hold,
            ))),
            Publish::Manual => tracing::info!(
                "notify.publish is manual: drafted statements wait on /operators for an operator to publish them"
            ),
        }
    }
    let listener = crate::endpoints::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    tracing::info!("reading Prometheus at {}", options.prometheus);
    tracing::info!("keeping reports in {}", options.store);
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving the status page");
    for task in background {
        task.abort();
    }
    reports.close().await;
    served
}
