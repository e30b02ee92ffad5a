//! "Report a problem" end to end, as a user and a crowd do it, on the stack
//! of [`super::stack`] (mock backend, an agent per region, a real
//! Prometheus, `chatprobe status-page`), the page trusting 127.0.0.1 as its
//! proxy and taking the reporter's region from `X-Client-Region`.
//!
//! In headless Chromium (driven by ChromeDriver) a user opens `/`, picks
//! "Messages sent but not received" and their region, presses "Report a
//! problem" and reads the thank-you with the count. Forty more reporters,
//! each its own address in `X-Forwarded-For` through the trusted proxy, turn
//! "Sending and receiving group messages" into *Users report problems*
//! while the probes pass; a send outage in ap-south (the mock's admin API)
//! turns it into *Outage, confirmed by 41 user reports*; removing the fault
//! turns it back. Each state is read in `/api/status` and in the browser's
//! DOM; during the outage the page fits a 390 px phone without sideways
//! scrolling.
//!
//! Set `CHATPROBE_UPDATE_SCREENSHOT=1` to copy the outage's screenshots to
//! `docs/public-page-1280.png` and `docs/public-page-390.png` (the ones
//! `docs/status-page.md` shows).

use serde_json::{Value, json};

use super::stack::{
    FAULTED, PATIENCE, POLL, REGIONS, Stack, all_green, feature, start_stack, wait_status,
};
use crate::harness::backend::{put_faults, send_outage};
use crate::harness::browser::Browser;
use crate::harness::http::{http_client, wait_for};
use crate::harness::webdriver::WebDriver;
use crate::reports::{region_json, report};

/// The header in which the trusted proxy names the reporter's region.
const REGION_HEADER: &str = "x-client-region";
/// The problem reported: its id and its words on the page.
const PROBLEM: (&str, &str) = ("not_received", "Messages sent but not received");
/// The probe of the feature the problem concerns.
const PROBE: &str = "group_message";
/// The reporters beside the user in the browser, each its own address.
const CROWD: u8 = 40;
/// The public page's words for the feature's state.
const FEATURE_STATE: &str = r#"article.feature[data-probe="group_message"] p.state"#;
/// The phone's width the page must fit.
const PHONE: u32 = 390;

