//! The model of the mock service: users, devices, groups, messages and the
//! per-device event logs, with every operation as one method.
//!
//! The whole model sits behind one mutex held only for the short, synchronous
//! work of an operation (never across an await). Events get their cursor and
//! reach every device log under that lock, so each log is in cursor order.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::BackendConfig;
use super::delivery::{DevicePush, Kill};
use super::distort;
use super::event::StoredEvent;
use super::faults::{Effect, Effects, FaultPoint, FaultSnapshot};
use super::timer::Timer;
use crate::protocol::{
    CreateGroupRequest, EditSettingsRequest, Event, EventKind, Group, GroupList, LoginRequest,
    LoginResponse, Message, SendRequest,
};

/// Deleted groups remembered for `stale` views of group lists and for `resurrect`.
const GRAVEYARD_LIMIT: usize = 1024;
/// Idempotency keys remembered per group (oldest forgotten first).
const IDEMPOTENCY_LIMIT: usize = 100_000;

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ModelError {
    /// Bad or missing credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown id.
    #[error("{0}")]
    NotFound(String),
    /// The request makes no sense.
    #[error("{0}")]
    BadRequest(String),
}

/// The device a request comes from, resolved from its token.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    /// Internal device number.
    pub(crate) device: u64,
    /// Device id as clients see it.
    pub(crate) device_id: Arc<str>,
    /// The device's user.
    pub(crate) user: Arc<str>,
    /// The region its login carried.
    pub(crate) region: Arc<str>,
    /// Its push side.
    pub(crate) push: Arc<DevicePush>,
}

/// What a fan-out needs besides the model: the faults on `deliver`/`sync` and the timer.
pub(super) struct Fanout<'a> {
    /// Faults as they are now.
    pub(crate) faults: FaultSnapshot<'a>,
    /// Timer for delayed and reordered pushes.
    pub(crate) timer: &'a Timer,
}

/// Sizes of the model, for `/admin/stats`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct ModelStats {
    /// Registered users.
    pub(crate) users: usize,
    /// Devices (logins).
    pub(crate) devices: usize,
    /// Live groups.
    pub(crate) groups: usize,
    /// Memberships over all groups.
    pub(crate) members: usize,
    /// Open push connections.
    pub(crate) push_sockets: usize,
    /// The newest event cursor.
    pub(crate) cursor: u64,
}

struct User {
    password: String,
    /// Oldest first; at most `max_devices_per_user`.
    devices: Vec<DeviceRecord>,
    groups: BTreeSet<String>,
    /// The groups of `groups` others put this user in that it has not joined
    /// (accepted) yet; at most `max_unaccepted_groups_per_user`.
    unaccepted: BTreeSet<String>,
}

impl User {
    fn device(&self, number: u64) -> Option<&DeviceRecord> {
        self.devices.iter().find(|device| device.number == number)
    }
}

/// One logged-in device of a user: its token, its event log and its push side.
struct DeviceRecord {
    number: u64,
    token: String,
    id: Arc<str>,
    user: Arc<str>,
    region: Arc<str>,
    log: VecDeque<Arc<StoredEvent>>,
    push: Arc<DevicePush>,
}

struct GroupState {
    view: Group,
    previous: Option<Group>,
    next_seq: u64,
    sent: HashMap<(String, String), Message>,
    sent_order: VecDeque<(String, String)>,
}

impl GroupState {
    fn new(view: Group) -> GroupState {
        GroupState {
            view,
            previous: None,
            next_seq: 1,
            sent: HashMap::new(),
            sent_order: VecDeque::new(),
        }
    }

    fn is_member(&self, user: &str) -> bool {
        self.view
            .members
            .binary_search_by(|member| member.as_str().cmp(user))
            .is_ok()
    }

    /// Remember the current view as the previous one, before a change.
    fn remember(&mut self) {
        self.previous = Some(self.view.clone());
    }

    fn stale_view(&self) -> &Group {
        self.previous.as_ref().unwrap_or(&self.view)
    }

