//! The status page's HTTP side: `/` (the public page), `/operators` (the
//! shared page in the fleet's frame, its grid one row per probe and
//! region), `/cells` (one probe × region, every target), `/api/status` (the
//! agent's schema, plus the aggregate, the public page's features and where
//! the data came from), `/api/incidents` (with each incident's statements),
//! `/feed.atom` and `/healthz`.
//!
//! Every answer is rendered from the latest reading the refresher
//! published ([`super::refresher`]): no request waits on Prometheus.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::aggregate::{self, Group};
use super::feed;
use super::incidents::Incident;
use super::notes::NotesFile;
use super::public::features::{self, Evidence, Feature};
use super::public::page::{Choice, PublicPage};
use super::public::{CrowdNow, region_choices};
use super::refresher::{Shown, unix_now};
use super::statements::{self, Timelines};
use super::{manual, sections};
use crate::config::status_page::PublicWording;
use crate::notify::Notify;
use crate::notify::config::Publish;
use crate::notify::outbox::{self, Kind};
use crate::reports::Reports;
use crate::reports::regions::KnownRegions;
use crate::status::{CellView, Frame, HEADERS, Health, StatusSnapshot, Timestamp, render_framed};
use crate::store::Store;

/// What the page serves.
pub(crate) struct Page {
    /// The query API's base URL, as `source.prometheus` says.
    pub(crate) prometheus: String,
    /// The latest reading of Prometheus.
    pub(crate) shown: watch::Receiver<Arc<Shown>>,
    /// The page's and the feed's title.
    pub(crate) title: String,
    /// The operator's statement, if configured.
    pub(crate) notes: Option<NotesFile>,
    /// How the public page names features and regions.
    pub(crate) public: PublicWording,
    /// The regions reports may name: those Prometheus shows are added here.
    pub(crate) regions: KnownRegions,
    /// The store: each incident's statements.
    pub(crate) store: Store,
    /// User reports and the crowd signal.
    pub(crate) reports: Arc<Reports>,
    /// Whether the public page offers "Notify me" (mail can be sent).
    pub(crate) notify_me: bool,
    /// Notifications, when configured: statements are then published.
    pub(crate) notify: Option<Arc<Notify>>,
}

/// The routes over `page`.
pub(crate) fn router(page: Page) -> Router {
    Router::new()
        .route("/", get(public_html))
        .route("/operators", get(html))
        .route("/operators/publish", post(manual::publish))
        .route("/cells", get(cells_html))
        .route("/api/status", get(status_json))
        .route("/api/incidents", get(incidents_json))
        .route("/feed.atom", get(atom))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(page))
}

impl Page {
    /// The latest reading; the regions it shows become ones reports may name.
    fn shown(&self) -> Arc<Shown> {
        let shown = Arc::clone(&self.shown.borrow());
        let regions = shown
            .view
            .snapshot
            .cells
            .iter()
            .map(|cell| &cell.key.region);
        self.regions.learn(regions.cloned());
        shown
    }

    /// Each feature's state in the public page's words.
    fn features(&self, shown: &Shown, crowd: &CrowdNow) -> Vec<Feature> {
        let evidence = Evidence {
            cells: &shown.view.snapshot.cells,
            blind: shown.error.is_some(),
            crowd: &crowd.readings,
        };
        features::derive(&self.public, evidence)
    }

