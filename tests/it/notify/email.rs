//! "Notify me" by email against aiosmtpd: double opt-in, the one-click
//! unsubscribe, nothing but the confirmation to an unconfirmed address, and
//! bad requests refused without a trace. On SQLite and on PostgreSQL.

use super::{
    BASE_URL, STARTED, confirm_all, get, on_page, page_metric, start_page, statement, subscribe,
    wait_for_empty_outbox, wait_for_mails,
};
use crate::harness::dir::TempDir;
use crate::harness::smtp::Aiosmtpd;
use crate::reports::{Store, client, post};

/// Subscribe, confirm, be notified, unsubscribe with one click: then nothing more.
async fn subscribe_confirm_notify_and_unsubscribe(store: Store) {
    let Some(mut smtp) = Aiosmtpd::new() else {
        return;
    };
    smtp.start();
    let dir = TempDir::new("notify-email");
    let page = start_page(
        &dir,
        &store.url(&dir),
        &super::notify_yaml(&dir, smtp.port, 2, None),
    );
    let http = client();
    let confirmed = "confirmed@example.org";
    let unconfirmed = "unconfirmed@example.org";
    let answer = subscribe(
        &http,
        &page,
        "Confirmed@Example.org",
        &["opened", "resolved"],
        "ua-1",
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        subscribe(&http, &page, unconfirmed, &[], "ua-2")
            .await
            .status,
        202
    );
    // Asking again within the hour sends no second confirmation.
    assert_eq!(
        subscribe(&http, &page, confirmed, &["opened"], "ua-3")
            .await
            .status,
        202
    );
    let confirmations = wait_for_mails(|| smtp.mails(), confirmed, 1).await;
    wait_for_mails(|| smtp.mails(), unconfirmed, 1).await;
    wait_for_empty_outbox(&http, &page).await;
    let to_confirmed =
        |mails: &[crate::harness::smtp::Mail]| mails.iter().filter(|m| m.to() == confirmed).count();
    assert_eq!(to_confirmed(&smtp.mails()), 1, "exactly one confirmation");
    let confirmation = &confirmations[0];
    assert!(
        confirmation
            .header("list-unsubscribe")
            .is_some_and(|v| v.starts_with(&format!("<{BASE_URL}/unsubscribe?token=")))
    );

    let link = confirmation
        .link(&format!("{BASE_URL}/confirm?token="))
        .expect("a confirmation link");
    let forged = format!(
        "{}{}",
        &link[..link.len() - 1],
        if link.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(
        get(&http, &on_page(&page, &forged)).await.0,
        400,
        "a forged token"
    );
    let (status, body) = get(&http, &on_page(&page, &link)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Subscription confirmed"), "{body}");
    let (_, public) = get(&http, &format!("{}/?subscribed=1", page.url())).await;
    assert!(
        public.contains(r#"<form method="post" action="subscribe">"#)
            && public.contains("Check your mail"),
        "the public page offers Notify me and says what comes next: {public}"
    );
    assert_eq!(
        get(&http, &on_page(&page, &link)).await.0,
        410,
        "a reused token"
    );

    let opened = statement(
        &http,
        &page,
        "group_message",
        STARTED,
        "incident_opened",
        "Messages you send to groups in Asia (South) may not reach anyone.",
    )
    .await;
    assert_eq!(opened["notifications"], 1, "{opened}");
    let mails = wait_for_mails(|| smtp.mails(), confirmed, 2).await;
    let notice = mails
        .iter()
        .find(|mail| {
            mail.message_id()
                .contains(".incident_opened@status.example>")
        })
        .unwrap_or_else(|| panic!("no incident_opened mail in {mails:?}"));
    assert!(
        notice.body.contains("may not reach anyone"),
        "{}",
        notice.body
    );
    assert_eq!(
        notice.header("list-unsubscribe-post"),
        Some("List-Unsubscribe=One-Click")
    );
    let header = notice.header("list-unsubscribe").expect("List-Unsubscribe");
    let unsubscribe = header.trim_matches(['<', '>']).to_string();
    assert_eq!(
        notice.link(&format!("{BASE_URL}/unsubscribe?token=")),
        Some(unsubscribe.clone())
    );
    let manage = notice
        .link(&format!("{BASE_URL}/manage?token="))
        .expect("a manage link");
    let (status, body) = get(&http, &on_page(&page, &manage)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("when a problem starts and when it is back"),
        "{body}"
    );
    assert!(
        body.contains(r#"value="group_message"> Sending and receiving group messages</label>"#),
        "features by the names users read: {body}"
    );
    let (status, body) = get(&http, &on_page(&page, &unsubscribe)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<button"), "{body}");

    // RFC 8058: a POST of `List-Unsubscribe=One-Click`, as a mail provider sends it.
    let path = on_page(&page, &unsubscribe)[page.url().len()..].to_string();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let answer = post(&http, &page, &path, &form, "List-Unsubscribe=One-Click").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("Unsubscribed"), "{}", answer.body);
    let again = post(&http, &page, &path, &form, "List-Unsubscribe=One-Click").await;
    assert_eq!(again.status, 200, "a second click is answered as the first");

    let resolved = statement(
        &http,
        &page,
        "group_message",
        STARTED,
        "incident_resolved",
        "Sending messages works again.",
    )
    .await;
    assert_eq!(resolved["notifications"], 0, "{resolved}");
    wait_for_empty_outbox(&http, &page).await;
    let mails = smtp.mails();
    assert_eq!(
        to_confirmed(&mails),
        2,
        "nothing after the unsubscribe: {mails:?}"
    );
    let to_unconfirmed: Vec<_> = mails.iter().filter(|m| m.to() == unconfirmed).collect();
    assert_eq!(
        to_unconfirmed.len(),
        1,
        "only its confirmation: {to_unconfirmed:?}"
    );
    assert!(
        to_unconfirmed[0].message_id().contains(".confirm@"),
        "{to_unconfirmed:?}"
    );
    assert_eq!(
        page_metric(
            &http,
            &page,
            "chatprobe_notifications_sent_total{channel=\"email\",event=\"confirm\"}"
        )
        .await,
        2.0
    );
    assert_eq!(
        page_metric(
            &http,
            &page,
            "chatprobe_notifications_sent_total{channel=\"email\",event=\"incident_opened\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn subscribe_confirm_notify_and_unsubscribe_on_sqlite() {
    subscribe_confirm_notify_and_unsubscribe(Store::Sqlite).await;
}

#[tokio::test]
async fn subscribe_confirm_notify_and_unsubscribe_on_postgres() {
    let Some(store) = Store::postgres() else {
        return;
    };
    subscribe_confirm_notify_and_unsubscribe(store).await;
}

/// A bad request: what it is, its path, content type, extra headers, body
/// and the status it must get.
type BadRequest<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    String,
    u16,
);

/// The status of a 2 MB JSON subscription. The page answers 413 as soon as
/// it reads the length and may close before the body is all sent: a send
/// cut off that way is tried again (a few times) until the answer is read,
/// on a client of its own (its closed connection is no other request's).
async fn post_huge(page: &crate::harness::binary::Running, body: String) -> u16 {
    let http = client();
    for _ in 0..5 {
        let sent = http
            .post(format!("{}/api/subscriptions", page.url()))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            return response.status().as_u16();
        }
    }
    panic!("no answer to a 2 MB body in 5 tries");
}

/// Every bad request is a clear 4xx, and no mail goes out for any of them.
#[tokio::test]
async fn bad_subscriptions_are_refused_and_send_nothing() {
    let Some(mut smtp) = Aiosmtpd::new() else {
        return;
    };
    smtp.start();
    let dir = TempDir::new("notify-bad");
    let page = start_page(
        &dir,
        &Store::Sqlite.url(&dir),
        &super::notify_yaml(&dir, smtp.port, 1, None),
    );
    let http = client();
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let huge = format!("{{\"email\": \"{}@example.org\"}}", "a".repeat(2 << 20));
    let cases: Vec<BadRequest> = vec![
        (
            "not an address",
            "/api/subscriptions",
            json,
            vec![],
            r#"{"email": "nobody"}"#.into(),
            400,
        ),
        (
            "header injection",
            "/api/subscriptions",
            json,
            vec![],
            "{\"email\": \"a@example.org\\r\\nBcc: b@example.org\"}".into(),
            400,
        ),
        (
            "two addresses",
            "/api/subscriptions",
            json,
            vec![],
            r#"{"email": "a@example.org, b@example.org"}"#.into(),
            400,
        ),
        (
            "unknown feature",
            "/api/subscriptions",
            json,
            vec![],
            r#"{"email": "a@example.org", "features": ["x\r\ny"]}"#.into(),
            400,
        ),
        (
            "unknown event",
            "/api/subscriptions",
            json,
            vec![],
            r#"{"email": "a@example.org", "events": ["always"]}"#.into(),
            400,
        ),
        (
            "unknown field",
            "/api/subscriptions",
            json,
            vec![],
            r#"{"email": "a@example.org", "name": "x"}"#.into(),
            400,
        ),
        (
            "not JSON",
            "/api/subscriptions",
            "text/plain",
            vec![],
            r#"{"email": "a@example.org"}"#.into(),
            415,
        ),
        (
            "cross-site form",
            "/subscribe",
            form,
            vec![("sec-fetch-site", "cross-site")],
            "email=a%40example.org".into(),
            403,
        ),
        (
            "form injection",
            "/subscribe",
            form,
            vec![],
            "email=a%40example.org%0d%0aBcc%3a+b%40example.org".into(),
            400,
        ),
    ];
    for (index, (what, path, content_type, extra, body, wanted)) in cases.into_iter().enumerate() {
        let user_agent = format!("bad-{index}");
        let mut headers = vec![
            ("content-type", content_type),
            ("user-agent", user_agent.as_str()),
        ];
        headers.extend(extra);
        let answer = post(&http, &page, path, &headers, body).await;
        assert_eq!(answer.status, wanted, "{what}: {}", answer.body);
    }
    assert_eq!(post_huge(&page, huge).await, 413, "a 2 MB body");
    for (what, path) in [
        ("malformed token", "/confirm?token=42"),
        ("no token", "/confirm"),
        (
            "forged token",
            "/unsubscribe?token=000000000000002a.0000000000000000000000000000000000000000000000000000000000000000",
        ),
    ] {
        let (status, body) = get(&http, &format!("{}{path}", page.url())).await;
        assert!((400..500).contains(&status), "{what}: {status} {body}");
    }
    // One client, many requests: the burst, then 429 with a wait.
    let mut limited = None;
    for attempt in 0..50 {
        let answer = subscribe(
            &http,
            &page,
            &format!("flood{attempt}@example.org"),
            &[],
            "the-flood",
        )
        .await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    let limited = limited.expect("one client is rate limited within 50 requests");
    assert!(limited.headers.contains_key("retry-after"));
    // An unsubscribe token of one address does not open another's subscription.
    assert_eq!(
        subscribe(&http, &page, "one@example.org", &[], "ua-one")
            .await
            .status,
        202
    );
    assert_eq!(
        subscribe(&http, &page, "two@example.org", &[], "ua-two")
            .await
            .status,
        202
    );
    let one = wait_for_mails(|| smtp.mails(), "one@example.org", 1).await;
    let two = wait_for_mails(|| smtp.mails(), "two@example.org", 1).await;
    let token_of = |mail: &crate::harness::smtp::Mail| {
        let link = mail
            .link(&format!("{BASE_URL}/unsubscribe?token="))
            .expect("an unsubscribe link");
        link.split_once("token=")
            .map(|(_, token)| token.to_string())
            .expect("a token")
    };
    let (one_id, _) = token_of(&one[0])
        .split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .expect("ID.MAC");
    let (_, two_mac) = token_of(&two[0])
        .split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .expect("ID.MAC");
    let crossed = format!("{}/unsubscribe?token={one_id}.{two_mac}", page.url());
    assert_eq!(get(&http, &crossed).await.0, 400, "another address's token");
    confirm_all(&http, &page, &one).await;
    wait_for_empty_outbox(&http, &page).await;
    let mails = smtp.mails();
    let unexpected: Vec<String> = mails
        .iter()
        .map(|mail| mail.to())
        .filter(|to| !to.starts_with("flood") && to != "one@example.org" && to != "two@example.org")
        .collect();
    assert!(
        unexpected.is_empty(),
        "mail for refused requests: {unexpected:?}"
    );
    assert!(
        mails
            .iter()
            .all(|mail| mail.message_id().contains(".confirm@")),
        "only confirmations"
    );
}
