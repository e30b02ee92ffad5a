//! The XMPP client through the `ChatService` / `Device` traits only, against
//! a real Prosody on 127.0.0.1 (skipped loudly when Prosody is not installed).

mod common;
mod prosody;

use std::time::{Duration, Instant};

use chatprobe::client::xmpp::{Transport, XmppOptions, XmppService};
use chatprobe::client::{Account, ChatService, ClientError, Device, Event, GroupSettings};
use prosody::Prosody;

/// Generous bound for anything to arrive on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn service(server: &str) -> XmppService {
    XmppService::new(XmppOptions {
        server: server.to_owned(),
        domain: prosody::DOMAIN.into(),
        muc_service: prosody::MUC_SERVICE.into(),
        transport: Transport::Plain,
        register: true,
        region: "test-region".into(),
        request_timeout: Duration::from_secs(10),
    })
    .expect("service builds")
}

fn account(user: &str) -> Account {
    Account {
        user: user.into(),
        password: format!("{user}-secret-password"),
    }
}

async fn login(service: &XmppService, user: &str) -> Box<dyn Device> {
    let mut device = service.login(&account(user)).await.expect("login");
    device.connect().await.expect("connect");
    device
}

/// Reads pushed events until one satisfies `wanted`; panics after [`PATIENCE`].
async fn wait_for(
    device: &mut Box<dyn Device>,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    let until = Instant::now() + PATIENCE;
    loop {
        match device.next_event(until).await {
            Ok(Some(delivered)) if wanted(&delivered.event) => return delivered.event,
            Ok(Some(_other)) => continue,
            Ok(None) => panic!("{} never saw {what}", device.device_id()),
            Err(error) => panic!(
                "{} lost push while waiting for {what}: {error}",
                device.device_id()
            ),
        }
    }
}

