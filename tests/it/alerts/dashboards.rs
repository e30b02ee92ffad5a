//! Checks of `dashboards/` with the real Prometheus tools: the rules load and
//! pass their unit tests, the example configs are valid, every PromQL
//! expression of the dashboard parses and names only metrics a real agent
//! exposes, that agent's /metrics passes `promtool check metrics`, every panel
//! and alert says what it is for, every alert's runbook is a section of
//! `docs/runbook.md`, the reports row reads every report metric of
//! `docs/metrics.md` (each expression filtering on the labels its series
//! has), and every page says what users report (its `crowd` annotation,
//! checked by promtool cases with no crowd, a quiet one and a raised one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::harness::backend::{put_faults, send_outage};
use crate::harness::binary::{start_agent, start_backend};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, fixture_path, repo_file};
use crate::harness::http::{get_text, http_client, wait_for};

/// A file of the shipped `dashboards/`.
fn dashboards_file(name: &str) -> PathBuf {
    repo_file("dashboards").join(name)
}

fn promtool() -> Option<PathBuf> {
    crate::harness::tool(
        "CHATPROBE_PROMTOOL",
        "promtool",
        "apt-get install prometheus",
    )
}

/// Runs a tool to completion and fails the test, with its output, unless it succeeds.
fn run_tool(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

/// A Prometheus rule file, as far as these checks read it.
#[derive(Debug, Deserialize, Serialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize, Serialize)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    expr: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

fn shipped_rules() -> RuleFile {
    let path = dashboards_file("rules.yml");
    let text = std::fs::read_to_string(&path).expect("dashboards/rules.yml is readable");
    serde_yaml_ng::from_str(&text).expect("dashboards/rules.yml is a rule file")
}

fn shipped_alerts() -> Vec<Rule> {
    shipped_rules()
        .groups
        .into_iter()
        .flat_map(|group| group.rules)
        .filter(|rule| rule.alert.is_some())
        .collect()
}

fn dashboard() -> Value {
    let path = dashboards_file("chatprobe.json");
    let text = std::fs::read_to_string(&path).expect("dashboards/chatprobe.json is readable");
    serde_json::from_str(&text).expect("dashboards/chatprobe.json is JSON")
}

/// The dashboard's panels that show data (rows only group them).
fn data_panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
        .iter()
        .filter(|panel| panel["type"] != "row")
        .collect()
}

/// Every PromQL expression of the dashboard's panels, as written.
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    data_panels(dashboard)
        .into_iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .filter_map(|target| target["expr"].as_str().map(str::to_string))
        .collect()
}

/// Replaces Grafana's variables by what Grafana would put there: durations
/// for its interval variables, a match-anything regex for the dashboard's own.
fn substitute_grafana_variables(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').unwrap_or(braced.len());
                (&braced[..end], end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        out.push_str(if name.starts_with("__") { "5m" } else { ".*" });
        rest = &after[consumed.min(after.len())..];
    }
    out.push_str(rest);
    out
}

#[test]
fn shipped_rules_pass_promtool_check_rules() {
    let Some(promtool) = promtool() else { return };
    let output = run_tool(
        Command::new(promtool)
            .arg("check")
            .arg("rules")
            .arg(dashboards_file("rules.yml")),
    );
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn shipped_rules_pass_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let output = run_tool(
        Command::new(promtool)
            .arg("test")
            .arg("rules")
            .arg(dashboards_file("rules_test.yml"))
            .arg(dashboards_file("rules_slo_test.yml")),
    );
    assert!(!output.contains("FAILED"), "{output}");
}

/// The promtool unit test files of the rules.
const RULE_TEST_FILES: [&str; 2] = ["rules_test.yml", "rules_slo_test.yml"];

/// The parsed promtool unit test files.
fn rule_tests() -> Vec<serde_yaml_ng::Value> {
    RULE_TEST_FILES
        .iter()
        .map(|file| {
            let text =
                std::fs::read_to_string(dashboards_file(file)).expect("test file is readable");
            serde_yaml_ng::from_str(&text).expect("test file is YAML")
        })
        .collect()
}

