//! Matrix-only behaviour of the client, through the `ChatService` / `Device`
//! traits, against a real Synapse on 127.0.0.1 (skipped loudly when Synapse
//! is not installed).

use std::time::{Duration, Instant};

use crate::harness::protocol::{RealServer, account, login, test_service};
use crate::harness::synapse::Synapse;
use chatprobe::client::{Account, ClientError, GroupSettings};
use chatprobe::outcome::Reason;
use serde_json::{Value, json};

/// Matrix-only behaviour, on one Synapse (each takes seconds to start): a
/// homeserver that rate-limits messages, and a push channel whose token the
/// homeserver logged out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_a_logged_out_push_channel() {
    let limit = "rc_message: {per_second: 0.5, burst_count: 2}\n";
    let Some(synapse) = Synapse::start_with(limit).await else {
        return;
    };
    rate_limits_are_waited_out_within_the_timeout(&synapse).await;
    a_logged_out_token_ends_push_with_one_auth_error(&synapse).await;
    drop(synapse);
}

/// Rate limits of one message every 2 s after a burst of two, per user: a
/// wait that ends within the call's timeout is waited out; one that would
/// not is the call's error (`http_error`, 429, not a timeout). How long
/// giving up takes is a timing claim, left to benchmarks.
async fn rate_limits_are_waited_out_within_the_timeout(synapse: &Synapse) {
    const SENDS: usize = 4;
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

    let patient = login(test_service(synapse).as_ref(), "steady").await;
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
}

/// How long the push loop may take to see the logout: its long poll (20 s)
/// may end only at its timeout, then the next poll is refused.
const LOGOUT_SEEN_WITHIN: Duration = Duration::from_secs(60);

/// A device's token logged out on the server while its push channel long
/// polls `/sync`: the channel ends with one error, classified `auth_error`
/// (a 401 `M_UNKNOWN_TOKEN`), not `connect_error`. The probes record a lost
/// channel's first error and stop reading it, so that is the one failure.
async fn a_logged_out_token_ends_push_with_one_auth_error(synapse: &Synapse) {
    let mut device = login(test_service(synapse).as_ref(), "erin").await;
    log_out_every_device(synapse, &account("erin")).await;
    let until = Instant::now() + LOGOUT_SEEN_WITHIN;
    let ended = loop {
        match device.next_event(until).await {
            Ok(Some(_event)) => continue,
            Ok(None) => panic!("push never noticed the logout:\n{}", synapse.logs()),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(ended, ClientError::Auth(_)),
        "push ended with {ended:?}, not a rejected token"
    );
    assert_eq!(ended.reason(), Reason::AuthError);
}

/// Logs `account` in afresh over the client-server API and logs out all its
/// devices (`POST /logout/all`), the test client's among them.
async fn log_out_every_device(synapse: &Synapse, account: &Account) {
    let http = reqwest::Client::new();
    let client_api = format!("{}/_matrix/client/v3", synapse.url);
    let login = json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": account.user},
        "password": account.password,
    });
    let answer: Value = http
        .post(format!("{client_api}/login"))
        .json(&login)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("a second login")
        .json()
        .await
        .expect("login answer");
    let token = answer["access_token"].as_str().expect("access token");
    http.post(format!("{client_api}/logout/all"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("logout of every device");
}
