//! The reports' endpoints (**contract** paths and shapes):
//!
//! - `POST /api/reports`, JSON `{"problem": ID, "region": ID}` (region
//!   optional) → 200 `{"counted": true | false}`;
//! - `POST /report`, form fields `problem` and `region`, from the page's own
//!   form → 303 to `/?reported=ID` (the page's thank-you);
//! - `GET /api/reports?hours=N` → the crowd signal and the hourly trend.
//!
//! Refusals: 400 (unknown problem or region, a malformed body), 403
//! (cross-site), 413 (over the body cap), 415 (wrong content type), 429
//! with `Retry-After` (rate limited), 503 (the store cannot be reached).
//! Each is counted in `chatprobe_user_reports_refused_total`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::client::{Client, client};
use super::config::canonical;
use super::crowd::TrendHour;
use super::ledger::Recorded;
use super::{Crowd, Refusal, Reports, Submission, origin, retry_after_seconds, unix_now};
use crate::status::HEADERS;

/// Hours `GET /api/reports` gives when not asked.
const DEFAULT_HOURS: u32 = 24;
/// The most hours it gives (30 days).
const MOST_HOURS: u32 = 720;

/// The routes over `reports`; merge them into the status page's router
/// (served with `ConnectInfo<SocketAddr>`, the client's address).
pub(crate) fn routes(reports: Arc<Reports>) -> Router {
    let body_limit = usize::try_from(reports.config().limits.max_body_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/api/reports", post(post_json).get(get_json))
        .route("/report", post(post_form))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(reports)
}

/// How a report's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// `application/json`: the API.
    Json,
    /// `application/x-www-form-urlencoded`: the page's form.
    Form,
}

impl Encoding {
    /// The content type it must be sent with.
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::Form => "application/x-www-form-urlencoded",
        }
    }

    /// The submission in `body`.
    fn parse(self, body: &[u8]) -> Result<Submission, String> {
        match self {
            Encoding::Json => {
                serde_json::from_slice(body).map_err(|error| format!("bad JSON: {error}"))
            }
            Encoding::Form => {
                serde_urlencoded::from_bytes(body).map_err(|error| format!("bad form: {error}"))
            }
        }
    }
}

/// Whether `headers` say the body is `wanted` (parameters such as `charset` aside).
fn has_content_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(wanted))
}

/// Everything that can be checked before the store: the global limit, the
/// origin, the content type, the body and the client.
fn admit(
    reports: &Reports,
    encoding: Encoding,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Client, Submission), Refusal> {
    reports.check_everyone()?;
    let config = reports.config();
    if !origin::same_origin(headers, config.is_trusted(canonical(peer.ip()))) {
        return Err(Refusal::CrossSite);
    }
    if !has_content_type(headers, encoding.content_type()) {
        return Err(Refusal::UnsupportedType(encoding.content_type()));
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge(config.limits.max_body_bytes),
        _ => Refusal::Invalid(rejection.body_text()),
    })?;
    let submission = encoding.parse(&body).map_err(Refusal::Invalid)?;
    let client =
        client(config, peer, headers).map_err(|error| Refusal::Invalid(error.to_string()))?;
    Ok((client, submission))
}

/// Takes one report: admitted, then submitted; every refusal counted.
async fn take(
    reports: &Reports,
    encoding: Encoding,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Submission, Recorded), Refusal> {
    let (client, submission) = admit(reports, encoding, peer, headers, body)
        .inspect_err(|refusal| reports.refused(refusal))?;
    let recorded = reports.submit(&client, &submission, unix_now()).await?;
    Ok((submission, recorded))
}

/// The status a refusal is answered with.
fn status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::CrossSite => StatusCode::FORBIDDEN,
        Refusal::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::StoreDown => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A refusal answered with `body`, and `Retry-After` when rate limited.
fn refusal_response(refusal: &Refusal, body: impl IntoResponse) -> Response {
    let mut response = (status(refusal), HEADERS, body).into_response();
    if let Refusal::RateLimited(wait) = refusal {
        response
            .headers_mut()
            .insert(RETRY_AFTER, retry_after_seconds(*wait).into());
    }
    response
}

/// An API error's body.
#[derive(Serialize)]
struct ApiError {
    error: String,
}

/// A store failure as the API answers it.
fn store_unavailable(reports: &Reports, error: &crate::store::StoreError) -> Response {
    let refusal = reports.store_down(error);
    refusal_response(
        &refusal,
        Json(ApiError {
            error: refusal.to_string(),
        }),
    )
}

/// `POST /api/reports`.
async fn post_json(
    State(reports): State<Arc<Reports>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match take(&reports, Encoding::Json, peer, &headers, body).await {
        Ok((_, recorded)) => {
            let counted = recorded == Recorded::Counted;
            (HEADERS, Json(serde_json::json!({ "counted": counted }))).into_response()
        }
        Err(refusal) => refusal_response(
            &refusal,
            Json(ApiError {
                error: refusal.to_string(),
            }),
        ),
    }
}

/// `POST /report`: back to the page, which thanks the reporter.
async fn post_form(
    State(reports): State<Arc<Reports>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match take(&reports, Encoding::Form, peer, &headers, body).await {
        // A problem id is letters, digits and `_`: safe in a URL as it is.
        Ok((submission, _)) => (
            StatusCode::SEE_OTHER,
            HEADERS,
            [(LOCATION, format!("/?reported={}", submission.problem))],
        )
            .into_response(),
        Err(refusal) => refusal_response(&refusal, format!("{refusal}\n")),
    }
}

/// `GET /api/reports` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendQuery {
    hours: Option<u32>,
}

/// `GET /api/reports`: the crowd signal, the trend, and whether reports are sampled.
#[derive(Serialize)]
struct ReportsView {
    #[serde(flatten)]
    crowd: Crowd,
    hours: Vec<TrendHour>,
}

/// `GET /api/reports?hours=N`.
async fn get_json(
    State(reports): State<Arc<Reports>>,
    query: Result<Query<TrendQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let hours = match query.map(|Query(query)| query.hours.unwrap_or(DEFAULT_HOURS)) {
        Ok(hours) if (1..=MOST_HOURS).contains(&hours) => hours,
        _ => {
            let error = format!("`hours` must be a whole number from 1 to {MOST_HOURS}");
            return (StatusCode::BAD_REQUEST, HEADERS, Json(ApiError { error })).into_response();
        }
    };
    let now = unix_now();
    let crowd = match reports.crowd(now).await {
        Ok(crowd) => crowd,
        Err(error) => return store_unavailable(&reports, &error),
    };
    match reports.trend(now, hours).await {
        Ok(hours) => (HEADERS, Json(ReportsView { crowd, hours })).into_response(),
        Err(error) => store_unavailable(&reports, &error),
    }
}
