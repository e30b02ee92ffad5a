//! Every fault effect observed from a client of the running backend, region
//! scoping, probability, `after`/`duration` windows, and the live admin API.

use std::time::{Duration, Instant};

use crate::harness::backend::{Device, PATIENCE, Push, TestBackend, message_bodies};
use chatprobe::backend::BackendConfig;
use chatprobe::protocol::{EventKind, Message};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A fault as JSON: `name`, `operations`, `effect`, plus `extra` fields.
fn fault(operations: &[&str], effect: &str, extra: Value) -> Value {
    let mut fault = json!({"name": format!("{effect}-on-{}", operations.join("-")), "operations": operations, "effect": effect});
    if let (Some(fault), Value::Object(extra)) = (fault.as_object_mut(), extra) {
        fault.extend(extra);
    }
    fault
}

/// Alice (eu-west) and Bob (ap-south) in one group, Bob's push open and drained.
struct Room {
    backend: TestBackend,
    alice: Device,
    bob: Device,
    bob_push: Push,
    group: String,
}

impl Room {
    async fn open() -> Room {
        let backend = TestBackend::start().await;
        let alice = backend.login("alice", "eu-west").await;
        let bob = backend.login("bob", "ap-south").await;
        let mut bob_push = backend.push(&bob).await;
        let group = backend.create_group(&alice, "room", &["bob"]).await;
        assert_eq!(bob_push.drain().await.len(), 2, "two member_joined");
        Room {
            backend,
            alice,
            bob,
            bob_push,
            group,
        }
    }

    async fn send(&self, key: &str, body: &str) -> (StatusCode, Value) {
        self.backend.send(&self.alice, &self.group, key, body).await
    }

    async fn sent(&self, key: &str, body: &str) -> Message {
        let (status, value) = self.send(key, body).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        serde_json::from_value(value).unwrap()
    }

    async fn bob_synced_bodies(&self) -> Vec<String> {
        message_bodies(&self.backend.sync(&self.bob, self.bob.cursor).await.events)
    }

    /// Replace the faults with this one fault.
    async fn install(&self, operations: &[&str], effect: &str, extra: Value) {
        self.backend
            .set_faults(json!([fault(operations, effect, extra)]))
            .await;
    }

    /// Events Alice's device got after `cursor`.
    async fn alice_events_after(&self, cursor: u64) -> usize {
        self.backend.sync(&self.alice, cursor).await.events.len()
    }

    fn group_path(&self, tail: &str) -> String {
        format!("/api/v1/groups/{}{tail}", self.group)
    }

    async fn bob_call(
        &self,
        method: Method,
        tail: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.backend
            .call(&self.bob, method, &self.group_path(tail), body)
            .await
    }

    async fn bob_groups(&self) -> Vec<Value> {
        self.groups_of(&self.bob).await
    }

