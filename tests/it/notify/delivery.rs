//! Delivery that loses nothing: an SMTP server that is down, then up; the
//! status page killed with SIGKILL mid-batch, then restarted; an address
//! the server refuses for good, bounced after three refusals.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;

use super::{
    POLL, STARTED, confirm_all, page_metric, start_page, statement, subscribe,
    wait_for_empty_outbox, wait_for_mails, wait_for_metric,
};
use crate::harness::dir::TempDir;
use crate::harness::http::wait_for;
use crate::harness::smtp::{Aiosmtpd, ScriptedSmtp};
use crate::reports::{Store, client};

/// The server goes down between two mails: the second is retried with
/// backoff and arrives, once, when the server is back.
#[tokio::test]
async fn mail_waits_for_a_server_that_is_down_and_arrives_once_it_is_up() {
    let Some(mut smtp) = Aiosmtpd::new() else {
        return;
    };
    smtp.start();
    let dir = TempDir::new("notify-down");
    let page = start_page(
        &dir,
        &Store::Sqlite.url(&dir),
        &super::notify_yaml(&dir, smtp.port, 1, None),
    );
    let http = client();
    assert_eq!(
        subscribe(&http, &page, "early@example.org", &[], "ua-1")
            .await
            .status,
        202
    );
    wait_for_mails(|| smtp.mails(), "early@example.org", 1).await;
    smtp.stop();
    assert_eq!(
        subscribe(&http, &page, "patient@example.org", &[], "ua-2")
            .await
            .status,
        202
    );
    let refused = "chatprobe_notifications_failed_total{channel=\"email\",reason=\"unreachable\"}";
    wait_for_metric(&http, &page, refused, 1.0).await;
    wait_for_metric(&http, &page, "chatprobe_notification_queue_depth", 1.0).await;
    smtp.start();
    wait_for_mails(|| smtp.mails(), "patient@example.org", 1).await;
    wait_for_empty_outbox(&http, &page).await;
    assert_eq!(smtp.mails().len(), 2, "each delivered once");
    let sent = "chatprobe_notifications_sent_total{channel=\"email\",event=\"confirm\"}";
    assert_eq!(page_metric(&http, &page, sent).await, 2.0);
}

/// Subscribers the kill test notifies.
const SUBSCRIBERS: usize = 2000;
/// Subscriptions and confirmations the kill test makes at once.
const AT_ONCE: usize = 16;
/// SMTP connections while the kill test's subscribers confirm.
const CONFIRMING_CONNECTIONS: u32 = 8;
/// Longest wait for a phase of the kill test's mail (one connection).
const KILL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(240);

