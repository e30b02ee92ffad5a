//! Talking to the processes under test over HTTP: a blocking GET for the
//! tests that are not async, `reqwest` helpers for those that are, and
//! reading a Prometheus exposition.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a blocking poll keeps asking.
const POLL_PATIENCE: Duration = Duration::from_secs(60);
/// Timeout of one request of the async helpers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A minimal HTTP/1.0 GET over a plain socket: status code and body; status
/// 0 when nothing answered.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    attempt().unwrap_or((0, String::new()))
}

/// Polls `GET path` on `addr` until `accept` says yes (for up to a minute); the last answer.
pub fn poll_get(addr: SocketAddr, path: &str, accept: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + POLL_PATIENCE;
    loop {
        let (status, body) = http_get(addr, path);
        if accept(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the series `series` (name with labels, exactly as exported)
/// in a Prometheus exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// An async HTTP client for loopback servers (plain HTTP, bounded requests).
pub fn http_client() -> reqwest::Client {
    chatprobe::client::init_tls();
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client can be built")
}

/// GET `url` and its body as text, or why not.
pub async fn get_text(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| format!("GET {url}: body: {error}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("GET {url}: {status}: {body}"))
    }
}

/// GET `url` as JSON, or why not.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let body = get_text(http, url).await?;
    serde_json::from_str(&body).map_err(|error| format!("GET {url}: not JSON ({error}): {body}"))
}

/// Polls `check` every `every` until it returns `Ok`, for at most `limit`;
/// panics naming `what` (and the last state seen) when time runs out.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(state) => state,
        };
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(every).await;
    }
}