/// The page's `reports:` section: 127.0.0.1 is the trusted proxy, and it
/// names the region in [`REGION_HEADER`].
fn reports_section() -> String {
    format!("reports: {{trusted_proxies: [127.0.0.1/32], region_header: {REGION_HEADER}}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_say_users_report_problems_then_confirm_the_outage() {
    let Some(stack) = start_stack("1s", &reports_section()) else {
        return;
    };
    let Some(driver) = WebDriver::start(1280, 900).await else {
        return;
    };
    let http = http_client();
    wait_status(&http, &stack, "every cell green", all_green).await;

    report_in_the_browser(&driver, &stack).await;
    let reporters = 1 + the_crowd_reports(&stack).await;
    assert_eq!(reporters, 41, "the user and 40 distinct reporters count");
    let crowd = region_json(&http, &stack.page, PROBLEM.0, FAULTED).await;
    assert_eq!(
        (crowd["recent"].as_u64(), crowd["level"].as_str()),
        (Some(reporters), Some("high")),
        "{crowd}"
    );

    // The probes pass: the crowd alone says users report problems.
    let status = wait_status(&http, &stack, "users report problems", |status| {
        feature_is(status, "users_report_problems", &Value::Null)
    })
    .await;
    assert_regions(&status, "users_report_problems", reporters);
    page_shows(&driver, &stack, "Users report problems").await;

    // The probes fail too: the outage, confirmed by the reporters.
    put_faults(&http, &stack.backend.url(), &send_outage(&[FAULTED])).await;
    let status = wait_status(&http, &stack, "an outage confirmed by reports", |status| {
        feature_is(status, "outage", &json!(reporters))
    })
    .await;
    assert_regions(&status, "outage", reporters);
    let confirmed = format!("Outage, confirmed by {reporters} user reports");
    page_shows(&driver, &stack, &confirmed).await;
    assert_eq!(
        driver.texts("header.overall p.headline").await,
        ["Outage: Sending and receiving group messages"]
    );
    assert_eq!(
        driver
            .texts(r#"article.feature[data-probe="group_message"] li"#)
            .await,
        [
            "ap-south: Outage",
            "eu-west: Operational",
            "us-east: Operational"
        ]
    );
    screenshots_and_the_phone(&stack).await;

    // The fault is gone: back to what the crowd alone says.
    put_faults(&http, &stack.backend.url(), &json!([])).await;
    let status = wait_status(&http, &stack, "users report problems again", |status| {
        feature_is(status, "users_report_problems", &Value::Null)
    })
    .await;
    assert_regions(&status, "users_report_problems", reporters);
    page_shows(&driver, &stack, "Users report problems").await;
}

/// The user's report through the form, in Chromium: the problem and the
/// region picked, the button pressed, the thank-you read with its count.
async fn report_in_the_browser(driver: &WebDriver, stack: &Stack) {
    driver.open(&stack.url("/")).await;
    let (problem, words) = PROBLEM;
    driver
        .click(&format!(r#"input[name="problem"][value="{problem}"]"#))
        .await;
    driver
        .click(&format!(
            r#"select[name="region"] option[value="{FAULTED}"]"#
        ))
        .await;
    driver
        .click(r#"form[action="report"] button[type="submit"]"#)
        .await;
    let thanks = format!(
        "Thank you: we have your report of \u{201c}{words}\u{201d}. 1 person reported it in the last 15 minutes."
    );
    let back = json!(format!("?reported={problem}"));
    wait_for("the thank-you on the page", PATIENCE, POLL, || async {
        let notices = driver.texts("p.notice").await;
        let query = driver.evaluate("location.search").await;
        match notices.contains(&thanks) && query == back {
            true => Ok(()),
            false => Err(format!("at {query}: {notices:?}")),
        }
    })
    .await;
}

/// [`CROWD`] reporters through the trusted proxy, each its own address,
/// in the faulted region; the number counted. One of them again, behind a
/// forged hop, counts no more.
async fn the_crowd_reports(stack: &Stack) -> u64 {
    let http = crate::reports::client();
    let mut counted = 0;
    for reporter in 1..=CROWD {
        let address = format!("198.51.100.{reporter}");
        let headers = [
            ("x-forwarded-for", address.as_str()),
            (REGION_HEADER, FAULTED),
        ];
        let answer = report(&http, &stack.page, PROBLEM.0, None, "a phone", &headers).await;
        counted += u64::from(answer.counted());
    }
    let again = [
        ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
        (REGION_HEADER, FAULTED),
    ];
    let answer = report(&http, &stack.page, PROBLEM.0, None, "a phone", &again).await;
    assert!(!answer.counted(), "a reporter counts once per window");
    counted
}

/// The feature is in `state`, confirmed by `confirmed` reports (`null`: not).
fn feature_is(status: &Value, state: &str, confirmed: &Value) -> Result<(), String> {
    let found = feature(status, PROBE).ok_or_else(|| format!("no {PROBE} feature: {status}"))?;
    match found["state"] == state && &found["confirmed_by_reports"] == confirmed {
        true => Ok(()),
        false => Err(found.to_string()),
    }
}

/// The faulted region is in `state` with `reports` reporters; every other
/// region is operational, with none.
fn assert_regions(status: &Value, state: &str, reports: u64) {
    let found = feature(status, PROBE).cloned().unwrap_or_default();
    for region in REGIONS {
        let shown = found["regions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|shown| shown["region"] == region)
            .map(|shown| (shown["state"].clone(), shown["reports"].clone()));
        let expected = match region == FAULTED {
            true => (json!(state), json!(reports)),
            false => (json!("operational"), json!(0)),
        };
        assert_eq!(shown, Some(expected), "{region}: {found}");
    }
}

/// Waits for the page, opened afresh in Chromium, to word the feature's
/// state as `words`.
async fn page_shows(driver: &WebDriver, stack: &Stack, words: &str) {
    let url = stack.url("/");
    let what = format!("the page to say {words:?}");
    wait_for(&what, PATIENCE, POLL, || async {
        driver.open(&url).await;
        let shown = driver.texts(FEATURE_STATE).await;
        match shown == [words] {
            true => Ok(()),
            false => Err(format!("{shown:?}")),
        }
    })
    .await;
}

/// The page in the outage at 1280 and 390 px (copied to `docs/` on
/// request), and on a 390 px phone with nothing to scroll sideways.
async fn screenshots_and_the_phone(stack: &Stack) {
    let url = stack.url("/");
    if let Some(browser) = Browser::find("report-flow") {
        for (width, height) in [(1280, 1600), (PHONE, 1800)] {
            let name = format!("public-page-{width}.png");
            browser.screenshot(&url, (width, height), &name, &name);
        }
    }
    let Some(phone) = WebDriver::start(PHONE, 844).await else {
        return;
    };
    phone.open(&url).await;
    let widths = phone
        .evaluate("[window.innerWidth, document.documentElement.scrollWidth]")
        .await;
    assert_eq!(widths[0], PHONE, "the window is a phone's: {widths}");
    assert!(
        widths[1]
            .as_u64()
            .is_some_and(|width| width <= u64::from(PHONE)),
        "the page fits {PHONE} px without scrolling sideways: {widths}"
    );
}
