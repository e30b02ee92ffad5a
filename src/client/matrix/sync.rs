//! `/sync`: the filter the probes need, the answer's shape, its mapping onto
//! [`Event`]s, the back-fill of timelines the server cut short, and the
//! per-device push loop (a long-polling `/sync` chain).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::api::{Api, ApiResult};
use crate::client::{ClientError, ClientResult, Delivered, Event, ReceivedMessage};

/// The event types the probes look at; everything else is filtered out by the server.
const EVENT_TYPES: [&str; 4] = [
    "m.room.message",
    "m.room.member",
    "m.room.name",
    "m.room.topic",
];

/// Most timeline events per room in one sync answer, and in one page of back-fill.
const TIMELINE_LIMIT: u32 = 100;

/// Most `/messages` pages read to fill one room's gap; a longer gap is logged.
const BACKFILL_PAGES: usize = 20;

/// How long the server may hold a push long poll open.
const LONG_POLL: Duration = Duration::from_secs(20);

/// Events the push loop may buffer before it stops polling until they are read.
const PUSH_BUFFER: usize = 1024;

/// The filter of every incremental sync: room timelines and state of the
/// probed types only; no presence, typing, receipts or account data.
fn event_filter() -> String {
    let nothing = serde_json::json!({ "not_types": ["*"] });
    serde_json::json!({
        "presence": nothing,
        "account_data": nothing,
        "room": {
            "timeline": timeline_filter(),
            "state": { "types": EVENT_TYPES },
            "ephemeral": nothing,
            "account_data": nothing,
        },
    })
    .to_string()
}

/// The room event filter of sync timelines and back-fill pages.
fn timeline_filter() -> Value {
    serde_json::json!({ "types": EVENT_TYPES, "limit": TIMELINE_LIMIT })
}

/// The filter of the one sync without `since` a device makes: no rooms at
/// all, since only its `next_batch` position is wanted.
fn position_filter() -> String {
    let nothing = serde_json::json!({ "not_types": ["*"] });
    serde_json::json!({
        "presence": nothing,
        "account_data": nothing,
        "room": { "rooms": [] },
    })
    .to_string()
}

/// A `/sync` answer, reduced to what the probes read.
#[derive(Debug, Deserialize)]
struct SyncResponse {
    next_batch: String,
    #[serde(default)]
    rooms: Rooms,
}

#[derive(Debug, Default, Deserialize)]
struct Rooms {
    #[serde(default)]
    join: BTreeMap<String, RoomWithTimeline>,
    #[serde(default)]
    leave: BTreeMap<String, RoomWithTimeline>,
    #[serde(default)]
    invite: BTreeMap<String, InvitedRoom>,
}

#[derive(Debug, Default, Deserialize)]
struct RoomWithTimeline {
    #[serde(default)]
    timeline: Timeline,
}

/// A room's timeline in a sync answer: its latest events and, when the
/// server left some out (`limited`), where the ones before them end.
#[derive(Debug, Default, Deserialize)]
struct Timeline {
    #[serde(default)]
    events: Vec<RoomEvent>,
    #[serde(default)]
    limited: bool,
    #[serde(default)]
    prev_batch: Option<String>,
}

/// One page of `/rooms/{room}/messages`, newest first (`dir=b`).
#[derive(Debug, Deserialize)]
struct MessagesPage {
    #[serde(default)]
    chunk: Vec<RoomEvent>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct InvitedRoom {
    #[serde(default)]
    invite_state: EventList,
}

#[derive(Debug, Default, Deserialize)]
struct EventList {
    #[serde(default)]
    events: Vec<RoomEvent>,
}

/// One room event (or stripped state event) as `/sync` and `/state` carry it.
#[derive(Debug, Deserialize)]
pub(super) struct RoomEvent {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) event_id: Option<String>,
    #[serde(default)]
    pub(super) sender: String,
    #[serde(default)]
    pub(super) state_key: Option<String>,
    #[serde(default)]
    pub(super) content: Value,
    #[serde(default)]
    unsigned: Unsigned,
}

#[derive(Debug, Default, Deserialize)]
struct Unsigned {
    #[serde(default)]
    prev_content: Option<Value>,
}

impl RoomEvent {
    /// A string field of the event's content.
    pub(super) fn content_str(&self, field: &str) -> Option<&str> {
        self.content.get(field).and_then(Value::as_str)
    }

    /// The membership this event gives its `state_key` user, and the one it had before.
    fn membership_change(&self) -> (Option<&str>, Option<&str>) {
        let previous = self
            .unsigned
            .prev_content
            .as_ref()
            .and_then(|content| content.get("membership"))
            .and_then(Value::as_str);
        (self.content_str("membership"), previous)
    }

