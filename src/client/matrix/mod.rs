//! The Matrix client-server API (v3) as a [`ChatService`]: a room is a group,
//! `m.room.name` / `m.room.topic` are its name and notice, an invitation adds
//! a member, and each login is a device with its own `/sync` chains (one for
//! push, one for catch-up sync).

mod api;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::json;

use api::{Api, ApiError, ApiResult};
use sync::{Push, RoomEvent, SyncSession};

use crate::client::{
    Account, ChatService, ClientError, ClientResult, Delivered, Device, GroupId, GroupInfo,
    GroupSettings, MessageId, Reach, SetupError, TargetProtocol, UserId,
};
use crate::yaml::values::HttpUrl;

/// The fields of a `kind: matrix` target besides the shared ones (its
/// account names are lower-cased into Matrix localparts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixTarget {
    /// Base URL of the homeserver's client API, e.g. `https://matrix.example.org`.
    pub(crate) homeserver: HttpUrl,
    /// Register probe accounts that cannot log in, where the homeserver
    /// allows registration without verification (default: false).
    #[serde(default)]
    pub(crate) register: bool,
}

impl TargetProtocol for MatrixTarget {
    const KIND: &'static str = "matrix";

    fn build(&self, reach: Reach<'_>) -> Result<Arc<dyn ChatService>, SetupError> {
        let service = MatrixService::new(MatrixOptions {
            homeserver_url: self.homeserver.0.clone(),
            region: reach.region.to_string(),
            request_timeout: reach.request_timeout,
            register: self.register,
        })?;
        Ok(Arc::new(service))
    }
}

/// How to reach one homeserver.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// Base URL of the homeserver's client API, e.g. `http://127.0.0.1:8008`.
    pub homeserver_url: String,
    /// The agent's region (sent in the `User-Agent`).
    pub region: String,
    /// Bound of every call (long polls get this on top of their wait).
    pub request_timeout: Duration,
    /// Register accounts that cannot log in, where the server allows it.
    pub register: bool,
}

/// Why a [`MatrixService`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MatrixSetupError {
    /// The homeserver URL does not parse or cannot be a base.
    #[error("homeserver URL `{url}` is not a usable http(s) URL: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A Matrix homeserver, where probe devices log in.
#[derive(Debug)]
pub struct MatrixService {
    api: Arc<Api>,
    register: bool,
}

impl MatrixService {
    /// A service client for the homeserver in `options`.
    pub fn new(options: MatrixOptions) -> Result<Self, MatrixSetupError> {
        let invalid = |reason: String| MatrixSetupError::InvalidUrl {
            url: options.homeserver_url.clone(),
            reason,
        };
        let base =
            Url::parse(&options.homeserver_url).map_err(|error| invalid(error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("expected http:// or https://".into()));
        }
        let api = Api::new(base, &options.region, options.request_timeout)?;
        Ok(Self {
            api: Arc::new(api),
            register: options.register,
        })
    }

    /// `m.login.password` with a user identifier: a new device.
    async fn password_login(&self, account: &Account) -> ApiResult<LoginResponse> {
        let body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": localpart(account) },
            "password": account.password,
            "initial_device_display_name": "chatprobe",
        });
        self.api
            .request(Method::POST, self.api.url(&["login"]), None)
            .json(&body)
            .call()
            .await
    }

    /// Registers `account` through the `m.login.dummy` stage, without logging
    /// in; an account that already exists counts as done.
    async fn register(&self, account: &Account) -> ApiResult<()> {
        let mut body = json!({
            "username": localpart(account),
            "password": account.password,
            "inhibit_login": true,
            "auth": { "type": "m.login.dummy" },
        });
        let mut result = self.register_call(&body).await;
        // Servers that insist on a user-interactive auth session name it in a 401.
        if let Err(ApiError::Matrix {
            status: 401,
            body: answer,
            ..
        }) = &result
            && let Some(session) = answer.get("session").cloned()
        {
            body["auth"]["session"] = session;
            result = self.register_call(&body).await;
        }
        match result {
            Err(error) if error.has_code("M_USER_IN_USE") => Ok(()),
            other => other.map(|_: serde_json::Value| ()),
        }
    }

    async fn register_call(&self, body: &serde_json::Value) -> ApiResult<serde_json::Value> {
        self.api
            .request(Method::POST, self.api.url(&["register"]), None)
            .json(body)
            .call()
            .await
    }
}

