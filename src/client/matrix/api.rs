//! HTTP plumbing for the Matrix client-server API (v3): URLs, one call with
//! its timeout (waiting out rate limits that end within it), and the mapping
//! of transport and Matrix errors onto [`ClientError`]. Access tokens travel
//! only in the `Authorization` header, so no URL or error text ever contains one.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::{ClientError, user_agent};
use crate::outcome::shorten;

/// Longest service error text kept in an error message.
const MAX_ERROR_TEXT: usize = 200;

/// Most times one call is sent again after a rate-limit answer.
const RATE_LIMIT_RETRIES: usize = 3;

/// The wait after a rate-limit answer that names none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a Matrix call failed, before it is folded into a [`ClientError`]:
/// callers that care (login, registration) look at the Matrix `errcode`.
#[derive(Debug)]
pub(super) enum ApiError {
    /// Nothing usable came back (timeout, connection, malformed body).
    Transport(ClientError),
    /// The server answered a Matrix error.
    Matrix {
        /// HTTP status.
        status: u16,
        /// Matrix error code, e.g. `M_FORBIDDEN` (empty when the body had none).
        errcode: String,
        /// The server's error text, shortened.
        message: String,
        /// The whole error body, for user-interactive auth answers.
        body: serde_json::Value,
        /// How long a rate-limit answer (429) asks the client to wait.
        retry_after: Option<Duration>,
    },
}

impl ApiError {
    /// True when this is a Matrix error with code `errcode`.
    pub(super) fn has_code(&self, errcode: &str) -> bool {
        matches!(self, ApiError::Matrix { errcode: code, .. } if code == errcode)
    }
}

impl From<ApiError> for ClientError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Transport(error) => error,
            ApiError::Matrix {
                errcode, message, ..
            } if errcode == "M_UNKNOWN_TOKEN" || errcode == "M_MISSING_TOKEN" => {
                ClientError::Auth(format!("{errcode}: {message}"))
            }
            ApiError::Matrix {
                status,
                errcode,
                message,
                ..
            } => ClientError::Status {
                status,
                message: format!("{errcode}: {message}"),
            },
        }
    }
}

/// Result of one Matrix call.
pub(super) type ApiResult<T> = Result<T, ApiError>;

/// The error body every Matrix error answer carries.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    error: String,
}

/// One homeserver's client-server API, shared by every device of a service.
#[derive(Debug)]
pub(super) struct Api {
    http: reqwest::Client,
    base: Url,
    request_timeout: Duration,
}

impl Api {
    /// An API client for the homeserver at `base` (e.g. `http://127.0.0.1:8008`).
    pub(super) fn new(base: Url, region: &str, request_timeout: Duration) -> reqwest::Result<Self> {
        crate::client::init_tls();
        let http = reqwest::Client::builder()
            .user_agent(user_agent(region))
            .connect_timeout(request_timeout)
            .timeout(request_timeout)
            .build()?;
        Ok(Self {
            http,
            base,
            request_timeout,
        })
    }

    /// The timeout of an ordinary call.
    pub(super) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `/_matrix/client/v3/` followed by `segments`, each percent-encoded.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["_matrix", "client", "v3"])
                .extend(segments);
        }
        url
    }

    /// Builds a request; `token` (a device's access token) goes in the
    /// `Authorization` header.
    pub(super) fn request(&self, method: Method, url: Url, token: Option<&str>) -> Request {
        let mut builder = self.http.request(method, url);
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        Request {
            builder,
            timeout: self.request_timeout,
        }
    }
}

/// One request about to be sent, with the timeout it is bounded by.
pub(super) struct Request {
    builder: reqwest::RequestBuilder,
    timeout: Duration,
}

impl Request {
    /// Sends `body` as JSON.
    pub(super) fn json(mut self, body: &serde_json::Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// Adds query parameters.
    pub(super) fn query(mut self, query: &[(&str, &str)]) -> Self {
        self.builder = self.builder.query(query);
        self
    }

    /// Bounds this request by `timeout` instead of the usual one (long polls).
    pub(super) fn timeout(mut self, timeout: Duration) -> Self {
        self.builder = self.builder.timeout(timeout);
        self.timeout = timeout;
        self
    }

    /// Sends the request and parses a success answer as `T`. A rate-limit
    /// answer is waited out and the request sent again (at most
    /// [`RATE_LIMIT_RETRIES`] times) when the wait leaves at least a quarter
    /// of the request's timeout, counted from the first send, for sending
    /// again; otherwise it is the error.
    pub(super) async fn call<T: DeserializeOwned>(self) -> ApiResult<T> {
        let deadline = Instant::now() + self.timeout;
        let mut builder = self.builder;
        let mut retries = 0;
        loop {
            let again = builder.try_clone();
            let error = match send(builder, self.timeout).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            let resend_at = error
                .retry_after()
                .and_then(|wait| resend_time(wait, self.timeout, deadline));
            match (again, resend_at) {
                (Some(again), Some(at)) if retries < RATE_LIMIT_RETRIES => {
                    tokio::time::sleep_until(at.into()).await;
                    builder = again.timeout(deadline - Instant::now());
                    retries += 1;
                }
                _ => return Err(error),
            }
        }
    }
}

/// When to send again after a rate-limit wait of `wait`: only if that leaves a
/// quarter of `timeout` before `deadline`. A wait too long for `Instant` (a
/// hostile `Retry-After` of ~1e19 seconds) is one too long to wait, not a panic.
fn resend_time(wait: Duration, timeout: Duration, deadline: Instant) -> Option<Instant> {
    let at = Instant::now().checked_add(wait)?;
    let last_send = at.checked_add(timeout / 4)?;
    (last_send <= deadline).then_some(at)
}

/// Sends one request bounded by `timeout` and parses a success answer as `T`.
async fn send<T: DeserializeOwned>(
    builder: reqwest::RequestBuilder,
    timeout: Duration,
) -> ApiResult<T> {
    let transport =
        |error: reqwest::Error| ApiError::Transport(ClientError::from_transport(&error, timeout));
    let response = builder.send().await.map_err(transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = crate::client::read_body(response, timeout)
        .await
        .map_err(ApiError::Transport)?;
    if !status.is_success() {
        return Err(matrix_error(status, &headers, &body));
    }
    serde_json::from_slice(&body).map_err(|error| {
        ApiError::Transport(ClientError::Malformed(format!(
            "HTTP {status} answer does not parse: {error}"
        )))
    })
}

impl ApiError {
    /// How long to wait before sending again, for a rate-limit answer.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Matrix { retry_after, .. } => *retry_after,
            ApiError::Transport(_) => None,
        }
    }
}