    fn remember_sent(&mut self, key: (String, String), message: Message) {
        if self.sent_order.len() >= IDEMPOTENCY_LIMIT
            && let Some(oldest) = self.sent_order.pop_front()
        {
            self.sent.remove(&oldest);
        }
        self.sent_order.push_back(key.clone());
        self.sent.insert(key, message);
    }
}

/// Users and devices with their logs: the recipients side of every event.
struct Directory {
    users: HashMap<String, User>,
    cursor: u64,
    event_log_limit: usize,
}

impl Directory {
    /// Give `kind` a cursor and deliver it to every device of every user in `members`,
    /// `copies` times ([`distort::copies`]), each copy with a cursor of its own.
    fn emit(&mut self, fanout: &Fanout<'_>, members: &[String], kind: EventKind, copies: usize) {
        let deliver_faults = fanout.faults.touches(FaultPoint::Deliver);
        let sync_faults = fanout.faults.touches(FaultPoint::Sync);
        for _ in 0..copies {
            self.cursor += 1;
            let stored = Arc::new(StoredEvent::new(Event {
                cursor: self.cursor,
                kind: kind.clone(),
            }));
            for member in members {
                let Some(user) = self.users.get_mut(member) else {
                    continue;
                };
                for device in &mut user.devices {
                    let effects = if deliver_faults {
                        fanout.faults.fire(FaultPoint::Deliver, &device.region)
                    } else {
                        Effects::default()
                    };
                    if effects.drop {
                        continue;
                    }
                    let hidden_from_sync = sync_faults
                        && fanout
                            .faults
                            .fire_only(FaultPoint::Sync, &device.region, |e| e == Effect::Drop)
                            .drop;
                    if !hidden_from_sync {
                        if device.log.len() >= self.event_log_limit {
                            device.log.pop_front();
                        }
                        device.log.push_back(stored.clone());
                    }
                    device.push.deliver(&stored, &effects, fanout.timer);
                }
            }
        }
    }
}

