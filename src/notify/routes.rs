//! The subscription endpoints (**contract** paths):
//!
//! - `POST /api/subscriptions`, JSON `{"email", "features": [PROBE, ...],
//!   "events": ["opened", "resolved"]}` → 202 (whether or not a mail goes
//!   out: the answer tells nobody whether an address is subscribed);
//! - `POST /subscribe`, the public page's form (fields `email`, `features`
//!   and `events`, each repeatable; same-origin only) → 303 to
//!   `/?subscribed=1`;
//! - `GET /confirm?token=T` → the confirmed page (400 a bad token, 404 an
//!   unknown or expired subscription, 410 one confirmed already);
//! - `GET /unsubscribe?token=T` (a page with a button) and `POST` to the
//!   same URL (RFC 8058 one-click: no origin check, the token is the proof);
//! - `GET /manage?token=T` and `POST` to it (same-origin): the choices;
//! - `POST /api/statements`: the operators' API ([`super::operator`]).
//!
//! All but the last are served only with `notify.smtp` (without it nobody
//! can be mailed).
//! Posts are admitted as reports are ([`crate::reports::routes::admit`]:
//! the global limit, same origin, content type, body cap, the client behind
//! trusted proxies), then limited per client key.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::choices::Choices;
use super::pages;
use super::subscriptions::{self, Subscribed, Subscriber, UNCONFIRMED_FOR};
use super::tokens::{Purpose, Tokens};
use super::{Notify, operator, unix_now};
use crate::reports::Refusal;
use crate::reports::config::canonical;
use crate::reports::origin;
use crate::reports::routes::{ApiError, Encoding, admit, refusal_response};
use crate::status::HEADERS;
use crate::store::StoreError;

/// The longest address taken (RFC 5321's path limit).
const LONGEST_ADDRESS: usize = 254;

/// The routes over `notify`; merge them into the status page's router
/// (served with `ConnectInfo<SocketAddr>`).
pub(crate) fn routes(notify: Arc<Notify>) -> Router {
    let cap = notify.reports.config().limits.max_body_bytes;
    let body_limit = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut router = Router::new().route("/api/statements", post(operator::post_statement));
    // Without an SMTP server nobody can be mailed: no one is asked to subscribe.
    if notify.config.smtp.is_some() {
        router = router
            .route("/api/subscriptions", post(post_json))
            .route("/subscribe", post(post_form))
            .route("/confirm", get(confirm))
            .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
            .route("/manage", get(manage_page).post(manage));
    }
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(notify)
}

/// A subscription as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    email: String,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    events: Vec<String>,
}

/// The form's fields, each repeatable: `email` once, `features` and `events` any number of times.
fn from_form(fields: Vec<(String, String)>) -> Result<Request, String> {
    let mut request = Request {
        email: String::new(),
        features: Vec::new(),
        events: Vec::new(),
    };
    let mut emails = 0;
    for (name, value) in fields {
        match name.as_str() {
            "email" => {
                emails += 1;
                request.email = value;
            }
            "features" => request.features.push(value),
            "events" => request.events.push(value),
            _ => {
                return Err(format!(
                    "unknown field `{}`",
                    name.chars().take(32).collect::<String>()
                ));
            }
        }
    }
    match emails {
        1 => Ok(request),
        _ => Err("give `email` once".into()),
    }
}

/// The address `text` holds, checked and lower-cased.
fn checked_address(text: &str) -> Result<String, String> {
    let address = text.trim();
    let plain = !address.is_empty()
        && address.len() <= LONGEST_ADDRESS
        && !address.chars().any(|c| c.is_control() || c.is_whitespace());
    if !plain {
        return Err("`email` must be one mail address".into());
    }
    address
        .parse::<lettre::Address>()
        .map(|parsed| parsed.to_string().to_lowercase())
        .map_err(|_| "`email` must be one mail address (`name@example.com`)".to_string())
}

/// A store failure, as every endpoint answers it.
fn store_down(error: &StoreError) -> Refusal {
    tracing::warn!("notify: {error}");
    Refusal::StoreDown
}

/// Admits, checks and records one subscription request.
async fn take(
    notify: &Notify,
    request: Request,
    client: crate::reports::client::Client,
) -> Result<Subscribed, Refusal> {
    let now = unix_now();
    let key = notify
        .keys
        .key(&notify.store, now, client.address, &client.user_agent)
        .await
        .map_err(|error| store_down(&error))?;
    notify
        .limits
        .check_reporter(&key)
        .map_err(Refusal::RateLimited)?;
    let email = checked_address(&request.email).map_err(Refusal::Invalid)?;
    let choices = Choices::new(&request.features, &request.events).map_err(Refusal::Invalid)?;
    let subscribed = subscriptions::subscribe(&notify.store, &email, &choices, now)
        .await
        .map_err(|error| store_down(&error))?;
    if subscribed == Subscribed::ConfirmationQueued {
        notify.wake.notify_one();
    }
    Ok(subscribed)
}

