//! "Notify me" end to end, as a visitor does it, on the stack of
//! [`super::stack`] (mock backend, an agent per region, a real Prometheus,
//! `chatprobe status-page` publishing drafted statements at once), mailing
//! through a real aiosmtpd (a Maildir) and posting to a real webhook
//! receiver.
//!
//! In headless Chromium (driven by ChromeDriver) a visitor fills in the
//! "Notify me" form: an address, "Sending and receiving group messages",
//! "When it is back" (ticked already) and "When a problem starts"; the page
//! says a mail is on its way. The test reads the confirmation from the
//! Maildir and opens its link in the browser: "Subscription confirmed". A
//! send outage in ap-south (the mock's admin API): the drafted statement
//! is on `/` in plain words, the "problem started" mail arrives and the
//! receiver gets a correctly signed `incident_opened`; the fault removed
//! while the SMTP server is down for a minute: the resolved statement and
//! `incident_resolved` at once, the "back online" mail once the server is
//! back.
//! Each mail comes once; an address subscribed beside it that never
//! confirmed gets its confirmation and nothing else.

use serde_json::Value;

use super::stack::{FAULTED, PATIENCE, POLL, Stack, all_green, start_stack, wait_status};
use crate::harness::backend::{put_faults, send_outage};
use crate::harness::dir::TempDir;
use crate::harness::http::{get_text, http_client, wait_for};
use crate::harness::smtp::{Aiosmtpd, Mail};
use crate::harness::webdriver::WebDriver;
use crate::harness::webhook::Receiver;
use crate::notify::{
    BASE_URL, WEBHOOK_SECRET, on_page, signed, smtp_yaml, subscribe_patiently, wait_for_metric,
};

/// The visitor's address.
const VISITOR: &str = "visitor@example.org";
/// An address subscribed beside it that never confirms.
const UNCONFIRMED: &str = "unconfirmed@example.org";
/// The probe of the feature the visitor asks about.
const PROBE: &str = "group_message";
/// How long the SMTP server is down while the service recovers.
const SMTP_DOWN: std::time::Duration = std::time::Duration::from_secs(60);

