//! The fleet status page end to end, on the stack of [`super::stack`]: the
//! mock backend, one agent process per region (`eu-west`, `us-east`,
//! `ap-south`, probe interval 1 s), a real Prometheus scraping them every
//! second with no rules at all, and `chatprobe status-page` reading it. A send outage in ap-south opens an
//! incident (on `/api/incidents`, `/feed.atom` and the page in headless
//! Chromium, screenshot included) while the other regions stay green;
//! removing it ends the incident; an operator's statement posted through
//! `POST /api/statements` joins the incident's timeline; stopping
//! Prometheus turns the page blind (`overall` unknown, never green).
//!
//! Set `CHATPROBE_UPDATE_SCREENSHOT=1` to copy the screenshot to
//! `docs/fleet-status.png` (the one `docs/status-page.md` shows).

use serde_json::Value;

use super::stack::{
    FAULTED, OPERATOR_TOKEN, PATIENCE, POLL, PROBES, REGIONS, Stack, all_green, cells,
    feature_states, incidents_of, notify, start_stack, wait_status,
};
use crate::harness::backend::{put_faults, send_outage};
use crate::harness::browser::Browser;
use crate::harness::http::{get_text, http_client, wait_for};
use crate::harness::webdriver::WebDriver;

/// The statements of `incident` once one of them is of `kind`.
async fn timeline_with(
    http: &reqwest::Client,
    stack: &Stack,
    incident: &Value,
    kind: &str,
) -> Value {
    let what = format!("a {kind} statement in the timeline");
    wait_for(&what, PATIENCE, POLL, || async {
        let found = incidents_of(http, stack, "group_message").await?;
        let statements = found
            .iter()
            .find(|found| found["started_at"] == incident["started_at"])
            .map(|found| found["statements"].clone())
            .unwrap_or_default();
        let has_kind = statements
            .as_array()
            .is_some_and(|all| all.iter().any(|statement| statement["kind"] == kind));
        match has_kind {
            true => Ok(statements),
            false => Err(format!("{found:?}")),
        }
    })
    .await
}

