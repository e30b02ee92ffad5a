//! Wire format of the mock group-chat service (`chatprobe backend`).
//!
//! The backend serves these types and the mock client speaks them, so both sides
//! share one definition and cannot drift. `docs/mock-backend.md` describes the same API
//! for people.

use serde::{Deserialize, Serialize};

/// Header naming the region a request comes from (faults can target one region).
pub const REGION_HEADER: &str = "x-chatprobe-region";

/// Route paths of the mock service. `{id}` is a group id.
pub(crate) mod route {
    /// `POST`: log in; every login is a new device.
    pub(crate) const LOGIN: &str = "/api/v1/login";
    /// `GET` (WebSocket upgrade): push stream of the device's events, as [`super::Event`] text frames.
    pub(crate) const PUSH: &str = "/api/v1/push";
    /// `GET ?since=CURSOR`: catch-up sync of the device's events after a cursor.
    pub(crate) const SYNC: &str = "/api/v1/sync";
    /// `GET`: the caller's groups; `POST`: create a group.
    pub(crate) const GROUPS: &str = "/api/v1/groups";
    /// `GET`: read one group; `PATCH`: edit its settings.
    pub(crate) const GROUP: &str = "/api/v1/groups/{id}";
    /// `POST`: send a message to the group.
    pub(crate) const MESSAGES: &str = "/api/v1/groups/{id}/messages";
    /// `POST`: add a member to the group.
    pub(crate) const MEMBERS: &str = "/api/v1/groups/{id}/members";
    /// `POST`: accept membership of a group the caller was added to.
    pub(crate) const JOIN: &str = "/api/v1/groups/{id}/join";
    /// `POST`: leave the group.
    pub(crate) const LEAVE: &str = "/api/v1/groups/{id}/leave";
    /// `GET`/`PUT`/`DELETE`: the active fault list.
    pub(crate) const ADMIN_FAULTS: &str = "/admin/faults";
    /// `GET`: counters of fired faults and sizes of the model.
    pub(crate) const ADMIN_STATS: &str = "/admin/stats";
}

/// `POST /api/v1/login` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// User name; created on first login when the backend allows registration.
    pub(crate) user: String,
    /// Password; later logins of the same user must repeat it.
    pub(crate) password: String,
}

/// `POST /api/v1/login` answer: a new device of the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The user logged in.
    pub(crate) user: String,
    /// The new device's id.
    pub device_id: String,
    /// Bearer token of the new device (`Authorization: Bearer TOKEN`).
    pub token: String,
    /// The newest event cursor at login: a sync from here returns only newer events.
    pub cursor: u64,
}

/// `POST /api/v1/groups` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateGroupRequest {
    /// Display name of the group.
    pub(crate) name: String,
    /// Notice (topic) of the group.
    #[serde(default)]
    pub(crate) notice: String,
    /// Users added besides the creator.
    #[serde(default)]
    pub(crate) members: Vec<String>,
}

/// A group as read by a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group id.
    pub(crate) id: String,
    /// Display name.
    pub(crate) name: String,
    /// Notice (topic).
    pub(crate) notice: String,
    /// Current members' user names, sorted.
    pub(crate) members: Vec<String>,
}

/// `GET /api/v1/groups` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupList {
    /// Groups the caller is a member of.
    pub groups: Vec<Group>,
}

/// `PATCH /api/v1/groups/{id}` body; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditSettingsRequest {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// New notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) notice: Option<String>,
}

/// `POST /api/v1/groups/{id}/members` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMemberRequest {
    /// User to add.
    pub(crate) user: String,
}

/// `POST /api/v1/groups/{id}/messages` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    /// Client-chosen key: resending the same key returns the same message.
    pub(crate) idempotency_key: String,
    /// Message text.
    pub(crate) body: String,
}

/// A stored message, as acknowledged to the sender and delivered to devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Message id, unique on the server.
    pub(crate) id: String,
    /// Group the message belongs to.
    pub(crate) group_id: String,
    /// Per-group sequence number, from 1, in send order.
    pub seq: u64,
    /// Sending user.
    pub sender: String,
    /// Sending device.
    pub sender_device: String,
    /// Message text.
    pub body: String,
    /// The sender's idempotency key.
    pub(crate) idempotency_key: String,
    /// Server time of acceptance, milliseconds since the Unix epoch.
    pub(crate) server_ts_ms: u64,
}

