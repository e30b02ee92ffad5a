//! Webhooks: one JSON POST per event, `{"event", "incident", "statement",
//! "text"}` (the `text` makes Slack's and Mattermost's incoming webhooks
//! take it as it is), signed with `X-Chatprobe-Signature: sha256=HEX`
//! (HMAC-SHA256 of the raw body under the webhook's secret) and named by
//! `X-Chatprobe-Delivery` (the same ID on every retry of one notification).

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::outbox::Statement;
use super::smtp::Sent;
use crate::metrics::Failure;
use crate::status::Timestamp;

/// The longest one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The signature header (**contract**).
pub(crate) const SIGNATURE: &str = "x-chatprobe-signature";
/// The delivery-id header (**contract**).
pub(crate) const DELIVERY: &str = "x-chatprobe-delivery";

/// Posts to webhooks.
#[derive(Debug, Clone)]
pub(crate) struct Poster {
    http: reqwest::Client,
}

/// A webhook body (**contract** shape).
#[derive(Serialize)]
struct Body<'a> {
    event: &'static str,
    incident: serde_json::Value,
    statement: StatementBody<'a>,
    text: String,
}

/// The statement in a webhook body.
#[derive(Serialize)]
struct StatementBody<'a> {
    at: Option<Timestamp>,
    kind: super::outbox::Kind,
    text: &'a str,
}

/// `sha256=HEX`: the signature of `body` under `secret`.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC accepts keys of every length")
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delivery id of `statement` to the webhook at `url`: the same on every attempt.
pub(crate) fn delivery_id(statement: &Statement, url: &str) -> String {
    let url_hash = Sha256::digest(url.as_bytes());
    format!(
        "{:016x}-{}-{}",
        statement.id,
        statement.event.as_str(),
        hex::encode(&url_hash[..6])
    )
}

/// The body of `statement` under the page `title`.
pub(crate) fn body(statement: &Statement, title: &str) -> Result<Vec<u8>, serde_json::Error> {
    let incident: serde_json::Value = serde_json::from_str(&statement.incident_json)?;
    let at = u64::try_from(statement.at)
        .ok()
        .map(Timestamp::from_unix_seconds);
    serde_json::to_vec(&Body {
        event: statement.event.as_str(),
        incident,
        statement: StatementBody {
            at,
            kind: statement.kind,
            text: &statement.text,
        },
        text: format!("{title}: {}", statement.text),
    })
}

impl Poster {
    /// A poster with its own HTTP client (no redirects followed).
    pub(crate) fn new() -> anyhow::Result<Poster> {
        crate::client::init_tls();
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .connect_timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatprobe/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Poster { http })
    }

    /// Posts `body` to `url`, signed under `secret`, as delivery `id`.
    pub(crate) async fn post(&self, url: &str, secret: &[u8], id: &str, body: Vec<u8>) -> Sent {
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE, signature(secret, &body))
            .header(DELIVERY, id)
            .body(body);
        match request.send().await {
            Ok(response) => classify(response.status()),
            Err(error) if error.is_timeout() => Sent::Later(Failure::Timeout, error.to_string()),
            Err(error) => Sent::Later(Failure::Unreachable, error.to_string()),
        }
    }
}

/// What an answer's status means for the notification.
fn classify(status: StatusCode) -> Sent {
    let words = format!("answered {status}");
    if status.is_success() {
        Sent::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Sent::Later(Failure::Temporary, words)
    } else {
        Sent::Refused(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(StatusCode::NO_CONTENT), Sent::Delivered);
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY),
            Sent::Later(Failure::Temporary, _)
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS),
            Sent::Later(Failure::Temporary, _)
        ));
        assert!(matches!(classify(StatusCode::NOT_FOUND), Sent::Refused(_)));
        assert!(matches!(classify(StatusCode::FOUND), Sent::Refused(_)));
    }
}