/// `kill -9` with half the notices out: after a restart every subscriber
/// has its notice; the only possible repeat is the one mail in flight (one
/// SMTP connection), with the same `Message-ID`. The subscribers subscribe
/// and confirm through a page with more connections, stopped before the
/// statement.
#[tokio::test]
async fn a_killed_page_resumes_its_batch_after_a_restart() {
    let Some(mut smtp) = Aiosmtpd::new() else {
        return;
    };
    smtp.start();
    let dir = TempDir::new("notify-kill");
    let store = Store::Sqlite.url(&dir);
    let http = client();
    let mut confirming = start_page(
        &dir,
        &store,
        &super::notify_yaml(&dir, smtp.port, CONFIRMING_CONNECTIONS, None),
    );
    let addresses: Vec<String> = (0..SUBSCRIBERS)
        .map(|i| format!("s{i:04}@example.org"))
        .collect();
    futures_util::stream::iter(addresses.iter().enumerate())
        .for_each_concurrent(AT_ONCE, |(index, address)| {
            let (http, confirming) = (&http, &confirming);
            async move {
                let user_agent = format!("ua-{index}");
                super::subscribe_patiently(http, confirming, address, &user_agent).await;
            }
        })
        .await;
    let confirmations = wait_for_count(&smtp, "confirmations", |_| true, SUBSCRIBERS).await;
    futures_util::stream::iter(confirmations.chunks(SUBSCRIBERS / AT_ONCE))
        .for_each_concurrent(AT_ONCE, |mails| confirm_all(&http, &confirming, mails))
        .await;
    confirming.stop_cleanly("TERM");
    let yaml = super::notify_yaml(&dir, smtp.port, 1, None);
    let mut page = start_page(&dir, &store, &yaml);
    let answer = statement(
        &http,
        &page,
        "group_message",
        STARTED,
        "incident_opened",
        "Sending messages fails in Asia (South).",
    )
    .await;
    assert_eq!(answer["notifications"], SUBSCRIBERS, "{answer}");
    let is_notice =
        |mail: &crate::harness::smtp::Mail| mail.message_id().contains(".incident_opened@");
    wait_for_count(&smtp, "half the notices", is_notice, SUBSCRIBERS / 2).await;
    page.signal("KILL");
    assert!(
        page.wait_exit(std::time::Duration::from_secs(10)).is_some(),
        "the page died"
    );
    let at_kill = smtp.mails().iter().filter(|mail| is_notice(mail)).count();
    assert!(
        at_kill < SUBSCRIBERS,
        "the kill came mid-batch ({at_kill} of {SUBSCRIBERS} out)"
    );
    let page = start_page(&dir, &store, &yaml);
    let notices = wait_for(
        "every notice after the restart",
        KILL_PATIENCE,
        POLL,
        || {
            let mut by_address: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for mail in smtp.mails().into_iter().filter(|mail| is_notice(mail)) {
                by_address
                    .entry(mail.to())
                    .or_default()
                    .push(mail.message_id());
            }
            async move {
                match by_address.len() == SUBSCRIBERS {
                    true => Ok(by_address),
                    false => Err(format!("{} of {SUBSCRIBERS} addresses", by_address.len())),
                }
            }
        },
    )
    .await;
    wait_for_empty_outbox(&http, &page).await;
    let repeated: Vec<(&String, &Vec<String>)> =
        notices.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        repeated.len() <= 1,
        "more than the one mail in flight went twice: {repeated:?}"
    );
    for (_, ids) in repeated {
        assert!(
            ids.windows(2).all(|pair| pair[0] == pair[1]),
            "a repeat has the same Message-ID: {ids:?}"
        );
    }
}

/// Waits up to [`KILL_PATIENCE`] until `smtp` holds `count` mails that
/// `keep` keeps; those.
async fn wait_for_count(
    smtp: &Aiosmtpd,
    what: &str,
    keep: impl Fn(&crate::harness::smtp::Mail) -> bool,
    count: usize,
) -> Vec<crate::harness::smtp::Mail> {
    wait_for(what, KILL_PATIENCE, POLL, || {
        let kept: Vec<_> = smtp.mails().into_iter().filter(|mail| keep(mail)).collect();
        async move {
            match kept.len() >= count {
                true => Ok(kept),
                false => Err(format!("{} of {count}", kept.len())),
            }
        }
    })
    .await
}

/// An address refused for good three times is mailed no more; the others are.
#[tokio::test]
async fn an_address_refused_three_times_is_bounced() {
    let smtp = ScriptedSmtp::start().await;
    let dir = TempDir::new("notify-bounce");
    let page = start_page(
        &dir,
        &Store::Sqlite.url(&dir),
        &super::notify_yaml(&dir, smtp.port, 1, None),
    );
    let http = client();
    let (good, bad) = ("good@example.org", "bad@example.org");
    for (address, agent) in [(good, "ua-good"), (bad, "ua-bad")] {
        assert_eq!(
            subscribe(&http, &page, address, &["opened"], agent)
                .await
                .status,
            202
        );
        let mails = wait_for_mails(|| smtp.mails(), address, 1).await;
        confirm_all(&http, &page, &mails).await;
    }
    smtp.refuse(bad);
    let attempts_before = smtp.attempts(bad);
    for round in 1..=4 {
        let answer = statement(
            &http,
            &page,
            "leave_group",
            STARTED,
            "statement",
            &format!("Update {round}: leaving groups may not take effect."),
        )
        .await;
        let wanted = if round <= 3 { 2 } else { 1 };
        assert_eq!(answer["notifications"], wanted, "round {round}: {answer}");
        wait_for_mails(|| smtp.mails(), good, 1 + round).await;
        wait_for_empty_outbox(&http, &page).await;
    }
    assert_eq!(
        smtp.attempts(bad) - attempts_before,
        3,
        "three refusals, then no more tries"
    );
    let bounced = "chatprobe_notifications_failed_total{channel=\"email\",reason=\"bounced\"}";
    assert_eq!(page_metric(&http, &page, bounced).await, 3.0);
}
