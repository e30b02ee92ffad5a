//! The contract of "Report a problem", each case run against SQLite and
//! PostgreSQL: counted once per reporter and window, the form's 303, every
//! bad input refused with a clear 4xx and nothing stored, the rate limit's
//! 429 with `Retry-After`, `X-Forwarded-For` and the region header believed
//! only from a trusted proxy, the crowd level rising to `high` with enough
//! distinct reporters, and the reports surviving a restart of the page.

use super::{
    Store, client, on_both_stores, page_metric, post, post_refused_body, problem_json, region_json,
    report, reports_json, seed_hourly_counts, start_page, wait_for_metric,
};
use crate::harness::dir::TempDir;

on_both_stores!(
    a_reporter_counts_once_per_problem_and_window,
    the_form_answers_303_back_to_the_page,
    bad_input_is_refused_and_stores_nothing,
    the_same_reporter_a_thousand_times_counts_once_and_is_rate_limited,
    forwarded_for_and_the_region_header_count_only_from_a_trusted_proxy,
    enough_distinct_reporters_raise_the_crowd_level,
    past_weeks_set_the_bar_for_elevated_and_high,
    reports_survive_a_restart_of_the_page,
);

const COUNTED_EU: &str =
    "chatprobe_user_reports_total{problem=\"not_received\",region=\"eu-west\"}";
const DUPLICATES: &str = "chatprobe_user_reports_refused_total{reason=\"duplicate\"}";

async fn a_reporter_counts_once_per_problem_and_window(store: Store) {
    let dir = TempDir::new("reports-once");
    let page = start_page(&dir, &store.url(&dir), None);
    let http = client();
    assert!(
        report(&http, &page, "not_received", Some("eu-west"), "phone", &[])
            .await
            .counted()
    );
    assert!(
        !report(&http, &page, "not_received", Some("eu-west"), "phone", &[])
            .await
            .counted()
    );
    // Another reporter; the same reporter with another problem.
    assert!(
        report(&http, &page, "not_received", Some("eu-west"), "laptop", &[])
            .await
            .counted()
    );
    assert!(
        report(&http, &page, "not_sending", Some("eu-west"), "phone", &[])
            .await
            .counted()
    );
    // The region is part of the report, not of the reporter.
    assert!(
        !report(&http, &page, "not_received", Some("us-east"), "phone", &[])
            .await
            .counted()
    );
    assert_eq!(page_metric(&http, &page, COUNTED_EU).await, 2.0);
    assert_eq!(page_metric(&http, &page, DUPLICATES).await, 2.0);
    let eu = region_json(&http, &page, "not_received", "eu-west").await;
    assert_eq!(eu["recent"], 2, "{eu}");
    let json = reports_json(&http, &page, 24).await;
    let hours = json["hours"].as_array().expect("hours");
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[23]["counts"]["not_received"], 2, "{json}");
    assert_eq!(hours[23]["counts"]["not_sending"], 1, "{json}");
    assert_eq!(json["sampling"], false);
}

async fn the_form_answers_303_back_to_the_page(store: Store) {
    let dir = TempDir::new("reports-form");
    let page = start_page(&dir, &store.url(&dir), None);
    let http = client();
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("user-agent", "browser"),
        ("sec-fetch-site", "same-origin"),
    ];
    let answer = post(
        &http,
        &page,
        "/report",
        &form,
        "problem=not_received&region=us-east",
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.headers["location"], "/?reported=not_received");
    // Same origin by `Origin` alone (an older browser); an empty region is none.
    let origin = page.url();
    let host = page.addr.to_string();
    let by_origin = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("user-agent", "old"),
        ("origin", &origin),
        ("host", &host),
    ];
    let answer = post(
        &http,
        &page,
        "/report",
        &by_origin,
        "problem=cannot_leave&region=",
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let us = region_json(&http, &page, "not_received", "us-east").await;
    assert_eq!(us["recent"], 1, "{us}");
    let unknown = region_json(&http, &page, "cannot_leave", "unknown").await;
    assert_eq!(unknown["recent"], 1, "{unknown}");
}

/// A bad request: path, headers, body, the status it gets and words its answer has.
type BadRequest<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

