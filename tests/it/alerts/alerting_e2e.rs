//! End to end with the real tools: the mock backend, one agent per region
//! (5 s probe interval), Prometheus loading the shipped rules (5 s scrape and
//! evaluation) and Alertmanager with the shipped routing, all on 127.0.0.1.
//! A send outage injected in one region fires the regional warning (in
//! Prometheus and in Alertmanager) but not the multi-region page; the same
//! outage in a second region fires the page; removing it resolves both
//! (once `keep_firing_for` is over). The Watchdog's heartbeat reaches its
//! receiver throughout. Prints the time from injection to the page firing (a figure of `docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use serde_json::Value;

use crate::harness::backend::{put_faults, send_outage};
use crate::harness::binary::{Running, start_agent, start_backend};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, filled_fixture, fixture_path, repo_file};
use crate::harness::free_port;
use crate::harness::http::{get_json, get_text, http_client, wait_for};
use crate::harness::process::Process;
use crate::harness::prometheus::{Prometheus, scrape_targets, start_tool};

const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// Probe, scrape and rule evaluation interval.
const INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait for any one state change of the stack.
const PATIENCE: Duration = Duration::from_secs(150);
/// How often the test looks.
const POLL: Duration = Duration::from_secs(1);
/// The failing alerts' `keep_firing_for` in rules.yml: how much longer than a
/// plain state change their resolution takes.
const KEEP_FIRING_FOR: Duration = Duration::from_secs(120);

const REGIONAL: &str = "ChatprobeProbeFailingInRegion";
const MULTI_REGION: &str = "ChatprobeProbeFailingInManyRegions";
/// The SLO burn alerts, pending or firing in each failing region (a failed
/// send fails a run, and a fresh Prometheus has little history).
const SLO_BURNS: [&str; 2] = [
    "ChatprobeDeliverySLOFastBurn",
    "ChatprobeDeliverySLOSlowBurn",
];
/// The always-firing dead man's switch.
const WATCHDOG: &str = "ChatprobeWatchdog";

