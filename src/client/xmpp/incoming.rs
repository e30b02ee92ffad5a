//! What one session does with the stanzas it receives: answers to its own
//! requests go to whoever waits for them, MAM results to their query,
//! room presences keep the rooms' occupants, and what the probes watch
//! becomes [`Event`]s. Pure bookkeeping: the replies it wants sent are
//! handed back to the session task, which owns the stream.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::StanzaError;

use super::stanzas::{self, NS_BOOKMARKS, NS_MUC_USER, NS_PUBSUB_EVENT, NS_SID};
use crate::client::{ClientError, ClientResult, Delivered, Event, ReceivedMessage};

/// Where pushed events go (unbounded: the session task must never wait on
/// a slow reader, or answers to requests would wait behind it).
pub(super) type EventSender = mpsc::UnboundedSender<ClientResult<Delivered>>;

/// Everything a session keeps between stanzas.
#[derive(Debug)]
pub(super) struct State {
    /// The account's bare JID.
    pub(super) account: BareJid,
    /// The nick this account uses in every room.
    pub(super) nick: String,
    /// Requests waiting for their answer, by stanza id.
    pub(super) iqs: HashMap<String, oneshot::Sender<Iq>>,
    /// Messages waiting for the room's echo (their stanza-id), by origin-id.
    pub(super) sends: HashMap<String, oneshot::Sender<ClientResult<String>>>,
    /// MAM results of running queries, by query id: (archive id, message).
    pub(super) archives: HashMap<String, Vec<(String, Element)>>,
    /// Joins waiting for the room's self-presence, by room.
    pub(super) joins: HashMap<String, oneshot::Sender<ClientResult<()>>>,
    /// Room settings being read after a status-104 change, by request id:
    /// the room and when the change arrived.
    pub(super) settings_reads: HashMap<String, (String, Instant)>,
    /// The rooms this session is in (or was asked into).
    pub(super) rooms: HashMap<String, Room>,
    /// Whether the session announced itself (push open): only then does it
    /// follow bookmark changes by joining and leaving rooms.
    pub(super) announced: bool,
    /// Pushed events.
    pub(super) events: EventSender,
}

/// One room as this session sees it.
#[derive(Debug, Default)]
pub(super) struct Room {
    /// This session is an occupant.
    pub(super) joined: bool,
    /// Occupants by nick: their bare JID.
    pub(super) occupants: HashMap<String, String>,
    /// The full JIDs of this account's sessions in the room.
    pub(super) own_sessions: HashSet<String>,
}

impl State {
    /// Handles one received stanza; returns the stanzas to send in reply.
    pub(super) fn handle(&mut self, stanza: Stanza, now: Instant) -> Vec<Stanza> {
        match stanza {
            Stanza::Iq(iq) => self.on_iq(iq),
            Stanza::Message(message) => self.on_message(message, now),
            Stanza::Presence(presence) => {
                self.on_presence(presence, now);
                Vec::new()
            }
        }
    }

    fn push(&self, event: Event, received_at: Instant) {
        // A device that is gone no longer reads; nothing to do then.
        let _ = self.events.send(Ok(Delivered { event, received_at }));
    }

    fn on_iq(&mut self, iq: Iq) -> Vec<Stanza> {
        let id = iq_id(&iq).to_owned();
        if let Some((room, received_at)) = self.settings_reads.remove(&id) {
            if let Iq::Result { payload, .. } = &iq {
                let settings = stanzas::room_settings(payload.as_ref());
                let event = Event::SettingsChanged {
                    group: room,
                    name: Some(settings.name),
                    notice: Some(settings.notice),
                };
                self.push(event, received_at);
            }
            return Vec::new();
        }
        match iq {
            Iq::Result { .. } | Iq::Error { .. } => {
                if let Some(waiter) = self.iqs.remove(&id) {
                    let _ = waiter.send(iq);
                }
                Vec::new()
            }
            Iq::Get {
                from, id, payload, ..
            } => vec![answer_get(from, id, &payload)],
            Iq::Set { from, id, .. } => vec![refuse(from, id)],
        }
    }

    fn on_message(&mut self, message: Message, now: Instant) -> Vec<Stanza> {
        for payload in &message.payloads {
            if let Some((query, archive_id, archived)) = stanzas::mam_result(payload) {
                if let Some(results) = self.archives.get_mut(query) {
                    results.push((archive_id.to_owned(), archived.clone()));
                }
                return Vec::new();
            }
        }
        let Some(from) = message.from.clone() else {
            return Vec::new();
        };
        match message.type_ {
            MessageType::Error => {
                self.on_refused_message(&message);
                Vec::new()
            }
            MessageType::Groupchat => self.on_groupchat(&message, &from, now),
            MessageType::Headline if from.to_bare() == self.account => {
                self.on_bookmarks_changed(&message)
            }
            _ => {
                self.on_invitation(&message, &from, now);
                Vec::new()
            }
        }
    }