async fn bad_input_is_refused_and_stores_nothing(store: Store) {
    let dir = TempDir::new("reports-bad");
    let page = start_page(&dir, &store.url(&dir), None);
    let http = client();
    let json = ("content-type", "application/json");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let big = format!(
        "{{\"problem\": \"not_sending\", \"region\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    let cases: Vec<BadRequest> = vec![
        (
            "/report",
            vec![form, ("sec-fetch-site", "cross-site")],
            b"problem=not_sending".to_vec(),
            403,
            "this site",
        ),
        (
            "/report",
            vec![form, ("origin", "https://evil.example")],
            b"problem=not_sending".to_vec(),
            403,
            "this site",
        ),
        (
            "/api/reports",
            vec![json, ("sec-fetch-site", "cross-site")],
            br#"{"problem":"not_sending"}"#.to_vec(),
            403,
            "this site",
        ),
        (
            "/api/reports",
            vec![("content-type", "text/plain")],
            br#"{"problem":"not_sending"}"#.to_vec(),
            415,
            "application/json",
        ),
        (
            "/api/reports",
            vec![],
            br#"{"problem":"not_sending"}"#.to_vec(),
            415,
            "application/json",
        ),
        (
            "/report",
            vec![json, ("sec-fetch-site", "same-origin")],
            b"problem=not_sending".to_vec(),
            415,
            "x-www-form-urlencoded",
        ),
        (
            "/api/reports",
            vec![json],
            br#"{"problem":"no_such_problem"}"#.to_vec(),
            400,
            "unknown problem",
        ),
        (
            "/api/reports",
            vec![json],
            br#"{"problem":"not_sending","region":"mars"}"#.to_vec(),
            400,
            "unknown region",
        ),
        (
            "/api/reports",
            vec![json],
            br#"{"problem":"x'; DROP TABLE reports; --"}"#.to_vec(),
            400,
            "unknown problem",
        ),
        (
            "/api/reports",
            vec![json],
            br#"{"problem":"not_sending","region":"<script>alert(1)</script>"}"#.to_vec(),
            400,
            "unknown region",
        ),
        (
            "/api/reports",
            vec![json],
            br#"{"problem":"not_sending","colour":"red"}"#.to_vec(),
            400,
            "unknown field",
        ),
        (
            "/api/reports",
            vec![json],
            b"{\"problem\":\"not_\xff\xfesending\"}".to_vec(),
            400,
            "bad JSON",
        ),
        (
            "/api/reports",
            vec![json],
            b"not json".to_vec(),
            400,
            "bad JSON",
        ),
        ("/api/reports", vec![json], big.into_bytes(), 413, ""),
        (
            "/report",
            vec![form],
            b"problem=%3Cb%3E%27%22&region=eu-west".to_vec(),
            400,
            "unknown problem",
        ),
        (
            "/report",
            vec![form],
            b"problem=not_%FFsending".to_vec(),
            400,
            "unknown problem",
        ),
        (
            "/report",
            vec![form],
            b"region=eu-west".to_vec(),
            400,
            "bad form",
        ),
        (
            "/api/reports",
            vec![json, ("x-forwarded-for", "203.0.113.9")],
            br#"{"problem":"not_sending","region":"nowhere"}"#.to_vec(),
            400,
            "unknown region",
        ),
    ];
    let mut refused = 0;
    for (path, headers, body, status, words) in cases {
        // A fresh connection each: the server closes the one a refused
        // large body came on.
        let (answer, tries) = post_refused_body(&page, path, &headers, &body).await;
        refused += tries;
        assert_eq!(answer.status, status, "{path} {headers:?}: {}", answer.body);
        assert!(
            answer.body.contains(words),
            "{path} {headers:?}: {}",
            answer.body
        );
    }
    let json = reports_json(&http, &page, 1).await;
    for problem in json["problems"].as_array().expect("problems") {
        assert_eq!(problem["recent"], 0, "{problem}");
    }
    for hour in json["hours"].as_array().expect("hours") {
        let counts = hour["counts"].as_object().expect("counts");
        assert!(counts.values().all(|count| count == 0), "{hour}");
    }
    let invalid = page_metric(
        &http,
        &page,
        "chatprobe_user_reports_refused_total{reason=\"invalid\"}",
    )
    .await;
    let cross_site = page_metric(
        &http,
        &page,
        "chatprobe_user_reports_refused_total{reason=\"cross_site\"}",
    )
    .await;
    assert_eq!((invalid + cross_site) as usize, refused);
    assert_eq!(cross_site, 3.0);
    // The page is still up and counts a good report.
    assert!(
        report(&http, &page, "not_sending", None, "after", &[])
            .await
            .counted()
    );
}

