//! "Notify me" and webhooks end to end: the real `chatprobe status-page`
//! binary over real sockets, with its subscribers, statements and outbox in
//! an SQLite file or a real PostgreSQL, mailing through a real SMTP server
//! (aiosmtpd writing a Maildir, also over STARTTLS or implicit TLS and
//! asking for a login, or a scripted one that refuses), posting to
//! a real webhook receiver. Statements come in through the operators' API
//! (`POST /api/statements`), as an incident's would through the store.

mod delivery;
mod email;
mod replicas;
mod tls;
mod webhooks;

use std::ffi::OsStr;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::binary::{Running, start_status_page_with_config};
use crate::harness::dir::TempDir;
use crate::harness::http::{get_text, metric, wait_for};
use crate::harness::smtp::Mail;
use crate::harness::webhook::Delivery;
use crate::reports::{Answer, post};

/// Where the links in mails point (the page itself listens on a free port).
pub const BASE_URL: &str = "https://status.example";
/// When the incidents the tests' statements are about started (unix 1765000000).
pub const STARTED: &str = "2025-12-06T05:46:40Z";
/// The operator token the pages are given.
pub const OPERATOR_TOKEN: &str = "operator-token-of-the-tests";
/// The webhooks' secret.
pub const WEBHOOK_SECRET: &str = "webhook-secret-of-the-tests";
/// A Prometheus nobody listens on: notifications need none.
const NO_PROMETHEUS: &str = "http://127.0.0.1:1";
/// Longest wait for a mail, a delivery or a metric.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// How often a test looks.
pub const POLL: Duration = Duration::from_millis(200);

/// The `notify:` settings mailing through 127.0.0.1:`smtp_port`, `smtp`
/// the further lines of its `smtp:` (`tls: plain`, `ca_file: ...`).
pub fn smtp_yaml(smtp_port: u16, smtp: &[&str]) -> String {
    let mut yaml = format!(
        "base_url: {BASE_URL}/\nsmtp:\n  server: 127.0.0.1:{smtp_port}\n  \
         from: 'Status <status@example.com>'\n"
    );
    for line in smtp {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml
}

/// The `notify:` settings mailing in clear through 127.0.0.1:`smtp_port`
/// over `connections`, posting to `webhook` (a URL) when given.
pub fn notify_yaml(
    dir: &TempDir,
    smtp_port: u16,
    connections: u32,
    webhook: Option<&str>,
) -> String {
    let secret = dir.write("webhook-secret", WEBHOOK_SECRET);
    let connections = format!("connections: {connections}");
    let mut yaml = smtp_yaml(smtp_port, &["tls: plain", &connections]);
    if let Some(url) = webhook {
        yaml.push_str(&format!(
            "webhooks:\n  - url: {url}\n    secret_file: {}\n",
            secret.display()
        ));
    }
    yaml
}

/// `chatprobe status-page` with its store at `store_url` and the `notify:`
/// section `notify` in its config file, the operators' token in a file.
pub fn start_page(dir: &TempDir, store_url: &str, notify: &str) -> Running {
    dir.write("operator-token", &format!("{OPERATOR_TOKEN}\n"));
    let section: String = notify.lines().map(|line| format!("  {line}\n")).collect();
    let config = dir.write(
        &format!("status-page-{}.yaml", crate::harness::free_port()),
        &format!(
            "prometheus: {{url: '{NO_PROMETHEUS}'}}\nlisten: 127.0.0.1:0\n\
             operator_token_file: operator-token\nnotify:\n{section}"
        ),
    );
    let store = [OsStr::new("--store"), OsStr::new(store_url)];
    start_status_page_with_config(&config, &store)
}

/// `POST /api/subscriptions` for `email` from the client `user_agent`.
pub async fn subscribe(
    http: &reqwest::Client,
    page: &Running,
    email: &str,
    events: &[&str],
    user_agent: &str,
) -> Answer {
    let body = serde_json::json!({ "email": email, "events": events });
    let headers = [
        ("content-type", "application/json"),
        ("user-agent", user_agent),
    ];
    post(http, page, "/api/subscriptions", &headers, body.to_string()).await
}

/// [`subscribe`] to `opened` until it is taken, waiting out the page's
/// global rate limit as its `Retry-After` says (bounded).
pub async fn subscribe_patiently(
    http: &reqwest::Client,
    page: &Running,
    email: &str,
    user_agent: &str,
) {
    for _ in 0..20 {
        let answer = subscribe(http, page, email, &["opened"], user_agent).await;
        match answer.status {
            202 => return,
            429 => {
                let wait: u64 = answer
                    .headers
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
            }
            status => panic!("subscribing {email}: {status} {}", answer.body),
        }
    }
    panic!("subscribing {email}: still rate limited after 20 tries");
}

/// An operator's statement about the `probe` incident that started at
/// `started_at`: its answer as JSON (201 expected).
pub async fn statement(
    http: &reqwest::Client,
    page: &Running,
    probe: &str,
    started_at: &str,
    event: &str,
    text: &str,
) -> Value {
    let body = serde_json::json!({
        "probe": probe, "started_at": started_at, "event": event, "text": text,
        "regions": ["ap-south"],
    });
    let authorization = format!("Bearer {OPERATOR_TOKEN}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", authorization.as_str()),
    ];
    let answer = post(http, page, "/api/statements", &headers, body.to_string()).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    serde_json::from_str(&answer.body).expect("a JSON answer")
}