    /// A message the service refused: its sender learns why.
    fn on_refused_message(&mut self, message: &Message) {
        let Some(id) = &message.id else { return };
        let Some(waiter) = self.sends.remove(&id.0) else {
            return;
        };
        let error = message
            .payloads
            .iter()
            .find(|payload| payload.name() == "error")
            .and_then(|payload| StanzaError::try_from(payload.clone()).ok());
        let error = match error {
            Some(error) => stanzas::stanza_error(&error),
            None => ClientError::Malformed("message error without a condition".into()),
        };
        let _ = waiter.send(Err(error));
    }

    fn on_groupchat(&mut self, message: &Message, from: &Jid, now: Instant) -> Vec<Stanza> {
        let room = from.to_bare().to_string();
        if status_codes(&message.payloads).contains(&104) {
            return self.read_settings(room, from, now);
        }
        let Some((_, body)) = message.get_best_body(vec![]) else {
            return Vec::new();
        };
        let Some(stanza_id) = stanza_id(&message.payloads, &room) else {
            return Vec::new();
        };
        if let Some(origin) = origin_id(&message.payloads)
            && let Some(waiter) = self.sends.remove(origin)
        {
            let _ = waiter.send(Ok(stanza_id.clone()));
        }
        let nick = from
            .resource()
            .map(|nick| nick.to_string())
            .unwrap_or_default();
        let sender = self
            .rooms
            .get(&room)
            .and_then(|known| known.occupants.get(&nick).cloned())
            .unwrap_or(nick);
        let event = Event::Message(ReceivedMessage {
            id: stanza_id,
            group: room,
            sender,
            body: body.clone(),
        });
        self.push(event, now);
        Vec::new()
    }

    /// Asks the room for its settings after a change (status 104 says only
    /// that they changed); the answer becomes the event.
    fn read_settings(&mut self, room: String, from: &Jid, now: Instant) -> Vec<Stanza> {
        let id = new_id();
        self.settings_reads.insert(id.clone(), (room, now));
        let iq = Iq::Get {
            from: None,
            to: Some(from.to_bare().into()),
            id,
            payload: stanzas::disco_info(),
        };
        vec![Stanza::Iq(iq)]
    }

    /// A mediated invitation: this account was added to the room.
    fn on_invitation(&mut self, message: &Message, from: &Jid, now: Instant) {
        let invited = message
            .payloads
            .iter()
            .filter(|payload| payload.is("x", NS_MUC_USER))
            .any(|x| x.get_child("invite", NS_MUC_USER).is_some());
        if invited {
            let event = Event::MemberJoined {
                group: from.to_bare().to_string(),
                user: self.account.to_string(),
            };
            self.push(event, now);
        }
    }

    /// Another device of the account added or removed a bookmark: join or
    /// leave that room, as XEP-0402 clients do (only once announced).
    fn on_bookmarks_changed(&mut self, message: &Message) -> Vec<Stanza> {
        let Some(items) = message
            .payloads
            .iter()
            .filter_map(|payload| payload.get_child("items", NS_PUBSUB_EVENT))
            .find(|items| items.attr("node") == Some(NS_BOOKMARKS))
        else {
            return Vec::new();
        };
        if !self.announced {
            return Vec::new();
        }
        let mut replies = Vec::new();
        for room in stanzas::bookmarked_rooms(items) {
            if !self.rooms.get(&room).is_some_and(|known| known.joined) {
                self.rooms.entry(room.clone()).or_default();
                replies.extend(self.room_presence(&room, PresenceType::None));
            }
        }
        let retracted = items
            .children()
            .filter(|child| child.name() == "retract")
            .filter_map(|retract| retract.attr("id"));
        for room in retracted {
            if self.rooms.get(room).is_some_and(|known| known.joined) {
                replies.extend(self.room_presence(room, PresenceType::Unavailable));
            }
        }
        replies
    }

    /// This session's presence of `kind` to its occupant JID in `room`.
    pub(super) fn room_presence(&self, room: &str, kind: PresenceType) -> Option<Stanza> {
        let occupant = Jid::new(&format!("{room}/{}", self.nick)).ok()?;
        let joining = kind == PresenceType::None;
        let mut presence = Presence::new(kind).with_to(occupant);
        if joining {
            presence.payloads.push(stanzas::muc_join());
        }
        Some(Stanza::Presence(presence))
    }