/// Every probe's trend counts runs.
fn trends_have_runs(status: &Value) -> Result<(), String> {
    let trends = status["trends"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let runs = |trend: &Value| -> u64 {
        trend["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .sum()
    };
    match trends.len() == PROBES.len() && trends.iter().all(|trend| runs(trend) > 0) {
        true => Ok(()),
        false => Err(format!("trends without runs: {status}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_outage_opens_and_ends_an_incident_and_a_blind_page_is_not_green() {
    let Some(mut stack) = start_stack("1s", &notify("auto")) else {
        return;
    };
    let http = http_client();
    wait_status(
        &http,
        &stack,
        "every cell green, trends with runs",
        |status| {
            all_green(status)?;
            trends_have_runs(status)
        },
    )
    .await;
    let page = get_text(&http, &stack.url("/operators"))
        .await
        .unwrap_or_default();
    assert!(
        page.contains("<h3>Rehearsal</h3>"),
        "the notes are on top: {page}"
    );
    // The regions Prometheus shows are ones a report may name (none is configured).
    let report = |region: &'static str| {
        let url = stack.url("/api/reports");
        let body = format!("{{\"problem\": \"not_sending\", \"region\": \"{region}\"}}");
        let http = &http;
        async move {
            let answer = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            answer
                .map(|answer| answer.status().as_u16())
                .unwrap_or_default()
        }
    };
    assert_eq!(report(FAULTED).await, 200);
    assert_eq!(report("mars").await, 400);

    // A send outage in ap-south: one incident, for ap-south only.
    put_faults(&http, &stack.backend.url(), &send_outage(&[FAULTED])).await;
    // Its reasons may complete a scrape after it opens: wait for them too.
    let incident = wait_for(
        "an ongoing incident naming its reason",
        PATIENCE,
        POLL,
        || async {
            let found = incidents_of(&http, &stack, "group_message").await?;
            let named = |incident: &&Value| {
                incident["ended_at"].is_null()
                    && incident["reasons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|reason| {
                            reason["reason"] == "http_error"
                                && reason["operations"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .any(|op| op == "send")
                        })
            };
            match found.iter().find(named) {
                Some(incident) => Ok(incident.clone()),
                None => Err(format!("{found:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        incident["regions"],
        serde_json::json!([FAULTED]),
        "{incident}"
    );
    let status = wait_status(&http, &stack, "ap-south red with its reason", |status| {
        let red = status["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|cell| {
                cell["region"] == FAULTED
                    && cell["probe"] == "group_message"
                    && cell["state"] == "red"
                    && cell["reasons"] == serde_json::json!(["http_error"])
            });
        let listed = status["recent_failures"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|failure| failure["region"] == FAULTED && failure["reason"] == "http_error");
        match red && listed && status["overall"] == "red" {
            true => Ok(()),
            false => Err(status.to_string()),
        }
    })
    .await;
    for (region, probe, state) in cells(&status).unwrap_or_default() {
        if region != FAULTED {
            assert_eq!(state, "green", "{probe} in {region}");
        }
    }
    // The page drafts its statement in users' words; an operator's joins it.
    let drafted = timeline_with(&http, &stack, &incident, "drafted").await;
    assert!(
        drafted.to_string().contains(
            "Sending and receiving group messages is not working as it should in ap-south since"
        ) && drafted.to_string().contains("sending messages fails"),
        "{drafted}"
    );
    let statement = serde_json::json!({
        "probe": "group_message",
        "started_at": incident["started_at"],
        "event": "statement",
        "text": "We are looking into failed sends in Asia (South).",
    });
    let posted = http
        .post(stack.url("/api/statements"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&statement)
        .send()
        .await
        .expect("POST /api/statements");
    assert_eq!(posted.status().as_u16(), 201);
    let timeline = timeline_with(&http, &stack, &incident, "operator").await;
    assert!(
        timeline
            .to_string()
            .contains("We are looking into failed sends in Asia (South)."),
        "{timeline}"
    );

    let page = get_text(&http, &stack.url("/")).await.unwrap_or_default();
    assert!(
        page.contains("Update from the operators</span> We are looking into failed sends in Asia (South).")
            && page.contains("Update from our checks</span> Sending and receiving group messages is not working as it should in ap-south since"),
        "the public page shows the incident's timeline: {page}"
    );

    let public = wait_status(
        &http,
        &stack,
        "the feature in outage in ap-south",
        |status| match feature_states(status, "group_message") {
            Some((state, regions))
                if state == "outage" && regions.get(FAULTED).is_some_and(|s| s == "outage") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let (_, regions) = feature_states(&public, "group_message").unwrap_or_default();
    for region in REGIONS.iter().filter(|region| **region != FAULTED) {
        assert_eq!(
            regions.get(*region).map(String::as_str),
            Some("operational"),
            "{public}"
        );
    }
    let page = get_text(&http, &stack.url("/")).await.unwrap_or_default();
    assert!(
        page.contains(r#"<li data-region="ap-south" data-state="outage">ap-south: Outage</li>"#),
        "the public page says where: {page}"
    );
    assert!(
        !page.contains("http_error") && !page.contains("mock"),
        "no reasons or targets on the public page: {page}"
    );
    let feed = get_text(&http, &stack.url("/feed.atom"))
        .await
        .unwrap_or_default();
    assert!(
        feed.contains("<title>group_message failing in ap-south since"),
        "the feed carries the incident: {feed}"
    );
    assert!(
        feed.contains("<title>Statement from the operators</title>"),
        "{feed}"
    );
    assert!(
        feed.contains("<title>Update from the operators: group_message failing in ap-south since")
            && feed.contains("We are looking into failed sends in Asia (South).</content>"),
        "the feed carries the published statements: {feed}"
    );

    if let Some(browser) = Browser::find("fleet-page") {
        let url = stack.url("/operators");
        let dom = browser.dom(&url);
        assert!(
            dom.contains(r#"<article class="incident" data-state="ongoing" data-probe="group_message" data-regions="ap-south">"#),
            "the browser shows the ongoing incident: {dom}"
        );
        browser.screenshot(&url, (1280, 1600), "fleet-status.png", "fleet-status.png");
    }
    for (width, height) in [(390, 844), (1280, 900)] {
        let Some(driver) = WebDriver::start(width, height).await else {
            break;
        };
        driver.open(&stack.url("/")).await;
        let source = driver.source().await;
        assert!(source.contains(r#"data-state="outage""#), "{source}");
        let fits = driver
            .evaluate(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth",
            )
            .await;
        assert_eq!(
            fits, true,
            "the public page fits {width} px without scrolling sideways"
        );
    }

    // The outage ends: so does the incident, and its feed entry says so.
    put_faults(&http, &stack.backend.url(), &serde_json::json!([])).await;
    let started_at = incident["started_at"].clone();
    let ended = wait_for("the incident ended", PATIENCE, POLL, || async {
        let found = incidents_of(&http, &stack, "group_message").await?;
        match found
            .iter()
            .find(|incident| incident["started_at"] == started_at)
        {
            Some(incident) if !incident["ended_at"].is_null() => Ok(incident.clone()),
            _ => Err(format!("{found:?}")),
        }
    })
    .await;
    assert!(
        ended["duration_seconds"]
            .as_u64()
            .is_some_and(|seconds| seconds > 0),
        "{ended}"
    );
    let feed = get_text(&http, &stack.url("/feed.atom"))
        .await
        .unwrap_or_default();
    assert!(
        feed.contains("<title>Resolved: group_message failed in ap-south for"),
        "{feed}"
    );
    let resolved = timeline_with(&http, &stack, &incident, "resolved").await;
    assert!(
        resolved
            .to_string()
            .contains("Sending and receiving group messages is working again in ap-south since"),
        "{resolved}"
    );
    wait_status(&http, &stack, "every cell green again", all_green).await;

    // Prometheus stops: the page cannot see, and says so.
    drop(stack.prometheus.take());
    let blind = wait_status(&http, &stack, "overall unknown", |status| {
        match status["overall"] == "unknown" && !status["source"]["error"].is_null() {
            true => Ok(()),
            false => Err(status.to_string()),
        }
    })
    .await;
    assert!(
        !blind["cells"].as_array().is_none_or(Vec::is_empty),
        "the last data stays, marked"
    );
    let page = get_text(&http, &stack.url("/operators"))
        .await
        .unwrap_or_default();
    assert!(
        page.contains(r#"<header class="overall" data-state="unknown">"#),
        "{page}"
    );
    assert!(page.contains("Blind: Prometheus cannot be read"), "{page}");
    let public = get_text(&http, &stack.url("/")).await.unwrap_or_default();
    assert!(
        public.contains(r#"<header class="overall" data-state="unknown">"#)
            && public.contains("We cannot read the results of our checks"),
        "the public page is never green when blind: {public}"
    );
}
