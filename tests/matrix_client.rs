//! The Matrix client through the `ChatService` / `Device` traits only, against
//! a real Synapse on 127.0.0.1 (skipped loudly when Synapse is not installed).
//! The bodies are shared with every protocol: `tests/common/protocol.rs`.

mod common;
mod synapse;

use std::time::Duration;

use chatprobe::client::{ClientError, GroupSettings};
use common::protocol;
use common::protocol::{RealServer, login, test_service};
use synapse::Synapse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_messages_devices_settings_and_membership() {
    protocol::groups_messages_devices_settings_and_membership::<Synapse>().await;
}

/// More messages than one sync answer carries per room (100) between two
/// catch-up syncs: the client reads the rest from `/messages`, so every one
/// arrives, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_sync_fills_a_long_timeline_gap() {
    protocol::catch_up_sync_fills_a_long_timeline_gap::<Synapse>().await;
}

/// A homeserver that rate-limits messages (one every 2 s after a burst of
/// two, per user): a wait that ends within the call's timeout is waited out;
/// one that would not is the call's error (`http_error`, 429, not a timeout).
/// How long giving up takes is a timing claim, left to benchmarks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_within_the_timeout() {
    const SENDS: usize = 4;
    let limit = "rc_message: {per_second: 0.5, burst_count: 2}\n";
    let Some(synapse) = Synapse::start_with(limit).await else {
        return;
    };
    let settings = GroupSettings {
        name: "limited".into(),
        notice: String::new(),
    };
    let impatient_timeout = Duration::from_millis(1500);
    let impatient_service = synapse.service("test-region", impatient_timeout);
    let impatient = login(impatient_service.as_ref(), "hasty").await;
    let group = impatient
        .create_group(&settings, &[])
        .await
        .expect("create group");
    let mut refused = None;
    for index in 0..SENDS {
        if let Err(error) = impatient
            .send(&group, &format!("hasty-{index}"), "hi")
            .await
        {
            refused = Some((index, error));
            break;
        }
    }
    let (index, error) = refused.expect("the rate limit refused a send");
    assert!(
        matches!(error, ClientError::Status { status: 429, ref message } if message.contains("M_LIMIT_EXCEEDED")),
        "send {index}: {error}"
    );

    let patient = login(test_service(&synapse).as_ref(), "steady").await;
    let group = patient
        .create_group(&settings, &[])
        .await
        .expect("create group");
    for index in 0..SENDS {
        patient
            .send(&group, &format!("steady-{index}"), "hi")
            .await
            .expect("a send within the rate limit's wait succeeds");
    }
    drop(synapse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_stopped_server() {
    protocol::wrong_password_and_stopped_server::<Synapse>().await;
}