/// Reads a Matrix error answer (or whatever a proxy put in its place).
fn matrix_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (errcode, message) = match parsed {
        Some(parsed) => (parsed.errcode, parsed.error),
        None => (String::new(), String::from_utf8_lossy(body).into_owned()),
    };
    let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    ApiError::Matrix {
        status: status.as_u16(),
        errcode,
        message: shorten(&message, MAX_ERROR_TEXT),
        retry_after: (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| rate_limit_wait(headers, &body)),
        body,
    }
}

/// The wait a 429 answer asks for: `retry_after_ms` in its body, else the
/// `Retry-After` header (seconds), else [`DEFAULT_RETRY_AFTER`].
fn rate_limit_wait(headers: &HeaderMap, body: &serde_json::Value) -> Duration {
    let from_body = body["retry_after_ms"].as_u64().map(Duration::from_millis);
    let from_header = || {
        let seconds = headers
            .get(RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(Duration::from_secs(seconds))
    };
    from_body
        .or_else(from_header)
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        let base = Url::parse("http://127.0.0.1:8008/").expect("literal URL");
        Api::new(base, "test", Duration::from_secs(1)).expect("client builds")
    }

    #[test]
    fn url_encodes_room_ids_as_one_segment() {
        let url = api().url(&["rooms", "!abc/def:localhost", "state", "m.room.name", ""]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8008/_matrix/client/v3/rooms/!abc%2Fdef:localhost/state/m.room.name/"
        );
    }

    fn error(status: u16, body: &[u8]) -> ApiError {
        let status = StatusCode::from_u16(status).expect("valid status");
        matrix_error(status, &HeaderMap::new(), body)
    }

    #[test]
    fn unknown_token_is_an_auth_error_and_others_keep_their_status() {
        let unknown = error(401, br#"{"errcode":"M_UNKNOWN_TOKEN","error":"gone"}"#);
        assert!(matches!(ClientError::from(unknown), ClientError::Auth(_)));
        let forbidden = error(403, br#"{"errcode":"M_FORBIDDEN","error":"no"}"#);
        assert!(forbidden.has_code("M_FORBIDDEN"));
        assert_eq!(forbidden.retry_after(), None);
        assert!(matches!(
            ClientError::from(forbidden),
            ClientError::Status { status: 403, .. }
        ));
        let proxy = error(502, b"<html>bad gateway</html>");
        assert!(matches!(
            ClientError::from(proxy),
            ClientError::Status { status: 502, ref message } if message.contains("bad gateway")
        ));
    }

    #[test]
    fn a_rate_limit_answer_names_its_wait() {
        let limited =
            br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}"#;
        assert_eq!(
            error(429, limited).retry_after(),
            Some(Duration::from_millis(1500))
        );
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().expect("header value"));
        let by_header = matrix_error(StatusCode::TOO_MANY_REQUESTS, &headers, b"{}");
        assert_eq!(by_header.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(error(429, b"").retry_after(), Some(DEFAULT_RETRY_AFTER));
        assert!(matches!(
            ClientError::from(error(429, limited)),
            ClientError::Status { status: 429, ref message } if message.contains("M_LIMIT_EXCEEDED")
        ));
    }

    #[test]
    fn an_absurd_rate_limit_wait_is_no_retry_and_no_panic() {
        let huge = br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":18446744073709551615}"#;
        let wait = error(429, huge).retry_after().expect("a wait");
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(resend_time(wait, Duration::from_secs(10), deadline), None);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "18446744073709551615".parse().expect("header"));
        let by_header = matrix_error(StatusCode::TOO_MANY_REQUESTS, &headers, b"{}");
        let wait = by_header.retry_after().expect("a wait");
        assert_eq!(resend_time(wait, Duration::from_secs(10), deadline), None);
        let short = resend_time(Duration::from_millis(10), Duration::from_secs(1), deadline);
        assert!(short.is_some());
    }

    #[test]
    fn long_error_text_is_shortened() {
        let text = "x".repeat(1000);
        let long = error(500, text.as_bytes());
        assert!(matches!(
            ClientError::from(long),
            ClientError::Status { ref message, .. } if message.chars().count() == 2 + MAX_ERROR_TEXT + 1
        ));
    }
}
