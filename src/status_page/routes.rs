//! The fleet page's HTTP side: `/` (the shared page in the fleet's frame,
//! its grid one row per probe and region), `/cells` (one probe × region,
//! every target), `/api/status` (the agent's schema, plus the aggregate and
//! where the data came from), `/api/incidents`, `/feed.atom` and `/healthz`.
//!
//! Every answer is rendered from the latest reading the refresher
//! published ([`super::refresher`]): no request waits on Prometheus.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::sync::watch;

use super::aggregate::{self, Group};
use super::feed;
use super::incidents::Incident;
use super::notes::NotesFile;
use super::refresher::{Shown, unix_now};
use super::sections;
use crate::status::{CellView, Frame, HEADERS, Health, StatusSnapshot, Timestamp, render_framed};

/// What the page serves.
#[derive(Debug)]
pub(crate) struct Page {
    /// The query API's base URL, as `source.prometheus` says.
    pub(crate) prometheus: String,
    /// The latest reading of Prometheus.
    pub(crate) shown: watch::Receiver<Arc<Shown>>,
    /// The page's and the feed's title.
    pub(crate) title: String,
    /// The operator's statement, if configured.
    pub(crate) notes: Option<NotesFile>,
}

/// The routes over `page`.
pub(crate) fn router(page: Page) -> Router {
    Router::new()
        .route("/", get(html))
        .route("/cells", get(cells_html))
        .route("/api/status", get(status_json))
        .route("/api/incidents", get(incidents_json))
        .route("/feed.atom", get(atom))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(page))
}

impl Page {
    /// The latest reading.
    fn shown(&self) -> Arc<Shown> {
        Arc::clone(&self.shown.borrow())
    }

    fn frame<'a>(
        &'a self,
        shown: &'a Shown,
        top: &'a [String],
        grid: &'a str,
        middle: &'a [String],
    ) -> Frame<'a> {
        Frame {
            title: &self.title,
            heading: &self.title,
            notice: shown.notice.as_deref(),
            no_failures: "No failures in the last hour.",
            style: sections::STYLE,
            top,
            grid: Some(grid),
            middle,
            links: &[
                ("The same data as JSON", "api/status"),
                ("Incidents as JSON", "api/incidents"),
                ("Atom feed", "feed.atom"),
            ],
            feed: Some("feed.atom"),
        }
    }

    /// Where the data came from.
    fn source<'a>(&'a self, shown: &'a Shown) -> Source<'a> {
        Source {
            prometheus: &self.prometheus,
            error: shown.error.as_deref(),
        }
    }
}

async fn html(State(page): State<Arc<Page>>) -> impl IntoResponse {
    let shown = page.shown();
    let note = page.notes.as_ref().and_then(NotesFile::current);
    let incidents = &shown.view.incidents;
    let top: Vec<String> = [sections::notes(note.as_ref()), sections::ongoing(incidents)]
        .into_iter()
        .flatten()
        .collect();
    let grid = sections::groups(&aggregate::groups(&shown.view.snapshot.cells));
    let middle = [
        sections::uptime(&shown.view.uptime, incidents),
        sections::history(incidents),
    ];
    let html = render_framed(
        &shown.view.snapshot,
        &page.frame(&shown, &top, &grid, &middle),
    );
    (HEADERS, Html(html))
}

/// `/cells?probe=P&region=R`: every target of one probe in one region.
async fn cells_html(
    State(page): State<Arc<Page>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (Some(probe), Some(region)) = (query.get("probe"), query.get("region")) else {
        return (
            StatusCode::BAD_REQUEST,
            HEADERS,
            "give the probe and the region: /cells?probe=PROBE&region=REGION\n",
        )
            .into_response();
    };
    let shown = page.shown();
    let all = &shown.view.snapshot;
    let cells: Vec<&CellView> = all
        .cells
        .iter()
        .filter(|cell| &cell.key.probe == probe && &cell.key.region == region)
        .collect();
    if cells.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            HEADERS,
            format!("no cells of probe {probe:?} in region {region:?}\n"),
        )
            .into_response();
    }
    let snapshot = StatusSnapshot {
        generated_at: all.generated_at,
        overall: match shown.error {
            Some(_) => Health::Unknown,
            None => Health::worst(cells.iter().filter(|c| !c.stale).map(|c| c.state)),
        },
        cells: cells.iter().map(|&cell| cell.clone()).collect(),
        trends: all
            .trends
            .iter()
            .filter(|trend| &trend.probe == probe)
            .cloned()
            .collect(),
        recent_failures: all
            .recent_failures
            .iter()
            .filter(|failure| &failure.key.probe == probe && &failure.key.region == region)
            .cloned()
            .collect(),
    };
    let grid = sections::cells(probe, region, &cells);
    let html = render_framed(&snapshot, &page.frame(&shown, &[], &grid, &[]));
    (HEADERS, Html(html)).into_response()
}

/// `/api/status`: the agent's schema, plus the aggregate and where it came from.
#[derive(Serialize)]
struct FleetStatus<'a> {
    #[serde(flatten)]
    snapshot: &'a StatusSnapshot,
    aggregate: Vec<Group>,
    source: Source<'a>,
}

/// Where the data came from, and the error that made the page blind.
#[derive(Serialize)]
struct Source<'a> {
    prometheus: &'a str,
    error: Option<&'a str>,
}

async fn status_json(State(page): State<Arc<Page>>) -> Response {
    let shown = page.shown();
    let body = FleetStatus {
        snapshot: &shown.view.snapshot,
        aggregate: aggregate::groups(&shown.view.snapshot.cells),
        source: page.source(&shown),
    };
    (HEADERS, Json(body)).into_response()
}

/// `/api/incidents`.
#[derive(Serialize)]
struct Incidents<'a> {
    incidents: &'a [Incident],
    source: Source<'a>,
}

async fn incidents_json(State(page): State<Arc<Page>>) -> Response {
    let shown = page.shown();
    let body = Incidents {
        incidents: &shown.view.incidents,
        source: page.source(&shown),
    };
    (HEADERS, Json(body)).into_response()
}

async fn atom(State(page): State<Arc<Page>>) -> impl IntoResponse {
    let shown = page.shown();
    let note = page.notes.as_ref().and_then(NotesFile::current);
    let now = Timestamp::from_unix_seconds(unix_now());
    let xml = feed::render(&page.title, &shown.view.incidents, note.as_ref(), now);
    (
        HEADERS,
        [(CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    )
}
