//! Two status-page replicas on one PostgreSQL: subscriptions made on
//! either, statements recorded on either, and every notice mailed once:
//! each outbox row is claimed by one replica.

use std::collections::BTreeMap;

use super::{
    PATIENCE, POLL, STARTED, confirm_all, page_metric, start_page, statement, subscribe_patiently,
    wait_for_empty_outbox,
};
use crate::harness::dir::TempDir;
use crate::harness::http::wait_for;
use crate::harness::smtp::Aiosmtpd;
use crate::reports::{Store, client};

/// Subscribers across the two replicas.
const SUBSCRIBERS: usize = 120;

#[tokio::test]
async fn two_replicas_on_one_postgresql_send_each_notice_once() {
    let Some(store) = Store::postgres() else {
        return;
    };
    let Some(mut smtp) = Aiosmtpd::new() else {
        return;
    };
    smtp.start();
    let dir = TempDir::new("notify-replicas");
    let url = store.url(&dir);
    let yaml = super::notify_yaml(&dir, smtp.port, 2, None);
    let pages = [start_page(&dir, &url, &yaml), start_page(&dir, &url, &yaml)];
    let http = client();
    for index in 0..SUBSCRIBERS {
        let page = &pages[index % 2];
        subscribe_patiently(
            &http,
            page,
            &format!("r{index:03}@example.org"),
            &format!("ua-{index}"),
        )
        .await;
    }
    let confirmations = super::wait_for_any_mails(|| smtp.mails(), SUBSCRIBERS).await;
    confirm_all(&http, &pages[1], &confirmations).await;
    for (round, page) in pages.iter().enumerate() {
        let answer = statement(
            &http,
            page,
            "device_sync",
            if round == 0 {
                STARTED
            } else {
                "2025-12-06T05:47:40Z"
            },
            "incident_opened",
            "Your phone and computer may show different messages.",
        )
        .await;
        assert_eq!(answer["notifications"], SUBSCRIBERS, "{answer}");
    }
    let notices = wait_for("every notice", PATIENCE, POLL, || {
        let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
        for mail in smtp
            .mails()
            .into_iter()
            .filter(|mail| mail.message_id().contains(".incident_opened@"))
        {
            *by_id.entry(mail.message_id()).or_default() += 1;
        }
        async move {
            match by_id.len() == SUBSCRIBERS * 2 {
                true => Ok(by_id),
                false => Err(format!("{} of {}", by_id.len(), SUBSCRIBERS * 2)),
            }
        }
    })
    .await;
    for page in &pages {
        wait_for_empty_outbox(&http, page).await;
    }
    let twice: Vec<_> = notices.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "notices mailed twice: {twice:?}");
    assert_eq!(
        smtp.mails().len(),
        SUBSCRIBERS * 3,
        "confirmations and notices, each once"
    );
    let sent = "chatprobe_notifications_sent_total{channel=\"email\",event=\"incident_opened\"}";
    let mut total = 0.0;
    for page in &pages {
        total += page_metric(&http, page, sent).await;
    }
    assert_eq!(
        total,
        (SUBSCRIBERS * 2) as f64,
        "the replicas together sent each notice once"
    );
}