/// The page's `notify:` section: publishing at once, mailing through
/// aiosmtpd on `smtp_port` in clear (loopback), posting every event to
/// `webhook`, signed with the secret in the file `secret`.
fn notify_section(smtp_port: u16, webhook: &str, secret: &std::path::Path) -> String {
    let mut notify = smtp_yaml(smtp_port, &["tls: plain"]);
    notify.push_str(&format!(
        "publish: auto\nwebhooks:\n  - url: {webhook}\n    secret_file: {}\n",
        secret.display()
    ));
    let indented: String = notify.lines().map(|line| format!("  {line}\n")).collect();
    format!("notify:\n{indented}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_subscribes_in_the_browser_and_hears_of_the_outage_and_its_end() {
    let Some(mut smtp) = Aiosmtpd::new() else {
        return;
    };
    smtp.start();
    let receiver = Receiver::start(&[]).await;
    let dir = TempDir::new("notify-flow");
    let secret = dir.write("webhook-secret", WEBHOOK_SECRET);
    let Some(stack) = start_stack("1s", &notify_section(smtp.port, &receiver.url, &secret)) else {
        return;
    };
    let Some(driver) = WebDriver::start(1280, 900).await else {
        return;
    };
    let http = http_client();
    wait_status(&http, &stack, "every cell green", all_green).await;

    subscribe_in_the_browser(&driver, &stack).await;
    let reports = crate::reports::client();
    subscribe_patiently(&reports, &stack.page, UNCONFIRMED, "another-visitor").await;
    let confirmation = mails_to(&smtp, VISITOR, 1).await.remove(0);
    let link = confirmation
        .link(&format!("{BASE_URL}/confirm?token="))
        .unwrap_or_else(|| panic!("no confirmation link in {}", confirmation.body));
    driver.open(&on_page(&stack.page, &link)).await;
    assert_eq!(driver.texts("h1").await, ["Subscription confirmed"]);

    put_faults(&http, &stack.backend.url(), &send_outage(&[FAULTED])).await;
    page_says(
        &http,
        &stack,
        "the drafted statement",
        "Update from our checks",
    )
    .await;
    page_says(&http, &stack, "its plain words", "sending messages fails").await;
    let opened = notice(&smtp, "incident_opened").await;
    assert!(
        opened.body.contains("sending messages fails"),
        "{}",
        opened.body
    );
    webhook_event(&receiver, "incident_opened").await;

    // The SMTP server is down for a minute as the service recovers.
    smtp.stop();
    let stopped = tokio::time::Instant::now();
    put_faults(&http, &stack.backend.url(), &Value::Array(Vec::new())).await;
    page_says(&http, &stack, "the resolved statement", "Resolved").await;
    let unreachable =
        "chatprobe_notifications_failed_total{channel=\"email\",reason=\"unreachable\"}";
    wait_for_metric(&http, &stack.page, unreachable, 1.0).await;
    tokio::time::sleep_until(stopped + SMTP_DOWN).await;
    smtp.start();
    let resolved = notice(&smtp, "incident_resolved").await;
    assert!(resolved.body.contains("working again"), "{}", resolved.body);
    webhook_event(&receiver, "incident_resolved").await;

    let to_visitor = mails_to(&smtp, VISITOR, 3).await;
    let ids: Vec<String> = to_visitor.iter().map(Mail::message_id).collect();
    assert_eq!(
        ids.iter()
            .filter(|id| id.contains(".incident_opened@"))
            .count(),
        1,
        "one problem-started mail: {ids:?}"
    );
    let unconfirmed = mails_to(&smtp, UNCONFIRMED, 1).await;
    assert_eq!(
        unconfirmed.len(),
        1,
        "only the confirmation to {UNCONFIRMED}"
    );
    assert!(
        unconfirmed[0].message_id().contains(".confirm@"),
        "{}",
        unconfirmed[0].message_id()
    );
}

/// The visitor's subscription through the form, in Chromium: the address
/// typed, the feature and "When a problem starts" ticked, the button
/// pressed, the page's word that a mail is on its way read.
async fn subscribe_in_the_browser(driver: &WebDriver, stack: &Stack) {
    driver.open(&stack.url("/")).await;
    driver.fill(r#"input[name="email"]"#, VISITOR).await;
    driver
        .click(&format!(r#"input[name="features"][value="{PROBE}"]"#))
        .await;
    driver
        .click(r#"input[name="events"][value="opened"]"#)
        .await;
    driver
        .click(r#"form[action="subscribe"] button[type="submit"]"#)
        .await;
    wait_for(
        "the page's word on the subscription",
        PATIENCE,
        POLL,
        || async {
            let notices = driver.texts("p.notice").await;
            let query = driver.evaluate("location.search").await;
            match query == "?subscribed=1" && notices.iter().any(|notice| notice.contains("mail")) {
                true => Ok(()),
                false => Err(format!("at {query}: {notices:?}")),
            }
        },
    )
    .await;
}

/// Waits until `/` holds `words`.
async fn page_says(http: &reqwest::Client, stack: &Stack, what: &str, words: &str) {
    wait_for(what, PATIENCE, POLL, || async {
        let page = get_text(http, &stack.url("/")).await.unwrap_or_default();
        match page.contains(words) {
            true => Ok(()),
            false => Err(format!("no \u{201c}{words}\u{201d} on /")),
        }
    })
    .await;
}

/// Waits until `smtp` holds at least `count` mails to `address`; those.
async fn mails_to(smtp: &Aiosmtpd, address: &str, count: usize) -> Vec<Mail> {
    crate::notify::wait_for_mails(|| smtp.mails(), address, count).await
}

/// Waits for the visitor's mail about `event`; it.
async fn notice(smtp: &Aiosmtpd, event: &str) -> Mail {
    let marker = format!(".{event}@");
    wait_for(&format!("the {event} mail"), PATIENCE, POLL, || {
        let found = smtp
            .mails()
            .into_iter()
            .find(|mail| mail.to() == VISITOR && mail.message_id().contains(&marker));
        async move { found.ok_or_else(|| format!("no {event} mail to {VISITOR} yet")) }
    })
    .await
}

/// Waits until `receiver` got `event`, correctly signed.
async fn webhook_event(receiver: &Receiver, event: &str) {
    wait_for(&format!("the {event} webhook"), PATIENCE, POLL, || {
        let deliveries = receiver.deliveries();
        async move {
            let posted = deliveries.iter().find(|delivery| {
                serde_json::from_slice::<Value>(&delivery.body)
                    .is_ok_and(|body| body["event"] == event)
            });
            match posted {
                Some(delivery) if signed(delivery) => Ok(()),
                Some(_) => Err(format!("{event} posted unsigned or wrongly signed")),
                None => Err(format!("{} posts, none {event}", deliveries.len())),
            }
        }
    })
    .await;
}