/// True for the dead man's switch: an alert that always fires, so no test
/// can make it quiet.
fn always_fires(rule: &Rule) -> bool {
    rule.expr.trim() == "vector(1)"
}

#[test]
fn every_alert_has_unit_tests_that_fire_it_and_that_do_not() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for tests in rule_tests() {
        let cases = tests["tests"].as_sequence().expect("a list of tests");
        for case in cases
            .iter()
            .filter_map(|test| test["alert_rule_test"].as_sequence())
        {
            for check in case {
                let alert = check["alertname"].as_str().expect("alertname").to_string();
                let expected = check["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if expected == 0 {
                    silent.insert(alert);
                } else {
                    firing.insert(alert);
                }
            }
        }
    }
    for rule in shipped_alerts() {
        let alert = rule.alert.as_deref().unwrap_or_default();
        assert!(firing.contains(alert), "no unit test makes {alert} fire");
        assert!(
            always_fires(&rule) || silent.contains(alert),
            "no unit test checks {alert} stays quiet"
        );
    }
}

/// The `le` bounds the agent exports, as the Prometheus text format writes them.
fn exported_bucket_bounds() -> BTreeSet<String> {
    chatprobe::metrics::BUCKETS
        .iter()
        .map(|bound| bound.to_string())
        .chain(["+Inf".to_string()])
        .collect()
}

/// Every `le="..."` value in a text.
fn le_values_in(text: &str) -> BTreeSet<String> {
    text.split("le=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn rule_tests_use_exactly_the_agents_bucket_bounds_and_rules_read_only_those() {
    let exported = exported_bucket_bounds();
    assert!(exported.contains("2"), "no bucket at the 2 s objective");
    let used_in_tests: BTreeSet<String> = RULE_TEST_FILES
        .iter()
        .map(|file| std::fs::read_to_string(dashboards_file(file)).expect("readable"))
        .flat_map(|text| le_values_in(&text))
        .collect();
    assert_eq!(
        used_in_tests, exported,
        "the rules' unit tests must feed exactly the bucket bounds of metrics::BUCKETS"
    );
    let read_by_rules: BTreeSet<String> = shipped_rules()
        .groups
        .into_iter()
        .flat_map(|group| group.rules)
        .flat_map(|rule| le_values_in(&rule.expr))
        .collect();
    assert!(!read_by_rules.is_empty(), "the latency rules read a bucket");
    assert!(
        read_by_rules.is_subset(&exported),
        "rules read buckets {read_by_rules:?}, the agent exports {exported:?}"
    );
}

#[test]
fn example_prometheus_config_is_valid() {
    let Some(promtool) = promtool() else { return };
    run_tool(
        Command::new(promtool)
            .arg("check")
            .arg("config")
            .arg(dashboards_file("prometheus.yml")),
    );
}

#[test]
fn example_alertmanager_config_is_valid() {
    let Some(amtool) = crate::harness::tool(
        "CHATPROBE_AMTOOL",
        "amtool",
        "apt-get install prometheus-alertmanager",
    ) else {
        return;
    };
    let output = run_tool(
        Command::new(amtool)
            .arg("check-config")
            .arg(dashboards_file("alertmanager.yml")),
    );
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn every_dashboard_expression_parses() {
    let Some(promtool) = promtool() else { return };
    let expressions = dashboard_expressions(&dashboard());
    assert!(!expressions.is_empty(), "the dashboard queries nothing");
    let rules = expressions
        .iter()
        .enumerate()
        .map(|(index, expr)| Rule {
            record: Some(format!("dashboard_panel_expression_{index}")),
            expr: substitute_grafana_variables(expr),
            ..Rule::default()
        })
        .collect();
    let file = RuleFile {
        groups: vec![RuleGroup {
            name: "dashboard".to_string(),
            rules,
        }],
    };
    let dir = TempDir::new("dashboard-exprs");
    let yaml = serde_yaml_ng::to_string(&file).expect("rules serialize");
    let path = dir.write("dashboard_exprs.yml", &yaml);
    let output = run_tool(Command::new(promtool).arg("check").arg("rules").arg(&path));
    assert!(
        output.contains(&format!("SUCCESS: {} rules found", expressions.len())),
        "{output}"
    );
}

#[test]
fn grafana_variables_are_substituted_as_grafana_would() {
    assert_eq!(
        substitute_grafana_variables(
            r#"rate(x{region=~"$region", probe=~"${probe}"}[$__rate_interval])"#
        ),
        r#"rate(x{region=~".*", probe=~".*"}[5m])"#
    );
}

#[test]
fn every_panel_is_titled_described_and_reads_the_datasource_variable() {
    let dashboard = dashboard();
    for panel in data_panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel has no title: {panel}");
        let description = panel["description"].as_str().unwrap_or_default();
        assert!(
            description.len() > 40,
            "panel {title:?} needs a description for the on-call reader"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?}"
        );
        let targets = panel["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "panel {title:?} queries nothing");
        for target in targets {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel {title:?}"
            );
        }
    }
}

