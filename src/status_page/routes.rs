//! The status page's HTTP side: `/` (the public page), `/operators` (the
//! shared page in the fleet's frame), `/api/status` (the agent's schema,
//! plus the public page's features and where the data came from),
//! `/api/incidents`, `/feed.atom` and `/healthz`.
//!
//! Prometheus is read at most once per [`REFRESH`], whatever the number of
//! readers; when it cannot be read the last answer stays on show, marked:
//! the banner says so and `overall` is `unknown`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::feed;
use super::incidents::Incident;
use super::notes::NotesFile;
use super::public::features::{self, Evidence, Feature};
use super::public::page::Choice;
use super::public::page::PublicPage;
use super::public::{CrowdNow, region_choices};
use super::sections;
use super::source::{FleetSource, FleetView};
use crate::config::status_page::PublicWording;
use crate::notify::outbox::{self, IncidentRef, Kind};
use crate::reports::Reports;
use crate::reports::regions::KnownRegions;
use crate::status::{Frame, HEADERS, Health, StatusSnapshot, Timestamp, render_framed};
use crate::store::Store;

/// How long one reading of Prometheus is served before the next.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);

/// What the page serves, besides its source.
#[derive(Debug)]
pub(crate) struct Page {
    /// Reads Prometheus.
    pub(crate) source: FleetSource,
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
}

/// One reading, as served.
#[derive(Debug, Clone)]
struct Shown {
    view: FleetView,
    /// Why the view may be wrong (Prometheus unreadable, all data stale).
    notice: Option<String>,
    /// The error Prometheus gave, if it did.
    error: Option<String>,
}

#[derive(Default)]
struct Cache {
    shown: Option<(Instant, Arc<Shown>)>,
    last_good: Option<FleetView>,
}

/// The page and its cache of Prometheus' last answer.
struct App {
    page: Page,
    cache: tokio::sync::Mutex<Cache>,
}

/// The routes over `page`.
pub(crate) fn router(page: Page) -> Router {
    let app = Arc::new(App {
        page,
        cache: tokio::sync::Mutex::new(Cache::default()),
    });
    Router::new()
        .route("/", get(public_html))
        .route("/operators", get(html))
        .route("/api/status", get(status_json))
        .route("/api/incidents", get(incidents_json))
        .route("/feed.atom", get(atom))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(app)
}

fn unix_now() -> u64 {
    Timestamp::from_system(SystemTime::now()).unix_seconds()
}

impl App {
    /// The current reading: cached for [`REFRESH`], else read now.
    async fn shown(&self) -> Arc<Shown> {
        let mut cache = self.cache.lock().await;
        if let Some((at, shown)) = &cache.shown
            && at.elapsed() < REFRESH
        {
            return Arc::clone(shown);
        }
        let now = unix_now();
        let shown = match self.page.source.read(now).await {
            Ok(view) => {
                let shown_regions = view.snapshot.cells.iter().map(|cell| &cell.key.region);
                self.page.regions.learn(shown_regions.cloned());
                cache.last_good = Some(view.clone());
                let notice = all_stale(&view.snapshot).then(|| {
                    format!(
                        "No fresh data: Prometheus has not scraped any agent for over {}",
                        humantime::format_duration(self.page.source.stale_after)
                    )
                });
                Shown {
                    view,
                    notice,
                    error: None,
                }
            }
            Err(error) => {
                tracing::warn!("cannot read Prometheus: {error}");
                blind(cache.last_good.clone(), now, &error.to_string())
            }
        };
        let shown = Arc::new(shown);
        cache.shown = Some((Instant::now(), Arc::clone(&shown)));
        shown
    }

    /// Each feature's state in the public page's words.
    fn features(&self, shown: &Shown, crowd: &CrowdNow) -> Vec<Feature> {
        let evidence = Evidence {
            cells: &shown.view.snapshot.cells,
            blind: shown.error.is_some(),
            crowd: &crowd.readings,
        };
        features::derive(&self.page.public, evidence)
    }

    /// The crowd now.
    async fn crowd(&self) -> CrowdNow {
        CrowdNow::read(&self.page.reports, crate::reports::unix_now()).await
    }

    fn frame<'a>(&'a self, shown: &'a Shown, top: &'a [String], middle: &'a [String]) -> Frame<'a> {
        Frame {
            title: &self.page.title,
            heading: &self.page.title,
            notice: shown.notice.as_deref(),
            no_failures: "No failures in the last hour.",
            style: sections::STYLE,
            top,
            middle,
            links: &[
                ("The same data as JSON", "api/status"),
                ("Incidents as JSON", "api/incidents"),
                ("Atom feed", "feed.atom"),
            ],
            feed: Some("feed.atom"),
        }
    }
}

/// Whether there are cells and every one of them is stale.
fn all_stale(snapshot: &StatusSnapshot) -> bool {
    !snapshot.cells.is_empty() && snapshot.cells.iter().all(|cell| cell.stale)
}

