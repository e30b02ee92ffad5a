//! What the data-changing effects do to data: `drop`, `duplicate`, `reorder`,
//! `corrupt` and `stale`, each written once here. The model, the delivery and
//! the push stream fire the faults and call these with the [`Effects`] that
//! fired. Two parts stay with the model because they are about its state, not
//! about data: `stale` on the operations that change a group answers without
//! applying, and `stale` reads pick the older group views the model keeps.

use std::borrow::Cow;

use axum::extract::ws::Utf8Bytes;

use super::event::{StoredEvent, encode};
use super::faults::Effects;
use crate::protocol::{Event, EventKind, Group, Message};

/// How many copies of an event are emitted or pushed: none on `drop`, two on `duplicate`.
pub(super) fn copies(effects: &Effects) -> usize {
    match (effects.drop, effects.duplicate) {
        (true, _) => 0,
        (false, true) => 2,
        (false, false) => 1,
    }
}

/// A group list answer (`list_groups`): empty on `drop`, else names and notices
/// altered on `corrupt`, then reordered and duplicated as [`rearrange`] does.
pub(super) fn answer_groups(mut groups: Vec<Group>, effects: &Effects) -> Vec<Group> {
    if effects.drop {
        groups.clear();
        return groups;
    }
    if effects.corrupt {
        for group in &mut groups {
            *group = corrupt_group(group);
        }
    }
    rearrange(groups, effects)
}

/// A group answer (`read_group`): name and notice altered on `corrupt`, every
/// member twice on `duplicate`.
pub(super) fn answer_group(group: Group, effects: &Effects) -> Group {
    let mut group = if effects.corrupt {
        corrupt_group(&group)
    } else {
        group
    };
    if effects.duplicate {
        group.members = twice_each(group.members);
    }
    group
}

/// A sync answer from the device's events after `since` (oldest first) and the
/// cursor it would answer: on `stale` the newest event is left out and the cursor
/// stops just before it (never before `since`); the events' JSON is altered on
/// `corrupt`, then reordered and duplicated as [`rearrange`] does.
pub(super) fn answer_sync<'a>(
    mut events: impl DoubleEndedIterator<Item = &'a StoredEvent>,
    since: u64,
    next_cursor: u64,
    effects: &Effects,
) -> (Vec<Cow<'a, str>>, u64) {
    let mut next_cursor = next_cursor;
    if effects.stale
        && let Some(newest) = events.next_back()
    {
        next_cursor = newest.event.cursor.saturating_sub(1).max(since);
    }
    let texts = events
        .map(|stored| {
            if effects.corrupt {
                Cow::Owned(corrupt_json(stored).to_string())
            } else {
                Cow::Borrowed(stored.json.as_str())
            }
        })
        .collect();
    (rearrange(texts, effects), next_cursor)
}

/// `reorder`: neighbours swapped in pairs; then `duplicate`: every item twice.
fn rearrange<T: Clone>(mut items: Vec<T>, effects: &Effects) -> Vec<T> {
    if effects.reorder.is_some() {
        for pair in items.chunks_mut(2) {
            pair.reverse();
        }
    }
    if effects.duplicate {
        items = twice_each(items);
    }
    items
}

/// Every item twice, each copy next to its original.
fn twice_each<T: Clone>(items: Vec<T>) -> Vec<T> {
    items
        .into_iter()
        .flat_map(|item| [item.clone(), item])
        .collect()
}

/// A sent message as stored: its body altered on `corrupt` (the acknowledgment
/// shows the original).
pub(super) fn stored_message(message: &Message, effects: &Effects) -> Message {
    let mut stored = message.clone();
    if effects.corrupt {
        stored.body = corrupt_text(&stored.body);
    }
    stored
}

/// The second message `duplicate` on `send` stores: the same content with its own
/// id and sequence number `seq`.
pub(super) fn duplicate_message(message: &Message, seq: u64) -> Message {
    Message {
        id: format!("{}-dup", message.id),
        seq,
        ..message.clone()
    }
}