async fn the_same_reporter_a_thousand_times_counts_once_and_is_rate_limited(store: Store) {
    let dir = TempDir::new("reports-limit");
    let page = start_page(&dir, &store.url(&dir), None);
    let http = client();
    let mut statuses = std::collections::BTreeMap::new();
    let mut retry_after = Vec::new();
    let mut counted = 0;
    for _ in 0..1000 {
        let answer = report(&http, &page, "not_received", Some("eu-west"), "same", &[]).await;
        *statuses.entry(answer.status).or_insert(0) += 1;
        match answer.status {
            200 => counted += usize::from(answer.counted()),
            429 => retry_after.push(
                answer
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok()),
            ),
            other => panic!("status {other}: {}", answer.body),
        }
    }
    assert_eq!(counted, 1, "{statuses:?}");
    // The default burst is 10 a minute (one more every 6 s): the rest are
    // 429 with a wait in seconds.
    let limited = statuses.get(&429).copied().unwrap_or(0);
    assert!(limited >= 900, "{statuses:?}");
    assert_eq!(retry_after.len(), limited);
    assert!(
        retry_after
            .iter()
            .all(|wait| wait.is_some_and(|seconds| (1..=60).contains(&seconds))),
        "{retry_after:?}"
    );
    assert_eq!(page_metric(&http, &page, COUNTED_EU).await, 1.0);
    let rate_limited = "chatprobe_user_reports_refused_total{reason=\"rate_limited\"}";
    assert_eq!(
        page_metric(&http, &page, rate_limited).await,
        limited as f64
    );
    // Another reporter is not held back.
    assert!(
        report(&http, &page, "not_received", Some("eu-west"), "other", &[])
            .await
            .counted()
    );
}

async fn forwarded_for_and_the_region_header_count_only_from_a_trusted_proxy(store: Store) {
    let dir = TempDir::new("reports-proxy");
    let url = store.url(&dir);
    let http = client();
    let trusting = start_page(
        &dir,
        &url,
        Some("trusted_proxies: [127.0.0.1/32]\nregion_header: X-Client-Region\n"),
    );
    let from =
        |address: &'static str| [("x-forwarded-for", address), ("x-client-region", "us-east")];
    // Behind the trusted proxy, two clients with one User-Agent are two reporters.
    assert!(
        report(
            &http,
            &trusting,
            "cannot_add",
            None,
            "same",
            &from("198.51.100.1")
        )
        .await
        .counted()
    );
    assert!(
        report(
            &http,
            &trusting,
            "cannot_add",
            None,
            "same",
            &from("198.51.100.2")
        )
        .await
        .counted()
    );
    assert!(
        !report(
            &http,
            &trusting,
            "cannot_add",
            None,
            "same",
            &from("198.51.100.2")
        )
        .await
        .counted()
    );
    // A forged hop left of the client is ignored.
    assert!(
        !report(
            &http,
            &trusting,
            "cannot_add",
            None,
            "same",
            &from("6.6.6.6, 198.51.100.2")
        )
        .await
        .counted()
    );
    let us = region_json(&http, &trusting, "cannot_add", "us-east").await;
    assert_eq!(us["recent"], 2, "{us}");
    drop(trusting);
    // Without the trust, the headers are the client's own words: ignored.
    let plain = start_page(&dir, &url, None);
    assert!(
        report(
            &http,
            &plain,
            "cannot_leave",
            None,
            "same",
            &from("198.51.100.3")
        )
        .await
        .counted()
    );
    assert!(
        !report(
            &http,
            &plain,
            "cannot_leave",
            None,
            "same",
            &from("198.51.100.4")
        )
        .await
        .counted()
    );
    let unknown = region_json(&http, &plain, "cannot_leave", "unknown").await;
    assert_eq!(unknown["recent"], 1, "{unknown}");
}