    fn on_presence(&mut self, presence: Presence, now: Instant) {
        let Some(from) = presence.from.clone() else {
            return;
        };
        let room = from.to_bare().to_string();
        let Some(nick) = from.resource().map(|nick| nick.to_string()) else {
            return;
        };
        if presence.type_ == PresenceType::Error {
            if let Some(waiter) = self.joins.remove(&room) {
                let error = presence
                    .payloads
                    .iter()
                    .find(|payload| payload.name() == "error")
                    .and_then(|payload| StanzaError::try_from(payload.clone()).ok());
                let error = error.map_or_else(
                    || ClientError::Malformed("presence error without a condition".into()),
                    |error| stanzas::stanza_error(&error),
                );
                let _ = waiter.send(Err(error));
            }
            return;
        }
        let Some(x) = presence
            .payloads
            .iter()
            .find(|payload| payload.is("x", NS_MUC_USER))
        else {
            return;
        };
        let sessions: Vec<String> = x
            .children()
            .filter(|item| item.name() == "item")
            .filter_map(|item| item.attr("jid").map(str::to_owned))
            .collect();
        let user = sessions
            .first()
            .and_then(|session| Jid::new(session).ok())
            .map_or_else(|| nick.clone(), |jid| jid.to_bare().to_string());
        let is_self = status_codes(&presence.payloads).contains(&110);
        let known = self.rooms.entry(room.clone()).or_default();
        if presence.type_ == PresenceType::Unavailable {
            if is_self {
                *known = Room::default();
            } else if known.occupants.remove(&nick).is_some() {
                self.push(Event::MemberLeft { group: room, user }, now);
            }
            return;
        }
        let is_new = known.occupants.insert(nick, user.clone()).is_none();
        if is_self {
            known.joined = true;
            known.own_sessions = sessions.into_iter().collect();
            if let Some(waiter) = self.joins.remove(&room) {
                let _ = waiter.send(Ok(()));
            }
        }
        if is_new {
            self.push(Event::MemberJoined { group: room, user }, now);
        }
    }
}

/// The id of an IQ of any type.
fn iq_id(iq: &Iq) -> &str {
    match iq {
        Iq::Get { id, .. } | Iq::Set { id, .. } | Iq::Result { id, .. } | Iq::Error { id, .. } => {
            id
        }
    }
}

/// A fresh stanza id.
pub(super) fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Answers a request from the server: disco#info (what the client
/// supports, so the server sends bookmark notifications), ping; anything
/// else is not supported.
fn answer_get(from: Option<Jid>, id: String, payload: &Element) -> Stanza {
    let answer = if payload.is("query", stanzas::NS_DISCO_INFO) {
        Some(super::caps::disco_answer(payload.attr("node")))
    } else if payload.is("ping", stanzas::NS_PING) {
        None
    } else {
        return refuse(from, id);
    };
    Stanza::Iq(Iq::Result {
        from: None,
        to: from,
        id,
        payload: answer,
    })
}

/// `service-unavailable` to a request this client does not serve.
fn refuse(to: Option<Jid>, id: String) -> Stanza {
    use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType};
    let error = StanzaError::new(
        ErrorType::Cancel,
        DefinedCondition::ServiceUnavailable,
        "en",
        "",
    );
    Stanza::Iq(Iq::Error {
        from: None,
        to,
        id,
        error,
        payload: None,
    })
}

/// The MUC status codes in a stanza's `<x xmlns='…muc#user'>`.
fn status_codes(payloads: &[Element]) -> Vec<u16> {
    payloads
        .iter()
        .filter(|payload| payload.is("x", NS_MUC_USER))
        .flat_map(Element::children)
        .filter(|child| child.name() == "status")
        .filter_map(|status| status.attr("code")?.parse().ok())
        .collect()
}

/// The id the room gave a message (XEP-0359 `stanza-id` by the room).
fn stanza_id(payloads: &[Element], room: &str) -> Option<String> {
    payloads
        .iter()
        .filter(|payload| payload.is("stanza-id", NS_SID))
        .find(|id| id.attr("by") == Some(room))
        .and_then(|id| id.attr("id").map(str::to_owned))
}