    /// What was said of `incidents` and, with `publish: manual`, the
    /// drafts waiting for an operator (nothing when the store cannot be read).
    pub(crate) async fn timelines(&self, incidents: &[Incident]) -> Timelines {
        let Some(notify) = &self.notify else {
            return Timelines::default();
        };
        let keys: Vec<String> = incidents.iter().map(statements::key_of).collect();
        let said = outbox::timelines(&self.store, &keys)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!("cannot read the incidents' statements: {error}");
                Default::default()
            });
        let now = unix_now();
        let drafts = match notify.config.publish {
            Publish::Auto => Default::default(),
            Publish::Manual => statements::open_to_statements(incidents, now)
                .filter_map(|incident| {
                    let key = statements::key_of(incident);
                    let said = said.get(&key).map_or(&[][..], Vec::as_slice);
                    let draft =
                        statements::pending(incident, said, &self.public, Duration::ZERO, now);
                    draft.map(|draft| (key, draft))
                })
                .collect(),
        };
        Timelines {
            published: true,
            said,
            drafts,
        }
    }

    /// The crowd now.
    async fn crowd(&self) -> CrowdNow {
        CrowdNow::read(&self.reports, crate::reports::unix_now()).await
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
    let timelines = page.timelines(incidents).await;
    let top: Vec<String> = [
        sections::notes(note.as_ref()),
        sections::ongoing(incidents, &timelines),
    ]
    .into_iter()
    .flatten()
    .collect();
    let grid = sections::groups(&aggregate::groups(&shown.view.snapshot.cells));
    let middle = [
        sections::uptime(&shown.view.uptime, incidents, &sections::OPERATOR_UPTIME),
        sections::history(incidents, &timelines),
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

/// `/`: the public page; `?reported=ID` thanks the user who just reported.
async fn public_html(
    State(page): State<Arc<Page>>,
    Query(query): Query<PublicQuery>,
) -> impl IntoResponse {
    let shown = page.shown();
    let crowd = page.crowd().await;
    let features = page.features(&shown, &crowd);
    let problems: Vec<Choice<'_>> = page
        .reports
        .config()
        .problems
        .iter()
        .map(|problem| Choice {
            id: &problem.id.0,
            name: &problem.name.0,
        })
        .collect();
    let mut notices = public_notices(&shown, &crowd, &problems, query.reported.as_deref());
    if query.subscribed.is_some() {
        notices.insert(0, SUBSCRIBED_WORDS.to_owned());
    }
    let regions = region_choices(&page.public, &shown.view.snapshot.cells);
    let note = page.notes.as_ref().and_then(NotesFile::current);
    let timelines = page.timelines(&shown.view.incidents).await;
    let public = PublicPage {
        title: &page.title,
        generated_at: shown.view.snapshot.generated_at,
        features: &features,
        incidents: &shown.view.incidents,
        timelines: &timelines,
        uptime: &shown.view.uptime,
        problems: &problems,
        regions: &regions,
        reports: &crowd.hours,
        notify_me: page.notify_me,
        note: note.as_ref(),
        notices: &notices,
        blind: shown.error.is_some(),
    };
    (HEADERS, Html(public.render()))
}

/// What `/` may be asked.
#[derive(Deserialize)]
struct PublicQuery {
    /// The problem a user just reported (the form's redirect names it).
    reported: Option<String>,
    /// Set when a user just asked to be notified.
    subscribed: Option<String>,
}

/// The sentences on top of the public page: a thank-you for a report of a
/// known problem, and why the page may be wrong or partial.
fn public_notices(
    shown: &Shown,
    crowd: &CrowdNow,
    problems: &[Choice<'_>],
    reported: Option<&str>,
) -> Vec<String> {
    let thanks = reported
        .and_then(|id| problems.iter().find(|problem| problem.id == id))
        .map(|problem| {
            let thanks = format!(
                "Thank you: we have your report of \u{201c}{}\u{201d}.",
                problem.name
            );
            match crowd.recent.get(problem.id) {
                Some(1) => format!(
                    "{thanks} 1 person reported it in the last {} minutes.",
                    crowd.window_minutes
                ),
                Some(recent) => format!(
                    "{thanks} {recent} people reported it in the last {} minutes.",
                    crowd.window_minutes
                ),
                None => thanks,
            }
        });
    let blind = shown.error.as_ref().map(|_| BLIND_WORDS.to_owned());
    let unavailable = crowd.unavailable.as_ref().map(|_| {
        "User reports cannot be read or taken right now; the checks above are not affected."
            .to_owned()
    });
    let sampled = crowd.sampling.then(|| {
        "Many people are reporting problems: we count a sample of the reports this hour.".to_owned()
    });
    [thanks, blind, unavailable, sampled]
        .into_iter()
        .flatten()
        .collect()
}

/// What the public page says after a "Notify me" form.
const SUBSCRIBED_WORDS: &str = "Check your mail: if the address can be mailed, we sent it a link to confirm. Nothing else is sent until you confirm.";

/// What the public page says when Prometheus cannot be read.
const BLIND_WORDS: &str =
    "We cannot read the results of our checks right now, so this page may be out of date.";

/// `/api/status`: the agent's schema, plus the aggregate, the features and where it came from.
#[derive(Serialize)]
struct FleetStatus<'a> {
    #[serde(flatten)]
    snapshot: &'a StatusSnapshot,
    aggregate: Vec<Group>,
    features: Vec<Feature>,
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
        features: page.features(&shown, &page.crowd().await),
        source: page.source(&shown),
    };
    (HEADERS, Json(body)).into_response()
}

/// `/api/incidents`.
#[derive(Serialize)]
struct Incidents<'a> {
    incidents: Vec<WithTimeline<'a>>,
    source: Source<'a>,
}

/// An incident and its statements (`statements: [{at, kind, text}]`, oldest first).
#[derive(Serialize)]
struct WithTimeline<'a> {
    #[serde(flatten)]
    incident: &'a Incident,
    statements: Vec<TimelineEntry>,
}

/// One statement of an incident's timeline.
#[derive(Serialize)]
struct TimelineEntry {
    at: Timestamp,
    kind: Kind,
    text: String,
}

/// `incidents` with what was said of each, oldest first.
fn with_timelines<'a>(incidents: &'a [Incident], timelines: &Timelines) -> Vec<WithTimeline<'a>> {
    incidents
        .iter()
        .map(|incident| WithTimeline {
            incident,
            statements: timelines
                .said_of(incident)
                .iter()
                .map(|statement| TimelineEntry {
                    at: Timestamp::from_unix_seconds(u64::try_from(statement.at).unwrap_or(0)),
                    kind: statement.kind,
                    text: statement.text.clone(),
                })
                .collect(),
        })
        .collect()
}

async fn incidents_json(State(page): State<Arc<Page>>) -> Response {
    let shown = page.shown();
    let body = Incidents {
        incidents: with_timelines(
            &shown.view.incidents,
            &page.timelines(&shown.view.incidents).await,
        ),
        source: page.source(&shown),
    };
    (HEADERS, Json(body)).into_response()
}

async fn atom(State(page): State<Arc<Page>>) -> impl IntoResponse {
    let shown = page.shown();
    let note = page.notes.as_ref().and_then(NotesFile::current);
    let now = Timestamp::from_unix_seconds(unix_now());
    let timelines = page.timelines(&shown.view.incidents).await;
    let xml = feed::render(
        &page.title,
        &shown.view.incidents,
        &timelines,
        note.as_ref(),
        now,
    );
    (
        HEADERS,
        [(CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    )
}
