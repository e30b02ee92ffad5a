//! The fleet status page's stack, as real processes on 127.0.0.1: the mock
//! backend, one agent process per region (probe interval 1 s), a real
//! Prometheus scraping them every second with no rules at all, and
//! `chatprobe status-page` reading it with a config file the test extends;
//! and the waits on what the page answers that the fleet tests share.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

use serde_json::Value;

use crate::harness::binary::{Running, start_agent, start_backend, start_status_page};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, fixture_path};
use crate::harness::http::{get_json, wait_for};
use crate::harness::prometheus::Prometheus;

/// The regions of the stack, one agent each.
pub(super) const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// The region the tests fault.
pub(super) const FAULTED: &str = "ap-south";
/// The probes every agent runs.
pub(super) const PROBES: [&str; 2] = ["group_message", "edit_settings"];
/// The operators' token the page is given.
pub(super) const OPERATOR_TOKEN: &str = "the-fleet-page-operator-token";
/// Longest wait for any one state change of the stack.
pub(super) const PATIENCE: Duration = Duration::from_secs(60);
/// How often the test looks.
pub(super) const POLL: Duration = Duration::from_millis(500);

/// The whole stack; every process is killed when it drops.
pub(super) struct Stack {
    /// The mock backend the agents probe (faults go to its admin API).
    pub(super) backend: Running,
    /// `chatprobe status-page`.
    pub(super) page: Running,
    /// Prometheus, until a test stops it.
    pub(super) prometheus: Option<Prometheus>,
    _agents: Vec<Running>,
    _dir: TempDir,
}

impl Stack {
    /// The page's URL of `path`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.page.url())
    }
}

/// The `notify:` section of a page that publishes with `publish` (`auto`
/// or `manual`) and mails nobody.
pub(super) fn notify(publish: &str) -> String {
    format!("notify: {{base_url: 'https://status.example', publish: {publish}}}\n")
}

/// The stack, the page started with `--incident-step STEP`, notes, the
/// operators' token and the config file's sections `sections` (YAML, e.g.
/// [`notify`]'s); `None` to skip when Prometheus is missing.
pub(super) fn start_stack(incident_step: &str, sections: &str) -> Option<Stack> {
    let prometheus = crate::harness::tool(
        "CHATPROBE_PROMETHEUS",
        "prometheus",
        "apt-get install prometheus",
    )?;
    let dir = TempDir::new("fleet-page");
    let backend = start_backend(&fixture_path("backend.yaml"), &[]);
    let agents: Vec<Running> = REGIONS
        .iter()
        .map(|region| {
            start_agent(&AgentConfig::write(&dir, region, &backend.url(), "1s", &PROBES).path)
        })
        .collect();
    let targets: Vec<(&str, String)> = REGIONS
        .iter()
        .zip(&agents)
        .map(|(region, agent)| (*region, agent.addr.to_string()))
        .collect();
    let prometheus = Prometheus::scraping(&prometheus, &dir, &targets, "1s");
    let notes = dir.write(
        "notes.md",
        "# Rehearsal\n\nSends in **ap-south** fail on purpose: this is `chatprobe`'s end-to-end test.",
    );
    let store = format!("sqlite:{}", dir.join("status.db").display());
    dir.write("operator-token", OPERATOR_TOKEN);
    let config = dir.write(
        "status-page.yaml",
        &format!(
            "prometheus: {{url: '{}'}}\noperator_token_file: operator-token\n{sections}",
            prometheus.url
        ),
    );
    let page = start_status_page(
        &prometheus.url,
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--store"),
            OsStr::new(&store),
            OsStr::new("--incident-step"),
            OsStr::new(incident_step),
            OsStr::new("--title"),
            OsStr::new("Example chat: status"),
            OsStr::new("--notes"),
            notes.as_os_str(),
        ],
    );
    Some(Stack {
        backend,
        page,
        prometheus: Some(prometheus),
        _agents: agents,
        _dir: dir,
    })
}

/// A JSON string's text (empty for anything else).
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The state of each cell as `(region, probe, state)`, once every probe
/// has a cell in every region.
pub(super) fn cells(status: &Value) -> Result<Vec<(String, String, String)>, String> {
    let cells: Vec<(String, String, String)> = status["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|cell| {
            let field = |name: &str| text(&cell[name]).to_owned();
            (field("region"), field("probe"), field("state"))
        })
        .collect();
    match cells.len() == REGIONS.len() * PROBES.len() {
        true => Ok(cells),
        false => Err(format!("not every cell is there yet: {status}")),
    }
}

/// Every cell is there and green, and so is `overall`.
pub(super) fn all_green(status: &Value) -> Result<(), String> {
    let cells = cells(status)?;
    match cells.iter().all(|(_, _, state)| state == "green") && status["overall"] == "green" {
        true => Ok(()),
        false => Err(format!("not all green: {cells:?}")),
    }
}

/// The public page's feature of `probe` in `/api/status`.
pub(super) fn feature<'a>(status: &'a Value, probe: &str) -> Option<&'a Value> {
    status["features"]
        .as_array()?
        .iter()
        .find(|feature| feature["probe"] == probe)
}

/// A feature's state and its regions' states, from `/api/status`.
pub(super) fn feature_states(
    status: &Value,
    probe: &str,
) -> Option<(String, BTreeMap<String, String>)> {
    let feature = feature(status, probe)?;
    let regions = feature["regions"]
        .as_array()?
        .iter()
        .map(|region| {
            (
                text(&region["region"]).to_owned(),
                text(&region["state"]).to_owned(),
            )
        })
        .collect();
    Some((feature["state"].as_str()?.to_owned(), regions))
}

/// Waits for `/api/status` to pass `check`; the answer.
pub(super) async fn wait_status(
    http: &reqwest::Client,
    stack: &Stack,
    what: &str,
    check: impl Fn(&Value) -> Result<(), String>,
) -> Value {
    let url = stack.url("/api/status");
    wait_for(what, PATIENCE, POLL, || async {
        let status = get_json(http, &url).await?;
        check(&status).map(|()| status)
    })
    .await
}

/// The incidents of `probe` in `/api/incidents`.
pub(super) async fn incidents_of(
    http: &reqwest::Client,
    stack: &Stack,
    probe: &str,
) -> Result<Vec<Value>, String> {
    let answer = get_json(http, &stack.url("/api/incidents")).await?;
    Ok(answer["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|incident| incident["probe"] == probe)
        .cloned()
        .collect())
}
