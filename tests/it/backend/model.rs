//! The mock backend's model over real HTTP and WebSocket: logins and devices,
//! groups, messages, push, catch-up sync, membership, settings, auth.

use crate::harness::backend::{Device, TestBackend, message_bodies};
use chatprobe::backend::BackendConfig;
use chatprobe::protocol::{EventKind, Group, GroupList, Message};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn list_groups(backend: &TestBackend, device: &Device) -> Vec<Group> {
    let (status, value) = backend
        .call(device, Method::GET, "/api/v1/groups", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    serde_json::from_value::<GroupList>(value).unwrap().groups
}

#[tokio::test]
async fn messages_reach_every_device_of_every_member_by_push_and_sync() {
    let backend = TestBackend::start().await;
    let alice_phone = backend.login("alice", "eu-west").await;
    let alice_desktop = backend.login("alice", "eu-west").await;
    let bob = backend.login("bob", "us-east").await;
    assert_ne!(alice_phone.device_id, alice_desktop.device_id);
    let mut pushes = Vec::new();
    for device in [&alice_phone, &alice_desktop, &bob] {
        pushes.push(backend.push(device).await);
    }
    let group = backend.create_group(&alice_phone, "team", &["bob"]).await;
    for push in &mut pushes {
        for expected in ["alice", "bob"] {
            match push.next().await.kind {
                EventKind::MemberJoined { group_id, user } => {
                    assert_eq!(group_id, group);
                    assert_eq!(user, expected);
                }
                other => panic!("expected member_joined, got {other:?}"),
            }
        }
    }
    let mut sent = Vec::new();
    for (index, body) in ["one", "two", "three"].iter().enumerate() {
        let (status, value) = backend
            .send(&alice_phone, &group, &format!("k{index}"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
        let message: Message = serde_json::from_value(value).unwrap();
        assert_eq!(message.seq, index as u64 + 1);
        assert_eq!(message.sender, "alice");
        assert_eq!(message.sender_device, alice_phone.device_id);
        sent.push(message);
    }
    for push in &mut pushes {
        let events = push.drain().await;
        assert_eq!(message_bodies(&events), ["one", "two", "three"]);
    }
    let synced = backend.sync(&bob, bob.cursor).await;
    assert_eq!(synced.events.len(), 5, "2 joins + 3 messages");
    let after_join = synced.events[1].cursor;
    let tail = backend.sync(&bob, after_join).await;
    assert_eq!(message_bodies(&tail.events), ["one", "two", "three"]);
    assert_eq!(tail.next_cursor, synced.next_cursor);
    let nothing = backend.sync(&bob, tail.next_cursor).await;
    assert!(nothing.events.is_empty());
    assert_eq!(nothing.next_cursor, tail.next_cursor);
    let late_login = backend.login("bob", "us-east").await;
    assert_eq!(late_login.cursor, tail.next_cursor);
}

#[tokio::test]
async fn resending_an_idempotency_key_returns_the_same_message() {
    let backend = TestBackend::start().await;
    let alice = backend.login("alice", "default").await;
    let bob = backend.login("bob", "default").await;
    let group = backend.create_group(&alice, "g", &["bob"]).await;
    let (_, first) = backend.send(&alice, &group, "same-key", "hello").await;
    let (status, second) = backend.send(&alice, &group, "same-key", "hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second);
    let (_, other) = backend.send(&alice, &group, "other-key", "hello").await;
    assert_eq!(other["seq"], 2);
    let synced = backend.sync(&bob, bob.cursor).await;
    assert_eq!(message_bodies(&synced.events), ["hello", "hello"]);
}

#[tokio::test]
async fn membership_settings_and_group_lifecycle() {
    let backend = TestBackend::start().await;
    let alice = backend.login("alice", "default").await;
    let bob = backend.login("bob", "default").await;
    let carol = backend.login("carol", "default").await;
    let group = backend.create_group(&alice, "g", &["bob"]).await;
    let path = format!("/api/v1/groups/{group}");

    // Not yet a member: read, send, join are refused.
    let (status, _) = backend.call(&carol, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = backend
        .call(&carol, Method::POST, &format!("{path}/join"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Added: a member at once, sees the group, join is an idempotent acceptance.
    let (status, added) = backend
        .call(
            &alice,
            Method::POST,
            &format!("{path}/members"),
            Some(json!({"user": "carol"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["members"], json!(["alice", "bob", "carol"]));
    for _ in 0..2 {
        let (status, _) = backend
            .call(&carol, Method::POST, &format!("{path}/join"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let carol_groups = list_groups(&backend, &carol).await;
    assert_eq!(carol_groups.len(), 1);
    let carol_events = backend.sync(&carol, carol.cursor).await.events;
    assert!(
        matches!(&carol_events[..], [e] if matches!(&e.kind, EventKind::MemberJoined { user, .. } if user == "carol"))
    );

    // Settings change reads back and reaches members.
    let (status, edited) = backend
        .call(
            &bob,
            Method::PATCH,
            &path,
            Some(json!({"name": "renamed", "notice": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (_, read) = backend.call(&carol, Method::GET, &path, None).await;
    assert_eq!(
        (read["name"].as_str(), read["notice"].as_str()),
        (Some("renamed"), Some("hi"))
    );
    let (_, name_only) = backend
        .call(&bob, Method::PATCH, &path, Some(json!({"name": "again"})))
        .await;
    assert_eq!(name_only["notice"], "hi", "absent fields stay");
    let alice_events = backend.sync(&alice, alice.cursor).await.events;
    let settings: Vec<_> = alice_events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::SettingsChanged { name, by, .. } => Some((name.clone(), by.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        settings,
        [
            ("renamed".into(), "bob".into()),
            ("again".into(), "bob".to_string())
        ]
    );

    // Leaving: gone from the list, others and the leaver's devices see it.
    let before_leave = backend.sync(&alice, 0).await.next_cursor;
    let (status, _) = backend
        .call(&bob, Method::POST, &format!("{path}/leave"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(list_groups(&backend, &bob).await.is_empty());
    for device in [&alice, &bob] {
        let events = backend.sync(device, before_leave).await.events;
        assert!(
            matches!(&events[..], [e] if matches!(&e.kind, EventKind::MemberLeft { user, .. } if user == "bob")),
            "{events:?}"
        );
    }
    let (status, _) = backend.call(&bob, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The last member leaving deletes the group.
    assert_eq!(backend.stats().await["groups"], 1);
    for device in [&alice, &carol] {
        let (status, _) = backend
            .call(device, Method::POST, &format!("{path}/leave"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let stats = backend.stats().await;
    assert_eq!(
        (stats["groups"].as_u64(), stats["members"].as_u64()),
        (Some(0), Some(0))
    );
    let (status, _) = backend.call(&alice, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn auth_is_checked_on_every_call() {
    let backend = TestBackend::start().await;
    let alice = backend.login("alice", "default").await;
    let outsider = backend.login("mallory", "default").await;
    let group = backend.create_group(&alice, "g", &[]).await;

    let (status, body) = backend
        .request(Method::GET, "/api/v1/groups", None, "default", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    let (status, _) = backend
        .request(
            Method::GET,
            "/api/v1/sync",
            Some("not-a-token"),
            "default",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let wrong_password = json!({"user": "alice", "password": "nope"});
    let (status, _) = backend
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            "default",
            Some(wrong_password),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = backend.send(&outsider, &group, "k", "hi").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = backend
        .call(
            &outsider,
            Method::PATCH,
            &format!("/api/v1/groups/{group}"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = backend
        .call(
            &outsider,
            Method::POST,
            &format!("/api/v1/groups/{group}/leave"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(list_groups(&backend, &outsider).await.is_empty());

    let (status, _) = backend.send(&alice, "g404", "k", "hi").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = backend
        .call(
            &alice,
            Method::POST,
            &format!("/api/v1/groups/{group}/members"),
            Some(json!({"user": "nobody"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = backend
        .call(&alice, Method::GET, "/api/v1/nowhere", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let closed = BackendConfig {
        registration: false,
        ..BackendConfig::ephemeral()
    };
    let closed = TestBackend::start_with(closed).await;
    let newcomer = json!({"user": "new", "password": "x"});
    let (status, _) = closed
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            "default",
            Some(newcomer),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn push_needs_a_valid_token_and_shutdown_closes_it() {
    let backend = TestBackend::start().await;
    let alice = backend.login("alice", "default").await;
    let url = format!("ws://{}/api/v1/push?token=wrong", backend.handle.addr());
    let refused = tokio_tungstenite::connect_async(url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED.as_u16());
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let mut push = backend.push(&alice).await;
    assert_eq!(backend.stats().await["push_sockets"], 1);
    let TestBackend { handle, .. } = backend;
    tokio::time::timeout(crate::harness::backend::PATIENCE, handle.shutdown())
        .await
        .expect("shutdown in time")
        .expect("clean shutdown");
    assert!(push.closed_within(crate::harness::backend::PATIENCE).await);
}

#[tokio::test]
async fn a_login_beyond_the_device_limit_logs_the_oldest_device_out() {
    let config = BackendConfig {
        max_devices_per_user: 2,
        ..BackendConfig::ephemeral()
    };
    let backend = TestBackend::start_with(config).await;
    let oldest = backend.login("alice", "default").await;
    let mut oldest_push = backend.push(&oldest).await;
    let kept = backend.login("alice", "default").await;
    let newest = backend.login("alice", "default").await;
    assert!(
        oldest_push
            .closed_within(crate::harness::backend::PATIENCE)
            .await
    );
    let (status, _) = backend
        .call(&oldest, Method::GET, "/api/v1/groups", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for device in [&kept, &newest] {
        let (status, _) = backend
            .call(device, Method::GET, "/api/v1/groups", None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(backend.stats().await["devices"], 2);
}
