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
//! on a fixed cadence; [`notes`] is the operator's statement.

pub(crate) mod aggregate;
pub(crate) mod feed;
pub(crate) mod incidents;
pub(crate) mod last_hour;
pub(crate) mod notes;
pub(crate) mod prometheus;
pub(crate) mod refresher;
pub(crate) mod routes;
pub(crate) mod samples;
pub(crate) mod sections;
pub(crate) mod selector;
pub(crate) mod source;
pub(crate) mod uptime;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use incidents::IncidentRule;
use prometheus::{Auth, PrometheusClient};
use source::FleetSource;

/// The default listen address of `chatprobe status-page` (**contract**).
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:9465";

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
}

/// Serves the fleet page until `shutdown` resolves.
pub(crate) async fn run(
    options: StatusPageOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = PrometheusClient::new(&options.prometheus, options.auth)
        .context("building the Prometheus client")?;
    let prometheus = client.base().to_owned();
    let source = FleetSource {
        client,
        rule: options.rule,
        step: options.step,
        stale_after: options.stale_after,
    };
    let page = routes::Page {
        prometheus,
        shown: refresher::spawn(source),
        title: options.title,
        notes: options.notes.map(notes::NotesFile::new),
    };
    let listener = crate::endpoints::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    tracing::info!("reading Prometheus at {}", options.prometheus);
    axum::serve(listener, routes::router(page))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the status page")
}
