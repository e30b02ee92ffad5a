//! One push over HTTP, as remote write 1.0 asks (`POST`, `Content-Encoding:
//! snappy`, `Content-Type: application/x-protobuf`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`), and what its answer means
//! for the batch: delivered, to be retried (5xx, 429, no connection, a
//! timeout: when, from `Retry-After` or the backoff), or refused for good
//! (any other answer). Every step has a timeout.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::RemoteWriteConfig;
use crate::config::remote_write::TlsFiles;
use crate::credentials::{Auth, CredentialError};

/// Longest wait for a connection to the receiver.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one whole push, its answer read.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry's wait; each failure in a row doubles it.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between retries the backoff reaches.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(5 * 60);
/// How much of a refusal's body is logged.
const ANSWER_SHOWN: usize = 512;

/// What the receiver made of one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Accepted (2xx).
    Accepted,
    /// Not now: send the batch again after `after` (from `Retry-After`) or the backoff.
    Retry {
        /// The receiver's `Retry-After`, when it gave one.
        after: Option<Duration>,
        /// What happened, for the log.
        reason: String,
    },
    /// Refused for good: the batch is dropped.
    Refused {
        /// The status and the start of the receiver's answer.
        reason: String,
    },
}

/// Why a receiver's client could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// A TLS file could not be read or parsed.
    #[error("{path}: {reason}")]
    Tls {
        /// The file.
        path: String,
        /// Why not.
        reason: String,
    },
    /// reqwest refused the settings.
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// Pushes to one receiver.
pub(crate) struct Sender {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    auth: Auth,
}

impl Sender {
    /// A sender for `config`, saying `region` in its `User-Agent`.
    pub(crate) fn new(config: &RemoteWriteConfig, region: &str) -> Result<Sender, ClientError> {
        crate::client::init_tls();
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(crate::client::user_agent(region));
        let client = with_tls(builder, &config.tls)?
            .build()
            .map_err(|err| ClientError::Build(crate::client::error_chain(&err)))?;
        Ok(Sender {
            client,
            url: config.url.clone(),
            headers: headers(config),
            auth: config.auth.clone(),
        })
    }

    /// Sends one compressed `WriteRequest`.
    pub(crate) async fn send(&self, body: Bytes) -> Answer {
        let request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body);
        let request = match self.auth.apply(request) {
            Ok(request) => request,
            Err(err) => return credential_missing(&err),
        };
        match request.send().await {
            Ok(response) => answer_of(response).await,
            Err(err) => Answer::Retry {
                after: None,
                reason: crate::client::error_chain(&err),
            },
        }
    }
}

/// A credential that cannot be read now is retried: it may come back (a
/// secret being rotated).
fn credential_missing(err: &CredentialError) -> Answer {
    Answer::Retry {
        after: None,
        reason: format!("credential: {err}"),
    }
}

/// The protocol's headers and the entry's own.
fn headers(config: &RemoteWriteConfig) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    headers.insert(
        HeaderName::from_static("x-prometheus-remote-write-version"),
        HeaderValue::from_static("0.1.0"),
    );
    for (name, value) in &config.headers {
        // Both were checked when the config was read.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

/// `builder` trusting only the CA file's certificates and presenting the
/// client certificate, when the entry names them.
fn with_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsFiles,
) -> Result<reqwest::ClientBuilder, ClientError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|err| ClientError::Tls {
            path: path.display().to_string(),
            reason: err.to_string(),
        })
    };
    let invalid = |path: &std::path::Path, err: reqwest::Error| ClientError::Tls {
        path: path.display().to_string(),
        reason: crate::client::error_chain(&err),
    };
    if let Some(ca_file) = &tls.ca_file {
        let certificates = reqwest::Certificate::from_pem_bundle(&read(ca_file)?)
            .map_err(|err| invalid(ca_file, err))?;
        builder = builder.tls_certs_only(certificates);
    }
    if let Some((cert_file, key_file)) = &tls.client {
        let mut pem = read(cert_file)?;
        pem.push(b'\n');
        pem.extend(read(key_file)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|err| invalid(cert_file, err))?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// What `response` means for its batch.
async fn answer_of(response: reqwest::Response) -> Answer {
    let status = response.status();
    if status.is_success() {
        return Answer::Accepted;
    }
    let after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| retry_after(value, SystemTime::now()));
    let body = match response.bytes().await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(err) => format!("(answer unread: {})", crate::client::error_chain(&err)),
    };
    let reason = format!("answered {status}: {}", shorten(body.trim()));
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Answer::Retry { after, reason }
    } else {
        Answer::Refused { reason }
    }
}

/// At most [`ANSWER_SHOWN`] bytes of `text`, cut at a character boundary.
fn shorten(text: &str) -> &str {
    let mut end = text.len().min(ANSWER_SHOWN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The wait a `Retry-After` value asks for (seconds, or an HTTP date
/// after `now`), at most [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(text)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The wait after `failures` failed attempts in a row (≥ 1): [`MIN_BACKOFF`]
/// doubled each time, at most [`MAX_BACKOFF`].
pub(crate) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    MIN_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        assert_eq!(retry_after(&header("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&header("86400"), now), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(&header(&later), now),
            Some(Duration::from_secs(7))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(retry_after(&header(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&header("soon"), now), None);
    }

    #[test]
    fn a_long_answer_is_cut_at_a_character() {
        let text = "é".repeat(400);
        let short = shorten(&text);
        assert!(short.len() <= ANSWER_SHOWN && text.starts_with(short));
    }
}
