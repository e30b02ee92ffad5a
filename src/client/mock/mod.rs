//! The mock backend's protocol ([`crate::protocol`]): JSON over plain HTTP
//! with a lean keep-alive client ([`http1`]), push over WebSocket with
//! tokio-tungstenite.
//!
//! Every request (the WebSocket upgrade too) carries the agent's
//! `User-Agent` and its region in [`protocol::REGION_HEADER`]. Each device's
//! push connection is read by a small task of its own that stamps every frame
//! with the instant it was read, so latencies do not depend on when the probe
//! looks. Buffers are kept small: one agent holds thousands of devices.

mod http1;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};

use self::http1::{Endpoint, Http1Client, Method, Request, header_text};
use super::{
    Account, ChatService, ClientError, ClientResult, Delivered, Device, Event, GroupId, GroupInfo,
    GroupSettings, MessageId, Reach, ReceivedMessage, SetupError, TargetProtocol, UserId,
    user_agent,
};
use crate::outcome::shorten;
use crate::protocol::{self, route};
use crate::yaml::values::PlainHttpUrl;

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
    http: Http1Client,
    push_url: String,
    region: HeaderValue,
    user_agent: HeaderValue,
    timeout: Duration,
}

impl Shared {
    /// Sends `request`; the body of a success answer, else the error it maps to.
    async fn answer(&self, request: &Request<'_>) -> ClientResult<bytes::Bytes> {
        let answer = self.http.send(request).await?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(status_error(
                answer.status,
                &String::from_utf8_lossy(&answer.body),
            ))
        }
    }
}

/// `body` as JSON, for a request.
fn to_json<B: Serialize + ?Sized>(body: &B) -> ClientResult<Vec<u8>> {
    serde_json::to_vec(body).map_err(|err| ClientError::Malformed(format!("request body: {err}")))
}

/// The JSON answer `body`, parsed.
fn parse<T: DeserializeOwned>(body: &[u8]) -> ClientResult<T> {
    serde_json::from_slice(body).map_err(|err| ClientError::Malformed(err.to_string()))
}

