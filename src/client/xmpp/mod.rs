//! XMPP multi-user chat (XEP-0045) as a [`ChatService`]: an account is a JID
//! on the target's domain, a device one session (its own resource), a group
//! a members-only room on the MUC service, listed by the account's
//! bookmarks (XEP-0402), read back from the room's archive (XEP-0313).
//!
//! Every member is an owner of the room: XEP-0045 lets only owners change
//! affiliations, and a member who leaves must lose its own (so that it is
//! gone from the members and cannot come back through the room's member
//! list), which a plain member cannot do.

mod caps;
mod connect;
mod incoming;
mod session;
mod stanzas;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::mpsc;
use xmpp_parsers::jid::{BareJid, FullJid};
use xmpp_parsers::message::Message;
use xmpp_parsers::minidom::Element;

use connect::Server;
pub use connect::Transport;
use session::{Session, Shared};
use stanzas::MamFrom;

use crate::client::{
    Account, ChatService, ClientError, ClientResult, Delivered, Device, Event, GroupId, GroupInfo,
    GroupSettings, MessageId, Reach, ReceivedMessage, SetupError, TargetProtocol, UserId,
};

/// Messages asked for in one page of catch-up sync.
const ARCHIVE_PAGE: usize = 100;
/// Most pages one room's catch-up sync reads; a longer gap is logged.
const ARCHIVE_PAGES: usize = 20;
/// Most idempotency keys a device remembers.
const REMEMBERED_SENDS: usize = 1024;

/// The fields of a `kind: xmpp` target besides the shared ones (its account
/// names are lower-cased into JID localparts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmppTarget {
    /// The server's client port, `host:port` (e.g. `xmpp.example.org:5222`).
    pub(crate) server: String,
    /// The accounts' domain, e.g. `example.org`.
    pub(crate) domain: String,
    /// The MUC service the probe rooms are created on, e.g. `conference.example.org`.
    pub(crate) muc_service: String,
    /// Register probe accounts that cannot log in, in band (XEP-0077), where
    /// the server allows it (default: false).
    #[serde(default)]
    pub(crate) register: bool,
    /// `starttls` (default), `direct` (TLS from the first byte) or `plain`
    /// (unencrypted; only for servers on loopback).
    #[serde(default = "default_transport")]
    pub(crate) tls: Transport,
}

fn default_transport() -> Transport {
    Transport::Starttls
}

impl TargetProtocol for XmppTarget {
    const KIND: &'static str = "xmpp";

    fn build(&self, reach: Reach<'_>) -> Result<Arc<dyn ChatService>, SetupError> {
        let service = XmppService::new(XmppOptions {
            server: self.server.clone(),
            domain: self.domain.clone(),
            muc_service: self.muc_service.clone(),
            transport: self.tls,
            register: self.register,
            region: reach.region.to_owned(),
            request_timeout: reach.request_timeout,
        })?;
        Ok(Arc::new(service))
    }
}

/// How to reach one XMPP server.
#[derive(Debug, Clone)]
pub struct XmppOptions {
    /// `host:port` of the client port.
    pub server: String,
    /// The accounts' domain.
    pub domain: String,
    /// The MUC service of the probe rooms.
    pub muc_service: String,
    /// Plain, STARTTLS or direct TLS.
    pub transport: Transport,
    /// Register accounts that cannot log in, where the server allows it.
    pub register: bool,
    /// The agent's region (in every device's resource name).
    pub region: String,
    /// Bound of every call.
    pub request_timeout: Duration,
}

/// Why an [`XmppService`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum XmppSetupError {
    /// `server` is not `host:port`.
    #[error("server `{0}` is not host:port")]
    InvalidServer(String),
    /// The domain or MUC service is not a JID domain.
    #[error("`{0}` is not a valid XMPP domain")]
    InvalidDomain(String),
}

/// An XMPP server, where probe devices log in.
#[derive(Debug)]
pub struct XmppService {
    inner: Arc<Inner>,
}

/// What a service and its devices share.
#[derive(Debug)]
struct Inner {
    server: Server,
    domain: String,
    muc_service: String,
    register: bool,
    region: String,
    /// Announced sessions of each account (bare JID): their full JIDs, so a
    /// device joining a room can wait for the account's other devices.
    announced: Mutex<HashMap<String, Vec<AnnouncedSession>>>,
}