/// Notifications Alertmanager delivered: (receiver, alertname, status).
type Notifications = Arc<Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on 127.0.0.1 that records what Alertmanager sends to
/// `/RECEIVER`; stops when dropped.
struct WebhookSink {
    url: String,
    notifications: Notifications,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookSink {
    async fn start() -> WebhookSink {
        let notifications = Notifications::default();
        let app = axum::Router::new()
            .route("/{receiver}", post(record_notification))
            .with_state(notifications.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("webhook sink binds");
        let addr = listener.local_addr().expect("bound address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookSink {
            url: format!("http://{addr}"),
            notifications,
            server,
        }
    }

    fn received(&self, receiver: &str, alertname: &str, status: &str) -> bool {
        let notifications = self.notifications.lock().unwrap_or_else(|e| e.into_inner());
        notifications
            .iter()
            .any(|(r, a, s)| r == receiver && a == alertname && s == status)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record_notification(
    State(notifications): State<Notifications>,
    UrlPath(receiver): UrlPath<String>,
    Json(body): Json<Value>,
) {
    let mut notifications = notifications.lock().unwrap_or_else(|e| e.into_inner());
    for alert in body["alerts"].as_array().into_iter().flatten() {
        let name = alert["labels"]["alertname"].as_str().unwrap_or_default();
        let status = alert["status"].as_str().unwrap_or_default();
        notifications.push((receiver.clone(), name.to_string(), status.to_string()));
    }
}

/// The whole stack; every process is killed when it drops.
struct Stack {
    backend_url: String,
    prometheus_url: String,
    alertmanager_url: String,
    webhooks: WebhookSink,
    // Dropped last: the processes above write into it.
    _chatprobes: Vec<Running>,
    _tools: Vec<Process>,
    _prometheus: Prometheus,
    _dir: TempDir,
}

/// The shipped Alertmanager config, its receivers pointed at the sink.
fn alertmanager_config(sink_url: &str) -> String {
    let shipped = std::fs::read_to_string(repo_file("dashboards/alertmanager.yml"))
        .expect("dashboards/alertmanager.yml is readable");
    let receivers = [
        (
            "https://pager.example.net/hooks/chatprobe",
            "chatprobe-pager",
        ),
        (
            "https://chat.example.net/hooks/chatprobe",
            "chatprobe-tickets",
        ),
        (
            "https://heartbeat.example.net/ping/chatprobe",
            "chatprobe-heartbeat",
        ),
    ];
    receivers
        .iter()
        .fold(shipped.clone(), |config, (example, receiver)| {
            assert!(
                shipped.contains(example),
                "the example receivers' URLs changed; update this test"
            );
            config.replace(example, &format!("{sink_url}/{receiver}"))
        })
}

/// Prometheus scraping the agents every 5 s with the shipped rules.
fn prometheus_config(agents: &[(&str, String)], alertmanager: &str, rules: &Path) -> String {
    filled_fixture(
        "prometheus.yml",
        &[
            ("rules", &rules.display().to_string()),
            ("alertmanager", alertmanager),
            ("targets", &scrape_targets(agents)),
        ],
    )
}

async fn start_stack() -> Option<Stack> {
    let prometheus = crate::harness::tool(
        "CHATPROBE_PROMETHEUS",
        "prometheus",
        "apt-get install prometheus",
    )?;
    let alertmanager = crate::harness::tool(
        "CHATPROBE_ALERTMANAGER",
        "prometheus-alertmanager",
        "apt-get install prometheus-alertmanager",
    )?;
    let dir = TempDir::new("alerting-e2e");
    let backend = start_backend(&fixture_path("backend.yaml"), &[]);
    let backend_url = backend.url();
    let mut chatprobes = vec![backend];
    let mut agents = Vec::new();
    let interval = humantime::format_duration(INTERVAL).to_string();
    for region in REGIONS {
        let config = AgentConfig::write(&dir, region, &backend_url, &interval, &["group_message"]);
        let agent = start_agent(&config.path);
        agents.push((region, agent.addr.to_string()));
        chatprobes.push(agent);
    }
    let mut tools = Vec::new();

    let webhooks = WebhookSink::start().await;
    let alertmanager_addr = format!("127.0.0.1:{}", free_port());
    let alertmanager_yml = dir.write("alertmanager.yml", &alertmanager_config(&webhooks.url));
    tools.push(start_tool(
        "alertmanager",
        &alertmanager,
        &[
            ("config.file", alertmanager_yml.display().to_string()),
            (
                "storage.path",
                dir.join("alertmanager").display().to_string(),
            ),
            ("web.listen-address", alertmanager_addr.clone()),
            // Empty: no cluster listener on 0.0.0.0.
            ("cluster.listen-address", String::new()),
        ],
    ));

    let prometheus = Prometheus::start(
        &prometheus,
        &dir,
        &prometheus_config(
            &agents,
            &alertmanager_addr,
            &repo_file("dashboards/rules.yml"),
        ),
    );

    let stack = Stack {
        backend_url,
        prometheus_url: prometheus.url.clone(),
        alertmanager_url: format!("http://{alertmanager_addr}"),
        webhooks,
        _chatprobes: chatprobes,
        _tools: tools,
        _prometheus: prometheus,
        _dir: dir,
    };
    let http = http_client();
    for ready in [
        format!("{}/-/ready", stack.prometheus_url),
        format!("{}/-/ready", stack.alertmanager_url),
    ] {
        wait_for(&ready, PATIENCE, POLL, || get_text(&http, &ready)).await;
    }
    Some(stack)
}

/// State (`pending` or `firing`) of each active Prometheus alert named
/// `alertname`, keyed by its `region` label (empty when it has none).
async fn prometheus_alerts(
    http: &reqwest::Client,
    stack: &Stack,
    alertname: &str,
) -> Result<BTreeMap<String, String>, String> {
    let answer = get_json(http, &format!("{}/api/v1/alerts", stack.prometheus_url)).await?;
    Ok(named(&answer["data"]["alerts"], alertname)
        .map(|alert| (text(&alert["labels"]["region"]), text(&alert["state"])))
        .collect())
}

/// Region and description of each alert named `alertname` that Alertmanager
/// holds as active (firing, possibly suppressed by an inhibition).
async fn alertmanager_alerts(
    http: &reqwest::Client,
    stack: &Stack,
    alertname: &str,
) -> Result<Vec<(String, String)>, String> {
    let answer = get_json(http, &format!("{}/api/v2/alerts", stack.alertmanager_url)).await?;
    Ok(named(&answer, alertname)
        .map(|alert| {
            let description = &alert["annotations"]["description"];
            (text(&alert["labels"]["region"]), text(description))
        })
        .collect())
}

/// The alerts named `alertname` in a list of alerts from either API.
fn named<'a>(alerts: &'a Value, alertname: &'a str) -> impl Iterator<Item = &'a Value> {
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |alert| alert["labels"]["alertname"] == alertname)
}

/// A JSON string's text, empty when it is absent.
fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Waits until every region probes successfully as Prometheus sees it.
async fn wait_all_regions_passing(http: &reqwest::Client, stack: &Stack) {
    let query = format!(
        "{}/api/v1/query?query=sum(chatprobe_probe_success)",
        stack.prometheus_url
    );
    wait_for(
        "every region passing in Prometheus",
        PATIENCE,
        POLL,
        || async {
            let answer = get_json(http, &query).await?;
            let passing = answer["data"]["result"][0]["value"][1]
                .as_str()
                .unwrap_or("0");
            match passing == REGIONS.len().to_string() {
                true => Ok(()),
                false => Err(format!("{passing} passing: {answer}")),
            }
        },
    )
    .await;
}

/// Waits for `alertname` firing in Prometheus for `region` ("" for an alert
/// without region) while `never` (another alert) is not even pending.
async fn wait_firing(
    http: &reqwest::Client,
    stack: &Stack,
    alertname: &str,
    region: &str,
    never: Option<&str>,
) {
    wait_for(
        &format!("{alertname} {region} firing in Prometheus"),
        PATIENCE,
        POLL,
        || async {
            if let Some(never) = never {
                let unwanted = prometheus_alerts(http, stack, never).await?;
                assert!(unwanted.is_empty(), "{never} is active: {unwanted:?}");
            }
            let states = prometheus_alerts(http, stack, alertname).await?;
            match states.get(region).map(String::as_str) {
                Some("firing") => Ok(()),
                _ => Err(format!("{states:?}")),
            }
        },
    )
    .await;
}

/// Checks that Prometheus holds no alert but the outage's: nothing for the
/// healthy region, no other alert name than the failing alerts, the failing
/// regions' SLO burn (a failed send fails a run) and the Watchdog (every
/// agent stays up and running).
async fn assert_only_the_outage_alerts(http: &reqwest::Client, stack: &Stack) {
    let answer = get_json(http, &format!("{}/api/v1/alerts", stack.prometheus_url))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    for alert in answer["data"]["alerts"].as_array().into_iter().flatten() {
        let labels = &alert["labels"];
        let name = text(&labels["alertname"]);
        let expected = [REGIONAL, MULTI_REGION, WATCHDOG].contains(&name.as_str())
            || SLO_BURNS.contains(&name.as_str());
        assert!(
            expected && labels["region"] != "us-east",
            "unexpected alert: {alert}"
        );
    }
}

/// Waits until `receiver` got `alert` firing from Alertmanager.
async fn wait_received(stack: &Stack, receiver: &str, alert: &str) {
    wait_for(
        &format!("{alert} firing at {receiver}"),
        PATIENCE,
        POLL,
        || async {
            match stack.webhooks.received(receiver, alert, "firing") {
                true => Ok(()),
                false => Err("not yet".to_owned()),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_region_warns_two_regions_page_and_recovery_resolves() {
    let Some(stack) = start_stack().await else {
        return;
    };
    let http = http_client();
    wait_all_regions_passing(&http, &stack).await;

    // One region: the regional warning, never the page.
    put_faults(&http, &stack.backend_url, &send_outage(&["eu-west"])).await;
    let first_injection = Instant::now();
    wait_firing(&http, &stack, REGIONAL, "eu-west", Some(MULTI_REGION)).await;
    let warning_after = first_injection.elapsed();
    let description = wait_for(
        "the regional warning in Alertmanager",
        PATIENCE,
        POLL,
        || async {
            let alerts = alertmanager_alerts(&http, &stack, REGIONAL).await?;
            match alerts.iter().find(|(region, _)| region == "eu-west") {
                Some((_, description)) => Ok(description.clone()),
                None => Err(format!("{alerts:?}")),
            }
        },
    )
    .await;
    assert!(
        description.contains("http_error at send"),
        "the warning names the failing step and reason: {description}"
    );
    let multi = prometheus_alerts(&http, &stack, MULTI_REGION).await;
    assert_eq!(
        multi,
        Ok(BTreeMap::new()),
        "one failing region must not page"
    );
    // Sent after its route's `group_wait` (10 s); once the page fires it
    // inhibits the warning, so the second region waits for it.
    wait_received(&stack, "chatprobe-tickets", REGIONAL).await;

    // A second region: the page.
    put_faults(
        &http,
        &stack.backend_url,
        &send_outage(&["eu-west", "ap-south"]),
    )
    .await;
    let second_injection = Instant::now();
    wait_firing(&http, &stack, MULTI_REGION, "", None).await;
    let page_after = second_injection.elapsed();
    assert_only_the_outage_alerts(&http, &stack).await;
    println!(
        "alerting e2e: multi-region page firing in Prometheus {:.1} s after the second region's fault \
         (regional warning: {:.1} s after the first); probe, scrape and evaluation interval {INTERVAL:?}",
        page_after.as_secs_f64(),
        warning_after.as_secs_f64(),
    );
    wait_for(
        "the page in Alertmanager, sent to the pager",
        PATIENCE,
        POLL,
        || async {
            let held = alertmanager_alerts(&http, &stack, MULTI_REGION).await?;
            let paged = stack
                .webhooks
                .received("chatprobe-pager", MULTI_REGION, "firing");
            match !held.is_empty() && paged {
                true => Ok(()),
                false => Err(format!("held {held:?}, paged {paged}")),
            }
        },
    )
    .await;
    assert!(
        !stack
            .webhooks
            .received("chatprobe-pager", REGIONAL, "firing"),
        "a regional warning must not page"
    );
    wait_received(&stack, "chatprobe-heartbeat", WATCHDOG).await;

    // Recovery: everything resolves.
    let url = format!("{}/admin/faults", stack.backend_url);
    let removed = http
        .delete(&url)
        .send()
        .await
        .map(|response| response.status());
    assert!(
        matches!(&removed, Ok(status) if status.is_success()),
        "DELETE {url}: {removed:?}"
    );
    for alertname in [MULTI_REGION, REGIONAL] {
        let patience = PATIENCE + KEEP_FIRING_FOR;
        wait_for(&format!("{alertname} resolved"), patience, POLL, || async {
            let in_prometheus = prometheus_alerts(&http, &stack, alertname).await?;
            let in_alertmanager = alertmanager_alerts(&http, &stack, alertname).await?;
            match in_prometheus.is_empty() && in_alertmanager.is_empty() {
                true => Ok(()),
                false => Err(format!(
                    "Prometheus {in_prometheus:?}, Alertmanager {in_alertmanager:?}"
                )),
            }
        })
        .await;
    }
}