async fn enough_distinct_reporters_raise_the_crowd_level(store: Store) {
    let dir = TempDir::new("reports-crowd");
    let page = start_page(&dir, &store.url(&dir), None);
    let http = client();
    let level = "chatprobe_crowd_level{problem=\"not_received\",region=\"eu-west\"}";
    for reporter in 0..9 {
        assert!(
            report(
                &http,
                &page,
                "not_received",
                Some("eu-west"),
                &format!("user-{reporter}"),
                &[]
            )
            .await
            .counted()
        );
    }
    // Nine reporters are below the floor of ten: normal, whatever the baseline.
    let eu = region_json(&http, &page, "not_received", "eu-west").await;
    assert_eq!(
        (eu["recent"].as_u64(), eu["level"].as_str()),
        (Some(9), Some("normal")),
        "{eu}"
    );
    wait_for_metric(&http, &page, COUNTED_EU, 9.0).await;
    assert_eq!(page_metric(&http, &page, level).await, 0.0);
    assert!(
        report(&http, &page, "not_received", Some("eu-west"), "user-9", &[])
            .await
            .counted()
    );
    // Ten against a baseline of none: high, in the API and in /metrics.
    let problem = problem_json(&http, &page, "not_received").await;
    assert_eq!(problem["level"], "high", "{problem}");
    assert_eq!(
        problem["features"],
        serde_json::json!(["group_message", "device_sync"])
    );
    let eu = region_json(&http, &page, "not_received", "eu-west").await;
    assert_eq!(
        (eu["recent"].as_u64(), eu["level"].as_str()),
        (Some(10), Some("high")),
        "{eu}"
    );
    assert_eq!(eu["baseline"], 0.0);
    wait_for_metric(&http, &page, level, 2.0).await;
    let us = region_json(&http, &page, "not_received", "us-east").await;
    assert_eq!(us["level"], "normal", "{us}");
    assert_eq!(
        page_metric(
            &http,
            &page,
            "chatprobe_crowd_level{problem=\"not_received\",region=\"us-east\"}"
        )
        .await,
        0.0
    );
}

async fn past_weeks_set_the_bar_for_elevated_and_high(store: Store) {
    let dir = TempDir::new("reports-baseline");
    let url = store.url(&dir);
    let page = start_page(&dir, &url, None);
    let http = client();
    // 40 reports an hour at this hour of the week (and the next, should the
    // test cross into it) in each of the last four weeks: 10 expected in
    // the 15-minute window.
    const HOUR: i64 = 3600;
    const WEEK: i64 = 7 * 24 * HOUR;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    let this_hour = i64::try_from(now).expect("a time") / HOUR * HOUR;
    let history: Vec<(i64, &str, &str, i64)> = [this_hour, this_hour + HOUR]
        .into_iter()
        .flat_map(|hour| {
            (1..=4).map(move |weeks| (hour - weeks * WEEK, "not_received", "eu-west", 40))
        })
        .collect();
    seed_hourly_counts(&url, &history).await;
    let level = "chatprobe_crowd_level{problem=\"not_received\",region=\"eu-west\"}";
    let mut reporters = 0;
    let mut report_up_to = |count: usize| {
        let (from, http, page) = (reporters, &http, &page);
        reporters = count;
        async move {
            for reporter in from..count {
                let agent = format!("user-{reporter}");
                assert!(
                    report(http, page, "not_received", Some("eu-west"), &agent, &[])
                        .await
                        .counted()
                );
            }
        }
    };
    report_up_to(29).await;
    let eu = region_json(&http, &page, "not_received", "eu-west").await;
    assert_eq!(
        (
            eu["recent"].as_u64(),
            eu["baseline"].as_f64(),
            eu["level"].as_str()
        ),
        (Some(29), Some(10.0), Some("normal")),
        "{eu}"
    );
    report_up_to(30).await;
    let eu = region_json(&http, &page, "not_received", "eu-west").await;
    assert_eq!(eu["level"], "elevated", "{eu}");
    wait_for_metric(&http, &page, level, 1.0).await;
    report_up_to(100).await;
    let eu = region_json(&http, &page, "not_received", "eu-west").await;
    assert_eq!(
        (eu["recent"].as_u64(), eu["level"].as_str()),
        (Some(100), Some("high")),
        "{eu}"
    );
    wait_for_metric(&http, &page, level, 2.0).await;
}

async fn reports_survive_a_restart_of_the_page(store: Store) {
    let dir = TempDir::new("reports-restart");
    let url = store.url(&dir);
    let http = client();
    let page = start_page(&dir, &url, None);
    for reporter in ["a", "b", "c"] {
        assert!(
            report(&http, &page, "out_of_sync", Some("eu-west"), reporter, &[])
                .await
                .counted()
        );
    }
    // Killed, as a crash would.
    drop(page);
    let page = start_page(&dir, &url, None);
    let eu = region_json(&http, &page, "out_of_sync", "eu-west").await;
    assert_eq!(eu["recent"], 3, "{eu}");
    // The same reporters are still counted: their reports are duplicates.
    assert!(
        !report(&http, &page, "out_of_sync", Some("eu-west"), "a", &[])
            .await
            .counted()
    );
    assert!(
        report(&http, &page, "out_of_sync", Some("eu-west"), "d", &[])
            .await
            .counted()
    );
    let hours = reports_json(&http, &page, 2).await;
    assert_eq!(hours["hours"][1]["counts"]["out_of_sync"], 4, "{hours}");
}