    /// What this event means to a probe, if anything.
    fn to_event(&self, room: &str) -> Option<Event> {
        let group = room.to_owned();
        match self.kind.as_str() {
            "m.room.message" => Some(Event::Message(ReceivedMessage {
                id: self.event_id.clone()?,
                group,
                sender: self.sender.clone(),
                body: self.content_str("body")?.to_owned(),
            })),
            "m.room.member" => {
                let user = self.state_key.clone()?;
                match self.membership_change() {
                    (Some("join"), Some("join")) => None, // a profile change
                    (Some("join" | "invite"), _) => Some(Event::MemberJoined { group, user }),
                    (Some("leave" | "ban"), _) => Some(Event::MemberLeft { group, user }),
                    _ => None,
                }
            }
            "m.room.name" => Some(Event::SettingsChanged {
                group,
                name: Some(self.content_str("name").unwrap_or_default().to_owned()),
                notice: None,
            }),
            "m.room.topic" => Some(Event::SettingsChanged {
                group,
                name: None,
                notice: Some(self.content_str("topic").unwrap_or_default().to_owned()),
            }),
            _ => None,
        }
    }
}

impl SyncResponse {
    /// Every probe event of this answer: timelines of joined and left rooms
    /// in order, then the invitations `user` received.
    fn events(&self, user: &str) -> Vec<Event> {
        let timelines =
            self.rooms
                .join
                .iter()
                .chain(&self.rooms.leave)
                .flat_map(|(room, entry)| {
                    entry
                        .timeline
                        .events
                        .iter()
                        .filter_map(|event| event.to_event(room))
                });
        let invitations = self.rooms.invite.iter().flat_map(|(room, entry)| {
            entry
                .invite_state
                .events
                .iter()
                .filter(|event| {
                    event.kind == "m.room.member" && event.state_key.as_deref() == Some(user)
                })
                .filter_map(|event| event.to_event(room))
        });
        timelines.chain(invitations).collect()
    }
}

/// What one device needs to run `/sync`: the API, its token and its user.
#[derive(Debug)]
pub(super) struct SyncSession {
    pub(super) api: Arc<Api>,
    pub(super) token: String,
    pub(super) user_id: String,
}

impl SyncSession {
    /// The device's first and only `/sync` without `since`: its current position.
    pub(super) async fn position(&self) -> ClientResult<String> {
        let response: SyncResponse = self
            .api
            .request(Method::GET, self.api.url(&["sync"]), Some(&self.token))
            .query(&[("filter", &position_filter()), ("timeout", "0")])
            .call()
            .await?;
        Ok(response.next_batch)
    }

    /// One incremental sync from `since`, held open up to `wait` by the server;
    /// returns the events, the instant the answer arrived and the next position.
    pub(super) async fn since(
        &self,
        since: &str,
        wait: Duration,
    ) -> ClientResult<(Vec<Delivered>, String)> {
        let (mut response, received_at) = self.fetch(since, wait).await?;
        self.fill_gaps(&mut response, since).await?;
        let delivered = response
            .events(&self.user_id)
            .into_iter()
            .map(|event| Delivered { event, received_at })
            .collect();
        Ok((delivered, response.next_batch))
    }

    async fn fetch(&self, since: &str, wait: Duration) -> ApiResult<(SyncResponse, Instant)> {
        let wait_ms = wait.as_millis().to_string();
        let response = self
            .api
            .request(Method::GET, self.api.url(&["sync"]), Some(&self.token))
            .query(&[
                ("since", since),
                ("filter", &event_filter()),
                ("timeout", &wait_ms),
                ("set_presence", "offline"),
            ])
            .timeout(wait + self.api.request_timeout())
            .call()
            .await?;
        Ok((response, Instant::now()))
    }

    /// Puts the events a `limited` timeline left out (those after `since`)
    /// in front of it, so that no message is lost to a long gap.
    async fn fill_gaps(&self, response: &mut SyncResponse, since: &str) -> ClientResult<()> {
        let rooms = response
            .rooms
            .join
            .iter_mut()
            .chain(&mut response.rooms.leave);
        for (room, entry) in rooms {
            let timeline = &mut entry.timeline;
            let Some(gap_end) = timeline.prev_batch.as_deref().filter(|_| timeline.limited) else {
                continue;
            };
            let mut events = self.backfill(room, gap_end, since).await?;
            events.append(&mut timeline.events);
            timeline.events = events;
        }
        Ok(())
    }

