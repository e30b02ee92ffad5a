//! Starts the mock backend in-process on 127.0.0.1:0 and talks to it over real
//! HTTP and WebSocket, for the backend integration tests; runs it on its own
//! runtime for tests that are not async; changes the faults of a backend in
//! another process.

use std::path::Path;
use std::time::Duration;

use chatprobe::backend::load_faults;
use chatprobe::backend::{self, BackendConfig, BackendHandle};
use chatprobe::protocol::{Event, EventKind, LoginResponse, REGION_HEADER, SyncResponse};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

/// Generous bound for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure that nothing (more) arrives.
pub const QUIET: Duration = Duration::from_millis(300);

/// A backend running in this test process.
pub struct TestBackend {
    /// The running server.
    pub handle: BackendHandle,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

/// One logged-in device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its device id.
    pub device_id: String,
    /// Its bearer token.
    pub token: String,
    /// Cursor at login.
    pub cursor: u64,
    /// Region header it sends.
    pub region: String,
}

/// An open push connection.
pub struct Push {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestBackend {
    /// Start with default config on an ephemeral port.
    pub async fn start() -> TestBackend {
        TestBackend::start_with(BackendConfig::ephemeral()).await
    }

    /// Start with `config` (its `listen` should be port 0).
    pub async fn start_with(config: BackendConfig) -> TestBackend {
        chatprobe::client::init_tls();
        let handle = backend::start(config).await.expect("backend starts");
        let base = format!("http://{}", handle.addr());
        let http = reqwest::Client::builder()
            .timeout(PATIENCE)
            .build()
            .expect("http client");
        TestBackend { handle, base, http }
    }

    /// A raw request: method, path, optional bearer token, region, optional JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        region: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(REGION_HEADER, region);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request answered");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A request as `device` (its token and region).
    pub async fn call(
        &self,
        device: &Device,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request(method, path, Some(&device.token), &device.region, body)
            .await
    }

    /// Log in `user` (password `pw-USER`) from `region`.
    pub async fn login(&self, user: &str, region: &str) -> Device {
        let body = json!({"user": user, "password": format!("pw-{user}")});
        let (status, value) = self
            .request(Method::POST, "/api/v1/login", None, region, Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "login of {user}: {value}");
        let answer: LoginResponse = serde_json::from_value(value).expect("login answer");
        Device {
            device_id: answer.device_id,
            token: answer.token,
            cursor: answer.cursor,
            region: region.to_string(),
        }
    }

    /// Create a group named `name` by `creator` with `members`; answers its id.
    pub async fn create_group(&self, creator: &Device, name: &str, members: &[&str]) -> String {
        let body = json!({"name": name, "notice": "", "members": members});
        let (status, value) = self
            .call(creator, Method::POST, "/api/v1/groups", Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "create group: {value}");
        value["id"].as_str().expect("group id").to_string()
    }

    /// Send `body` with idempotency key `key`; answers status and message JSON.
    pub async fn send(
        &self,
        device: &Device,
        group: &str,
        key: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let request = json!({"idempotency_key": key, "body": body});
        self.call(
            device,
            Method::POST,
            &format!("/api/v1/groups/{group}/messages"),
            Some(request),
        )
        .await
    }

    /// The device's events after `since`.
    pub async fn sync(&self, device: &Device, since: u64) -> SyncResponse {
        let (status, value) = self
            .call(
                device,
                Method::GET,
                &format!("/api/v1/sync?since={since}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "sync: {value}");
        serde_json::from_value(value).expect("sync answer")
    }

    /// Open the device's push stream.
    pub async fn push(&self, device: &Device) -> Push {
        let url = format!("ws://{}/api/v1/push", self.handle.addr());
        let mut request =
            tungstenite::client::IntoClientRequest::into_client_request(url).expect("ws request");
        let headers = request.headers_mut();
        headers.insert(REGION_HEADER, device.region.parse().expect("region header"));
        let bearer = format!("Bearer {}", device.token);
        headers.insert("authorization", bearer.parse().expect("token header"));
        let (stream, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .expect("push connects in time")
            .expect("push connects");
        Push { stream }
    }

    /// Replace the faults through the admin API.
    pub async fn set_faults(&self, faults: Value) {
        let (status, value) = self
            .request(Method::PUT, "/admin/faults", None, "default", Some(faults))
            .await;
        assert_eq!(status, StatusCode::OK, "PUT /admin/faults: {value}");
    }

    /// `/admin/stats`.
    pub async fn stats(&self) -> Value {
        let (status, value) = self
            .request(Method::GET, "/admin/stats", None, "default", None)
            .await;
        assert_eq!(status, StatusCode::OK, "stats: {value}");
        value
    }
}

impl Push {
    /// The next event, or `None` if nothing arrives within `wait` or the stream ends.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        loop {
            let frame = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??;
            match frame {
                Ok(tungstenite::Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("event JSON"));
                }
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next event; fails the test if none comes in time.
    pub async fn next(&mut self) -> Event {
        self.next_within(PATIENCE).await.expect("an event arrives")
    }

    /// Events until the stream stays quiet for [`QUIET`].
    pub async fn drain(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = self.next_within(QUIET).await {
            events.push(event);
            assert!(events.len() < 10_000, "runaway push stream");
        }
        events
    }

    /// The next message event's body, skipping other events.
    pub async fn next_message_body(&mut self) -> String {
        for _ in 0..1000 {
            if let EventKind::Message { message } = self.next().await.kind {
                return message.body;
            }
        }
        panic!("no message among 1000 events");
    }

    /// Whether the server closed or dropped the connection within `wait`
    /// (events still arriving before the end are skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// Bodies of the message events among `events`, in order.
pub fn message_bodies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Message { message } => Some(message.body.clone()),
            _ => None,
        })
        .collect()
}

/// The mock backend in this test process on a runtime of its own, for tests
/// that are not async; stopped when dropped.
pub struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    handle: Option<BackendHandle>,
    runtime: tokio::runtime::Runtime,
}

impl Backend {
    /// Starts it without faults.
    pub fn start() -> Backend {
        Backend::start_with(BackendConfig::ephemeral())
    }

    /// Starts it with the faults of the faults file `faults`.
    pub fn with_faults(faults: &Path) -> Backend {
        let faults = load_faults(faults)
            .unwrap_or_else(|error| panic!("faults file {}: {error}", faults.display()));
        Backend::start_with(BackendConfig {
            faults,
            ..BackendConfig::ephemeral()
        })
    }

    fn start_with(config: BackendConfig) -> Backend {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the backend");
        let started = runtime.block_on(TestBackend::start_with(config));
        Backend {
            url: started.base,
            handle: Some(started.handle),
            runtime,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let stop =
                async { tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await };
            let _ = self.runtime.block_on(stop);
        }
    }
}

/// A fault that makes every `send` from `regions` answer 503 (reason `http_error`).
pub fn send_outage(regions: &[&str]) -> Value {
    json!([{
        "name": "send-outage",
        "operations": ["send"],
        "regions": regions,
        "effect": "error",
        "status": 503,
    }])
}

/// Replaces the faults of the backend at `backend_url` (`PUT /admin/faults`);
/// an empty array removes them.
pub async fn put_faults(http: &reqwest::Client, backend_url: &str, faults: &Value) {
    let url = format!("{backend_url}/admin/faults");
    let response = http
        .put(&url)
        .json(faults)
        .send()
        .await
        .unwrap_or_else(|error| panic!("PUT {url}: {error}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "PUT {url} {faults}: {status}: {body}");
}
