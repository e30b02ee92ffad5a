//! The status page's `/metrics`: every report family and the store's
//! (every refusal reason at 0 before any refusal), every one of them the rules
//! read, and nothing `promtool check metrics` objects to.

use std::process::Command;
use std::time::Duration;

use super::{STATUS_PAGE_METRICS, Store, client, report, start_page};
use crate::alerts::dashboards::{exposed_names, metric_names_read};
use crate::harness::dir::TempDir;
use crate::harness::http::{get_text, wait_for};

#[tokio::test]
async fn the_status_page_serves_the_report_metrics_the_rules_read_and_promtool_accepts_them() {
    let Some(promtool) = crate::harness::tool(
        "CHATPROBE_PROMTOOL",
        "promtool",
        "apt-get install prometheus",
    ) else {
        return;
    };
    let dir = TempDir::new("reports-exposition");
    let page = start_page(&dir, &Store::Sqlite.url(&dir), None);
    let http = client();
    assert!(
        report(&http, &page, "cannot_add", Some("us-east"), "one", &[])
            .await
            .counted()
    );
    let url = format!("{}/metrics", page.url());
    let exposition = wait_for(
        "the crowd levels on /metrics",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let text = get_text(&http, &url).await?;
            match text
                .contains("chatprobe_crowd_level{problem=\"cannot_add\",region=\"us-east\"} 0")
            {
                true => Ok(text),
                false => Err(text),
            }
        },
    )
    .await;
    let exposed = exposed_names(&exposition);
    let store_seconds = "chatprobe_store_operation_duration_seconds_count";
    for name in STATUS_PAGE_METRICS.into_iter().chain([store_seconds]) {
        assert!(exposed.contains(name), "{name} missing from\n{exposition}");
    }
    let read_by_rules: Vec<String> = metric_names_read()
        .into_iter()
        .filter(|name| STATUS_PAGE_METRICS.contains(&name.as_str()))
        .collect();
    assert!(
        read_by_rules.contains(&"chatprobe_crowd_level".to_string()),
        "{read_by_rules:?}"
    );
    for reason in chatprobe::metrics::Refused::ALL {
        let series = format!("chatprobe_user_reports_refused_total{{reason=\"{reason}\"}} 0");
        assert!(
            exposition.contains(&series),
            "{series} missing from\n{exposition}"
        );
    }
    let path = dir.write("metrics.txt", &exposition);
    let output = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).expect("the metrics file opens"))
        .output()
        .expect("promtool runs");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "{complaints}\n{exposition}"
    );
}