    async fn groups_of(&self, device: &Device) -> Vec<Value> {
        let (status, value) = self
            .backend
            .call(device, Method::GET, "/api/v1/groups", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        value["groups"].as_array().cloned().unwrap_or_default()
    }
}

/// A client that gives up quickly, to observe `timeout`.
fn impatient_client() -> reqwest::Client {
    chatprobe::client::init_tls();
    reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test]
async fn send_error_hits_only_the_named_region() {
    let mut room = Room::open().await;
    room.install(
        &["send"],
        "error",
        json!({"status": 502, "regions": ["ap-south"]}),
    )
    .await;
    let (status, body) = room
        .backend
        .send(&room.bob, &room.group, "b1", "from bob")
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    room.sent("a1", "from alice").await;
    assert_eq!(room.bob_push.next_message_body().await, "from alice");
    // Sends match the request's region header; sync matches the device's login region.
    let path = room.group_path("/messages");
    let request = json!({"idempotency_key": "b2", "body": "bob from eu-west"});
    let (status, _) = room
        .backend
        .request(
            Method::POST,
            &path,
            Some(&room.bob.token),
            "eu-west",
            Some(request),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    room.install(&["sync"], "error", json!({"regions": ["ap-south"]}))
        .await;
    let (status, _) = room
        .backend
        .request(
            Method::GET,
            "/api/v1/sync",
            Some(&room.bob.token),
            "eu-west",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let stats = room.backend.stats().await;
    assert_eq!(stats["faults_fired"]["error-on-send"], 1);
}

#[tokio::test]
async fn send_drop_acknowledges_but_nobody_ever_gets_it() {
    let mut room = Room::open().await;
    room.install(&["send"], "drop", json!({})).await;
    let ghost = room.sent("k1", "ghost").await;
    assert_eq!(ghost.body, "ghost");
    room.backend.set_faults(json!([])).await;
    room.sent("k2", "real").await;
    assert_eq!(message_bodies(&room.bob_push.drain().await), ["real"]);
    assert_eq!(room.bob_synced_bodies().await, ["real"]);
}

#[tokio::test]
async fn send_duplicate_and_corrupt_reach_receivers() {
    let mut room = Room::open().await;
    room.install(&["send"], "duplicate", json!({})).await;
    room.sent("k1", "twice").await;
    assert_eq!(
        message_bodies(&room.bob_push.drain().await),
        ["twice", "twice"]
    );
    room.install(&["send"], "corrupt", json!({})).await;
    let ack = room.sent("k2", "intact").await;
    assert_eq!(ack.body, "intact", "the sender sees what it sent");
    let delivered = room.bob_push.next_message_body().await;
    assert_ne!(delivered, "intact");
}

#[tokio::test]
async fn send_delay_and_timeout() {
    let room = Room::open().await;
    room.install(&["send"], "delay", json!({"delay": "300ms"}))
        .await;
    let started = Instant::now();
    room.sent("k1", "slow").await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    room.install(&["send"], "timeout", json!({})).await;
    let url = format!("{}{}", room.backend.base, room.group_path("/messages"));
    let held = impatient_client()
        .post(url)
        .bearer_auth(&room.alice.token)
        .json(&json!({"idempotency_key": "k2", "body": "never"}))
        .send()
        .await;
    assert!(held.is_err_and(|error| error.is_timeout()));
}

#[tokio::test]
async fn deliver_drop_is_missing_from_push_and_sync_of_that_region_only() {
    let room = Room::open().await;
    let mut alice_push = room.backend.push(&room.alice).await;
    room.install(&["deliver"], "drop", json!({"regions": ["ap-south"]}))
        .await;
    room.sent("k1", "lost for bob").await;
    assert_eq!(alice_push.next_message_body().await, "lost for bob");
    let mut bob_push = room.bob_push;
    assert!(message_bodies(&bob_push.drain().await).is_empty());
    assert!(message_bodies(&room.backend.sync(&room.bob, room.bob.cursor).await.events).is_empty());
}

#[tokio::test]
async fn deliver_delay_holds_the_push_for_the_delay() {
    let mut room = Room::open().await;
    room.install(&["deliver"], "delay", json!({"delay": "400ms"}))
        .await;
    let started = Instant::now();
    room.sent("k1", "late").await;
    assert_eq!(room.bob_push.next_message_body().await, "late");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn deliver_duplicate_reorder_and_corrupt_change_the_push_only() {
    let mut room = Room::open().await;
    room.install(&["deliver"], "duplicate", json!({})).await;
    room.sent("k1", "dup").await;
    assert_eq!(message_bodies(&room.bob_push.drain().await), ["dup", "dup"]);

    // Held for up to 10s, so the next message overtakes it for sure.
    room.install(&["deliver"], "reorder", json!({"delay": "10s"}))
        .await;
    room.sent("k2", "first").await;
    room.backend.set_faults(json!([])).await;
    room.sent("k3", "second").await;
    assert_eq!(
        message_bodies(&room.bob_push.drain().await),
        ["second", "first"]
    );

    // A held delivery with nothing behind it is released after the bound.
    room.install(&["deliver"], "reorder", json!({"delay": "200ms"}))
        .await;
    room.sent("k4", "alone").await;
    assert_eq!(room.bob_push.next_message_body().await, "alone");

    room.install(&["deliver"], "corrupt", json!({})).await;
    room.sent("k5", "clean").await;
    assert_ne!(room.bob_push.next_message_body().await, "clean");
    assert_eq!(
        room.bob_synced_bodies().await,
        ["dup", "first", "second", "alone", "clean"],
        "sync keeps the stored order and content"
    );
}

#[tokio::test]
async fn deliver_timeout_error_and_disconnect_keep_the_event_in_sync() {
    let mut room = Room::open().await;
    room.install(&["deliver"], "timeout", json!({})).await;
    room.sent("k1", "stuck").await;
    assert!(message_bodies(&room.bob_push.drain().await).is_empty());

    room.install(&["deliver"], "error", json!({"status": 500}))
        .await;
    room.sent("k2", "broken").await;
    assert!(room.bob_push.closed_within(PATIENCE).await);

    let mut again = room.backend.push(&room.bob).await;
    room.install(&["deliver"], "disconnect", json!({})).await;
    room.sent("k3", "cut").await;
    assert!(again.closed_within(PATIENCE).await);
    assert_eq!(room.bob_synced_bodies().await, ["stuck", "broken", "cut"]);
}

#[tokio::test]
async fn sync_faults_change_catch_up_but_not_push() {
    let mut room = Room::open().await;
    room.sent("k1", "a").await;
    room.sent("k2", "b").await;
    room.install(&["sync"], "drop", json!({})).await;
    room.sent("k3", "pushed only").await;
    assert_eq!(
        message_bodies(&room.bob_push.drain().await),
        ["a", "b", "pushed only"]
    );
    room.backend.set_faults(json!([])).await;
    assert_eq!(room.bob_synced_bodies().await, ["a", "b"]);

    room.install(&["sync"], "stale", json!({})).await;
    room.sent("k4", "newest").await;
    let stale = room.backend.sync(&room.bob, room.bob.cursor).await;
    assert_eq!(message_bodies(&stale.events), ["a", "b"]);
    room.backend.set_faults(json!([])).await;
    let caught_up = room.backend.sync(&room.bob, stale.next_cursor).await;
    assert_eq!(message_bodies(&caught_up.events), ["newest"]);

    room.install(&["sync"], "reorder", json!({})).await;
    assert_eq!(room.bob_synced_bodies().await, ["b", "a", "newest"]);
    room.install(&["sync"], "duplicate", json!({})).await;
    assert_eq!(
        room.bob_synced_bodies().await,
        ["a", "a", "b", "b", "newest", "newest"]
    );
    room.install(&["sync"], "corrupt", json!({})).await;
    assert!(!room.bob_synced_bodies().await.contains(&"a".to_string()));
    room.install(&["sync"], "error", json!({"status": 503}))
        .await;
    let (status, _) = room
        .backend
        .call(&room.bob, Method::GET, "/api/v1/sync", None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    room.install(&["sync"], "disconnect", json!({})).await;
    let _ = room
        .backend
        .call(&room.bob, Method::GET, "/api/v1/sync", None)
        .await;
    assert!(room.bob_push.closed_within(PATIENCE).await);
}

#[tokio::test]
async fn connect_faults() {
    let room = Room::open().await;
    room.install(
        &["connect"],
        "error",
        json!({"status": 503, "regions": ["ap-south"]}),
    )
    .await;
    let url = format!("ws://{}/api/v1/push", room.backend.handle.addr());
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    let headers = request.headers_mut();
    headers.insert("x-chatprobe-region", "eu-west".parse().unwrap());
    let bearer = format!("Bearer {}", room.bob.token);
    headers.insert("authorization", bearer.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(
                response.status(),
                503,
                "the device's login region counts, not the header"
            );
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
    let mut alice_push = room.backend.push(&room.alice).await;

    room.install(&["connect"], "drop", json!({})).await;
    let mut silent = room.backend.push(&room.bob).await;
    room.install(&["connect"], "duplicate", json!({})).await;
    let mut doubled = room.backend.push(&room.bob).await;
    room.install(&["connect"], "disconnect", json!({})).await;
    let mut cut = room.backend.push(&room.bob).await;
    assert!(cut.closed_within(PATIENCE).await);
    room.backend.set_faults(json!([])).await;
    room.sent("k1", "hello").await;
    assert_eq!(alice_push.next_message_body().await, "hello");
    assert!(message_bodies(&silent.drain().await).is_empty());
    assert_eq!(message_bodies(&doubled.drain().await), ["hello", "hello"]);
}

#[tokio::test]
async fn login_faults() {
    let backend = TestBackend::start().await;
    backend
        .set_faults(json!([fault(
            &["login"],
            "error",
            json!({"status": 503, "regions": ["ap-south"]})
        )]))
        .await;
    let body = json!({"user": "u", "password": "p"});
    let (status, _) = backend
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            "ap-south",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = backend
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            "eu-west",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    backend
        .set_faults(json!([fault(&["login"], "drop", json!({}))]))
        .await;
    let (status, answer) = backend
        .request(Method::POST, "/api/v1/login", None, "eu-west", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = answer["token"].as_str().unwrap();
    let (status, _) = backend
        .request(Method::GET, "/api/v1/groups", Some(token), "eu-west", None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a dropped login's token works nowhere"
    );
}

#[tokio::test]
async fn leave_faults() {
    let room = Room::open().await;
    room.install(&["leave"], "error", json!({"status": 500}))
        .await;
    let (status, _) = room.bob_call(Method::POST, "/leave", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    room.install(&["leave"], "stale", json!({})).await;
    let (status, _) = room.bob_call(Method::POST, "/leave", None).await;
    assert_eq!(status, StatusCode::OK);
    room.backend.set_faults(json!([])).await;
    assert_eq!(
        room.bob_groups().await.len(),
        1,
        "the accepted leave was not applied"
    );

    room.install(&["leave"], "resurrect", json!({"delay": "200ms"}))
        .await;
    let before = room.backend.sync(&room.alice, 0).await.next_cursor;
    let (status, _) = room.bob_call(Method::POST, "/leave", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut back = false;
    for _ in 0..100 {
        if room.bob_groups().await.len() == 1 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the left group came back");
    let kinds: Vec<&'static str> = room
        .backend
        .sync(&room.alice, before)
        .await
        .events
        .iter()
        .map(|event| match event.kind {
            EventKind::MemberLeft { .. } => "left",
            EventKind::MemberJoined { .. } => "joined",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["left", "joined"]);

    room.install(&["leave"], "drop", json!({})).await;
    let before = room.backend.sync(&room.alice, 0).await.next_cursor;
    let (status, _) = room.bob_call(Method::POST, "/leave", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(room.bob_groups().await.is_empty(), "applied");
    assert_eq!(
        room.alice_events_after(before).await,
        0,
        "but nobody was told"
    );
}

#[tokio::test]
async fn settings_faults() {
    let room = Room::open().await;
    let rename = |name: &str| Some(json!({"name": name}));
    room.install(&["edit_settings"], "error", json!({})).await;
    let (status, _) = room.bob_call(Method::PATCH, "", rename("x")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "503 is the default status"
    );

    room.install(&["edit_settings"], "stale", json!({})).await;
    let (status, claimed) = room.bob_call(Method::PATCH, "", rename("stale")).await;
    assert_eq!(
        (status, claimed["name"].as_str()),
        (StatusCode::OK, Some("stale"))
    );
    room.backend.set_faults(json!([])).await;
    let (_, read) = room.bob_call(Method::GET, "", None).await;
    assert_eq!(read["name"], "room", "not applied");

    room.install(&["edit_settings"], "corrupt", json!({})).await;
    room.bob_call(Method::PATCH, "", rename("clean")).await;
    room.backend.set_faults(json!([])).await;
    let (_, read) = room.bob_call(Method::GET, "", None).await;
    assert_ne!(read["name"], "clean");

    room.install(&["edit_settings"], "drop", json!({})).await;
    let before = room.backend.sync(&room.alice, 0).await.next_cursor;
    room.bob_call(Method::PATCH, "", rename("quiet")).await;
    room.backend.set_faults(json!([])).await;
    let (_, read) = room.bob_call(Method::GET, "", None).await;
    assert_eq!(read["name"], "quiet", "applied");
    assert_eq!(room.alice_events_after(before).await, 0, "not propagated");
}

#[tokio::test]
async fn read_and_list_faults() {
    let room = Room::open().await;
    room.bob_call(Method::PATCH, "", Some(json!({"name": "new name"})))
        .await;
    room.install(&["read_group", "list_groups"], "stale", json!({}))
        .await;
    let (_, read) = room.bob_call(Method::GET, "", None).await;
    assert_eq!(read["name"], "room", "the view before the latest change");
    assert_eq!(room.bob_groups().await[0]["name"], "room");

    room.backend.set_faults(json!([])).await;
    room.bob_call(Method::POST, "/leave", None).await;
    assert!(room.bob_groups().await.is_empty());
    room.install(&["list_groups"], "stale", json!({})).await;
    assert_eq!(
        room.bob_groups().await.len(),
        1,
        "a left group still listed"
    );

    room.install(&["list_groups"], "drop", json!({})).await;
    assert!(room.groups_of(&room.alice).await.is_empty());

    let path = room.group_path("");
    room.install(&["read_group"], "drop", json!({})).await;
    let (status, _) = room
        .backend
        .call(&room.alice, Method::GET, &path, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    room.install(&["read_group"], "corrupt", json!({})).await;
    let (_, read) = room
        .backend
        .call(&room.alice, Method::GET, &path, None)
        .await;
    assert_ne!(read["name"], "new name");
}

#[tokio::test]
async fn add_member_faults() {
    let room = Room::open().await;
    let carol = room.backend.login("carol", "ap-south").await;
    room.install(&["add_member"], "stale", json!({})).await;
    let (status, claimed) = room
        .bob_call(Method::POST, "/members", Some(json!({"user": "carol"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        claimed["members"]
            .as_array()
            .unwrap()
            .contains(&json!("carol"))
    );
    let (status, _) = room
        .backend
        .call(&carol, Method::GET, &room.group_path(""), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not applied");
}

/// Calls whose answer is the injected 503, out of `calls` group-list calls.
async fn failed_list_calls(room: &Room, calls: usize) -> usize {
    let mut failed = 0;
    for _ in 0..calls {
        let (status, _) = room
            .backend
            .call(&room.bob, Method::GET, "/api/v1/groups", None)
            .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        }
    }
    failed
}

/// The status of Bob's group list once `done` holds for it (polled, at most 30 s).
async fn list_status_once(room: &Room, done: impl Fn(StatusCode) -> bool) -> StatusCode {
    let patience = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = room
            .backend
            .call(&room.bob, Method::GET, "/api/v1/groups", None)
            .await;
        if done(status) || Instant::now() > patience {
            return status;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn probability_is_the_share_of_calls_hit() {
    let room = Room::open().await;
    let ops = ["list_groups"];
    // 500 calls at 0.2: 100 expected, sd 9; the bounds are 6 sd away, while the
    // inverted probability (0.8) would fail 400.
    room.install(&ops, "error", json!({"probability": 0.2}))
        .await;
    let failed = failed_list_calls(&room, 500).await;
    assert!(
        (45..=155).contains(&failed),
        "about a fifth of 500 list calls fail: {failed}"
    );
    assert_eq!(
        room.backend.stats().await["faults_fired"]["error-on-list_groups"],
        failed
    );
    room.install(&ops, "error", json!({"probability": 0.0}))
        .await;
    assert_eq!(failed_list_calls(&room, 50).await, 0);
    room.install(&ops, "error", json!({"probability": 1.0}))
        .await;
    assert_eq!(failed_list_calls(&room, 50).await, 50);
}

#[tokio::test]
async fn windows_open_after_after_and_close_after_duration() {
    let room = Room::open().await;
    let ops = ["list_groups"];
    room.install(&ops, "error", json!({"after": "1h"})).await;
    assert_eq!(failed_list_calls(&room, 5).await, 0, "before `after`");
    room.install(&ops, "error", json!({"duration": "1h"})).await;
    assert_eq!(failed_list_calls(&room, 5).await, 5, "within `duration`");

    room.install(&ops, "error", json!({"after": "100ms"})).await;
    let opened = list_status_once(&room, |status| status != StatusCode::OK).await;
    assert_eq!(opened, StatusCode::SERVICE_UNAVAILABLE, "`after` passed");
    room.install(&ops, "error", json!({"duration": "100ms"}))
        .await;
    let closed = list_status_once(&room, |status| status == StatusCode::OK).await;
    assert_eq!(closed, StatusCode::OK, "`duration` over");
    assert_eq!(failed_list_calls(&room, 5).await, 0, "and stays over");
}

#[tokio::test]
async fn admin_api_reads_replaces_and_clears_faults() {
    let room = Room::open().await;
    let faults = json!([
        {"name": "slow push", "operations": ["deliver"], "regions": ["ap-south"], "effect": "delay", "delay": "1m 30s", "after": "10m"},
        {"name": "ghosts", "operations": ["send"], "effect": "drop", "probability": 0.25, "duration": "15m"}
    ]);
    room.backend.set_faults(faults.clone()).await;
    let (status, listed) = room
        .backend
        .request(Method::GET, "/admin/faults", None, "default", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["delay"], "1m 30s");
    assert_eq!(listed[1]["probability"], 0.25);
    assert_eq!(listed[0]["name"], "slow push");
    let (status, cleared) = room
        .backend
        .request(Method::DELETE, "/admin/faults", None, "default", None)
        .await;
    assert_eq!((status, cleared), (StatusCode::OK, json!([])));

    let invalid = [
        (
            json!([{"name": "x", "operations": ["send"], "effect": "resurrect"}]),
            "does not apply",
        ),
        (
            json!([{"name": "x", "operations": ["send"], "effect": "drop", "colour": 1}]),
            "colour",
        ),
        (
            json!([{"name": "x", "operations": ["teleport"], "effect": "drop"}]),
            "teleport",
        ),
        (
            json!([{"name": "x", "operations": ["send"], "effect": "drop", "after": "soon"}]),
            "after",
        ),
        (json!({"not": "a list"}), "sequence"),
        (
            json!([{"name": "x", "operations": ["list_groups"], "effect": "duplicate"}]),
            "no probe could see it",
        ),
        (
            json!([{"name": "x", "operations": ["add_member"], "effect": "drop"}]),
            "no probe could see it",
        ),
    ];
    for (body, named) in invalid {
        let (status, answer) = room
            .backend
            .request(Method::PUT, "/admin/faults", None, "default", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(named), "{message} should name {named}");
    }
}

#[tokio::test]
async fn admin_token_protects_the_admin_api() {
    let config = BackendConfig {
        admin_token: Some("secret".into()),
        ..BackendConfig::ephemeral()
    };
    let backend = TestBackend::start_with(config).await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!([]))),
        (Method::DELETE, None),
    ] {
        let (status, _) = backend
            .request(
                method.clone(),
                "/admin/faults",
                None,
                "default",
                body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = backend
            .request(method, "/admin/faults", Some("secret"), "default", body)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = backend
        .request(Method::GET, "/admin/stats", Some("wrong"), "default", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