/// The sender's own id of a message (XEP-0359 `origin-id`).
fn origin_id(payloads: &[Element]) -> Option<&str> {
    payloads
        .iter()
        .find(|payload| payload.is("origin-id", NS_SID))
        .and_then(|id| id.attr("id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (State, mpsc::UnboundedReceiver<ClientResult<Delivered>>) {
        let (events, received) = mpsc::unbounded_channel();
        let state = State {
            account: BareJid::new("alice@localhost").expect("literal JID"),
            nick: "alice".into(),
            iqs: HashMap::new(),
            sends: HashMap::new(),
            archives: HashMap::new(),
            joins: HashMap::new(),
            settings_reads: HashMap::new(),
            rooms: HashMap::new(),
            announced: true,
            events,
        };
        (state, received)
    }

    fn stanza(xml: &str) -> Stanza {
        let element: Element = xml.parse().expect("test XML parses");
        Stanza::try_from(element).expect("a stanza")
    }

    fn events(received: &mut mpsc::UnboundedReceiver<ClientResult<Delivered>>) -> Vec<Event> {
        let mut all = Vec::new();
        while let Ok(Ok(delivered)) = received.try_recv() {
            all.push(delivered.event);
        }
        all
    }

    #[test]
    fn presences_track_occupants_and_messages_carry_the_room_id() {
        let (mut state, mut received) = state();
        let now = Instant::now();
        state.handle(stanza("<presence xmlns='jabber:client' from='r@muc/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@localhost/d1' affiliation='owner' role='moderator'/></x></presence>"), now);
        state.handle(stanza("<presence xmlns='jabber:client' from='r@muc/alice'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='alice@localhost/a' affiliation='owner' role='moderator'/><item jid='alice@localhost/b' affiliation='owner' role='moderator'/><status code='110'/></x></presence>"), now);
        state.handle(stanza("<message xmlns='jabber:client' type='groupchat' from='r@muc/bob'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='r@muc' id='s1'/><origin-id xmlns='urn:xmpp:sid:0' id='t1'/></message>"), now);
        state.handle(stanza("<presence xmlns='jabber:client' type='unavailable' from='r@muc/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@localhost/d1' affiliation='none' role='none'/><status code='321'/></x></presence>"), now);
        let room = &state.rooms["r@muc"];
        assert!(room.joined);
        assert_eq!(room.own_sessions.len(), 2);
        let group = "r@muc".to_string();
        assert_eq!(
            events(&mut received),
            vec![
                Event::MemberJoined {
                    group: group.clone(),
                    user: "bob@localhost".into()
                },
                Event::MemberJoined {
                    group: group.clone(),
                    user: "alice@localhost".into()
                },
                Event::Message(ReceivedMessage {
                    id: "s1".into(),
                    group: group.clone(),
                    sender: "bob@localhost".into(),
                    body: "hi".into(),
                }),
                Event::MemberLeft {
                    group,
                    user: "bob@localhost".into()
                },
            ]
        );
    }

    #[test]
    fn a_settings_change_is_read_then_pushed() {
        let (mut state, mut received) = state();
        let now = Instant::now();
        let replies = state.handle(stanza("<message xmlns='jabber:client' type='groupchat' from='r@muc'><x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>"), now);
        let Some(Stanza::Iq(Iq::Get { id, .. })) = replies.first() else {
            panic!("expected a disco#info request: {replies:?}");
        };
        let answer = format!(
            "<iq xmlns='jabber:client' type='result' id='{id}' from='r@muc'><query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'><field var='muc#roomconfig_roomname'><value>n</value></field><field var='muc#roominfo_description'><value>d</value></field></x></query></iq>"
        );
        state.handle(stanza(&answer), now);
        assert_eq!(
            events(&mut received),
            vec![Event::SettingsChanged {
                group: "r@muc".into(),
                name: Some("n".into()),
                notice: Some("d".into())
            }]
        );
    }

    #[test]
    fn bookmark_notifications_join_and_leave_rooms() {
        let (mut state, _received) = state();
        let now = Instant::now();
        let added = state.handle(stanza("<message xmlns='jabber:client' type='headline' from='alice@localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bookmarks:1'><item id='r@muc'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item></items></event></message>"), now);
        assert!(matches!(added.as_slice(), [Stanza::Presence(p)] if p.type_ == PresenceType::None));
        state.rooms.entry("r@muc".into()).or_default().joined = true;
        let removed = state.handle(stanza("<message xmlns='jabber:client' type='headline' from='alice@localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:bookmarks:1'><retract id='r@muc'/></items></event></message>"), now);
        assert!(
            matches!(removed.as_slice(), [Stanza::Presence(p)] if p.type_ == PresenceType::Unavailable)
        );
    }
}