fn is_message(id: &str, body: &str) -> impl Fn(&Event) -> bool {
    move |event| matches!(event, Event::Message(message) if message.id == id && message.body == body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_messages_devices_settings_and_membership() {
    let Some(prosody) = Prosody::start().await else {
        return;
    };
    let service = service(&prosody.server);

    // Two devices of one user (registered by the first login), one of another.
    let mut phone = login(&service, "alice").await;
    let mut desktop = login(&service, "alice").await;
    let mut bob = login(&service, "bob").await;
    assert_eq!(phone.user_id(), desktop.user_id());
    assert_ne!(phone.device_id(), desktop.device_id());
    assert!(phone.user_id().starts_with("alice@"), "{}", phone.user_id());

    let settings = GroupSettings {
        name: "probe room".into(),
        notice: "first notice".into(),
    };
    let group = phone
        .create_group(&settings, &[bob.user_id().to_owned()])
        .await
        .expect("create group");
    let bob_id = bob.user_id().to_owned();
    wait_for(&mut bob, "the invitation", |event| {
        matches!(event, Event::MemberJoined { group: g, user } if *g == group && *user == bob_id)
    })
    .await;
    bob.join_group(&group).await.expect("bob joins");
    wait_for(&mut phone, "bob joining", |event| {
        matches!(event, Event::MemberJoined { group: g, user } if *g == group && *user == bob_id)
    })
    .await;

    // Send: idempotent per transaction id, pushed to every device, in catch-up sync too.
    let id = phone.send(&group, "txn-1", "hello 1").await.expect("send");
    let again = phone
        .send(&group, "txn-1", "hello 1")
        .await
        .expect("send again");
    assert_eq!(id, again, "same transaction id, same message");
    for device in [&mut phone, &mut desktop, &mut bob] {
        wait_for(device, "the message", is_message(&id, "hello 1")).await;
    }
    let caught_up = bob.sync().await.expect("catch-up sync");
    let copies = caught_up
        .iter()
        .filter(|delivered| is_message(&id, "hello 1")(&delivered.event))
        .count();
    assert_eq!(
        copies, 1,
        "catch-up sync carries the message once: {caught_up:?}"
    );
    let later = bob.sync().await.expect("second catch-up sync");
    assert!(
        !later
            .iter()
            .any(|delivered| is_message(&id, "hello 1")(&delivered.event)),
        "the catch-up cursor advanced"
    );

    // List and read.
    assert_eq!(bob.list_groups().await.expect("list"), vec![group.clone()]);
    let info = bob.read_group(&group).await.expect("read group");
    assert_eq!(info.settings, settings);
    let mut members = vec![phone.user_id().to_owned(), bob_id.clone()];
    members.sort();
    assert_eq!(info.members, members);

    // Settings: read back, and seen by the others.
    let edited = GroupSettings {
        name: "renamed".into(),
        notice: "second notice".into(),
    };
    phone
        .edit_settings(&group, &edited)
        .await
        .expect("edit settings");
    assert_eq!(
        desktop.read_group(&group).await.expect("read").settings,
        edited
    );
    for device in [&mut bob, &mut desktop] {
        // Status 104 says the configuration changed; the client reads both back.
        wait_for(device, "the new name and notice", |event| {
            matches!(event, Event::SettingsChanged { name: Some(name), notice: Some(notice), .. }
                if name == "renamed" && notice == "second notice")
        })
        .await;
    }

    // Add a member: after joining, they get the next message.
    // (JID localparts are lower case; the account name is mapped onto one.)
    let mut carol = login(&service, "Carol").await;
    bob.add_member(&group, carol.user_id())
        .await
        .expect("add carol");
    carol.join_group(&group).await.expect("carol joins");
    let next = phone
        .send(&group, "txn-2", "hello 2")
        .await
        .expect("send next");
    wait_for(&mut carol, "the next message", is_message(&next, "hello 2")).await;

    // Leave + forget: gone from the list; the others see it.
    bob.leave(&group).await.expect("leave");
    assert!(
        bob.list_groups()
            .await
            .expect("list after leave")
            .is_empty()
    );
    wait_for(&mut phone, "bob leaving", |event| {
        matches!(event, Event::MemberLeft { group: g, user } if *g == group && *user == bob_id)
    })
    .await;
    let info = phone.read_group(&group).await.expect("read after leave");
    assert!(!info.members.contains(&bob_id), "{info:?}");
    drop(prosody);
}

/// More messages than one archive page holds (100) between two catch-up
/// syncs: the client pages through the room's archive, so every one
/// arrives, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_sync_fills_a_long_timeline_gap() {
    const SENT: usize = 130;
    let Some(prosody) = Prosody::start().await else {
        return;
    };
    let service = service(&prosody.server);
    let sender = login(&service, "gap-sender").await;
    let mut reader = login(&service, "gap-reader").await;
    let settings = GroupSettings {
        name: "gap".into(),
        notice: String::new(),
    };
    let group = sender
        .create_group(&settings, &[reader.user_id().to_owned()])
        .await
        .expect("create group");
    reader.join_group(&group).await.expect("reader joins");
    reader.sync().await.expect("catch-up sync up to the join");

    let mut sent = Vec::with_capacity(SENT);
    for index in 0..SENT {
        let body = format!("gap {index}");
        let txn = format!("gap-{index}");
        sent.push(sender.send(&group, &txn, &body).await.expect("send"));
    }
    let caught_up: Vec<String> = reader
        .sync()
        .await
        .expect("catch-up sync over the gap")
        .into_iter()
        .filter_map(|delivered| match delivered.event {
            Event::Message(message) if message.group == group => Some(message.id),
            _ => None,
        })
        .collect();
    assert_eq!(caught_up.len(), SENT, "every message, once");
    assert_eq!(caught_up, sent, "in the order sent");
    drop(prosody);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_stopped_server() {
    let Some(mut prosody) = Prosody::start().await else {
        return;
    };
    let service = service(&prosody.server);
    let mut device = login(&service, "dave").await;

    let wrong = Account {
        user: "dave".into(),
        password: "not-the-password".into(),
    };
    match service.login(&wrong).await {
        Err(ClientError::Auth(_)) => {}
        other => panic!(
            "wrong password must be an auth error, got {:?}",
            other.map(|d| d.device_id().to_owned())
        ),
    }

    prosody.stop();
    match service.login(&account("dave")).await {
        Err(ClientError::Connect(_)) => {}
        other => panic!(
            "stopped server must be a connect error, got {:?}",
            other.map(|d| d.device_id().to_owned())
        ),
    }
    assert!(
        matches!(device.list_groups().await, Err(ClientError::Connect(_))),
        "calls fail with connect errors"
    );
    // The push loop reports the lost connection instead of hanging.
    let until = Instant::now() + PATIENCE + PATIENCE;
    let mut outcome = device.next_event(until).await;
    while let Ok(Some(_)) = outcome {
        outcome = device.next_event(until).await;
    }
    assert!(
        matches!(outcome, Err(ClientError::Connect(_))),
        "push: {outcome:?}"
    );
    assert!(matches!(
        device.next_event(until).await,
        Err(ClientError::Connect(_))
    ));
    // Reopening push needs the server.
    assert!(matches!(
        device.connect().await,
        Err(ClientError::Connect(_))
    ));
}