/// The whole state of the mock service.
pub(super) struct Model {
    directory: Directory,
    /// Token → the device's user and its position among the user's devices.
    tokens: HashMap<String, (Arc<str>, u64)>,
    groups: HashMap<String, GroupState>,
    graveyard: VecDeque<Group>,
    next_id: u64,
    registration: bool,
    max_devices_per_user: usize,
    max_users: usize,
    max_groups_per_user: usize,
    max_unaccepted_groups_per_user: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn insert_sorted(members: &mut Vec<String>, user: &str) -> bool {
    match members.binary_search_by(|member| member.as_str().cmp(user)) {
        Ok(_) => false,
        Err(index) => {
            members.insert(index, user.to_string());
            true
        }
    }
}

fn remove_sorted(members: &mut Vec<String>, user: &str) -> bool {
    match members.binary_search_by(|member| member.as_str().cmp(user)) {
        Ok(index) => {
            members.remove(index);
            true
        }
        Err(_) => false,
    }
}

impl Model {
    /// An empty model with the limits of `config`.
    pub(super) fn new(config: &BackendConfig) -> Model {
        Model {
            directory: Directory {
                users: HashMap::new(),
                cursor: 0,
                event_log_limit: config.event_log_limit,
            },
            tokens: HashMap::new(),
            groups: HashMap::new(),
            graveyard: VecDeque::new(),
            next_id: 0,
            registration: config.registration,
            max_devices_per_user: config.max_devices_per_user,
            max_users: config.max_users,
            max_groups_per_user: config.max_groups_per_user,
            max_unaccepted_groups_per_user: config.max_unaccepted_groups_per_user,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Log in: a new device of the user (created first if registration is open).
    /// With `dead_token` (the `drop` effect) the answer looks normal but the token works nowhere.
    pub(super) fn login(
        &mut self,
        request: &LoginRequest,
        region: Arc<str>,
        dead_token: bool,
    ) -> Result<LoginResponse, ModelError> {
        if request.user.is_empty() {
            return Err(ModelError::BadRequest("`user` must not be empty".into()));
        }
        match self.directory.users.get(&request.user) {
            Some(user) if user.password != request.password => {
                return Err(ModelError::Unauthorized("wrong password".into()));
            }
            Some(_) => {}
            None if !self.registration => {
                return Err(ModelError::Unauthorized(format!(
                    "unknown user `{}` and registration is closed",
                    request.user
                )));
            }
            None if self.directory.users.len() >= self.max_users => {
                return Err(ModelError::Forbidden(format!(
                    "unknown user `{}` and registration is full: the backend holds {} users, \
                     its `max_users`",
                    request.user, self.max_users
                )));
            }
            None => {
                self.directory.users.insert(
                    request.user.clone(),
                    User {
                        password: request.password.clone(),
                        devices: Vec::new(),
                        groups: BTreeSet::new(),
                        unaccepted: BTreeSet::new(),
                    },
                );
            }
        }
        let number = self.next_id();
        let device_id: Arc<str> = format!("d{number}").into();
        let token = new_token();
        if !dead_token && let Some(user) = self.directory.users.get_mut(&request.user) {
            let user_name: Arc<str> = request.user.as_str().into();
            self.tokens
                .insert(token.clone(), (user_name.clone(), number));
            user.devices.push(DeviceRecord {
                number,
                token: token.clone(),
                id: device_id.clone(),
                user: user_name,
                region,
                log: VecDeque::new(),
                push: Arc::new(DevicePush::default()),
            });
            if user.devices.len() > self.max_devices_per_user {
                let oldest = user.devices.remove(0);
                self.tokens.remove(&oldest.token);
                oldest.push.disconnect(Kill::LoggedOut);
            }
        }
        Ok(LoginResponse {
            user: request.user.clone(),
            device_id: device_id.to_string(),
            token,
            cursor: self.directory.cursor,
        })
    }

    /// The device a token belongs to.
    pub(super) fn caller(&self, token: &str) -> Option<Caller> {
        let (user, number) = self.tokens.get(token)?;
        let device = self.directory.users.get(&**user)?.device(*number)?;
        Some(Caller {
            device: *number,
            device_id: device.id.clone(),
            user: device.user.clone(),
            region: device.region.clone(),
            push: device.push.clone(),
        })
    }

    /// Push sides of every device of `user`.
    pub(super) fn user_pushes(&self, user: &str) -> Vec<Arc<DevicePush>> {
        let Some(user) = self.directory.users.get(user) else {
            return Vec::new();
        };
        user.devices
            .iter()
            .map(|device| device.push.clone())
            .collect()
    }

    fn group_of_member(&self, user: &str, group_id: &str) -> Result<&GroupState, ModelError> {
        let group = self
            .groups
            .get(group_id)
            .ok_or_else(|| ModelError::NotFound(format!("unknown group `{group_id}`")))?;
        if group.is_member(user) {
            Ok(group)
        } else {
            Err(ModelError::Forbidden(format!(
                "`{user}` is not a member of group `{group_id}`"
            )))
        }
    }

    fn require_user(&self, user: &str) -> Result<(), ModelError> {
        if self.directory.users.contains_key(user) {
            Ok(())
        } else {
            Err(ModelError::NotFound(format!("unknown user `{user}`")))
        }
    }

    /// Refused when `user` is already in `max_groups_per_user` groups.
    fn require_room_for_a_group(&self, user: &str) -> Result<(), ModelError> {
        let groups = self
            .directory
            .users
            .get(user)
            .map_or(0, |found| found.groups.len());
        if groups >= self.max_groups_per_user {
            return Err(ModelError::Forbidden(format!(
                "`{user}` is in {groups} groups, the backend's `max_groups_per_user`; \
                 leave one first"
            )));
        }
        Ok(())
    }

    /// Refused when `user` cannot be put into one more group by someone else:
    /// it is in `max_groups_per_user` groups, or others put it in
    /// `max_unaccepted_groups_per_user` groups it has not joined.
    fn require_room_for_an_add(&self, user: &str) -> Result<(), ModelError> {
        self.require_room_for_a_group(user)?;
        let unaccepted = self
            .directory
            .users
            .get(user)
            .map_or(0, |found| found.unaccepted.len());
        if unaccepted >= self.max_unaccepted_groups_per_user {
            return Err(ModelError::Forbidden(format!(
                "`{user}` was added to {unaccepted} groups it has not joined, the backend's \
                 `max_unaccepted_groups_per_user`; it must join or leave one first"
            )));
        }
        Ok(())
    }

    /// Create a group with the caller and `request.members`; each member's joining is an event.
    pub(super) fn create_group(
        &mut self,
        caller: &Caller,
        request: &CreateGroupRequest,
        fanout: &Fanout<'_>,
    ) -> Result<Group, ModelError> {
        for member in &request.members {
            self.require_user(member)?;
        }
        let added = || {
            request
                .members
                .iter()
                .filter(|member| **member != *caller.user)
        };
        for member in added() {
            self.require_room_for_an_add(member)?;
        }
        self.require_room_for_a_group(&caller.user)?;
        let id = format!("g{}", self.next_id());
        let mut members = vec![caller.user.to_string()];
        for member in &request.members {
            insert_sorted(&mut members, member);
        }
        members.sort();
        members.dedup();
        let view = Group {
            id: id.clone(),
            name: request.name.clone(),
            notice: request.notice.clone(),
            members,
        };
        for member in &view.members {
            if let Some(user) = self.directory.users.get_mut(member) {
                user.groups.insert(id.clone());
            }
        }
        for member in added() {
            if let Some(user) = self.directory.users.get_mut(member) {
                user.unaccepted.insert(id.clone());
            }
        }
        for member in &view.members {
            let kind = EventKind::MemberJoined {
                group_id: id.clone(),
                user: member.clone(),
            };
            self.directory.emit(fanout, &view.members, kind, 1);
        }
        self.groups.insert(id, GroupState::new(view.clone()));
        Ok(view)
    }

    /// Send a message; resending the same idempotency key answers the first message.
    pub(super) fn send(
        &mut self,
        caller: &Caller,
        group_id: &str,
        request: &SendRequest,
        effects: &Effects,
        fanout: &Fanout<'_>,
    ) -> Result<Message, ModelError> {
        self.group_of_member(&caller.user, group_id)?;
        let message_number = self.next_id();
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ModelError::NotFound(format!("unknown group `{group_id}`")));
        };
        let key = (caller.user.to_string(), request.idempotency_key.clone());
        if let Some(message) = group.sent.get(&key) {
            return Ok(message.clone());
        }
        let message = Message {
            id: format!("m{message_number}"),
            group_id: group_id.to_string(),
            seq: group.next_seq,
            sender: caller.user.to_string(),
            sender_device: caller.device_id.to_string(),
            body: request.body.clone(),
            idempotency_key: request.idempotency_key.clone(),
            server_ts_ms: now_ms(),
        };
        if effects.drop {
            return Ok(message);
        }
        group.next_seq += 1;
        group.remember_sent(key, message.clone());
        let stored = distort::stored_message(&message, effects);
        let twin = effects.duplicate.then(|| {
            let twin = distort::duplicate_message(&stored, group.next_seq);
            group.next_seq += 1;
            twin
        });
        let members = &group.view.members;
        for message in std::iter::once(stored).chain(twin) {
            let kind = EventKind::Message { message };
            self.directory.emit(fanout, members, kind, 1);
        }
        Ok(message)
    }

