//! What only the store shows: two replicas on one PostgreSQL count a
//! reporter once; PostgreSQL killed mid-run makes reports 503 while the
//! page stays up, and they resume when it is back; the raw client address
//! is in neither the SQLite file nor the logs; the stored-per-hour cap
//! samples reports out and says so; a PostgreSQL that takes TLS only is
//! reached over TLS (`PGSSLMODE=require`) and refuses the page without it;
//! a `postgres://` store that cannot be reached stops the page with a clear
//! error.

use std::time::Duration;

use super::{
    Store, client, page_metric, region_json, report, reports_json, start_page, start_page_with_env,
    wait_for_metric,
};
use crate::harness::binary::command;
use crate::harness::dir::TempDir;
use crate::harness::http::wait_for;
use crate::harness::postgres::Postgres;

#[tokio::test]
async fn two_replicas_on_one_postgres_count_a_reporter_once() {
    let Some(store) = Store::postgres() else {
        return;
    };
    let dir = TempDir::new("reports-replicas");
    let url = store.url(&dir);
    let (first, second) = (start_page(&dir, &url, None), start_page(&dir, &url, None));
    let http = client();
    assert!(
        report(&http, &first, "settings_fail", Some("eu-west"), "one", &[])
            .await
            .counted()
    );
    assert!(
        !report(&http, &second, "settings_fail", Some("eu-west"), "one", &[])
            .await
            .counted()
    );
    assert!(
        report(&http, &second, "settings_fail", Some("eu-west"), "two", &[])
            .await
            .counted()
    );
    for page in [&first, &second] {
        let eu = region_json(&http, page, "settings_fail", "eu-west").await;
        assert_eq!(eu["recent"], 2, "{eu}");
    }
}

#[tokio::test]
async fn postgres_down_means_503_the_page_stays_up_and_reports_resume() {
    let Some(mut postgres) = Postgres::start() else {
        return;
    };
    let dir = TempDir::new("reports-pg-down");
    let page = start_page(&dir, &postgres.url(), None);
    let http = client();
    assert!(
        report(&http, &page, "not_sending", Some("eu-west"), "before", &[])
            .await
            .counted()
    );
    postgres.kill();
    let down = report(&http, &page, "not_sending", Some("eu-west"), "during", &[]).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("unavailable"), "{}", down.body);
    let api = http
        .get(format!("{}/api/reports", page.url()))
        .send()
        .await
        .expect("GET /api/reports");
    assert_eq!(api.status().as_u16(), 503);
    let (status, _) = page.get("/healthz");
    assert_eq!(status, 200);
    assert!(page_metric(&http, &page, "chatprobe_store_errors_total").await >= 2.0);
    postgres.resume();
    wait_for(
        "reports taken again",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let answer = report(&http, &page, "not_sending", Some("eu-west"), "after", &[]).await;
            match answer.status {
                200 => Ok(answer.counted()),
                other => Err(format!("{other}: {}", answer.body)),
            }
        },
    )
    .await;
    let eu = region_json(&http, &page, "not_sending", "eu-west").await;
    assert_eq!(eu["recent"], 2, "{eu}");
}

