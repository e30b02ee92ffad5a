//! `POST /operators/publish`: the operators' page's publish action. With
//! `notify.publish: manual` drafted statements wait on `/operators`, each
//! with a form (fields `incident`, its key `PROBE@STARTED`, and `token`,
//! the operator token). The page records the statement the incident is due
//! now, worded as the page drafts it, with its notifications, and answers
//! 303 back to `/operators`: 401 without the right token, 403 when no token
//! is configured or the post is cross-site, 404 for an incident that cannot
//! get a statement, 409 when nothing is due, 503 when the store is down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::refresher::unix_now;
use super::routes::Page;
use super::statements::{self, key_of};
use crate::notify::{Notify, outbox};
use crate::reports::routes::{Encoding, admit, refusal_response};
use crate::status::HEADERS;

/// An answer in plain text.
fn answer(status: StatusCode, text: &str) -> Response {
    (status, HEADERS, format!("{text}\n")).into_response()
}

/// The form's fields: the incident's key and the token.
fn fields_of(fields: &[(String, String)]) -> (Option<&str>, Option<&str>) {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    (field("incident"), field("token"))
}

/// `POST /operators/publish`.
pub(crate) async fn publish(
    State(page): State<Arc<Page>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(notify) = &page.notify else {
        return answer(
            StatusCode::NOT_FOUND,
            "this page publishes no statements: configure notify",
        );
    };
    let admitted = admit::<Vec<(String, String)>>(
        notify.reports.config(),
        &notify.limits,
        Encoding::Form,
        peer,
        &headers,
        body,
    );
    let fields = match admitted {
        Ok((_, fields)) => fields,
        Err(refusal) => return refusal_response(&refusal, format!("{refusal}\n")),
    };
    let (incident, token) = fields_of(&fields);
    let Some(operator) = &notify.operator else {
        return answer(
            StatusCode::FORBIDDEN,
            "no operator token is configured: statements cannot be published",
        );
    };
    if !token.is_some_and(|token| operator.is(token.trim())) {
        return answer(StatusCode::UNAUTHORIZED, "give the operator token");
    }
    match incident {
        Some(key) => publish_due(&page, notify, key).await,
        None => answer(StatusCode::BAD_REQUEST, "incident: the incident's key"),
    }
}

/// Records the statement the incident `key` is due, if any.
async fn publish_due(page: &Page, notify: &Notify, key: &str) -> Response {
    let shown = Arc::clone(&page.shown.borrow());
    let now = unix_now();
    let Some(incident) = statements::open_to_statements(&shown.view.incidents, now)
        .find(|incident| key_of(incident) == key)
    else {
        return answer(
            StatusCode::NOT_FOUND,
            &format!("no incident {key} can get a statement now"),
        );
    };
    let said = match outbox::timelines(&notify.store, &[key.to_owned()]).await {
        Ok(mut said) => said.remove(key).unwrap_or_default(),
        Err(error) => return store_down(&error),
    };
    let Some(draft) = statements::pending(incident, &said, &page.public, Duration::ZERO, now)
    else {
        return answer(
            StatusCode::CONFLICT,
            &format!("nothing to publish for {key}: its statement is out already"),
        );
    };
    match statements::record(notify, incident, &draft, now).await {
        Ok(recorded) => {
            tracing::info!(
                "an operator published statement {} of {key} ({} notifications)",
                recorded.statement,
                recorded.notifications
            );
            (StatusCode::SEE_OTHER, HEADERS, [(LOCATION, "/operators")]).into_response()
        }
        Err(error) => store_down(&error),
    }
}

/// The store failed: 503.
fn store_down(error: &crate::store::StoreError) -> Response {
    tracing::warn!("cannot publish a statement: {error}");
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot be written right now: try again",
    )
}
