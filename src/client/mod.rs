//! A chat service as one device sees it.
//!
//! Probes talk only to [`ChatService`] and [`Device`]; each service protocol
//! (the mock backend, Matrix, XMPP) is one file or folder of this module
//! implementing them, plus its config fields ([`TargetProtocol`]) and one
//! line in the [`ProtocolConfig`] list below. Nothing above this trait knows
//! which service it talks to.

pub mod matrix;
pub mod mock;
mod target;
pub mod xmpp;

pub(crate) use target::{Reach, SetupError, TargetProtocol};

target::protocols! {
    /// The mock group-chat backend (`chatprobe backend`).
    Mock(mock::MockTarget),
    /// A Matrix homeserver (client-server API v3).
    Matrix(matrix::MatrixTarget),
    /// An XMPP server's multi-user chat (XEP-0045).
    Xmpp(xmpp::XmppTarget),
}

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::outcome::Reason;

/// A group id, as the service spells it.
pub(crate) type GroupId = String;
/// A user id, as the service spells it.
pub(crate) type UserId = String;
/// A message id, as the service spells it.
pub(crate) type MessageId = String;

/// Credentials of one probe account.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// User name (the localpart on Matrix).
    pub user: String,
    /// Password; never logged.
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A group's settings: the promises `edit_settings` checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupSettings {
    /// Display name.
    pub name: String,
    /// Notice (topic).
    pub notice: String,
}

/// A group as one member reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group.
    pub(crate) id: GroupId,
    /// Its settings.
    pub settings: GroupSettings,
    /// Its current members.
    pub members: Vec<UserId>,
}

/// A message as it reached a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Service-assigned id (the one [`Device::send`] returned to the sender).
    pub id: MessageId,
    /// The group.
    pub group: GroupId,
    /// Sending user.
    pub(crate) sender: UserId,
    /// Text as delivered.
    pub body: String,
}

/// Something a device learned by push or by catch-up sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message in one of the user's groups.
    Message(ReceivedMessage),
    /// A user became a member of a group (or was added to it).
    MemberJoined {
        /// The group.
        group: GroupId,
        /// The new member.
        user: UserId,
    },
    /// A user left a group.
    MemberLeft {
        /// The group.
        group: GroupId,
        /// The member who left.
        user: UserId,
    },
    /// A group's settings changed; a service that reports name and notice
    /// separately fills only the part that changed.
    SettingsChanged {
        /// The group.
        group: GroupId,
        /// New display name, when it is part of this change.
        name: Option<String>,
        /// New notice, when it is part of this change.
        notice: Option<String>,
    },
}

/// An event with the instant it arrived at the client, taken as it was read
/// off the connection (not when the probe looked), so latencies are exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// What arrived.
    pub event: Event,
    /// When it arrived.
    pub(crate) received_at: Instant,
}

/// Why a client call failed; maps onto the contract reasons.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection was refused, reset or closed.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The service rejected the credentials or token.
    #[error("credentials rejected: {0}")]
    Auth(String),
    /// The service answered an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The service's error text, shortened.
        message: String,
    },
    /// The service answered a body that does not parse.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl ClientError {
    /// Maps a failed HTTP exchange (no answer, or an answer that could not be
    /// read) onto the client's error kinds; `timeout` is the bound it ran under.
    pub(crate) fn from_transport(error: &reqwest::Error, timeout: Duration) -> ClientError {
        if error.is_timeout() {
            ClientError::Timeout(timeout)
        } else if error.is_decode() {
            ClientError::Malformed(error_chain(error))
        } else {
            ClientError::Connect(error_chain(error))
        }
    }

    /// The contract reason this error is reported as, when the failing step
    /// has no more specific reason of its own.
    pub fn reason(&self) -> Reason {
        match self {
            ClientError::Timeout(_) => Reason::Timeout,
            ClientError::Connect(_) => Reason::ConnectError,
            ClientError::Auth(_) => Reason::AuthError,
            ClientError::Status { .. } | ClientError::Malformed(_) => Reason::HttpError,
        }
    }
}

