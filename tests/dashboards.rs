//! Checks of `dashboards/` with the real Prometheus tools: the rules load and
//! pass their unit tests, the example configs are valid, every PromQL
//! expression of the dashboard parses, every panel and alert says what it is
//! for, and every alert's runbook is a section of the README.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The directory this test checks.
const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");

fn dashboards_file(name: &str) -> PathBuf {
    Path::new(DASHBOARDS).join(name)
}

fn promtool() -> Option<PathBuf> {
    common::tool(
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

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(purpose: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "chatprobe-{purpose}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("temporary directory can be created");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

#[test]
fn every_alert_has_unit_tests_that_fire_it_and_that_do_not() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in ["rules_test.yml", "rules_slo_test.yml"] {
        let text = std::fs::read_to_string(dashboards_file(file)).expect("test file is readable");
        let tests: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).expect("test file is YAML");
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
    for alert in shipped_alerts()
        .iter()
        .filter_map(|rule| rule.alert.as_ref())
    {
        assert!(firing.contains(alert), "no unit test makes {alert} fire");
        assert!(
            silent.contains(alert),
            "no unit test checks {alert} stays quiet"
        );
    }
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
    let Some(amtool) = common::tool(
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
    let path = dir.0.join("dashboard_exprs.yml");
    let yaml = serde_yaml_ng::to_string(&file).expect("rules serialize");
    std::fs::write(&path, yaml).expect("temporary rule file can be written");
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
    for expr in dashboard_expressions(&dashboard) {
        assert!(
            expr.contains("region=~\"$region\""),
            "expression ignores $region: {expr}"
        );
        // Agent-wide series (`up`, build info) have no target or probe.
        let agent_wide = expr.contains("chatprobe_build_info") || expr.contains("up{");
        if !agent_wide {
            for name in ["target", "probe"] {
                assert!(
                    expr.contains(&format!("{name}=~\"${name}\"")),
                    "expression ignores ${name}: {expr}"
                );
            }
        }
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

#[test]
fn every_alert_names_what_broke_and_links_its_runbook_section() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(heading_anchor)
        .collect();
    for rule in shipped_alerts() {
        let alert = rule.alert.as_deref().unwrap_or_default();
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{alert} severity {severity:?}"
        );
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
        let runbook = rule.annotations.get("runbook").cloned().unwrap_or_default();
        let anchor = runbook
            .strip_prefix("README.md#")
            .unwrap_or_else(|| panic!("{alert}'s runbook {runbook:?} is not README.md#<section>"));
        assert_eq!(anchor, alert.to_lowercase(), "{alert}'s runbook anchor");
        assert!(
            anchors.contains(anchor),
            "README.md has no `### {alert}` section for {alert}'s runbook"
        );
    }
}