/// The fields of a `kind: mock` target besides the shared ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockTarget {
    /// Base URL of the backend, e.g. `http://127.0.0.1:8080` (plain HTTP:
    /// the mock backend serves no TLS).
    pub(crate) url: PlainHttpUrl,
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
        let endpoint =
            Endpoint::parse(base_url.trim_end_matches('/')).map_err(ClientError::Connect)?;
        let push_url = format!("ws://{}{}{}", endpoint.host, endpoint.prefix, route::PUSH);
        let agent = user_agent(region);
        let headers = [
            ("User-Agent", header_text(&agent)?),
            (protocol::REGION_HEADER, header_text(region)?),
        ];
        Ok(MockService {
            shared: Arc::new(Shared {
                http: Http1Client::new(endpoint, &headers, request_timeout),
                push_url,
                region: header_value(region)?,
                user_agent: header_value(&agent)?,
                timeout: request_timeout,
            }),
        })
    }
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
        let json = to_json(&body)?;
        let request = Request {
            method: Method::Post,
            path: route::LOGIN,
            token: None,
            json: Some(&json),
        };
        let login: protocol::LoginResponse = parse(&self.shared.answer(&request).await?)?;
        header_text(&login.token)?;
        let auth = header_value(&format!("Bearer {}", login.token))?;
        Ok(Box::new(MockDevice {
            shared: Arc::clone(&self.shared),
            user: login.user,
            device_id: login.device_id,
            token: login.token,
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
    /// The session token (checked by [`header_text`]).
    token: String,
    /// `Bearer TOKEN`, for the push connection's upgrade request.
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
    /// Sends a request of this device, with `body` as JSON when given; the
    /// body of a success answer.
    async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<bytes::Bytes> {
        let json = body.map(to_json).transpose()?;
        let request = Request {
            method,
            path,
            token: Some(&self.token),
            json: json.as_deref(),
        };
        self.shared.answer(&request).await
    }

    /// A `GET` of `path`, its JSON answer parsed.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> ClientResult<T> {
        parse(&self.request::<()>(Method::Get, path, None).await?)
    }

    /// A request with a JSON body, its JSON answer parsed.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> ClientResult<T> {
        parse(&self.request(method, path, Some(body)).await?)
    }

    /// A request with a JSON body whose answer is not needed.
    async fn call_json<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> ClientResult<()> {
        self.request(method, path, Some(body)).await.map(drop)
    }

    /// A `POST` of an empty JSON object to `template` for `group`.
    async fn post_to_group(&self, template: &str, group: &str) -> ClientResult<()> {
        let path = group_path(template, group);
        self.call_json(Method::Post, &path, &serde_json::json!({}))
            .await
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
        headers.insert(header::AUTHORIZATION, self.auth.clone());
        headers.insert(header::USER_AGENT, self.shared.user_agent.clone());
        headers.insert(
            HeaderName::from_static(protocol::REGION_HEADER),
            self.shared.region.clone(),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(PUSH_READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(PUSH_MAX_FRAME))
            .max_frame_size(Some(PUSH_MAX_FRAME));
        let authority = &self.shared.http.endpoint().authority;
        let connecting = async {
            let stream = TcpStream::connect(authority).await.map_err(|err| {
                ClientError::Connect(format!("push connection to {authority}: {err}"))
            })?;
            // Frames are written whole; waiting to fill a segment only delays them.
            stream
                .set_nodelay(true)
                .map_err(|err| ClientError::Connect(format!("push connection: {err}")))?;
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(push_error)
        };
        let (socket, _) = tokio::time::timeout(self.shared.timeout, connecting)
            .await
            .map_err(|_| ClientError::Timeout(self.shared.timeout))??;
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

fn status_error(status: u16, body: &str) -> ClientError {
    let message = serde_json::from_str::<protocol::ErrorBody>(body).map_or_else(
        |_| shorten(body, ERROR_TEXT_MAX),
        |parsed| shorten(&parsed.error, ERROR_TEXT_MAX),
    );
    if status == 401 {
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
        let path = format!("{}?since={}", route::SYNC, self.sync_cursor);
        let answer: protocol::SyncResponse = self.get(&path).await?;
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
        let message: protocol::Message = self.call(Method::Post, &path, &request).await?;
        Ok(message.id)
    }

    async fn list_groups(&self) -> ClientResult<Vec<GroupId>> {
        let list: protocol::GroupList = self.get(route::GROUPS).await?;
        Ok(list.groups.into_iter().map(|group| group.id).collect())
    }

    async fn read_group(&self, group: &str) -> ClientResult<GroupInfo> {
        let path = group_path(route::GROUP, group);
        let read: protocol::Group = self.get(&path).await?;
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
        let created: protocol::Group = self.call(Method::Post, route::GROUPS, &body).await?;
        Ok(created.id)
    }

    async fn join_group(&self, group: &str) -> ClientResult<()> {
        self.post_to_group(route::JOIN, group).await
    }

    async fn add_member(&self, group: &str, user: &str) -> ClientResult<()> {
        let body = protocol::AddMemberRequest {
            user: user.to_string(),
        };
        self.call_json(Method::Post, &group_path(route::MEMBERS, group), &body)
            .await
    }

    async fn leave(&self, group: &str) -> ClientResult<()> {
        self.post_to_group(route::LEAVE, group).await
    }

    async fn edit_settings(&self, group: &str, settings: &GroupSettings) -> ClientResult<()> {
        let body = protocol::EditSettingsRequest {
            name: Some(settings.name.clone()),
            notice: Some(settings.notice.clone()),
        };
        self.call_json(Method::Patch, &group_path(route::GROUP, group), &body)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_goes_to_the_same_host_and_prefix_over_plain_websocket() {
        let service = MockService::new("http://127.0.0.1:8080/", "eu", Duration::from_secs(1));
        assert_eq!(
            service.unwrap().shared.push_url,
            "ws://127.0.0.1:8080/api/v1/push"
        );
        let prefixed = MockService::new("http://chat.example/mock", "eu", Duration::from_secs(1));
        assert_eq!(
            prefixed.unwrap().shared.push_url,
            "ws://chat.example/mock/api/v1/push"
        );
        assert!(MockService::new("https://chat.example", "eu", Duration::from_secs(1)).is_err());
        assert!(MockService::new("http://x", "eu\nrogue", Duration::from_secs(1)).is_err());
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
