//! The fleet page read live, against the stack of [`super::stack`] (the
//! mock backend, three agent processes, a real Prometheus scraping them
//! every second) but with `--incident-step 5m`: the ongoing incident still
//! opens with its red cell (it comes from the last hour's 10 s steps, not
//! the history's), inside a wait far shorter than that step. And the fleet
//! at a glance: the aggregate per probe and region in `/api/status` and on
//! the page, each row linking its drill-down `/cells?probe=P&region=R`.
//! With `notify.publish: manual`, the incident's drafted statement waits on
//! `/operators` until an operator publishes it with the token; only then is
//! it on `/`.

use serde_json::{Value, json};

use super::stack::{
    FAULTED, OPERATOR_TOKEN, PATIENCE, POLL, Stack, all_green, incidents_of, notify, start_stack,
    wait_status,
};
use crate::harness::backend::{put_faults, send_outage};
use crate::harness::http::{get_json, get_text, http_client, wait_for};

/// The aggregate row of `probe` in `region`.
fn group<'a>(status: &'a Value, probe: &str, region: &str) -> Option<&'a Value> {
    status["aggregate"]
        .as_array()?
        .iter()
        .find(|group| group["probe"] == probe && group["region"] == region)
}

/// An ongoing incident of group_message in the faulted region, and its
/// cell red, in one pass over both answers.
async fn incident_with_red_cell(http: &reqwest::Client, stack: &Stack) -> Result<Value, String> {
    let incidents = incidents_of(http, stack, "group_message").await?;
    let status = get_json(http, &stack.url("/api/status")).await?;
    let red = status["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|cell| {
            cell["region"] == FAULTED && cell["probe"] == "group_message" && cell["state"] == "red"
        });
    let ongoing = incidents
        .iter()
        .find(|incident| incident["ended_at"].is_null() && incident["regions"] == json!([FAULTED]));
    match (red, ongoing) {
        (true, Some(incident)) => Ok(incident.clone()),
        _ => Err(format!("red: {red}; incidents: {incidents:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_aggregates_per_probe_and_region_and_an_incident_opens_with_its_red_cell() {
    let Some(stack) = start_stack("5m", &notify("manual")) else {
        return;
    };
    let http = http_client();
    let status = wait_status(&http, &stack, "every cell green", all_green).await;
    let healthy = group(&status, "group_message", FAULTED).cloned();
    assert_eq!(
        healthy
            .as_ref()
            .map(|g| (&g["state"], &g["targets"], &g["passing"], &g["failing"])),
        Some((&json!("green"), &json!(1), &json!(1), &json!(0))),
        "{status}"
    );
    assert_eq!(
        status["aggregate"].as_array().map(Vec::len),
        Some(6),
        "2 probes × 3 regions: {status}"
    );

    put_faults(&http, &stack.backend.url(), &send_outage(&[FAULTED])).await;
    let incident = wait_for(
        "an ongoing incident while its cell is red (the history's step is 5 minutes)",
        PATIENCE,
        POLL,
        || incident_with_red_cell(&http, &stack),
    )
    .await;
    assert_eq!(incident["probe"], "group_message", "{incident}");

    let status = wait_status(
        &http,
        &stack,
        "the aggregate lists the failing target",
        |status| {
            let listed = group(status, "group_message", FAULTED).is_some_and(|group| {
                group["state"] == "red"
                    && group["failing"] == 1
                    && group["not_passing"]
                        == json!([{"target": "mock", "state": "red", "reasons": ["http_error"]}])
            });
            match listed {
                true => Ok(()),
                false => Err(status["aggregate"].to_string()),
            }
        },
    )
    .await;
    for region in ["eu-west", "us-east"] {
        let other = group(&status, "group_message", region);
        assert_eq!(
            other.map(|g| &g["state"]),
            Some(&json!("green")),
            "{region}"
        );
    }
    assert_eq!(
        status["cells"].as_array().map(Vec::len),
        Some(6),
        "the full list of cells stays"
    );

    let page = get_text(&http, &stack.url("/operators"))
        .await
        .unwrap_or_default();
    assert!(
        page.contains(r#"<tr class="group" data-probe="group_message" data-region="ap-south" data-state="red" data-targets="1" data-passing="0" data-degraded="0" data-failing="1" data-stale="0"><th scope="row"><a href="cells?probe=group_message&amp;region=ap-south">"#),
        "{page}"
    );
    assert!(
        page.contains(
            r#"<span data-target="mock" data-state="red">mock <small>http_error</small></span>"#
        ),
        "{page}"
    );
    assert!(
        !page.contains(r#"<td class="cell""#),
        "no grid of every cell on /operators"
    );

    let drill = get_text(
        &http,
        &stack.url("/cells?probe=group_message&region=ap-south"),
    )
    .await
    .unwrap_or_default();
    assert!(
        drill.contains(r#"<td class="cell" data-probe="group_message" data-region="ap-south" data-target="mock" data-state="red" data-reasons="http_error""#),
        "{drill}"
    );
    assert!(
        drill.contains("group_message in ap-south: 1 targets"),
        "{drill}"
    );
    let response = http
        .get(stack.url("/cells?probe=group_message&region=<nowhere>"))
        .send()
        .await
        .expect("the page answers");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response
            .headers()
            .get("content-security-policy")
            .and_then(|value| value.to_str().ok()),
        Some("default-src 'none'; style-src 'unsafe-inline'")
    );
    let response = http
        .get(stack.url("/cells?probe=group_message"))
        .send()
        .await
        .expect("the page answers");
    assert_eq!(response.status(), 400);

    publish_the_draft(&http, &stack).await;
}

/// The incident key of the draft waiting on `/operators`.
async fn waiting_draft(http: &reqwest::Client, stack: &Stack) -> Result<String, String> {
    let page = get_text(http, &stack.url("/operators")).await?;
    let form = page
        .split_once(r#"<form class="publish""#)
        .map(|(_, form)| form)
        .ok_or_else(|| "no draft waiting".to_owned())?;
    form.split_once(r#"name="incident" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(key, _)| key.to_owned())
        .ok_or_else(|| format!("a publish form without its incident: {form}"))
}

/// `POST /operators/publish` of `incident` with `token` (and `origin`),
/// its redirect not followed.
async fn post_publish(stack: &Stack, incident: &str, token: &str, origin: Option<&str>) -> u16 {
    let mut post = crate::reports::client()
        .post(stack.url("/operators/publish"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "incident={}&token={token}",
            incident.replace('@', "%40")
        ));
    if let Some(origin) = origin {
        post = post.header("origin", origin);
    }
    match post.send().await {
        Ok(answer) => answer.status().as_u16(),
        Err(error) => panic!("POST /operators/publish: {error}"),
    }
}

/// With `publish: manual` the ongoing incident's draft waits on
/// `/operators`, off `/`, until an operator publishes it.
async fn publish_the_draft(http: &reqwest::Client, stack: &Stack) {
    let incident = wait_for("a draft waiting on /operators", PATIENCE, POLL, || {
        waiting_draft(http, stack)
    })
    .await;
    assert!(incident.starts_with("group_message@"), "{incident}");
    let public = get_text(http, &stack.url("/")).await.unwrap_or_default();
    assert!(
        !public.contains(r#"<article class="incident""#),
        "nothing is published yet: {public}"
    );
    let refused = [
        (
            post_publish(stack, &incident, "not-the-token-at-all", None).await,
            401,
        ),
        (
            post_publish(
                stack,
                &incident,
                OPERATOR_TOKEN,
                Some("https://elsewhere.example"),
            )
            .await,
            403,
        ),
        (
            post_publish(stack, "group_message@1", OPERATOR_TOKEN, None).await,
            404,
        ),
    ];
    for (status, expected) in refused {
        assert_eq!(status, expected);
    }
    assert_eq!(
        post_publish(stack, &incident, OPERATOR_TOKEN, None).await,
        303
    );
    let public = get_text(http, &stack.url("/")).await.unwrap_or_default();
    assert!(
        public.contains("Update from our checks</span> Sending and receiving group messages is not working as it should in ap-south since"),
        "published, it is on the public page: {public}"
    );
    let incidents = incidents_of(http, stack, "group_message")
        .await
        .unwrap_or_default();
    let drafted = incidents.iter().any(|incident| {
        incident["statements"]
            .as_array()
            .is_some_and(|said| said.iter().any(|statement| statement["kind"] == "drafted"))
    });
    assert!(drafted, "{incidents:?}");
}