    /// The device's events after `since` as a JSON [`crate::protocol::SyncResponse`] body.
    /// `stale` answers as if the device's newest event had not happened yet.
    pub(super) fn sync(&self, caller: &Caller, since: u64, effects: &Effects) -> String {
        let device = self
            .directory
            .users
            .get(&*caller.user)
            .and_then(|user| user.device(caller.device));
        let Some(device) = device else {
            return sync_body(&[], since);
        };
        let start = device
            .log
            .partition_point(|event| event.event.cursor <= since);
        let unseen = device.log.range(start..).map(Arc::as_ref);
        let newest = self.directory.cursor.max(since);
        let (events, next_cursor) = distort::answer_sync(unseen, since, newest, effects);
        sync_body(&events, next_cursor)
    }

    /// The groups `user` is a member of. `stale` shows each group as it was before its
    /// latest change (including groups since left or deleted).
    pub(super) fn list_groups(&self, user: &str, effects: &Effects) -> GroupList {
        let groups: Vec<Group> = if effects.stale {
            self.stale_groups_of(user)
        } else {
            self.directory
                .users
                .get(user)
                .map(|found| {
                    found
                        .groups
                        .iter()
                        .filter_map(|id| self.groups.get(id))
                        .map(|group| group.view.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        GroupList {
            groups: distort::answer_groups(groups, effects),
        }
    }

    fn stale_groups_of(&self, user: &str) -> Vec<Group> {
        let is_member = |group: &&Group| group.members.iter().any(|member| member == user);
        let mut groups: Vec<Group> = self
            .groups
            .values()
            .map(GroupState::stale_view)
            .chain(self.graveyard.iter())
            .filter(is_member)
            .cloned()
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups
    }

    /// Read one group the caller is a member of.
    pub(super) fn read_group(
        &self,
        user: &str,
        group_id: &str,
        effects: &Effects,
    ) -> Result<Group, ModelError> {
        let group = self.group_of_member(user, group_id)?;
        if effects.drop {
            return Err(ModelError::NotFound(format!("unknown group `{group_id}`")));
        }
        let view = if effects.stale {
            group.stale_view()
        } else {
            &group.view
        };
        Ok(distort::answer_group(view.clone(), effects))
    }

    /// Change name and/or notice; members get a settings-changed event.
    pub(super) fn edit_settings(
        &mut self,
        user: &str,
        group_id: &str,
        request: &EditSettingsRequest,
        effects: &Effects,
        fanout: &Fanout<'_>,
    ) -> Result<Group, ModelError> {
        let current = self.group_of_member(user, group_id)?.view.clone();
        let requested = Group {
            name: request.name.clone().unwrap_or(current.name.clone()),
            notice: request.notice.clone().unwrap_or(current.notice.clone()),
            ..current
        };
        if effects.stale {
            return Ok(requested);
        }
        let applied = distort::applied_settings(&requested, effects);
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ModelError::NotFound(format!("unknown group `{group_id}`")));
        };
        group.remember();
        group.view = applied.clone();
        let kind = EventKind::SettingsChanged {
            group_id: group_id.to_string(),
            name: applied.name,
            notice: applied.notice,
            by: user.to_string(),
        };
        let members = &group.view.members;
        self.directory
            .emit(fanout, members, kind, distort::copies(effects));
        Ok(requested)
    }

    /// Make `target` a member at once; members (the new one included) get member-joined.
    pub(super) fn add_member(
        &mut self,
        user: &str,
        group_id: &str,
        target: &str,
        effects: &Effects,
        fanout: &Fanout<'_>,
    ) -> Result<Group, ModelError> {
        let current = self.group_of_member(user, group_id)?.view.clone();
        self.require_user(target)?;
        let already = current.members.iter().any(|member| member == target);
        if !already {
            self.require_room_for_an_add(target)?;
        }
        if effects.stale {
            let mut claimed = current;
            insert_sorted(&mut claimed.members, target);
            return Ok(claimed);
        }
        let group = self
            .enter(group_id, target, distort::copies(effects), fanout)
            .ok_or_else(|| ModelError::NotFound(format!("unknown group `{group_id}`")))?;
        if !already && let Some(found) = self.directory.users.get_mut(target) {
            found.unaccepted.insert(group_id.to_string());
        }
        Ok(group)
    }

    /// Put `user` into `group_id` (no-op if already a member) and announce it.
    fn enter(
        &mut self,
        group_id: &str,
        user: &str,
        copies: usize,
        fanout: &Fanout<'_>,
    ) -> Option<Group> {
        let group = self.groups.get_mut(group_id)?;
        if group.is_member(user) {
            return Some(group.view.clone());
        }
        group.remember();
        insert_sorted(&mut group.view.members, user);
        if let Some(found) = self.directory.users.get_mut(user) {
            found.groups.insert(group_id.to_string());
        }
        let kind = EventKind::MemberJoined {
            group_id: group_id.to_string(),
            user: user.to_string(),
        };
        self.directory
            .emit(fanout, &group.view.members, kind, copies);
        Some(group.view.clone())
    }

    /// Accept membership: succeeds for members only; the group no longer
    /// counts against the user's `max_unaccepted_groups_per_user`.
    pub(super) fn join(&mut self, user: &str, group_id: &str) -> Result<Group, ModelError> {
        let group = self.group_of_member(user, group_id)?.view.clone();
        if let Some(found) = self.directory.users.get_mut(user) {
            found.unaccepted.remove(group_id);
        }
        Ok(group)
    }

    /// Leave a group; members and the leaver's devices get member-left. A group
    /// with no members left is deleted.
    pub(super) fn leave(
        &mut self,
        user: &str,
        group_id: &str,
        effects: &Effects,
        fanout: &Fanout<'_>,
    ) -> Result<(), ModelError> {
        self.group_of_member(user, group_id)?;
        if effects.stale {
            return Ok(());
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ModelError::NotFound(format!("unknown group `{group_id}`")));
        };
        let audience = group.view.members.clone();
        group.remember();
        remove_sorted(&mut group.view.members, user);
        let emptied = group.view.members.is_empty();
        if let Some(found) = self.directory.users.get_mut(user) {
            found.groups.remove(group_id);
            found.unaccepted.remove(group_id);
        }
        let kind = EventKind::MemberLeft {
            group_id: group_id.to_string(),
            user: user.to_string(),
        };
        self.directory
            .emit(fanout, &audience, kind, distort::copies(effects));
        if emptied && let Some(group) = self.groups.remove(group_id) {
            if self.graveyard.len() >= GRAVEYARD_LIMIT {
                self.graveyard.pop_front();
            }
            self.graveyard.push_back(group.stale_view().clone());
        }
        Ok(())
    }

    /// Re-add `user` to `group_id` as a server that lost the leave would
    /// (`resurrect`). A group deleted when its last member left comes back (a
    /// real service keeps empty groups; this one deletes them), so a
    /// resurrection outlives the run that left. Nothing happens if the user is
    /// back already or the group is no longer remembered.
    pub(super) fn resurrect(&mut self, group_id: &str, user: &str, fanout: &Fanout<'_>) {
        if !self.groups.contains_key(group_id) {
            self.revive(group_id);
        }
        self.enter(group_id, user, 1, fanout);
    }

    /// Bring a deleted group back from the graveyard, without members.
    fn revive(&mut self, group_id: &str) {
        let buried = self.graveyard.iter().position(|group| group.id == group_id);
        if let Some(mut view) = buried.and_then(|index| self.graveyard.remove(index)) {
            view.members.clear();
            self.groups
                .insert(group_id.to_string(), GroupState::new(view));
        }
    }

    /// Sizes for `/admin/stats`.
    pub(super) fn stats(&self) -> ModelStats {
        let devices = || self.directory.users.values().flat_map(|user| &user.devices);
        ModelStats {
            users: self.directory.users.len(),
            devices: devices().count(),
            groups: self.groups.len(),
            members: self
                .groups
                .values()
                .map(|group| group.view.members.len())
                .sum(),
            push_sockets: devices().map(|device| device.push.connected()).sum(),
            cursor: self.directory.cursor,
        }
    }
}

/// `{"events":[...],"next_cursor":N}` from already-encoded events.
fn sync_body(events: &[Cow<'_, str>], next_cursor: u64) -> String {
    let size: usize = events.iter().map(|event| event.len() + 1).sum();
    let mut body = String::with_capacity(size + 48);
    body.push_str("{\"events\":[");
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str("],\"next_cursor\":");
    body.push_str(&next_cursor.to_string());
    body.push('}');
    body
}