#[test]
fn dashboard_has_datasource_region_target_and_probe_variables() {
    let dashboard = dashboard();
    let variables: BTreeMap<&str, &str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating list")
        .iter()
        .filter_map(|variable| Some((variable["name"].as_str()?, variable["type"].as_str()?)))
        .collect();
    assert_eq!(variables.get("datasource"), Some(&"datasource"));
    for name in ["region", "target", "probe"] {
        assert_eq!(variables.get(name), Some(&"query"), "variable {name}");
    }
    let status_page = status_page_metric_labels();
    for expr in dashboard_expressions(&dashboard) {
        let filters = |name: &str| expr.contains(&format!("{name}=~\"${name}\""));
        // The status page's series carry the labels docs/metrics.md gives them.
        let page_labels = chatprobe_names_in(&expr)
            .iter()
            .find_map(|name| status_page.get(name));
        if let Some(labels) = page_labels {
            for name in ["region", "target", "probe"] {
                assert_eq!(
                    filters(name),
                    labels.contains(name),
                    "a status page expression filters on ${name} exactly when its series has it: {expr}"
                );
            }
            continue;
        }
        assert!(filters("region"), "expression ignores $region: {expr}");
        // Agent-wide series (`up`, build info) have no target or probe.
        let agent_wide = expr.contains("chatprobe_build_info") || expr.contains("up{");
        if !agent_wide {
            for name in ["target", "probe"] {
                assert!(filters(name), "expression ignores ${name}: {expr}");
            }
        }
    }
}

/// The metrics of docs/metrics.md's status page section, each with its
/// labels (`chatprobe_crowd_level{problem,region}`: problem and region).
fn status_page_metric_labels() -> BTreeMap<String, BTreeSet<String>> {
    crate::docs::section_table("## The status page's metrics", "metric")
        .into_iter()
        .map(|(metric, _)| {
            let (name, labels) = metric.split_once('{').unwrap_or((&metric, ""));
            let labels = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|label| !label.is_empty())
                .map(str::to_string)
                .collect();
            (name.to_string(), labels)
        })
        .collect()
}

/// The data panels of the row titled `title`: those after it, up to the next row.
fn row_panels<'a>(dashboard: &'a Value, title: &str) -> Vec<&'a Value> {
    dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
        .iter()
        .skip_while(|panel| !(panel["type"] == "row" && panel["title"] == title))
        .skip(1)
        .take_while(|panel| panel["type"] != "row")
        .collect()
}

#[test]
fn dashboard_has_a_reports_row_reading_every_report_metric() {
    let dashboard = dashboard();
    let panels = row_panels(&dashboard, "What do users report?");
    let read: BTreeSet<String> = panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .filter_map(|target| target["expr"].as_str())
        .flat_map(chatprobe_names_in)
        .collect();
    let reports: BTreeSet<String> = status_page_metric_labels()
        .into_keys()
        .filter(|name| {
            name.starts_with("chatprobe_user_reports_") || name == "chatprobe_crowd_level"
        })
        .collect();
    assert_eq!(
        reports.len(),
        3,
        "docs/metrics.md names the report metrics: {reports:?}"
    );
    assert_eq!(
        read, reports,
        "the reports row reads every report metric, and only those"
    );
}

