//! Webhooks against a real receiver: every event posted as JSON with the
//! contract's fields, signed (the test checks the HMAC with the secret),
//! named by a delivery id that stays the same when a failed post is retried.

use serde_json::Value;

use super::{
    PATIENCE, POLL, STARTED, page_metric, signed, start_page, statement, wait_for_empty_outbox,
};
use crate::harness::dir::TempDir;
use crate::harness::http::wait_for;
use crate::harness::webhook::{Delivery, Receiver};
use crate::reports::{Store, client};

/// Waits until `receiver` has `count` deliveries.
async fn wait_for_deliveries(receiver: &Receiver, count: usize) -> Vec<Delivery> {
    wait_for(
        &format!("{count} webhook deliveries"),
        PATIENCE,
        POLL,
        || {
            let deliveries = receiver.deliveries();
            async move {
                match deliveries.len() >= count {
                    true => Ok(deliveries),
                    false => Err(format!("{}", deliveries.len())),
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn every_event_is_posted_signed_and_a_failed_post_is_retried_as_the_same_delivery() {
    // The first post is answered 503: it is tried again.
    let receiver = Receiver::start(&[503]).await;
    let dir = TempDir::new("notify-webhook");
    let yaml = super::notify_yaml(&dir, crate::harness::free_port(), 1, Some(&receiver.url));
    let page = start_page(&dir, &Store::Sqlite.url(&dir), &yaml);
    let http = client();
    let started = STARTED;
    for (event, text) in [
        ("incident_opened", "Messages you send may not reach anyone."),
        ("statement", "We found the cause and are fixing it."),
        ("incident_resolved", "Sending messages works again."),
    ] {
        let answer = statement(&http, &page, "group_message", started, event, text).await;
        assert_eq!(answer["notifications"], 1, "{answer}");
    }
    let deliveries = wait_for_deliveries(&receiver, 4).await;
    wait_for_empty_outbox(&http, &page).await;
    assert!(
        deliveries.iter().all(signed),
        "every post is signed with the secret"
    );
    let (first, retry) = (&deliveries[0], &deliveries[3]);
    let id = first.header("x-chatprobe-delivery").expect("a delivery id");
    assert_eq!(
        retry.header("x-chatprobe-delivery").as_deref(),
        Some(id.as_str()),
        "the retry is the same delivery"
    );
    assert_eq!(first.body, retry.body);
    let mut events = Vec::new();
    for delivery in &deliveries[1..] {
        assert_eq!(
            delivery.header("content-type").as_deref(),
            Some("application/json")
        );
        let body: Value = serde_json::from_slice(&delivery.body).expect("a JSON body");
        events.push(body["event"].as_str().unwrap_or_default().to_string());
        assert_eq!(body["incident"]["probe"], "group_message", "{body}");
        assert_eq!(
            body["incident"]["key"], "group_message@1765000000",
            "{body}"
        );
        assert_eq!(body["statement"]["kind"], "operator", "{body}");
        let text = body["statement"]["text"].as_str().unwrap_or_default();
        assert!(
            body["text"].as_str().is_some_and(|all| all.ends_with(text)),
            "{body}"
        );
        assert!(
            body["statement"]["at"]
                .as_str()
                .is_some_and(|at| at.ends_with('Z')),
            "{body}"
        );
    }
    events.sort();
    assert_eq!(
        events,
        ["incident_opened", "incident_resolved", "statement"]
    );
    let temporary =
        "chatprobe_notifications_failed_total{channel=\"webhook\",reason=\"temporary\"}";
    assert_eq!(page_metric(&http, &page, temporary).await, 1.0);
    let sent =
        "chatprobe_notifications_sent_total{channel=\"webhook\",event=\"incident_resolved\"}";
    assert_eq!(page_metric(&http, &page, sent).await, 1.0);
}
