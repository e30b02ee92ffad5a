//! One XMPP session (one device): a task owning the stream, which writes
//! what callers send and hands what arrives to [`State`]; and the requests
//! callers make through it (IQs, joins, messages, MAM queries), each
//! bounded by the service's timeout.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::message::{Id as MessageId, Lang, Message};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;

use super::connect::Stream;
use super::incoming::{EventSender, State, new_id};
use super::stanzas::{self, MamFrom, NS_SID};
use crate::client::{ClientError, ClientResult};

/// How often a wait for other sessions looks again even without news.
const RECHECK: Duration = Duration::from_millis(100);

/// A running session.
#[derive(Debug)]
pub(super) struct Session {
    /// The bound full JID.
    pub(super) jid: FullJid,
    /// Stanzas for the task to write; dropping it ends the session.
    outgoing: mpsc::UnboundedSender<Stanza>,
    shared: Arc<Shared>,
    timeout: Duration,
}

/// What the session task and callers share.
#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Set when the stream ended, with why.
    closed: Mutex<Option<String>>,
    /// Woken whenever a room's occupants change.
    changed: Notify,
}

impl Shared {
    /// True while the stream is up.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.closed).is_none()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// Starts the task of a bound `stream`; pushed events go to `events`.
    pub(super) fn start(
        stream: Stream,
        jid: FullJid,
        nick: String,
        events: EventSender,
        timeout: Duration,
    ) -> Session {
        let state = State {
            account: jid.to_bare(),
            nick,
            iqs: Default::default(),
            sends: Default::default(),
            archives: Default::default(),
            joins: Default::default(),
            settings_reads: Default::default(),
            rooms: Default::default(),
            announced: false,
            events,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            closed: Mutex::new(None),
            changed: Notify::new(),
        });
        let (outgoing, queued) = mpsc::unbounded_channel();
        tokio::spawn(run(stream, queued, Arc::clone(&shared)));
        Session {
            jid,
            outgoing,
            shared,
            timeout,
        }
    }

    /// What the session shares, for others to see whether it is up.
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The account's bare JID.
    pub(super) fn account(&self) -> BareJid {
        self.jid.to_bare()
    }

    fn lost(&self) -> ClientError {
        let why = lock(&self.shared.closed).clone();
        ClientError::Connect(why.unwrap_or_else(|| "session closed".into()))
    }

    fn send(&self, stanza: Stanza) -> ClientResult<()> {
        self.outgoing.send(stanza).map_err(|_| self.lost())
    }

    /// Waits for `answer` within the timeout; `cancel` forgets the wait on failure.
    async fn wait<T>(
        &self,
        answer: oneshot::Receiver<T>,
        cancel: impl FnOnce(&mut State),
    ) -> ClientResult<T> {
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_dropped)) => Err(self.lost()),
            Err(_elapsed) => {
                cancel(&mut lock(&self.shared.state));
                Err(ClientError::Timeout(self.timeout))
            }
        }
    }

    /// An IQ `get` (or `set`) to `to` (the account itself when `None`);
    /// its result payload, or the error stanza as a [`ClientError::Status`].
    pub(super) async fn iq(
        &self,
        to: Option<&str>,
        set: bool,
        payload: Element,
    ) -> ClientResult<Option<Element>> {
        let to = match to {
            Some(to) => Some(parse_jid(to)?),
            None => None,
        };
        let id = new_id();
        let (answered, answer) = oneshot::channel();
        lock(&self.shared.state).iqs.insert(id.clone(), answered);
        let iq = if set {
            Iq::Set {
                from: None,
                to,
                id: id.clone(),
                payload,
            }
        } else {
            Iq::Get {
                from: None,
                to,
                id: id.clone(),
                payload,
            }
        };
        self.send(Stanza::Iq(iq))?;
        match self
            .wait(answer, |state| drop(state.iqs.remove(&id)))
            .await?
        {
            Iq::Result { payload, .. } => Ok(payload),
            Iq::Error { error, .. } => Err(stanzas::stanza_error(&error)),
            Iq::Get { .. } | Iq::Set { .. } => {
                Err(ClientError::Malformed("a request as answer".into()))
            }
        }
    }

    /// Announces the session (available presence with its capabilities),
    /// so the server sends it presence-bound traffic and bookmark changes;
    /// returns once the server has processed it (two pings: the first lets
    /// the server ask about the capabilities, the second follows the answer).
    pub(super) async fn announce(&self) -> ClientResult<()> {
        lock(&self.shared.state).announced = true;
        let mut presence = Presence::available();
        presence.payloads.extend(super::caps::presence_caps());
        self.send(Stanza::Presence(presence))?;
        for _ in 0..2 {
            let ping = stanzas::element("ping", stanzas::NS_PING, &[], []);
            self.iq(Some(self.jid.domain().as_str()), false, ping)
                .await?;
        }
        Ok(())
    }

    /// Joins `room`; returns once the room sent this session's own presence.
    pub(super) async fn join(&self, room: &str) -> ClientResult<()> {
        let (joined, answer) = oneshot::channel();
        let presence = {
            let mut state = lock(&self.shared.state);
            state.joins.insert(room.to_owned(), joined);
            state.room_presence(room, PresenceType::None)
        };
        let presence = presence.ok_or_else(|| invalid_jid(room))?;
        self.send(presence)?;
        self.wait(answer, |state| drop(state.joins.remove(room)))
            .await?
    }

    /// True when this session is an occupant of `room`.
    pub(super) fn is_joined(&self, room: &str) -> bool {
        lock(&self.shared.state)
            .rooms
            .get(room)
            .is_some_and(|known| known.joined)
    }

    /// Waits until every session in `others()` (full JIDs of the account's
    /// announced sessions) is in `room` too, as the room's presences to this
    /// session say.
    pub(super) async fn wait_for_own_sessions(
        &self,
        room: &str,
        others: impl Fn() -> HashSet<String>,
    ) -> ClientResult<()> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let changed = self.shared.changed.notified();
            let missing: Vec<String> = {
                let state = lock(&self.shared.state);
                let inside = state.rooms.get(room).map(|known| &known.own_sessions);
                others()
                    .into_iter()
                    .filter(|session| !inside.is_some_and(|inside| inside.contains(session)))
                    .collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            if !self.shared.is_open() {
                return Err(self.lost());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::debug!(%room, ?missing, "other devices of the account did not join");
                return Err(ClientError::Timeout(self.timeout));
            }
            let recheck = (tokio::time::Instant::now() + RECHECK).min(deadline);
            let _ = tokio::time::timeout_at(recheck, changed).await;
        }
    }

    /// Sends `body` to `room` as a groupchat message with origin-id `txn`;
    /// returns the id the room gave it (its echo's stanza-id).
    pub(super) async fn send_groupchat(
        &self,
        room: &str,
        txn: &str,
        body: &str,
    ) -> ClientResult<String> {
        let mut message = Message::groupchat(Some(parse_jid(room)?));
        message.id = Some(MessageId(txn.to_owned()));
        message.bodies.insert(Lang::new(), body.to_owned());
        message
            .payloads
            .push(stanzas::element("origin-id", NS_SID, &[("id", txn)], []));
        let (echoed, echo) = oneshot::channel();
        lock(&self.shared.state)
            .sends
            .insert(txn.to_owned(), echoed);
        self.send(Stanza::Message(message))?;
        self.wait(echo, |state| drop(state.sends.remove(txn)))
            .await?
    }

    /// Sends a stanza whose answer (if any) nobody waits for.
    pub(super) fn send_message(&self, to: &str, payload: Element) -> ClientResult<()> {
        let message = Message::normal(Some(parse_jid(to)?)).with_payloads(vec![payload]);
        self.send(Stanza::Message(message))
    }

    /// One page of `room`'s archive from `from`: the archived messages
    /// (archive id, message), whether the archive is exhausted, the last id.
    pub(super) async fn archive_page(
        &self,
        room: &str,
        from: MamFrom<'_>,
        max: usize,
    ) -> ClientResult<(Vec<(String, Element)>, bool, Option<String>)> {
        let query_id = new_id();
        lock(&self.shared.state)
            .archives
            .insert(query_id.clone(), Vec::new());
        let answer = self
            .iq(Some(room), true, stanzas::mam_query(&query_id, from, max))
            .await;
        let results = lock(&self.shared.state)
            .archives
            .remove(&query_id)
            .unwrap_or_default();
        let (complete, last) = stanzas::mam_fin(answer?.as_ref());
        Ok((results, complete, last))
    }
}