/// The account's Matrix localpart: its user name in lower case, the only
/// case homeservers register.
fn localpart(account: &Account) -> String {
    account.user.to_lowercase()
}

/// `POST /login` answer.
#[derive(Deserialize)]
struct LoginResponse {
    user_id: String,
    access_token: String,
    device_id: String,
}

/// True when a login failure means "wrong user or password".
fn is_rejected_login(error: &ApiError) -> bool {
    matches!(error, ApiError::Matrix { errcode, .. } if matches!(errcode.as_str(), "M_FORBIDDEN" | "M_USER_DEACTIVATED"))
}

/// A login failure as a client error: rejected credentials are [`ClientError::Auth`].
fn login_error(error: ApiError) -> ClientError {
    if !is_rejected_login(&error) {
        return error.into();
    }
    match error {
        ApiError::Matrix {
            errcode, message, ..
        } => ClientError::Auth(format!("{errcode}: {message}")),
        other => other.into(),
    }
}

#[async_trait]
impl ChatService for MatrixService {
    async fn login(&self, account: &Account) -> ClientResult<Box<dyn Device>> {
        let login = match self.password_login(account).await {
            Err(error) if self.register && is_rejected_login(&error) => {
                // Unknown users and wrong passwords look alike; registering
                // tells them apart (an existing user makes the retry fail again).
                match self.register(account).await {
                    Ok(()) => self.password_login(account).await,
                    // Registration closed or refused: the login's own answer stands.
                    Err(ApiError::Matrix { .. }) => Err(error),
                    Err(transport) => Err(transport),
                }
            }
            other => other,
        }
        .map_err(login_error)?;
        let device = MatrixDevice::start(Arc::clone(&self.api), login).await?;
        Ok(Box::new(device))
    }
}

/// One logged-in Matrix device.
#[derive(Debug)]
pub(crate) struct MatrixDevice {
    session: Arc<SyncSession>,
    device_id: String,
    /// Where the push chain goes on from (shared with its task).
    push_since: Arc<Mutex<String>>,
    /// Where catch-up sync goes on from.
    catch_up_since: Mutex<String>,
    push: Option<Push>,
}

impl MatrixDevice {
    /// A device from a login answer; both of its sync chains start at the
    /// server's current position, so they carry only what happens from now.
    async fn start(api: Arc<Api>, login: LoginResponse) -> ClientResult<Self> {
        let session = Arc::new(SyncSession {
            api,
            token: login.access_token,
            user_id: login.user_id,
        });
        let position = session.position().await?;
        Ok(Self {
            session,
            device_id: login.device_id,
            push_since: Arc::new(Mutex::new(position.clone())),
            catch_up_since: Mutex::new(position),
            push: None,
        })
    }

    fn api(&self) -> &Api {
        &self.session.api
    }

    /// A request to `segments`, as this device.
    fn request(&self, method: Method, segments: &[&str]) -> api::Request {
        self.api()
            .request(method, self.api().url(segments), Some(&self.session.token))
    }

    /// A request whose answer does not matter beyond success.
    async fn post(&self, segments: &[&str], body: serde_json::Value) -> ClientResult<()> {
        let _: serde_json::Value = self
            .request(Method::POST, segments)
            .json(&body)
            .call()
            .await?;
        Ok(())
    }

    /// Sets one state event with an empty state key.
    async fn put_state(
        &self,
        group: &str,
        kind: &str,
        content: serde_json::Value,
    ) -> ClientResult<()> {
        let _: serde_json::Value = self
            .request(Method::PUT, &["rooms", group, "state", kind, ""])
            .json(&content)
            .call()
            .await?;
        Ok(())
    }
}

impl Drop for MatrixDevice {
    /// Logs the device out in the background, so devices do not pile up on
    /// the server.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let logout = self.request(Method::POST, &["logout"]).json(&json!({}));
        runtime.spawn(async move {
            let _ = logout.call::<serde_json::Value>().await;
        });
    }
}

/// `PUT …/send/…` answer.
#[derive(Deserialize)]
struct SendResponse {
    event_id: String,
}

