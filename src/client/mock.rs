//! The mock backend's protocol ([`crate::protocol`]): JSON over HTTP with
//! reqwest, push over WebSocket with tokio-tungstenite.
//!
//! Every request (the WebSocket upgrade too) carries the agent's
//! `User-Agent` and its region in [`protocol::REGION_HEADER`]. Each device's
//! push connection is read by a small task of its own that stamps every frame
//! with the instant it was read, so latencies do not depend on when the probe
//! looks. Buffers are kept small: one agent holds thousands of devices.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};

use super::{
    Account, ChatService, ClientError, ClientResult, Delivered, Device, Event, GroupId, GroupInfo,
    GroupSettings, MessageId, Reach, ReceivedMessage, SetupError, TargetProtocol, UserId, init_tls,
    read_body, user_agent,
};
use crate::outcome::shorten;
use crate::protocol::{self, route};
use crate::yaml::values::HttpUrl;

/// Frames a device's push reader may hold before it waits for the probe.
/// Far above what one run can push to a device (validation allows 100
/// messages and 50 members), so the reader never stalls and every frame
/// keeps the instant it was read; the queue allocates only as frames arrive,
/// and the bound only stops a flooding service.
const PUSH_QUEUE: usize = 8192;
/// Read buffer of one push connection (tungstenite allocates it eagerly).
const PUSH_READ_BUFFER: usize = 4 * 1024;
/// Largest push frame accepted.
const PUSH_MAX_FRAME: usize = 1024 * 1024;
/// Longest error text kept from an error answer.
const ERROR_TEXT_MAX: usize = 200;

/// What one service client shares with all its devices.
struct Shared {
    http: reqwest::Client,
    base_url: String,
    push_url: String,
    region: HeaderValue,
    user_agent: HeaderValue,
    timeout: Duration,
}

impl Shared {
    /// A request to `path` with the agent's headers and timeout.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header(reqwest::header::USER_AGENT, self.user_agent.clone())
            .header(protocol::REGION_HEADER, self.region.clone())
            .timeout(self.timeout)
    }
}

/// The fields of a `kind: mock` target besides the shared ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockTarget {
    /// Base URL of the backend, e.g. `http://127.0.0.1:8080`.
    pub url: HttpUrl,
}

impl TargetProtocol for MockTarget {
    const KIND: &'static str = "mock";

    fn build(&self, reach: Reach<'_>) -> Result<Arc<dyn ChatService>, SetupError> {
        let service = MockService::new(&self.url.0, reach.region, reach.request_timeout)?;
        Ok(Arc::new(service))
    }
}

/// The mock group-chat service, as seen from one region.
pub struct MockService {
    shared: Arc<Shared>,
}

impl MockService {
    /// A client for the mock service at `base_url` (`http://host:port`), acting
    /// from `region`; every request is bounded by `request_timeout`.
    pub fn new(base_url: &str, region: &str, request_timeout: Duration) -> ClientResult<Self> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let push_url = push_url(&base_url)?;
        Ok(MockService {
            shared: Arc::new(Shared {
                http: shared_http_client()?,
                base_url,
                push_url,
                region: header_value(region)?,
                user_agent: header_value(&user_agent(region))?,
                timeout: request_timeout,
            }),
        })
    }
}

/// The process-wide HTTP client (one connection pool for every service
/// client): building one loads the TLS roots, which is too slow to repeat
/// per probe. Headers and timeouts are set per request.
fn shared_http_client() -> ClientResult<reqwest::Client> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            init_tls();
            reqwest::Client::builder()
                .build()
                .map_err(|err| format!("cannot build HTTP client: {err}"))
        })
        .clone()
        .map_err(ClientError::Connect)
}

/// `ws://host:port/api/v1/push` for `http://host:port`.
fn push_url(base_url: &str) -> ClientResult<String> {
    let rest = if let Some(rest) = base_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(ClientError::Connect(format!(
            "base URL `{base_url}` must start with http:// or https://"
        )));
    };
    Ok(format!("{rest}{}", route::PUSH))
}

fn header_value(text: &str) -> ClientResult<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| ClientError::Connect(format!("`{text}` is not a valid header value")))
}

#[async_trait]
impl ChatService for MockService {
    async fn login(&self, account: &Account) -> ClientResult<Box<dyn Device>> {
        let body = protocol::LoginRequest {
            user: account.user.clone(),
            password: account.password.clone(),
        };
        let request = self.shared.request(Method::POST, route::LOGIN).json(&body);
        let login: protocol::LoginResponse = call(request, self.shared.timeout).await?;
        let auth = header_value(&format!("Bearer {}", login.token))?;
        Ok(Box::new(MockDevice {
            shared: Arc::clone(&self.shared),
            user: login.user,
            device_id: login.device_id,
            auth,
            sync_cursor: login.cursor,
            push: None,
        }))
    }
}

/// One logged-in device of the mock service.
struct MockDevice {
    shared: Arc<Shared>,
    user: UserId,
    device_id: String,
    auth: HeaderValue,
    sync_cursor: u64,
    push: Option<Push>,
}