/// Largest answer body the agent reads; a longer one is an `http_error`
/// naming its size, so a hostile or broken server cannot make an agent hold
/// more than this per call.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The body of `response`, read up to [`MAX_BODY_BYTES`] (refused up front
/// when the announced length is longer); `timeout` is the bound the call ran under.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    timeout: Duration,
) -> ClientResult<bytes::Bytes> {
    let too_large = |size: String| {
        ClientError::Malformed(format!(
            "answer body of {size} bytes exceeds the {MAX_BODY_BYTES}-byte limit"
        ))
    };
    if let Some(length) = response.content_length()
        && length > MAX_BODY_BYTES as u64
    {
        return Err(too_large(length.to_string()));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| ClientError::from_transport(&err, timeout))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large(format!("more than {}", body.len() + chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The `User-Agent` every request of an agent carries, so operators can tell
/// synthetic traffic from users' in their own logs and metrics.
pub(crate) fn user_agent(region: &str) -> String {
    format!(
        "chatprobe/{} (synthetic probe; region={region})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Install the process-wide TLS crypto provider (ring). Call before building
/// any HTTP client; later calls do nothing.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An error and its causes on one line (reqwest's own text hides the cause,
/// e.g. "Connection refused").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Result of a client call.
pub(crate) type ClientResult<T> = Result<T, ClientError>;

/// A chat service: where probe devices log in.
#[async_trait]
pub trait ChatService: Send + Sync {
    /// Log `account` in as a new device (each login is a device of its own).
    async fn login(&self, account: &Account) -> ClientResult<Box<dyn Device>>;
}

/// One logged-in device of one account.
///
/// Every call is bounded by the timeout the service client was built with;
/// probes add their own step deadlines on top.
#[async_trait]
pub trait Device: Send + Sync {
    /// The account's user id.
    fn user_id(&self) -> &str;

    /// The device's id.
    fn device_id(&self) -> &str;

    /// Open (or reopen) the push connection; events arrive through [`Device::next_event`].
    async fn connect(&mut self) -> ClientResult<()>;

    /// Close the push connection, if open.
    async fn disconnect(&mut self);

    /// The next pushed event, or `None` once `until` passes first. Fails with
    /// [`ClientError::Connect`] when the push connection is closed or lost.
    async fn next_event(&mut self, until: Instant) -> ClientResult<Option<Delivered>>;

    /// Catch-up sync: events since this device's own sync cursor, which it
    /// then advances. Independent of push.
    async fn sync(&mut self) -> ClientResult<Vec<Delivered>>;

    /// Send `body` to `group` with idempotency key `txn`; returns the message id.
    async fn send(&self, group: &str, txn: &str, body: &str) -> ClientResult<MessageId>;

    /// Ids of the groups the user is a member of.
    async fn list_groups(&self) -> ClientResult<Vec<GroupId>>;

    /// Read one group's settings and members.
    async fn read_group(&self, group: &str) -> ClientResult<GroupInfo>;

    /// Create a group with `members` besides the caller; they still have to
    /// [`Device::join_group`] it.
    async fn create_group(
        &self,
        settings: &GroupSettings,
        members: &[UserId],
    ) -> ClientResult<GroupId>;

    /// Accept membership of a group the user was added to.
    async fn join_group(&self, group: &str) -> ClientResult<()>;

    /// Add `user` to `group`; they still have to [`Device::join_group`] it.
    async fn add_member(&self, group: &str, user: &str) -> ClientResult<()>;

    /// Leave `group` (and, where the service has it, forget it).
    async fn leave(&self, group: &str) -> ClientResult<()>;

    /// Change the group's name and notice.
    async fn edit_settings(&self, group: &str, settings: &GroupSettings) -> ClientResult<()>;
}