/// `link` (from a mail, starting with [`BASE_URL`]) on `page` itself.
pub fn on_page(page: &Running, link: &str) -> String {
    let path = link
        .strip_prefix(BASE_URL)
        .unwrap_or_else(|| panic!("{link} does not start with {BASE_URL}"));
    format!("{}{path}", page.url())
}

/// Waits until `mails()` holds at least `count` mails to `to`; those mails.
pub async fn wait_for_mails(mails: impl Fn() -> Vec<Mail>, to: &str, count: usize) -> Vec<Mail> {
    let what = format!("{count} mails to {to}");
    mails_matching(mails, &what, |mail| mail.to() == to, count).await
}

/// Waits until the server holds at least `count` mails; all of them.
pub async fn wait_for_any_mails(mails: impl Fn() -> Vec<Mail>, count: usize) -> Vec<Mail> {
    mails_matching(mails, &format!("{count} mails"), |_| true, count).await
}

/// Waits until at least `count` of the mails `keep` keeps are there; those.
async fn mails_matching(
    mails: impl Fn() -> Vec<Mail>,
    what: &str,
    keep: impl Fn(&Mail) -> bool,
    count: usize,
) -> Vec<Mail> {
    wait_for(what, PATIENCE, POLL, || {
        let kept: Vec<Mail> = mails().into_iter().filter(|mail| keep(mail)).collect();
        async move {
            match kept.len() >= count {
                true => Ok(kept),
                false => Err(format!("{} so far", kept.len())),
            }
        }
    })
    .await
}

/// The value of `series` on the page's `/metrics` (0 when absent).
pub async fn page_metric(http: &reqwest::Client, page: &Running, series: &str) -> f64 {
    let text = get_text(http, &format!("{}/metrics", page.url()))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    metric(&text, series).unwrap_or(0.0)
}

/// Waits until `series` on the page's `/metrics` is at least `wanted`.
pub async fn wait_for_metric(http: &reqwest::Client, page: &Running, series: &str, wanted: f64) {
    wait_for(&format!("{series} >= {wanted}"), PATIENCE, POLL, || async {
        let value = page_metric(http, page, series).await;
        match value >= wanted {
            true => Ok(()),
            false => Err(format!("{value}")),
        }
    })
    .await;
}

/// Waits until the page's outbox is empty (`chatprobe_notification_queue_depth 0`).
pub async fn wait_for_empty_outbox(http: &reqwest::Client, page: &Running) {
    wait_for("an empty outbox", PATIENCE, POLL, || async {
        let text = get_text(http, &format!("{}/metrics", page.url()))
            .await
            .unwrap_or_default();
        match metric(&text, "chatprobe_notification_queue_depth") {
            Some(0.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// GET `url`: status and body.
pub async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Confirms every subscription whose confirmation is among `mails`.
pub async fn confirm_all(http: &reqwest::Client, page: &Running, mails: &[Mail]) {
    for mail in mails {
        let link = mail
            .link(&format!("{BASE_URL}/confirm?token="))
            .unwrap_or_else(|| panic!("no confirmation link in {}", mail.body));
        let (status, body) = get(http, &on_page(page, &link)).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Whether `delivery` is signed with the tests' secret.
pub fn signed(delivery: &Delivery) -> bool {
    let Some(signature) = delivery.header("x-chatprobe-signature") else {
        return false;
    };
    let Some(hex_mac) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("any key");
    mac.update(&delivery.body);
    mac.verify_slice(&given).is_ok()
}