/// `POST /api/subscriptions`.
async fn post_json(
    State(notify): State<Arc<Notify>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let config = notify.reports.config();
    let taken = match admit::<Request>(config, &notify.limits, Encoding::Json, peer, &headers, body)
    {
        Ok((client, request)) => take(&notify, request, client).await,
        Err(refusal) => Err(refusal),
    };
    match taken {
        Ok(_) => (
            StatusCode::ACCEPTED,
            HEADERS,
            Json(serde_json::json!({
                "accepted": true,
                "message": "If the address is new, a confirmation mail is on its way: follow its link."
            })),
        )
            .into_response(),
        Err(refusal) => refusal_response(&refusal, Json(ApiError { error: refusal.to_string() })),
    }
}

/// `POST /subscribe`: back to the page, which says to look for the mail.
async fn post_form(
    State(notify): State<Arc<Notify>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let config = notify.reports.config();
    let admitted = admit::<Vec<(String, String)>>(
        config,
        &notify.limits,
        Encoding::Form,
        peer,
        &headers,
        body,
    )
    .and_then(|(client, fields)| {
        from_form(fields)
            .map(|request| (client, request))
            .map_err(Refusal::Invalid)
    });
    let taken = match admitted {
        Ok((client, request)) => take(&notify, request, client).await,
        Err(refusal) => Err(refusal),
    };
    match taken {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            HEADERS,
            [(LOCATION, "/?subscribed=1")],
        )
            .into_response(),
        Err(refusal) => refusal_response(&refusal, format!("{refusal}\n")),
    }
}

/// The `token` query parameter of a link.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: String,
    #[serde(default)]
    saved: Option<String>,
}

/// A page answered with `status`.
fn html(status: StatusCode, page: String) -> Response {
    (status, HEADERS, Html(page)).into_response()
}

/// Why a link opens no subscription.
enum LinkError {
    /// The token is malformed or forged.
    Bad(String),
    /// No such subscription (expired, unsubscribed or bounced).
    Unknown,
    /// The store is down.
    Store,
}

impl LinkError {
    /// The page it is answered with.
    fn response(&self) -> Response {
        match self {
            LinkError::Bad(why) => {
                html(StatusCode::BAD_REQUEST, pages::message("Invalid link", why))
            }
            LinkError::Unknown => html(
                StatusCode::NOT_FOUND,
                pages::message(
                    "No such subscription",
                    "This address is not subscribed: it unsubscribed, or never confirmed within 24 hours.",
                ),
            ),
            LinkError::Store => html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::message(
                    "Try again later",
                    "Subscriptions are unavailable right now.",
                ),
            ),
        }
    }
}

/// The subscriber `token` opens for `purpose`.
async fn subscriber_of(
    notify: &Notify,
    query: &Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    purpose: Purpose,
) -> Result<(Subscriber, String), LinkError> {
    let Ok(Query(query)) = query else {
        return Err(LinkError::Bad("the link has no token".into()));
    };
    let id = Tokens::id_of(&query.token).map_err(|bad| LinkError::Bad(bad.to_string()))?;
    let subscriber = subscriptions::find(&notify.store, id)
        .await
        .map_err(|error| {
            store_down(&error);
            LinkError::Store
        })?
        .ok_or(LinkError::Unknown)?;
    notify
        .tokens
        .check(&query.token, purpose, id, &subscriber.email)
        .map_err(|bad| LinkError::Bad(bad.to_string()))?;
    Ok((subscriber, query.token.clone()))
}

/// `GET /confirm?token=T`.
async fn confirm(
    State(notify): State<Arc<Notify>>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (subscriber, _) = match subscriber_of(&notify, &query, Purpose::Confirm).await {
        Ok(found) => found,
        Err(error) => return error.response(),
    };
    let now = unix_now();
    if subscriber.confirmed_at.is_some() {
        return html(
            StatusCode::GONE,
            pages::message(
                "Already confirmed",
                "This link was used already: the subscription is confirmed.",
            ),
        );
    }
    if now - subscriber.created_at > UNCONFIRMED_FOR {
        return LinkError::Unknown.response();
    }
    match subscriptions::confirm(&notify.store, subscriber.id, now).await {
        Ok(true) => html(
            StatusCode::OK,
            pages::confirmed(&subscriber.choices, &notify.wording),
        ),
        Ok(false) => html(
            StatusCode::GONE,
            pages::message(
                "Already confirmed",
                "This link was used already: the subscription is confirmed.",
            ),
        ),
        Err(error) => {
            store_down(&error);
            LinkError::Store.response()
        }
    }
}