/// What a page's `crowd` annotation says when no status page is scraped.
const CROWD_NOT_KNOWN: &str = "No status page is scraped: what users report is not known.";

#[test]
fn every_page_says_what_users_report_and_its_tests_check_each_case() {
    let pages: Vec<Rule> = shipped_alerts()
        .into_iter()
        .filter(|rule| rule.labels.get("severity").map(String::as_str) == Some("critical"))
        .collect();
    assert!(pages.len() >= 4, "{pages:?}");
    for rule in &pages {
        let crowd = rule.annotations.get("crowd").cloned().unwrap_or_default();
        assert!(
            crowd.contains("chatprobe_crowd_level") && crowd.contains(CROWD_NOT_KNOWN),
            "{:?} has no crowd annotation reading chatprobe_crowd_level: {crowd:?}",
            rule.alert
        );
    }
    let expected: Vec<String> = rule_tests()
        .iter()
        .flat_map(|tests| tests["tests"].as_sequence().cloned().unwrap_or_default())
        .flat_map(|test| {
            test["alert_rule_test"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|check| {
            check["exp_alerts"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|alert| {
            alert["exp_annotations"]["crowd"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    for case in [
        CROWD_NOT_KNOWN,
        "Users report nothing unusual in",
        "Users report: ",
    ] {
        assert!(
            expected.iter().any(|crowd| crowd.starts_with(case)),
            "no promtool case expects a crowd annotation starting {case:?}: {expected:?}"
        );
    }
}

/// The anchor GitHub gives a Markdown heading.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// How every alert's `runbook_url` starts: the runbook (or the base URL set in
/// Prometheus' external labels), then `#` and the section's anchor.
const RUNBOOK_BASE: &str = r#"{{ or $externalLabels.runbook_base_url "docs/runbook.md" }}#"#;

/// How every alert's `dashboard_url` starts: the Grafana base URL set in
/// Prometheus' external labels, then the dashboard's uid.
const DASHBOARD_BASE: &str = r#"{{ or $externalLabels.grafana_url "" }}/d/chatprobe-overview"#;

#[test]
fn every_alert_names_what_broke_and_links_its_runbook_section() {
    let runbook =
        std::fs::read_to_string(repo_file("docs/runbook.md")).expect("docs/runbook.md is readable");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(heading_anchor)
        .collect();
    for rule in shipped_alerts() {
        let alert = rule.alert.as_deref().unwrap_or_default();
        let severity = rule.labels.get("severity").map(String::as_str);
        let expected_severity = match always_fires(&rule) {
            true => matches!(severity, Some("none")),
            false => matches!(severity, Some("warning" | "critical")),
        };
        assert!(expected_severity, "{alert} severity {severity:?}");
        let summary = rule.annotations.get("summary").cloned().unwrap_or_default();
        assert!(!summary.is_empty(), "{alert} has no summary");
        let description = rule
            .annotations
            .get("description")
            .cloned()
            .unwrap_or_default();
        for named in ["region", "probe", "reason"] {
            assert!(
                description.contains(named),
                "{alert}'s description does not name the {named}"
            );
        }
        let runbook = rule
            .annotations
            .get("runbook_url")
            .cloned()
            .unwrap_or_default();
        let anchor = runbook.strip_prefix(RUNBOOK_BASE).unwrap_or_else(|| {
            panic!("{alert}'s runbook_url {runbook:?} is not {RUNBOOK_BASE}<section>")
        });
        let dashboard = rule
            .annotations
            .get("dashboard_url")
            .cloned()
            .unwrap_or_default();
        assert!(
            dashboard.starts_with(DASHBOARD_BASE),
            "{alert}'s dashboard_url {dashboard:?} does not start with {DASHBOARD_BASE}"
        );
        assert_eq!(anchor, alert.to_lowercase(), "{alert}'s runbook anchor");
        assert!(
            anchors.contains(anchor),
            "docs/runbook.md has no `### {alert}` section for {alert}'s runbook"
        );
    }
}

/// The metric names (`chatprobe_*`) that the dashboard and the rules read.
pub fn metric_names_read() -> BTreeSet<String> {
    let dashboard = dashboard();
    let variable_queries = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variable| variable["definition"].as_str().map(str::to_string));
    let rule_exprs = shipped_rules()
        .groups
        .into_iter()
        .flat_map(|group| group.rules)
        .map(|rule| rule.expr);
    dashboard_expressions(&dashboard)
        .into_iter()
        .chain(variable_queries)
        .chain(rule_exprs)
        .flat_map(|expr| chatprobe_names_in(&expr))
        .collect()
}

/// Every `chatprobe_...` metric name in a PromQL text (recorded `chatprobe:...`
/// series are not metrics of the agent and do not match).
fn chatprobe_names_in(text: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("chatprobe_") {
        let preceded_by_name = rest[..start].chars().next_back().is_some_and(is_name_char);
        let after = &rest[start..];
        let end = after
            .find(|c: char| !is_name_char(c))
            .unwrap_or(after.len());
        if !preceded_by_name {
            names.push(after[..end].to_string());
        }
        rest = &after[end..];
    }
    names
}

/// The names of the samples in a Prometheus text exposition.
pub fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        chatprobe_names_in(
            r#"sum(rate(chatprobe_a_total{x="chatprobe_b"}[5m])) / chatprobe:c:5m + xchatprobe_d"#
        ),
        ["chatprobe_a_total", "chatprobe_b"]
    );
}

/// Runs one agent against the mock backend until its /metrics shows every
/// series the dashboard and rules read (a passing run, then failing ones),
/// and returns that exposition.
async fn real_agent_exposition(names: &BTreeSet<String>) -> String {
    let dir = TempDir::new("agent-metrics");
    let backend = start_backend(&fixture_path("backend.yaml"), &[]);
    let backend_url = backend.url();
    let config = AgentConfig::write(&dir, "eu-west", &backend_url, "1s", &["group_message"]);
    let agent = start_agent(&config.path);
    let metrics_url = format!("{}/metrics", agent.url());
    let http = http_client();
    let has = |exposition: &str, name: &str| exposed_names(exposition).contains(name);
    let patience = Duration::from_secs(90);
    let poll = Duration::from_millis(500);
    wait_for("a finished run in /metrics", patience, poll, || async {
        let exposition = get_text(&http, &metrics_url).await?;
        match has(&exposition, "chatprobe_probe_duration_seconds_count") {
            true => Ok(()),
            false => Err(exposition),
        }
    })
    .await;
    // A failing run adds the failure series.
    put_faults(&http, &backend_url, &send_outage(&["eu-west"])).await;
    wait_for(
        "every metric the dashboard and rules read",
        patience,
        poll,
        || async {
            let exposition = get_text(&http, &metrics_url).await?;
            let exposed = exposed_names(&exposition);
            let missing: Vec<&String> = names
                .iter()
                .filter(|name| !exposed.contains(*name))
                .collect();
            match missing.is_empty() {
                true => Ok(exposition),
                false => Err(format!("missing {missing:?} in:\n{exposition}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_real_agent_exposes_every_metric_read_and_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else { return };
    let mut names = metric_names_read();
    // Only a pushing agent has these (`remote_write:`): tests/remote_write.rs checks them;
    // only the status page has the report metrics: tests/it/reports/exposition.rs checks them.
    names.retain(|name| {
        name != "chatprobe_agent_up"
            && !name.starts_with("chatprobe_remote_write_")
            && !crate::reports::STATUS_PAGE_METRICS.contains(&name.as_str())
    });
    for expected in [
        "chatprobe_probe_success",
        "chatprobe_build_info",
        "chatprobe_last_run_timestamp_seconds",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not found among {names:?}"
        );
    }
    let exposition = real_agent_exposition(&names).await;
    let dir = TempDir::new("promtool-metrics");
    let path = dir.write("metrics.txt", &exposition);
    let output = Command::new(promtool)
        .arg("check")
        .arg("metrics")
        .stdin(std::fs::File::open(&path).expect("metrics file opens"))
        .output()
        .expect("promtool runs");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool check metrics on a real agent's /metrics: {complaints}\n{exposition}"
    );
}

#[test]
fn dashboard_import_asks_for_a_prometheus_data_source() {
    let dashboard = dashboard();
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    let input = inputs
        .iter()
        .find(|input| input["type"] == "datasource" && input["pluginId"] == "prometheus")
        .expect("__inputs declares a Prometheus data source");
    let name = input["name"].as_str().expect("the input's name");
    let datasource = &dashboard["templating"]["list"][0];
    assert_eq!(datasource["name"], "datasource");
    assert_eq!(datasource["current"]["value"], format!("${{{name}}}"));
}

#[test]
fn dashboard_shows_any_failing_target_and_names_it() {
    let dashboard = dashboard();
    for expr in dashboard_expressions(&dashboard) {
        assert!(
            !(expr.contains("chatprobe_probe_success") && expr.contains("max by")),
            "max over chatprobe_probe_success paints a probe green if any target passes: {expr}"
        );
    }
    let results = data_panels(&dashboard)
        .into_iter()
        .find(|panel| panel["title"] == "Probe result per probe and region")
        .expect("the probe result panel");
    let expr = results["targets"][0]["expr"].as_str().unwrap_or_default();
    assert!(expr.starts_with("min by (region, target, probe)"), "{expr}");
    for panel in data_panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            assert!(
                !legend.contains("{{probe}}") || legend.contains("{{target}}"),
                "panel {} names the probe but not the target: {legend}",
                panel["title"]
            );
        }
    }
}

/// The `chatprobe:...` recorded series an expression reads.
fn recorded_names_in(text: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.match_indices("chatprobe:")
        .filter(|(start, _)| !text[..*start].ends_with(is_name_char))
        .map(|(start, _)| {
            let after = &text[start..];
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            after[..end].to_string()
        })
        .collect()
}

#[test]
fn dashboard_has_an_slo_row_built_on_the_rules_the_alerts_read() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(
        panels.iter().any(|panel| panel["type"] == "row"
            && panel["title"].as_str().unwrap_or_default().contains("SLO")),
        "no SLO row"
    );
    let titles: Vec<&str> = data_panels(&dashboard)
        .into_iter()
        .filter_map(|panel| panel["title"].as_str())
        .collect();
    for wanted in [
        "Availability over 30 days",
        "Error budget left (30 days)",
        "Burn rate (1 h and 6 h)",
    ] {
        assert!(
            titles.contains(&wanted),
            "no panel {wanted:?} in {titles:?}"
        );
    }
    let recorded: BTreeSet<String> = shipped_rules()
        .groups
        .into_iter()
        .flat_map(|group| group.rules)
        .filter_map(|rule| rule.record)
        .collect();
    let read: BTreeSet<String> = dashboard_expressions(&dashboard)
        .iter()
        .flat_map(|expr| recorded_names_in(expr))
        .collect();
    for wanted in [
        "chatprobe:run_errors:ratio_rate1h",
        "chatprobe:probe_failed_runs:5m",
        "chatprobe:deliver_slow:ratio_rate5m",
    ] {
        assert!(
            read.contains(wanted),
            "the dashboard does not read {wanted}"
        );
    }
    assert!(
        read.is_subset(&recorded),
        "the dashboard reads recorded series rules.yml does not record: {:?}",
        read.difference(&recorded).collect::<Vec<_>>()
    );
}

#[test]
fn dashboard_links_the_runbook_and_maps_scrape_status_to_words() {
    let dashboard = dashboard();
    let links = dashboard["links"].as_array().expect("dashboard links");
    assert!(
        links.iter().any(|link| link["url"]
            .as_str()
            .unwrap_or_default()
            .ends_with("docs/runbook.md")),
        "no link to the runbook: {links:?}"
    );
    let agents = data_panels(&dashboard)
        .into_iter()
        .find(|panel| {
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|target| target["expr"].as_str().unwrap_or_default().contains("up{"))
        })
        .expect("a panel shows up");
    let config = agents["fieldConfig"].to_string();
    assert!(
        config.contains("\"down\"") && config.contains("\"up\""),
        "up is not mapped to up/down: {config}"
    );
}