    /// The probed events of `room` between the positions `to` (older) and
    /// `from` (newer), oldest first, at most [`BACKFILL_PAGES`] pages.
    async fn backfill(&self, room: &str, from: &str, to: &str) -> ApiResult<Vec<RoomEvent>> {
        let filter = timeline_filter().to_string();
        let limit = TIMELINE_LIMIT.to_string();
        let mut newest_first = Vec::new();
        let mut from = from.to_owned();
        let mut complete = false;
        for _ in 0..BACKFILL_PAGES {
            let page: MessagesPage = self
                .api
                .request(
                    Method::GET,
                    self.api.url(&["rooms", room, "messages"]),
                    Some(&self.token),
                )
                .query(&[
                    ("dir", "b"),
                    ("from", &from),
                    ("to", to),
                    ("limit", &limit),
                    ("filter", &filter),
                ])
                .call()
                .await?;
            let last_page = page.chunk.is_empty();
            newest_first.extend(page.chunk);
            match page.end {
                Some(end) if !last_page => from = end,
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        if !complete {
            tracing::warn!(%room, pages = BACKFILL_PAGES,
                "timeline gap longer than the back-fill reads; older events are skipped");
        }
        newest_first.reverse();
        Ok(newest_first)
    }
}

/// A running push connection: a task long-polling `/sync` and the channel it
/// fills. Dropping it stops the task.
#[derive(Debug)]
pub(super) struct Push {
    events: mpsc::Receiver<ClientResult<Delivered>>,
    task: JoinHandle<()>,
}

impl Push {
    /// Opens push from the position in `since`: one immediate sync proves
    /// the server reachable (its events come first), then a task long-polls
    /// and advances `since` as answers arrive (a later push continues there).
    pub(super) async fn open(
        session: Arc<SyncSession>,
        since: Arc<Mutex<String>>,
    ) -> ClientResult<Self> {
        let position = lock(&since).clone();
        let (first, next) = session.since(&position, Duration::ZERO).await?;
        *lock(&since) = next;
        let (sender, events) = mpsc::channel(PUSH_BUFFER);
        let task = tokio::spawn(poll_loop(session, since, first, sender));
        Ok(Self { events, task })
    }

    /// The next pushed event, `None` when `until` passes first; the loop's
    /// error once, then [`ClientError::Connect`] after it has stopped.
    pub(super) async fn next(&mut self, until: Instant) -> ClientResult<Option<Delivered>> {
        match tokio::time::timeout_at(until.into(), self.events.recv()).await {
            Err(_elapsed) => Ok(None),
            Ok(Some(Ok(delivered))) => Ok(Some(delivered)),
            Ok(Some(Err(error))) => Err(error),
            Ok(None) => Err(ClientError::Connect("push connection closed".into())),
        }
    }
}

impl Drop for Push {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hands on `first`, then long-polls `/sync` until an error (handed to the
/// reader) or until the reader is gone.
async fn poll_loop(
    session: Arc<SyncSession>,
    since: Arc<Mutex<String>>,
    first: Vec<Delivered>,
    sender: mpsc::Sender<ClientResult<Delivered>>,
) {
    let mut delivered = first;
    loop {
        for event in delivered {
            if sender.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let position = lock(&since).clone();
        match session.since(&position, LONG_POLL).await {
            Ok((batch, next)) => {
                *lock(&since) = next;
                delivered = batch;
            }
            Err(error) => {
                let _ = sender.send(Err(error)).await;
                return;
            }
        }
    }
}

/// Locks a sync position; a poisoned lock still holds a valid position.
pub(super) fn lock(position: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    position
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: Value) -> SyncResponse {
        serde_json::from_value(json).expect("test sync answer parses")
    }

    #[test]
    fn maps_messages_members_and_settings_in_timeline_order() {
        let answer = response(serde_json::json!({
            "next_batch": "s2",
            "rooms": { "join": { "!r:hs": { "timeline": { "events": [
                { "type": "m.room.member", "sender": "@b:hs", "state_key": "@b:hs",
                  "content": { "membership": "join" }, "unsigned": { "prev_content": { "membership": "invite" } } },
                { "type": "m.room.message", "event_id": "$1", "sender": "@a:hs",
                  "content": { "msgtype": "m.text", "body": "hello" } },
                { "type": "m.room.member", "sender": "@b:hs", "state_key": "@b:hs",
                  "content": { "membership": "join", "displayname": "B" },
                  "unsigned": { "prev_content": { "membership": "join" } } },
                { "type": "m.room.topic", "sender": "@a:hs", "state_key": "", "content": { "topic": "t" } },
                { "type": "m.room.member", "sender": "@b:hs", "state_key": "@b:hs",
                  "content": { "membership": "leave" } },
            ] } } } }
        }));
        let group = "!r:hs".to_owned();
        assert_eq!(
            answer.events("@a:hs"),
            vec![
                Event::MemberJoined {
                    group: group.clone(),
                    user: "@b:hs".into()
                },
                Event::Message(ReceivedMessage {
                    id: "$1".into(),
                    group: group.clone(),
                    sender: "@a:hs".into(),
                    body: "hello".into(),
                }),
                Event::SettingsChanged {
                    group: group.clone(),
                    name: None,
                    notice: Some("t".into())
                },
                Event::MemberLeft {
                    group,
                    user: "@b:hs".into()
                },
            ]
        );
    }

    #[test]
    fn own_invitation_counts_as_being_added() {
        let answer = response(serde_json::json!({
            "next_batch": "s3",
            "rooms": { "invite": { "!r:hs": { "invite_state": { "events": [
                { "type": "m.room.name", "sender": "@a:hs", "state_key": "", "content": { "name": "n" } },
                { "type": "m.room.member", "sender": "@a:hs", "state_key": "@b:hs",
                  "content": { "membership": "invite" } },
            ] } } } }
        }));
        assert_eq!(
            answer.events("@b:hs"),
            vec![Event::MemberJoined {
                group: "!r:hs".into(),
                user: "@b:hs".into()
            }]
        );
    }

    #[test]
    fn an_answer_without_rooms_has_no_events() {
        assert!(
            response(serde_json::json!({ "next_batch": "s1" }))
                .events("@a:hs")
                .is_empty()
        );
    }
}