#[tokio::test]
async fn the_raw_client_address_is_in_neither_the_store_nor_the_logs() {
    let dir = TempDir::new("reports-privacy");
    let url = Store::Sqlite.url(&dir);
    let client_address = "203.0.113.77";
    let mut page = start_page(&dir, &url, Some("trusted_proxies: [127.0.0.1]\n"));
    let http = client();
    let forwarded = [("x-forwarded-for", client_address)];
    assert!(
        report(
            &http,
            &page,
            "cannot_login",
            Some("eu-west"),
            "private",
            &forwarded
        )
        .await
        .counted()
    );
    assert!(
        !report(
            &http,
            &page,
            "cannot_login",
            Some("eu-west"),
            "private",
            &forwarded
        )
        .await
        .counted()
    );
    let bad = report(
        &http,
        &page,
        "no_such",
        Some("eu-west"),
        "private",
        &forwarded,
    )
    .await;
    assert_eq!(bad.status, 400);
    page.stop_cleanly("TERM");
    let (mut files, mut holding_reports) = (0, 0);
    for entry in std::fs::read_dir(dir.path()).expect("the test dir is readable") {
        let path = entry.expect("an entry").path();
        if !path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("status.db"))
        {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).expect("a store file is readable");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(client_address),
            "{} holds the client's address",
            path.display()
        );
        assert!(
            !text.contains("127.0.0.1"),
            "{} holds the proxy's address",
            path.display()
        );
        holding_reports += usize::from(text.contains("cannot_login"));
    }
    assert!(files >= 1, "no store file in {}", dir.path().display());
    assert!(holding_reports >= 1, "no store file holds the report");
    assert!(!page.log().contains(client_address), "{}", page.log());
}

#[tokio::test]
async fn over_the_hourly_cap_reports_are_sampled_out_and_the_api_says_so() {
    let dir = TempDir::new("reports-sampled");
    let page = start_page(
        &dir,
        &Store::Sqlite.url(&dir),
        Some("limits: {stored_per_hour: 2}\n"),
    );
    let http = client();
    for reporter in ["a", "b"] {
        assert!(
            report(&http, &page, "not_sending", Some("eu-west"), reporter, &[])
                .await
                .counted()
        );
    }
    assert_eq!(reports_json(&http, &page, 1).await["sampling"], true);
    assert!(
        !report(&http, &page, "not_sending", Some("eu-west"), "c", &[])
            .await
            .counted()
    );
    // Not stored, so not a duplicate when tried again: sampled again.
    assert!(
        !report(&http, &page, "not_sending", Some("eu-west"), "c", &[])
            .await
            .counted()
    );
    wait_for_metric(
        &http,
        &page,
        "chatprobe_user_reports_refused_total{reason=\"sampled\"}",
        2.0,
    )
    .await;
    let eu = region_json(&http, &page, "not_sending", "eu-west").await;
    assert_eq!(eu["recent"], 2, "{eu}");
}

#[tokio::test]
async fn a_postgres_taking_tls_only_is_reached_over_tls() {
    let Some(postgres) = Postgres::start_tls() else {
        return;
    };
    let dir = TempDir::new("reports-pg-tls");
    // Without TLS the server turns the page away: it does not start.
    let plain = command()
        .args([
            "status-page",
            "--prometheus",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--store", &postgres.url()])
        .env("PGSSLMODE", "disable")
        .output()
        .expect("chatprobe runs");
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success(), "{stderr}");
    assert!(stderr.contains("opening the store"), "{stderr}");
    let page = start_page_with_env(&dir, &postgres.url(), None, &[("PGSSLMODE", "require")]);
    let http = client();
    assert!(
        report(&http, &page, "cannot_add", Some("eu-west"), "tls", &[])
            .await
            .counted()
    );
    let eu = region_json(&http, &page, "cannot_add", "eu-west").await;
    assert_eq!(eu["recent"], 1, "{eu}");
}

#[test]
fn an_unreachable_or_malformed_store_stops_the_page_with_a_clear_error() {
    let port = crate::harness::free_port();
    for (store, words) in [
        (
            format!("postgres://chatprobe@127.0.0.1:{port}/status"),
            "opening the store postgres://",
        ),
        ("mysql://a@b/c".to_string(), "sqlite:PATH"),
        (
            "sqlite:/nonexistent-dir/x/status.db".to_string(),
            "opening the store sqlite:",
        ),
    ] {
        let output = command()
            .args([
                "status-page",
                "--prometheus",
                "http://127.0.0.1:1",
                "--listen",
                "127.0.0.1:0",
                "--store",
                &store,
            ])
            .output()
            .expect("chatprobe runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{store}: {stderr}");
        assert!(stderr.contains(words), "{store}: {stderr}");
    }
}