/// `GET /unsubscribe?token=T`: the button.
async fn unsubscribe_page(
    State(notify): State<Arc<Notify>>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match subscriber_of(&notify, &query, Purpose::Unsubscribe).await {
        Ok((_, token)) => html(StatusCode::OK, pages::unsubscribe_form(&token)),
        Err(error) => error.response(),
    }
}

/// `POST /unsubscribe?token=T`: RFC 8058 one-click, or the page's button.
async fn unsubscribe(
    State(notify): State<Arc<Notify>>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let unsubscribed = pages::message("Unsubscribed", "No more mail goes to this address.");
    let subscriber = match subscriber_of(&notify, &query, Purpose::Unsubscribe).await {
        Ok((subscriber, _)) => subscriber,
        // Gone already: a second click is answered as the first.
        Err(LinkError::Unknown) => return html(StatusCode::OK, unsubscribed),
        Err(error) => return error.response(),
    };
    match subscriptions::unsubscribe(&notify.store, subscriber.id).await {
        Ok(()) => html(StatusCode::OK, unsubscribed),
        Err(error) => {
            store_down(&error);
            LinkError::Store.response()
        }
    }
}

/// `GET /manage?token=T`.
async fn manage_page(
    State(notify): State<Arc<Notify>>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let saved = query.as_ref().is_ok_and(|Query(q)| q.saved.is_some());
    match subscriber_of(&notify, &query, Purpose::Manage).await {
        Ok((subscriber, token)) => {
            let unsubscribe =
                notify
                    .tokens
                    .make(Purpose::Unsubscribe, subscriber.id, &subscriber.email);
            html(
                StatusCode::OK,
                pages::manage(
                    &pages::ManageTokens {
                        manage: &token,
                        unsubscribe: &unsubscribe,
                    },
                    &subscriber.choices,
                    &notify.wording,
                    saved,
                ),
            )
        }
        Err(error) => error.response(),
    }
}

/// `POST /manage?token=T`: new choices, from the manage page's form.
async fn manage(
    State(notify): State<Arc<Notify>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (subscriber, token) = match subscriber_of(&notify, &query, Purpose::Manage).await {
        Ok(found) => found,
        Err(error) => return error.response(),
    };
    let config = notify.reports.config();
    let trusted = config.is_trusted(canonical(peer.ip()));
    if !origin::same_origin(&headers, trusted) {
        return refusal_response(&Refusal::CrossSite, format!("{}\n", Refusal::CrossSite));
    }
    let fields = match body
        .map_err(|rejection| rejection.body_text())
        .and_then(|body| {
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
                .map_err(|error| error.to_string())
        }) {
        Ok(fields) => fields,
        Err(why) => return refusal_response(&Refusal::Invalid(why.clone()), format!("{why}\n")),
    };
    let mut features = Vec::new();
    let mut events = Vec::new();
    for (name, value) in fields {
        match name.as_str() {
            "features" => features.push(value),
            "events" => events.push(value),
            _ => {}
        }
    }
    let choices = match Choices::new(&features, &events) {
        Ok(choices) => choices,
        Err(why) => return refusal_response(&Refusal::Invalid(why.clone()), format!("{why}\n")),
    };
    match subscriptions::choose(&notify.store, subscriber.id, &choices).await {
        Ok(()) => (
            StatusCode::SEE_OTHER,
            HEADERS,
            [(LOCATION, format!("/manage?token={token}&saved=1"))],
        )
            .into_response(),
        Err(error) => {
            store_down(&error);
            LinkError::Store.response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_lower_cased() {
        assert_eq!(
            checked_address(" User@Example.COM ").as_deref(),
            Ok("user@example.com")
        );
        for bad in [
            "",
            "user",
            "user@",
            "@example.com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "a@example.com,b@example.com",
            "<a@example.com>",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert!(checked_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_form_takes_repeated_choices_and_one_address() {
        let fields = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let request = from_form(fields(&[
            ("email", "a@example.com"),
            ("features", "group_message"),
            ("features", "leave_group"),
            ("events", "opened"),
        ]))
        .expect("valid");
        assert_eq!(request.features, ["group_message", "leave_group"]);
        assert_eq!(request.events, ["opened"]);
        assert!(
            from_form(fields(&[
                ("email", "a@example.com"),
                ("email", "b@example.com")
            ]))
            .is_err()
        );
        assert!(from_form(fields(&[("features", "group_message")])).is_err());
        assert!(from_form(fields(&[("email", "a@example.com"), ("bcc", "x")])).is_err());
    }
}