/// What happened, as a device learns it by push or sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A message was sent to a group the device's user is in.
    Message {
        /// The message.
        message: Message,
    },
    /// A user became a member of a group.
    MemberJoined {
        /// The group.
        group_id: String,
        /// The new member.
        user: String,
    },
    /// A user left a group.
    MemberLeft {
        /// The group.
        group_id: String,
        /// The member who left.
        user: String,
    },
    /// A group's settings changed.
    SettingsChanged {
        /// The group.
        group_id: String,
        /// Display name after the change.
        name: String,
        /// Notice after the change.
        notice: String,
        /// User who changed it.
        by: String,
    },
}

/// One event of a device's stream, with its position.
///
/// Read through [`WireEvent`]: serde's own reading of a flattened, internally
/// tagged enum buffers the whole object first, a large share of an agent's
/// CPU per push frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireEvent")]
pub struct Event {
    /// Server-wide increasing position; sync with `since=cursor` returns later events.
    pub cursor: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An [`Event`] as written on the wire: `cursor`, `type` and the fields of
/// that type, all at one level.
#[derive(Deserialize)]
struct WireEvent {
    cursor: u64,
    #[serde(rename = "type")]
    kind: WireKind,
    message: Option<Message>,
    group_id: Option<String>,
    user: Option<String>,
    name: Option<String>,
    notice: Option<String>,
    by: Option<String>,
}

/// The `type` of a [`WireEvent`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireKind {
    Message,
    MemberJoined,
    MemberLeft,
    SettingsChanged,
}

impl TryFrom<WireEvent> for Event {
    type Error = String;

    fn try_from(wire: WireEvent) -> Result<Event, String> {
        fn field<T>(value: Option<T>, name: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("missing field `{name}`"))
        }
        let kind = match wire.kind {
            WireKind::Message => EventKind::Message {
                message: field(wire.message, "message")?,
            },
            WireKind::MemberJoined => EventKind::MemberJoined {
                group_id: field(wire.group_id, "group_id")?,
                user: field(wire.user, "user")?,
            },
            WireKind::MemberLeft => EventKind::MemberLeft {
                group_id: field(wire.group_id, "group_id")?,
                user: field(wire.user, "user")?,
            },
            WireKind::SettingsChanged => EventKind::SettingsChanged {
                group_id: field(wire.group_id, "group_id")?,
                name: field(wire.name, "name")?,
                notice: field(wire.notice, "notice")?,
                by: field(wire.by, "by")?,
            },
        };
        Ok(Event {
            cursor: wire.cursor,
            kind,
        })
    }
}

/// `GET /api/v1/sync` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The device's events after `since`, oldest first.
    pub events: Vec<Event>,
    /// Cursor to pass as `since` next time.
    pub next_cursor: u64,
}

/// Body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    /// What went wrong, for people.
    pub(crate) error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_reads_back_as_written() {
        let message = Message {
            id: "m1".into(),
            group_id: "g1".into(),
            seq: 1,
            sender: "alice".into(),
            sender_device: "d1".into(),
            body: "hi".into(),
            idempotency_key: "k1".into(),
            server_ts_ms: 5,
        };
        let (group_id, user) = ("g1".to_string(), "bob".to_string());
        let kinds = [
            EventKind::Message { message },
            EventKind::MemberJoined {
                group_id: group_id.clone(),
                user: user.clone(),
            },
            EventKind::MemberLeft {
                group_id: group_id.clone(),
                user: user.clone(),
            },
            EventKind::SettingsChanged {
                group_id,
                name: "n".into(),
                notice: "".into(),
                by: user,
            },
        ];
        for (cursor, kind) in kinds.into_iter().enumerate() {
            let event = Event {
                cursor: cursor as u64,
                kind,
            };
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<Event>(&text).unwrap(),
                event,
                "{text}"
            );
        }
    }

    #[test]
    fn an_event_without_its_fields_is_an_error_naming_them() {
        let err = serde_json::from_str::<Event>(r#"{"cursor":1,"type":"member_left","user":"u"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("`group_id`"), "{err}");
        assert!(serde_json::from_str::<Event>(r#"{"cursor":1,"type":"party"}"#).is_err());
    }
}