/// An open push connection: its reader task and what it has read.
struct Push {
    frames: mpsc::Receiver<(Instant, Utf8Bytes)>,
    reader: JoinHandle<()>,
}

impl Drop for Push {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl MockDevice {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.shared
            .request(method, path)
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
    }

    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> ClientResult<T> {
        call(request, self.shared.timeout).await
    }

    async fn call_json<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> ClientResult<()> {
        let request = self.request(method, path).json(body);
        answer(request, self.shared.timeout).await.map(drop)
    }

    /// Forgets a push connection that ended.
    fn push_closed(&mut self) -> ClientError {
        self.push = None;
        ClientError::Connect("push connection closed".into())
    }

    async fn open_push(&self) -> ClientResult<Push> {
        let mut request = self
            .shared
            .push_url
            .as_str()
            .into_client_request()
            .map_err(|err| ClientError::Connect(format!("push URL: {err}")))?;
        let headers = request.headers_mut();
        headers.insert(reqwest::header::AUTHORIZATION, self.auth.clone());
        headers.insert(reqwest::header::USER_AGENT, self.shared.user_agent.clone());
        headers.insert(
            HeaderName::from_static(protocol::REGION_HEADER),
            self.shared.region.clone(),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(PUSH_READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(PUSH_MAX_FRAME))
            .max_frame_size(Some(PUSH_MAX_FRAME));
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (socket, _) = tokio::time::timeout(self.shared.timeout, connecting)
            .await
            .map_err(|_| ClientError::Timeout(self.shared.timeout))?
            .map_err(push_error)?;
        let (sender, frames) = mpsc::channel(PUSH_QUEUE);
        let reader = tokio::spawn(read_push(socket, sender));
        Ok(Push { frames, reader })
    }
}

/// Forwards every text frame with the instant it was read, until the
/// connection ends or the device stops listening.
async fn read_push<S>(mut socket: S, frames: mpsc::Sender<(Instant, Utf8Bytes)>)
where
    S: futures_util::Stream<Item = Result<WsMessage, tungstenite::Error>> + Unpin,
{
    while let Some(Ok(message)) = socket.next().await {
        let received_at = Instant::now();
        let delivered = match message {
            WsMessage::Text(text) => frames.send((received_at, text)).await.is_ok(),
            WsMessage::Close(_) => false,
            _ => true,
        };
        if !delivered {
            return;
        }
    }
}

fn push_error(err: tungstenite::Error) -> ClientError {
    match err {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            status_error(response.status().as_u16(), &body)
        }
        other => ClientError::Connect(format!("push connection: {other}")),
    }
}

/// Sends `request` and parses its JSON answer.
async fn call<T: DeserializeOwned>(request: RequestBuilder, timeout: Duration) -> ClientResult<T> {
    let body = answer(request, timeout).await?;
    serde_json::from_slice(&body).map_err(|err| ClientError::Malformed(err.to_string()))
}

/// Sends `request`; the body of a success answer, else the error it maps to.
async fn answer(request: RequestBuilder, timeout: Duration) -> ClientResult<bytes::Bytes> {
    let response = request
        .send()
        .await
        .map_err(|err| ClientError::from_transport(&err, timeout))?;
    let status = response.status();
    let body = read_body(response, timeout).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(status_error(
            status.as_u16(),
            &String::from_utf8_lossy(&body),
        ))
    }
}

fn status_error(status: u16, body: &str) -> ClientError {
    let message = serde_json::from_str::<protocol::ErrorBody>(body).map_or_else(
        |_| shorten(body, ERROR_TEXT_MAX),
        |parsed| shorten(&parsed.error, ERROR_TEXT_MAX),
    );
    if status == StatusCode::UNAUTHORIZED.as_u16() {
        ClientError::Auth(message)
    } else {
        ClientError::Status { status, message }
    }
}

/// The client's view of one wire event.
fn convert(kind: protocol::EventKind) -> Event {
    match kind {
        protocol::EventKind::Message { message } => Event::Message(ReceivedMessage {
            id: message.id,
            group: message.group_id,
            sender: message.sender,
            body: message.body,
        }),
        protocol::EventKind::MemberJoined { group_id, user } => Event::MemberJoined {
            group: group_id,
            user,
        },
        protocol::EventKind::MemberLeft { group_id, user } => Event::MemberLeft {
            group: group_id,
            user,
        },
        protocol::EventKind::SettingsChanged {
            group_id,
            name,
            notice,
            ..
        } => Event::SettingsChanged {
            group: group_id,
            name: Some(name),
            notice: Some(notice),
        },
    }
}

fn group_info(group: protocol::Group) -> GroupInfo {
    GroupInfo {
        id: group.id,
        settings: GroupSettings {
            name: group.name,
            notice: group.notice,
        },
        members: group.members,
    }
}

fn group_path(template: &str, group: &str) -> String {
    template.replace("{id}", group)
}