/// `POST /createRoom` answer.
#[derive(Deserialize)]
struct CreateRoomResponse {
    room_id: String,
}

/// `GET /joined_rooms` answer.
#[derive(Deserialize)]
struct JoinedRooms {
    joined_rooms: Vec<String>,
}

/// A group as its current room state says.
fn group_from_state(group: &str, state: &[RoomEvent]) -> GroupInfo {
    let mut info = GroupInfo {
        id: group.to_owned(),
        settings: GroupSettings::default(),
        members: Vec::new(),
    };
    for event in state {
        match event.kind.as_str() {
            "m.room.name" => {
                info.settings.name = event.content_str("name").unwrap_or_default().to_owned()
            }
            "m.room.topic" => {
                info.settings.notice = event.content_str("topic").unwrap_or_default().to_owned()
            }
            "m.room.member" if event.content_str("membership") == Some("join") => {
                info.members.extend(event.state_key.clone());
            }
            _ => {}
        }
    }
    info.members.sort();
    info
}

#[async_trait]
impl Device for MatrixDevice {
    fn user_id(&self) -> &str {
        &self.session.user_id
    }

    fn device_id(&self) -> &str {
        &self.device_id
    }

    async fn connect(&mut self) -> ClientResult<()> {
        self.push = None;
        let push = Push::open(Arc::clone(&self.session), Arc::clone(&self.push_since)).await?;
        self.push = Some(push);
        Ok(())
    }

    async fn disconnect(&mut self) {
        self.push = None;
    }

    async fn next_event(&mut self, until: Instant) -> ClientResult<Option<Delivered>> {
        match &mut self.push {
            Some(push) => push.next(until).await,
            None => Err(ClientError::Connect("push connection not open".into())),
        }
    }

    async fn sync(&mut self) -> ClientResult<Vec<Delivered>> {
        let since = sync::lock(&self.catch_up_since).clone();
        let (delivered, next) = self.session.since(&since, Duration::ZERO).await?;
        *sync::lock(&self.catch_up_since) = next;
        Ok(delivered)
    }

    async fn send(&self, group: &str, txn: &str, body: &str) -> ClientResult<MessageId> {
        let content = json!({ "msgtype": "m.text", "body": body });
        let sent: SendResponse = self
            .request(
                Method::PUT,
                &["rooms", group, "send", "m.room.message", txn],
            )
            .json(&content)
            .call()
            .await?;
        Ok(sent.event_id)
    }

    async fn list_groups(&self) -> ClientResult<Vec<GroupId>> {
        let rooms: JoinedRooms = self.request(Method::GET, &["joined_rooms"]).call().await?;
        Ok(rooms.joined_rooms)
    }

    async fn read_group(&self, group: &str) -> ClientResult<GroupInfo> {
        let state: Vec<RoomEvent> = self
            .request(Method::GET, &["rooms", group, "state"])
            .call()
            .await?;
        Ok(group_from_state(group, &state))
    }

    async fn create_group(
        &self,
        settings: &GroupSettings,
        members: &[UserId],
    ) -> ClientResult<GroupId> {
        let body = json!({
            "preset": "private_chat",
            "visibility": "private",
            "name": settings.name,
            "topic": settings.notice,
            "invite": members,
        });
        let created: CreateRoomResponse = self
            .request(Method::POST, &["createRoom"])
            .json(&body)
            .call()
            .await?;
        Ok(created.room_id)
    }

    async fn join_group(&self, group: &str) -> ClientResult<()> {
        self.post(&["rooms", group, "join"], json!({})).await
    }

    async fn add_member(&self, group: &str, user: &str) -> ClientResult<()> {
        self.post(&["rooms", group, "invite"], json!({ "user_id": user }))
            .await
    }

    async fn leave(&self, group: &str) -> ClientResult<()> {
        self.post(&["rooms", group, "leave"], json!({})).await?;
        self.post(&["rooms", group, "forget"], json!({})).await
    }

    async fn edit_settings(&self, group: &str, settings: &GroupSettings) -> ClientResult<()> {
        self.put_state(group, "m.room.name", json!({ "name": settings.name }))
            .await?;
        self.put_state(group, "m.room.topic", json!({ "topic": settings.notice }))
            .await
    }
}
