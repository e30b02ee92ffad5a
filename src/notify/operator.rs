//! The operators' API: `POST /api/statements` with `Authorization: Bearer
//! TOKEN` (the operator token, from `operator_token_env` or
//! `operator_token_file`, read at start and never logged): an operator's
//! statement about an incident, stored in its timeline and notified to
//! everyone who asked, like any other statement.
//!
//! Body: `{"probe": PROBE, "started_at": RFC3339, "event":
//! "incident_opened" | "statement" | "incident_resolved", "text": TEXT,
//! "regions": [REGION, ...]}` (the incident is the probe's that started
//! then, as `/api/incidents` gives it) → 201 `{"statement": ID,
//! "notifications": N}`; 401 without the token, 400 for a bad body, 503
//! when the store is down.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::Notify;
use super::config::{SecretSource, read_secret};
use super::outbox::{IncidentRef, Kind, NewStatement, event_named};
use crate::credentials::Secret;
use crate::metrics::Event;
use crate::reports::routes::ApiError;
use crate::status::{HEADERS, Timestamp};
use crate::yaml::values::check_label;

/// The longest statement, in characters.
const LONGEST_TEXT: usize = 4000;

/// The operator token, kept as its SHA-256 (compared in constant time).
#[derive(Clone)]
pub(crate) struct OperatorToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken { *** }")
    }
}

impl OperatorToken {
    /// The token `source` holds, read now (at least 16 characters).
    pub(crate) fn read(source: &Secret) -> anyhow::Result<OperatorToken> {
        let source = match source {
            Secret::File(path) => SecretSource::File(path.clone()),
            Secret::Env(variable) => SecretSource::Env(variable.clone()),
        };
        let token = read_secret(&source, "the operator token")?;
        anyhow::ensure!(
            token.len() >= 16,
            "the operator token must be at least 16 characters"
        );
        Ok(OperatorToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `headers` carry `Authorization: Bearer TOKEN` with this token.
    fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| self.is(given.trim()))
    }

    /// Whether `given` is this token (compared in constant time).
    pub(crate) fn is(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        digest
            .iter()
            .zip(self.digest)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

/// A statement as an operator posts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostedStatement {
    probe: String,
    started_at: String,
    event: String,
    text: String,
    #[serde(default)]
    regions: Vec<String>,
}

/// An API error answered with `status`.
fn error(status: StatusCode, error: String) -> Response {
    (status, HEADERS, Json(ApiError { error })).into_response()
}

/// The incident and event `posted` names, or what is wrong with it.
fn check(posted: &PostedStatement) -> Result<(IncidentRef, Event), String> {
    check_label(&posted.probe).map_err(|problem| format!("probe: {problem}"))?;
    for region in &posted.regions {
        check_label(region).map_err(|problem| format!("regions: {problem}"))?;
    }
    let event = event_named(&posted.event)
        .filter(|event| *event != Event::Confirm)
        .ok_or("event: one of incident_opened, statement, incident_resolved")?;
    let length = posted.text.chars().count();
    let controls = posted.text.chars().any(|c| c.is_control() && c != '\n');
    if posted.text.trim().is_empty() || length > LONGEST_TEXT || controls {
        return Err(format!(
            "text: 1 to {LONGEST_TEXT} characters, no control characters but newlines"
        ));
    }
    let started_at = humantime::parse_rfc3339(&posted.started_at)
        .map(Timestamp::from_system)
        .map_err(|_| "started_at: an RFC 3339 time in UTC, as /api/incidents gives it (`2026-12-02T16:25:00Z`)")?;
    Ok((
        IncidentRef {
            key: IncidentRef::key_of(&posted.probe, started_at),
            probe: posted.probe.clone(),
            started_at,
            ended_at: None,
            regions: posted.regions.clone(),
        },
        event,
    ))
}

/// `POST /api/statements`.
pub(crate) async fn post_statement(
    State(notify): State<Arc<Notify>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(token) = &notify.operator else {
        return error(
            StatusCode::FORBIDDEN,
            "no operator token is configured: statements cannot be posted".into(),
        );
    };
    if !token.admits(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer TOKEN` with the operator token".into(),
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let posted: PostedStatement = match serde_json::from_slice(&body) {
        Ok(posted) => posted,
        Err(problem) => return error(StatusCode::BAD_REQUEST, format!("bad JSON: {problem}")),
    };
    let (incident, event) = match check(&posted) {
        Ok(checked) => checked,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let mut incident = incident;
    if event == Event::IncidentResolved {
        incident.ended_at = Some(Timestamp::from_unix_seconds(
            u64::try_from(super::unix_now()).unwrap_or(0),
        ));
    }
    let statement = NewStatement {
        incident: &incident,
        event,
        kind: Kind::Operator,
        text: &posted.text,
        at: super::unix_now(),
    };
    match notify.record_statement(&statement).await {
        Ok(recorded) => (
            StatusCode::CREATED,
            HEADERS,
            Json(serde_json::json!({
                "statement": recorded.statement.to_string(),
                "notifications": recorded.notifications,
            })),
        )
            .into_response(),
        Err(problem) => {
            tracing::warn!("notify: {problem}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store cannot be reached: the statement is not recorded".into(),
            )
        }
    }
}