/// An announced session: its full JID, and whether it is still up.
type AnnouncedSession = (String, Weak<Shared>);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl XmppService {
    /// A service client for the server in `options`.
    pub fn new(options: XmppOptions) -> Result<Self, XmppSetupError> {
        let invalid = || XmppSetupError::InvalidServer(options.server.clone());
        let (host, port) = options.server.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        for domain in [&options.domain, &options.muc_service] {
            if BareJid::new(domain).is_err() || domain.contains(['@', '/']) {
                return Err(XmppSetupError::InvalidDomain(domain.clone()));
            }
        }
        crate::client::init_tls();
        Ok(Self {
            inner: Arc::new(Inner {
                server: Server {
                    host: host.to_owned(),
                    port,
                    transport: options.transport,
                    timeout: options.request_timeout,
                },
                domain: options.domain,
                muc_service: options.muc_service,
                register: options.register,
                region: options.region,
                announced: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Inner {
    /// The account's bare JID (its name lower-cased, as servers store it).
    fn account_jid(&self, account: &Account) -> ClientResult<BareJid> {
        let jid = format!("{}@{}", account.user.to_lowercase(), self.domain);
        BareJid::new(&jid).map_err(|_| ClientError::Auth(format!("`{jid}` is not a valid JID")))
    }

    /// A session of `jid`, registering the account first where allowed and
    /// needed.
    async fn open(&self, jid: &FullJid, password: &str) -> ClientResult<connect::Stream> {
        match self.server.open(jid, password).await {
            Err(ClientError::Auth(refused)) if self.register => {
                // Unknown accounts and wrong passwords look alike; registering
                // tells them apart (an existing account makes the retry fail again).
                match self.server.register(&jid.to_bare(), password).await {
                    Ok(()) => self.server.open(jid, password).await,
                    Err(ClientError::Status { .. }) => Err(ClientError::Auth(refused)),
                    Err(other) => Err(other),
                }
            }
            other => other,
        }
    }

    /// The full JIDs of the account's announced sessions that are still up.
    fn announced_sessions(&self, account: &str) -> HashSet<String> {
        let mut announced = lock(&self.announced);
        let Some(sessions) = announced.get_mut(account) else {
            return HashSet::new();
        };
        sessions.retain(|(_, shared)| shared.upgrade().is_some_and(|shared| shared.is_open()));
        sessions.iter().map(|(jid, _)| jid.clone()).collect()
    }

    fn set_announced(&self, session: &Session, announced: bool) {
        let account = session.account().to_string();
        let jid = session.jid.to_string();
        let mut all = lock(&self.announced);
        let sessions = all.entry(account).or_default();
        sessions.retain(|(other, _)| *other != jid);
        if announced {
            sessions.push((jid, Arc::downgrade(session.shared())));
        }
    }
}

#[async_trait]
impl ChatService for XmppService {
    async fn login(&self, account: &Account) -> ClientResult<Box<dyn Device>> {
        let bare = self.inner.account_jid(account)?;
        let resource = format!(
            "chatprobe-{}-{:08x}",
            self.inner.region,
            rand::random::<u32>()
        );
        let jid = bare
            .with_resource_str(&resource)
            .map_err(|error| ClientError::Auth(format!("resource `{resource}`: {error}")))?;
        let mut device = XmppDevice {
            inner: Arc::clone(&self.inner),
            account: account.clone(),
            user_id: bare.to_string(),
            device_id: jid.to_string(),
            jid,
            session: None,
            events: None,
            sent: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        device.open().await?;
        Ok(Box::new(device))
    }
}

/// One session of one account.
#[derive(Debug)]
pub(crate) struct XmppDevice {
    inner: Arc<Inner>,
    account: Account,
    user_id: String,
    device_id: String,
    jid: FullJid,
    session: Option<Session>,
    /// Pushed events, once push is open.
    events: Option<mpsc::UnboundedReceiver<ClientResult<Delivered>>>,
    /// Ids of the messages sent, by idempotency key.
    sent: Mutex<HashMap<String, MessageId>>,
    /// Catch-up sync position per room: the last archive id read.
    cursors: Mutex<HashMap<String, String>>,
    /// When the device logged in: where catch-up sync of a new room starts.
    since: String,
}

impl XmppDevice {
    /// Opens a new session (the stream of an earlier one is closed).
    async fn open(&mut self) -> ClientResult<()> {
        if let Some(old) = self.session.take() {
            self.inner.set_announced(&old, false);
        }
        let stream = self.inner.open(&self.jid, &self.account.password).await?;
        let (events, received) = mpsc::unbounded_channel();
        let nick = self
            .jid
            .node()
            .map(|node| node.to_string())
            .unwrap_or_default();
        let timeout = self.inner.server.timeout;
        self.session = Some(Session::start(
            stream,
            self.jid.clone(),
            nick,
            events,
            timeout,
        ));
        self.events = Some(received);
        Ok(())
    }

    fn session(&self) -> ClientResult<&Session> {
        self.session
            .as_ref()
            .ok_or_else(|| ClientError::Connect("not connected".into()))
    }

    /// The rooms the account has bookmarked.
    async fn bookmarks(&self) -> ClientResult<Vec<GroupId>> {
        let answer = match self
            .session()?
            .iq(None, false, stanzas::bookmark_items())
            .await
        {
            Err(ClientError::Status { status: 404, .. }) => return Ok(Vec::new()),
            other => other?,
        };
        let items = answer
            .as_ref()
            .and_then(|pubsub| pubsub.children().find(|items| items.name() == "items"));
        Ok(items.map(stanzas::bookmarked_rooms).unwrap_or_default())
    }

    /// Joins `room` (unless in it), bookmarks it, and waits for the
    /// account's other announced devices to follow the bookmark in.
    async fn enter(&self, room: &str) -> ClientResult<()> {
        let session = self.session()?;
        if !session.is_joined(room) {
            session.join(room).await?;
        }
        let nick = self
            .jid
            .node()
            .map(|node| node.to_string())
            .unwrap_or_default();
        session
            .iq(None, true, stanzas::publish_bookmark(room, &nick))
            .await?;
        session
            .wait_for_own_sessions(room, || self.inner.announced_sessions(&self.user_id))
            .await
    }

    /// Gives each of `users` owner affiliation in `room` and invites them
    /// (one request a user: Prosody reads only the first item of one).
    async fn admit(&self, room: &str, users: &[&str]) -> ClientResult<()> {
        let session = self.session()?;
        for user in users {
            session
                .iq(Some(room), true, stanzas::set_affiliation(user, "owner"))
                .await?;
            session.send_message(room, stanzas::invitation(user))?;
        }
        Ok(())
    }

    /// One room's archive after this device's position in it.
    async fn catch_up(&self, room: &str) -> ClientResult<Vec<Delivered>> {
        let session = self.session()?;
        let mut cursor = lock(&self.cursors).get(room).cloned();
        let mut delivered = Vec::new();
        for _ in 0..ARCHIVE_PAGES {
            let from = match &cursor {
                Some(id) => MamFrom::After(id),
                None => MamFrom::Start(&self.since),
            };
            let (page, complete, last) = session.archive_page(room, from, ARCHIVE_PAGE).await?;
            let received_at = Instant::now();
            let newest = page.last().map(|(id, _)| id.clone());
            delivered.extend(page.into_iter().filter_map(|(id, archived)| {
                let event = archived_event(room, id, archived)?;
                Some(Delivered { event, received_at })
            }));
            if let Some(position) = last.or(newest) {
                lock(&self.cursors).insert(room.to_owned(), position.clone());
                cursor = Some(position);
            }
            if complete {
                return Ok(delivered);
            }
        }
        tracing::warn!(%room, pages = ARCHIVE_PAGES,
            "archive gap longer than catch-up sync reads; older messages are skipped");
        Ok(delivered)
    }
}

/// An archived groupchat message as a probe event.
fn archived_event(room: &str, id: String, archived: Element) -> Option<Event> {
    let message = Message::try_from(archived).ok()?;
    let (_, body) = message.get_best_body(vec![])?;
    let sender = message
        .from
        .as_ref()
        .and_then(|from| from.resource())
        .map(|nick| nick.to_string())
        .unwrap_or_default();
    Some(Event::Message(ReceivedMessage {
        id,
        group: room.to_owned(),
        sender,
        body: body.clone(),
    }))
}

impl Drop for XmppDevice {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            self.inner.set_announced(session, false);
        }
    }
}

#[async_trait]
impl Device for XmppDevice {
    fn user_id(&self) -> &str {
        &self.user_id
    }

    fn device_id(&self) -> &str {
        &self.device_id
    }

    async fn connect(&mut self) -> ClientResult<()> {
        if !self
            .session
            .as_ref()
            .is_some_and(|session| session.shared().is_open())
        {
            self.open().await?;
        }
        let session = self.session()?;
        session.announce().await?;
        self.inner.set_announced(session, true);
        for room in self.bookmarks().await? {
            if !session.is_joined(&room) {
                session.join(&room).await?;
            }
        }
        Ok(())
    }

    async fn disconnect(&mut self) {
        if let Some(session) = self.session.take() {
            self.inner.set_announced(&session, false);
        }
        self.events = None;
    }

    async fn next_event(&mut self, until: Instant) -> ClientResult<Option<Delivered>> {
        let Some(events) = &mut self.events else {
            return Err(ClientError::Connect("push connection not open".into()));
        };
        match tokio::time::timeout_at(until.into(), events.recv()).await {
            Err(_elapsed) => Ok(None),
            Ok(Some(delivered)) => delivered.map(Some),
            Ok(None) => Err(ClientError::Connect("push connection closed".into())),
        }
    }

    async fn sync(&mut self) -> ClientResult<Vec<Delivered>> {
        let mut delivered = Vec::new();
        for room in self.bookmarks().await? {
            delivered.extend(self.catch_up(&room).await?);
        }
        Ok(delivered)
    }

    async fn send(&self, group: &str, txn: &str, body: &str) -> ClientResult<MessageId> {
        if let Some(id) = lock(&self.sent).get(txn) {
            return Ok(id.clone());
        }
        let id = self.session()?.send_groupchat(group, txn, body).await?;
        let mut sent = lock(&self.sent);
        if sent.len() >= REMEMBERED_SENDS {
            sent.clear();
        }
        sent.insert(txn.to_owned(), id.clone());
        Ok(id)
    }

    async fn list_groups(&self) -> ClientResult<Vec<GroupId>> {
        self.bookmarks().await
    }

    async fn read_group(&self, group: &str) -> ClientResult<GroupInfo> {
        let session = self.session()?;
        let info = session
            .iq(Some(group), false, stanzas::disco_info())
            .await?;
        let mut members = Vec::new();
        for affiliation in ["owner", "member"] {
            let list = session
                .iq(Some(group), false, stanzas::affiliation_list(affiliation))
                .await?;
            members.extend(stanzas::affiliated_users(list.as_ref()));
        }
        members.sort();
        members.dedup();
        Ok(GroupInfo {
            id: group.to_owned(),
            settings: stanzas::room_settings(info.as_ref()),
            members,
        })
    }

    async fn create_group(
        &self,
        settings: &GroupSettings,
        members: &[UserId],
    ) -> ClientResult<GroupId> {
        let room = format!(
            "chatprobe-{:016x}@{}",
            rand::random::<u64>(),
            self.inner.muc_service
        );
        let session = self.session()?;
        session.join(&room).await?;
        session
            .iq(Some(&room), true, stanzas::room_config(settings))
            .await?;
        let users: Vec<&str> = members.iter().map(String::as_str).collect();
        if !users.is_empty() {
            self.admit(&room, &users).await?;
        }
        self.enter(&room).await?;
        Ok(room)
    }

    async fn join_group(&self, group: &str) -> ClientResult<()> {
        self.enter(group).await
    }

    async fn add_member(&self, group: &str, user: &str) -> ClientResult<()> {
        self.admit(group, &[user]).await
    }

    async fn leave(&self, group: &str) -> ClientResult<()> {
        let session = self.session()?;
        match session
            .iq(None, true, stanzas::retract_bookmark(group))
            .await
        {
            Err(ClientError::Status { status: 404, .. }) | Ok(_) => {}
            Err(other) => return Err(other),
        }
        let leaving = stanzas::set_affiliation(&self.user_id, "none");
        match session.iq(Some(group), true, leaving).await {
            // The last owner cannot leave its room: it ends it instead.
            Err(ClientError::Status { status: 409, .. }) => session
                .iq(Some(group), true, stanzas::destroy_room())
                .await
                .map(drop),
            other => other.map(drop),
        }
    }

    async fn edit_settings(&self, group: &str, settings: &GroupSettings) -> ClientResult<()> {
        self.session()?
            .iq(Some(group), true, stanzas::room_config(settings))
            .await
            .map(drop)
    }
}