#[async_trait]
impl Device for MockDevice {
    fn user_id(&self) -> &str {
        &self.user
    }

    fn device_id(&self) -> &str {
        &self.device_id
    }

    async fn connect(&mut self) -> ClientResult<()> {
        self.push = None;
        self.push = Some(self.open_push().await?);
        Ok(())
    }

    async fn disconnect(&mut self) {
        self.push = None;
    }

    async fn next_event(&mut self, until: Instant) -> ClientResult<Option<Delivered>> {
        let Some(push) = self.push.as_mut() else {
            return Err(ClientError::Connect("push connection is not open".into()));
        };
        // A frame already read, or a wait that is already over, needs no timer
        // (registering one wakes the runtime's driver).
        let ready = match push.frames.try_recv() {
            Ok(frame) => Some(frame),
            Err(mpsc::error::TryRecvError::Empty) if Instant::now() >= until => return Ok(None),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(self.push_closed()),
        };
        let frame = match ready {
            Some(frame) => frame,
            None => match tokio::time::timeout_at(until.into(), push.frames.recv()).await {
                Err(_) => return Ok(None),
                Ok(Some(frame)) => frame,
                Ok(None) => return Err(self.push_closed()),
            },
        };
        let (received_at, text) = frame;
        let event: protocol::Event = serde_json::from_str(&text)
            .map_err(|err| ClientError::Malformed(format!("push frame: {err}")))?;
        Ok(Some(Delivered {
            event: convert(event.kind),
            received_at,
        }))
    }

    async fn sync(&mut self) -> ClientResult<Vec<Delivered>> {
        let request = self
            .request(Method::GET, route::SYNC)
            .query(&[("since", self.sync_cursor)]);
        let answer: protocol::SyncResponse = self.call(request).await?;
        let received_at = Instant::now();
        self.sync_cursor = self.sync_cursor.max(answer.next_cursor);
        Ok(answer
            .events
            .into_iter()
            .map(|event| Delivered {
                event: convert(event.kind),
                received_at,
            })
            .collect())
    }

    async fn send(&self, group: &str, txn: &str, body: &str) -> ClientResult<MessageId> {
        let request = protocol::SendRequest {
            idempotency_key: txn.to_string(),
            body: body.to_string(),
        };
        let path = group_path(route::MESSAGES, group);
        let message: protocol::Message = self
            .call(self.request(Method::POST, &path).json(&request))
            .await?;
        Ok(message.id)
    }

    async fn list_groups(&self) -> ClientResult<Vec<GroupId>> {
        let list: protocol::GroupList = self.call(self.request(Method::GET, route::GROUPS)).await?;
        Ok(list.groups.into_iter().map(|group| group.id).collect())
    }

    async fn read_group(&self, group: &str) -> ClientResult<GroupInfo> {
        let path = group_path(route::GROUP, group);
        let read: protocol::Group = self.call(self.request(Method::GET, &path)).await?;
        Ok(group_info(read))
    }

    async fn create_group(
        &self,
        settings: &GroupSettings,
        members: &[UserId],
    ) -> ClientResult<GroupId> {
        let body = protocol::CreateGroupRequest {
            name: settings.name.clone(),
            notice: settings.notice.clone(),
            members: members.to_vec(),
        };
        let created: protocol::Group = self
            .call(self.request(Method::POST, route::GROUPS).json(&body))
            .await?;
        Ok(created.id)
    }

    async fn join_group(&self, group: &str) -> ClientResult<()> {
        self.call_json(
            Method::POST,
            &group_path(route::JOIN, group),
            &serde_json::json!({}),
        )
        .await
    }

    async fn add_member(&self, group: &str, user: &str) -> ClientResult<()> {
        let body = protocol::AddMemberRequest {
            user: user.to_string(),
        };
        self.call_json(Method::POST, &group_path(route::MEMBERS, group), &body)
            .await
    }

    async fn leave(&self, group: &str) -> ClientResult<()> {
        self.call_json(
            Method::POST,
            &group_path(route::LEAVE, group),
            &serde_json::json!({}),
        )
        .await
    }

    async fn edit_settings(&self, group: &str, settings: &GroupSettings) -> ClientResult<()> {
        let body = protocol::EditSettingsRequest {
            name: Some(settings.name.clone()),
            notice: Some(settings.notice.clone()),
        };
        self.call_json(Method::PATCH, &group_path(route::GROUP, group), &body)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_url_follows_the_scheme() {
        assert_eq!(
            push_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/api/v1/push"
        );
        assert_eq!(
            push_url("https://chat.example").unwrap(),
            "wss://chat.example/api/v1/push"
        );
        assert!(push_url("ftp://x").is_err());
    }

    #[test]
    fn status_401_is_an_auth_error_and_others_keep_their_status() {
        assert!(matches!(
            status_error(401, r#"{"error":"bad token"}"#),
            ClientError::Auth(message) if message == "bad token"
        ));
        assert!(matches!(
            status_error(503, "down"),
            ClientError::Status { status: 503, message } if message == "down"
        ));
    }
}