/// Settings as applied by `edit_settings`: name and notice altered on `corrupt`
/// (the answer shows the requested ones).
pub(super) fn applied_settings(requested: &Group, effects: &Effects) -> Group {
    if effects.corrupt {
        corrupt_group(requested)
    } else {
        requested.clone()
    }
}

/// The JSON pushed for `event`: altered on `corrupt` (the device's log keeps the original).
pub(super) fn pushed_json(event: &StoredEvent, effects: &Effects) -> Utf8Bytes {
    if effects.corrupt {
        corrupt_json(event)
    } else {
        event.json.clone()
    }
}

/// The JSON of `event` with its content altered.
fn corrupt_json(event: &StoredEvent) -> Utf8Bytes {
    encode(&corrupt_event(&event.event))
}

/// Alter a text so it differs from the original, as a broken server would: reversed,
/// with U+FFFD appended.
fn corrupt_text(text: &str) -> String {
    let mut altered: String = text.chars().rev().collect();
    altered.push('\u{fffd}');
    altered
}

/// The group with its name and notice altered.
fn corrupt_group(group: &Group) -> Group {
    Group {
        name: corrupt_text(&group.name),
        notice: corrupt_text(&group.notice),
        ..group.clone()
    }
}

/// The event with its content altered: message bodies, settings, user names.
fn corrupt_event(event: &Event) -> Event {
    let kind = match &event.kind {
        EventKind::Message { message } => {
            let mut message = message.clone();
            message.body = corrupt_text(&message.body);
            EventKind::Message { message }
        }
        EventKind::MemberJoined { group_id, user } => EventKind::MemberJoined {
            group_id: group_id.clone(),
            user: corrupt_text(user),
        },
        EventKind::MemberLeft { group_id, user } => EventKind::MemberLeft {
            group_id: group_id.clone(),
            user: corrupt_text(user),
        },
        EventKind::SettingsChanged {
            group_id,
            name,
            notice,
            by,
        } => EventKind::SettingsChanged {
            group_id: group_id.clone(),
            name: corrupt_text(name),
            notice: corrupt_text(notice),
            by: by.clone(),
        },
    };
    Event {
        cursor: event.cursor,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Message {
        Message {
            id: "m1".into(),
            group_id: "g1".into(),
            seq: 1,
            sender: "a".into(),
            sender_device: "d1".into(),
            body: body.into(),
            idempotency_key: "k".into(),
            server_ts_ms: 0,
        }
    }

    #[test]
    fn corrupt_changes_message_body() {
        let event = Event {
            cursor: 1,
            kind: EventKind::Message {
                message: message("hello"),
            },
        };
        let EventKind::Message { message } = corrupt_event(&event).kind else {
            panic!("kind changed");
        };
        assert_ne!(message.body, "hello");
        assert_ne!(corrupt_text(""), "");
    }

    #[test]
    fn copies_follow_drop_then_duplicate() {
        let mut effects = Effects::default();
        assert_eq!(copies(&effects), 1);
        effects.duplicate = true;
        assert_eq!(copies(&effects), 2);
        effects.drop = true;
        assert_eq!(copies(&effects), 0);
    }

    #[test]
    fn lists_are_swapped_in_pairs_then_doubled() {
        let effects = Effects {
            reorder: Some(std::time::Duration::ZERO),
            duplicate: true,
            ..Effects::default()
        };
        let answer = rearrange(vec![1, 2, 3], &effects);
        assert_eq!(answer, [2, 2, 1, 1, 3, 3]);
    }

    #[test]
    fn stale_sync_leaves_the_newest_event_out() {
        let stored: Vec<StoredEvent> = (5..=7)
            .map(|cursor| {
                StoredEvent::new(Event {
                    cursor,
                    kind: EventKind::Message {
                        message: message("hi"),
                    },
                })
            })
            .collect();
        let effects = Effects {
            stale: true,
            ..Effects::default()
        };
        let (events, next_cursor) = answer_sync(stored.iter(), 4, 7, &effects);
        assert_eq!(events.len(), 2);
        assert_eq!(next_cursor, 6);
    }
}