fn parse_jid(jid: &str) -> ClientResult<Jid> {
    Jid::new(jid).map_err(|_| invalid_jid(jid))
}

fn invalid_jid(jid: &str) -> ClientError {
    ClientError::Status {
        status: 400,
        message: format!("jid-malformed: `{jid}`"),
    }
}

/// The session task: writes what callers queue, hands what arrives to the
/// state, until the stream ends or every caller is gone.
async fn run(mut stream: Stream, mut queued: mpsc::UnboundedReceiver<Stanza>, shared: Arc<Shared>) {
    let why = loop {
        tokio::select! {
            outgoing = queued.recv() => match outgoing {
                Some(stanza) => {
                    if let Err(error) = stream.send(&XmppStreamElement::Stanza(stanza)).await {
                        break format!("write failed: {error}");
                    }
                }
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                    break "session closed".to_owned();
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                    let replies = lock(&shared.state).handle(stanza, Instant::now());
                    shared.changed.notify_waiters();
                    if let Err(error) = write_all(&mut stream, replies).await {
                        break format!("write failed: {error}");
                    }
                }
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(error)))) => {
                    break format!("stream error: {error}");
                }
                Some(Ok(FallibleStreamElement::Ok(_nonza))) => {}
                Some(Ok(FallibleStreamElement::Err(error))) => {
                    tracing::debug!(%error, "an unreadable stanza was skipped");
                }
                Some(Err(ReadError::SoftTimeout)) => {
                    let ping = stanzas::element("ping", stanzas::NS_PING, &[], []);
                    let iq = Iq::Get { from: None, to: None, id: new_id(), payload: ping };
                    if let Err(error) = write_all(&mut stream, vec![Stanza::Iq(iq)]).await {
                        break format!("write failed: {error}");
                    }
                }
                Some(Err(ReadError::ParseError(error))) => {
                    tracing::debug!(%error, "an unparsable element was skipped");
                }
                Some(Err(ReadError::HardError(error))) => break format!("connection lost: {error}"),
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    break "the server closed the stream".to_owned();
                }
            },
        }
    };
    *lock(&shared.closed) = Some(why.clone());
    let mut state = lock(&shared.state);
    // Waiters see their channel dropped (a connect error); push gets the error.
    state.iqs.clear();
    state.sends.clear();
    state.joins.clear();
    let _ = state.events.send(Err(ClientError::Connect(why)));
    // The reader sees the channel end after the error.
    state.events = mpsc::unbounded_channel().0;
    drop(state);
    shared.changed.notify_waiters();
}

/// Writes `stanzas` in order.
async fn write_all(stream: &mut Stream, stanzas: Vec<Stanza>) -> std::io::Result<()> {
    for stanza in stanzas {
        stream.send(&XmppStreamElement::Stanza(stanza)).await?;
    }
    Ok(())
}