/// The last good reading (or nothing), marked as blind: overall `unknown`,
/// every cell stale, the banner naming the error.
fn blind(last_good: Option<FleetView>, now: u64, error: &str) -> Shown {
    let mut view = last_good.unwrap_or_else(|| FleetView {
        snapshot: StatusSnapshot {
            generated_at: Timestamp::from_unix_seconds(now),
            overall: Health::Unknown,
            cells: Vec::new(),
            trends: Vec::new(),
            recent_failures: Vec::new(),
        },
        incidents: Vec::new(),
        uptime: Vec::new(),
    });
    view.snapshot.generated_at = Timestamp::from_unix_seconds(now);
    view.snapshot.overall = Health::Unknown;
    for cell in &mut view.snapshot.cells {
        cell.stale = true;
    }
    Shown {
        view,
        notice: Some(format!("Blind: Prometheus cannot be read ({error})")),
        error: Some(error.to_owned()),
    }
}

async fn html(State(app): State<Arc<App>>) -> impl IntoResponse {
    let shown = app.shown().await;
    let note = app.page.notes.as_ref().and_then(NotesFile::current);
    let incidents = &shown.view.incidents;
    let top: Vec<String> = [sections::notes(note.as_ref()), sections::ongoing(incidents)]
        .into_iter()
        .flatten()
        .collect();
    let middle = [
        sections::uptime(&shown.view.uptime, incidents, &sections::OPERATOR_UPTIME),
        sections::history(incidents),
    ];
    let page = render_framed(&shown.view.snapshot, &app.frame(&shown, &top, &middle));
    (HEADERS, Html(page))
}

/// `/`: the public page; `?reported=ID` thanks the user who just reported.
async fn public_html(
    State(app): State<Arc<App>>,
    Query(query): Query<PublicQuery>,
) -> impl IntoResponse {
    let shown = app.shown().await;
    let crowd = app.crowd().await;
    let features = app.features(&shown, &crowd);
    let problems: Vec<Choice<'_>> = app
        .page
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
    let regions = region_choices(&app.page.public, &shown.view.snapshot.cells);
    let note = app.page.notes.as_ref().and_then(NotesFile::current);
    let page = PublicPage {
        title: &app.page.title,
        generated_at: shown.view.snapshot.generated_at,
        features: &features,
        incidents: &shown.view.incidents,
        uptime: &shown.view.uptime,
        problems: &problems,
        regions: &regions,
        reports: &crowd.hours,
        notify_me: app.page.notify_me,
        note: note.as_ref(),
        notices: &notices,
        blind: shown.error.is_some(),
    };
    (HEADERS, Html(page.render()))
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

/// `/api/status`: the agent's schema, plus the features and where it came from.
#[derive(Serialize)]
struct FleetStatus<'a> {
    #[serde(flatten)]
    snapshot: &'a StatusSnapshot,
    features: Vec<Feature>,
    source: Source<'a>,
}

/// Where the data came from, and the error that made the page blind.
#[derive(Serialize)]
struct Source<'a> {
    prometheus: &'a str,
    error: Option<&'a str>,
}

async fn status_json(State(app): State<Arc<App>>) -> Response {
    let shown = app.shown().await;
    let body = FleetStatus {
        snapshot: &shown.view.snapshot,
        features: app.features(&shown, &app.crowd().await),
        source: Source {
            prometheus: app.page.source.client.base(),
            error: shown.error.as_deref(),
        },
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

/// `incidents` with their timelines from `store` (empty ones when it cannot be read).
async fn with_timelines<'a>(store: &Store, incidents: &'a [Incident]) -> Vec<WithTimeline<'a>> {
    let keys: Vec<String> = incidents
        .iter()
        .map(|incident| IncidentRef::key_of(&incident.probe, incident.started_at))
        .collect();
    let mut timelines = outbox::timelines(store, &keys)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!("cannot read the incidents' statements: {error}");
            Default::default()
        });
    incidents
        .iter()
        .zip(keys)
        .map(|(incident, key)| WithTimeline {
            incident,
            statements: timelines
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .map(|statement| TimelineEntry {
                    at: Timestamp::from_unix_seconds(u64::try_from(statement.at).unwrap_or(0)),
                    kind: statement.kind,
                    text: statement.text,
                })
                .collect(),
        })
        .collect()
}

async fn incidents_json(State(app): State<Arc<App>>) -> Response {
    let shown = app.shown().await;
    let body = Incidents {
        incidents: with_timelines(&app.page.store, &shown.view.incidents).await,
        source: Source {
            prometheus: app.page.source.client.base(),
            error: shown.error.as_deref(),
        },
    };
    (HEADERS, Json(body)).into_response()
}

async fn atom(State(app): State<Arc<App>>) -> impl IntoResponse {
    let shown = app.shown().await;
    let note = app.page.notes.as_ref().and_then(NotesFile::current);
    let now = Timestamp::from_unix_seconds(unix_now());
    let xml = feed::render(&app.page.title, &shown.view.incidents, note.as_ref(), now);
    (
        HEADERS,
        [(CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    )
}
