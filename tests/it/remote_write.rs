//! Agents that push with remote write, end to end on 127.0.0.1:
//!
//! - three agents (one per region, probe and push interval 1 s) against the
//!   mock backend push to a real Prometheus started with
//!   `--web.enable-remote-write-receiver`, no scrape config, and the shipped
//!   rules: it has their probe runs, results, histograms, liveness and every
//!   series the rules read; the fleet status page reads it; stopped for a
//!   while and started again, it ends up with no gap in
//!   `chatprobe_probe_runs_total` (the queues held it); a send outage in
//!   ap-south opens an incident and sets the regional alert going;
//! - a receiver in the test answering 429 (`Retry-After: 1`) and 500, then
//!   200: the agent waits as told and backs off, counts the failed
//!   attempts, loses nothing; answering 400: the push is dropped and the
//!   receiver's answer logged, the agent stays up; a SIGHUP applies a new
//!   header;
//! - bad `remote_write` configs (no URL, a bad header name, an unreadable
//!   token file) fail `chatprobe check` with file, line and field.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prost::Message as _;
use serde_json::Value;

use crate::harness::backend::{put_faults, send_outage};
use crate::harness::binary::{self, Running, start_agent, start_backend, start_status_page};
use crate::harness::dir::TempDir;
use crate::harness::fixtures::{AgentConfig, fixture_path, repo_file};
use crate::harness::http::{get_json, get_text, http_client, metric, wait_for};
use crate::harness::process::Process;
use chatprobe::remote_write::{LIVENESS, WriteRequest};

const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
/// Longest wait for any one state change.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often the tests look.
const POLL: Duration = Duration::from_millis(250);
/// How long the Prometheus receiver stays stopped.
const OUTAGE: Duration = Duration::from_secs(8);

/// The `remote_write:` section pushing to `url` every `interval`, with `extra` lines in the entry.
fn remote_write(url: &str, interval: &str, extra: &str) -> String {
    format!("remote_write:\n  - url: {url}\n    interval: {interval}\n{extra}")
}

/// An agent of `region` on the backend at `backend_url`, group_message every
/// second, pushing as `section` says.
fn pushing_agent(
    dir: &TempDir,
    region: &str,
    backend_url: &str,
    section: &str,
) -> (AgentConfig, Running) {
    let config = AgentConfig::write(dir, region, backend_url, "1s", &["group_message"]);
    config.rewrite(&format!("{}{section}", config.text));
    let agent = start_agent(&config.path);
    (config, agent)
}

/// `chatprobe_remote_write_samples_total{result,url}` of the agent's `/metrics`.
fn samples(text: &str, url: &str, result: &str) -> f64 {
    let series =
        format!("chatprobe_remote_write_samples_total{{result=\"{result}\",url=\"{url}\"}}");
    metric(text, &series).unwrap_or(0.0)
}

/// The agent's `/metrics`.
async fn scrape(http: &reqwest::Client, agent: &Running) -> Result<String, String> {
    get_text(http, &format!("{}/metrics", agent.url())).await
}

/// A Prometheus taking remote write, no scrape config, the shipped rules
/// evaluated every second; it can be stopped and started again on the
/// same port and data.
struct Receiver {
    binary: std::path::PathBuf,
    config: std::path::PathBuf,
    tsdb: std::path::PathBuf,
    addr: String,
    process: Option<Process>,
}

impl Receiver {
    fn start(binary: &Path, dir: &TempDir) -> Receiver {
        let rules = repo_file("dashboards/rules.yml");
        let yml = format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
            rules.display()
        );
        let mut receiver = Receiver {
            binary: binary.to_path_buf(),
            config: dir.write("prometheus.yml", &yml),
            tsdb: dir.join("tsdb"),
            addr: format!("127.0.0.1:{}", crate::harness::free_port()),
            process: None,
        };
        receiver.run();
        receiver
    }

    fn run(&mut self) {
        let mut command = std::process::Command::new(&self.binary);
        command
            .arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.tsdb.path={}", self.tsdb.display()))
            .arg(format!("--web.listen-address={}", self.addr))
            .arg("--web.enable-remote-write-receiver");
        self.process = Some(Process::spawn("prometheus", &mut command));
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop_cleanly("TERM");
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn push_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }

    /// The result of an instant query, or why there is none.
    async fn query(&self, http: &reqwest::Client, promql: &str) -> Result<Vec<Value>, String> {
        let answer = http
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|error| format!("query {promql}: {error}"))?;
        let body: Value = answer
            .json()
            .await
            .map_err(|error| format!("query {promql}: {error}"))?;
        match body["data"]["result"].as_array() {
            Some(result) => Ok(result.clone()),
            None => Err(format!("query {promql}: {body}")),
        }
    }

    /// Waits until `promql` has at least `count` series.
    async fn wait_series(&self, http: &reqwest::Client, promql: &str, count: usize) -> Vec<Value> {
        wait_for(promql, PATIENCE, POLL, || async {
            let result = self.query(http, promql).await?;
            match result.len() >= count {
                true => Ok(result),
                false => Err(format!("{} series: {result:?}", result.len())),
            }
        })
        .await
    }
}

/// The agent metric names the shipped rules read (the status page's own,
/// which agents do not push, aside).
fn names_the_rules_read() -> Vec<String> {
    let rules =
        std::fs::read_to_string(repo_file("dashboards/rules.yml")).expect("rules.yml is readable");
    let mut names: Vec<String> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("chatprobe_") || word.starts_with("process_"))
        .filter(|word| !crate::reports::STATUS_PAGE_METRICS.contains(word))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_push_to_prometheus_through_its_outage_and_the_rules_and_page_read_it() {
    let Some(binary) = crate::harness::tool(
        "CHATPROBE_PROMETHEUS",
        "prometheus",
        "apt-get install prometheus",
    ) else {
        return;
    };
    let dir = TempDir::new("remote-write");
    let http = http_client();
    let mut receiver = Receiver::start(&binary, &dir);
    let backend = start_backend(&fixture_path("backend.yaml"), &[]);
    let agents: Vec<(AgentConfig, Running)> = REGIONS
        .iter()
        .map(|region| {
            pushing_agent(
                &dir,
                region,
                &backend.url(),
                &remote_write(&receiver.push_url(), "1s", ""),
            )
        })
        .collect();
    let page = start_status_page(
        &receiver.url(),
        &[
            std::ffi::OsStr::new("--incident-step"),
            std::ffi::OsStr::new("1s"),
        ],
    );

    // Every region's runs, results, histograms and liveness arrive, labelled
    // as the rules expect, and so does every series the rules read.
    receiver
        .wait_series(
            &http,
            r#"chatprobe_probe_runs_total{job="chatprobe",result="success"} >= 2"#,
            3,
        )
        .await;
    for (region, _) in REGIONS.iter().zip(&agents) {
        let selector = format!(r#"{{job="chatprobe",instance="{region}",region="{region}"}}"#);
        for name in [
            "chatprobe_probe_success",
            "chatprobe_probe_duration_seconds_bucket",
            "chatprobe_operation_duration_seconds_count",
            LIVENESS,
            "process_start_time_seconds",
            "chatprobe:agent_push_up",
        ] {
            receiver
                .wait_series(
                    &http,
                    &format!("{name}{selector} == 1 or {name}{selector} > 1"),
                    1,
                )
                .await;
        }
        let buckets = receiver
            .query(
                &http,
                &format!("chatprobe_probe_duration_seconds_bucket{selector}"),
            )
            .await
            .unwrap_or_default();
        assert_eq!(buckets.len(), 17, "16 bounds and +Inf: {buckets:?}");
    }
    for name in names_the_rules_read() {
        receiver
            .wait_series(&http, &format!("count({name})"), 1)
            .await;
    }
    wait_for(
        "the status page green in every region",
        PATIENCE,
        POLL,
        || async {
            let status = get_json(&http, &format!("{}/api/status", page.url())).await?;
            let cells = status["cells"].as_array().map_or(0, Vec::len);
            match status["overall"] == "green" && cells == REGIONS.len() {
                true => Ok(()),
                false => Err(status.to_string()),
            }
        },
    )
    .await;

    // The receiver stops for a while; the queues hold what it missed.
    let stopped_ms = unix_ms();
    receiver.stop();
    let push_url = receiver.push_url();
    wait_for("failed pushes in every agent", PATIENCE, POLL, || async {
        for (_, agent) in &agents {
            let text = scrape(&http, agent).await?;
            if samples(&text, &push_url, "failed") == 0.0 {
                return Err(text);
            }
        }
        Ok(())
    })
    .await;
    tokio::time::sleep(OUTAGE).await;
    receiver.run();
    wait_for(
        "every queue empty, nothing dropped",
        PATIENCE,
        POLL,
        || async {
            for (_, agent) in &agents {
                let text = scrape(&http, agent).await?;
                let queued = metric(
                    &text,
                    &format!("chatprobe_remote_write_queue_bytes{{url=\"{push_url}\"}}"),
                );
                let dropped: f64 = ["dropped_queue_full", "dropped_too_old", "dropped_rejected"]
                    .iter()
                    .map(|result| samples(&text, &push_url, result))
                    .sum();
                assert_eq!(dropped, 0.0, "{text}");
                if queued != Some(0.0) {
                    return Err(format!("queue {queued:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
    let restarted_ms = unix_ms();
    for region in REGIONS {
        let raw = receiver
            .query(
                &http,
                &format!(r#"chatprobe_probe_runs_total{{region="{region}",result="success"}}[3m]"#),
            )
            .await
            .unwrap_or_default();
        let stamps: Vec<i64> = raw
            .first()
            .and_then(|series| series["values"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|pair| pair[0].as_f64())
            .map(|seconds| (seconds * 1000.0) as i64)
            .collect();
        let widest = stamps
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or(i64::MAX);
        assert!(
            stamps.first().is_some_and(|first| *first < stopped_ms)
                && stamps
                    .last()
                    .is_some_and(|last| *last > restarted_ms - 2000),
            "{region}: the samples span the outage: {stamps:?}"
        );
        assert!(
            widest <= 2500,
            "{region}: a gap of {widest} ms in {stamps:?}"
        );
    }

    // A send outage in ap-south: its incident opens, its alert is on its way.
    put_faults(&http, &backend.url(), &send_outage(&["ap-south"])).await;
    wait_for("an ap-south incident", PATIENCE, POLL, || async {
        let answer = get_json(&http, &format!("{}/api/incidents", page.url())).await?;
        let text = answer.to_string();
        match text.contains("ap-south") {
            true => Ok(()),
            false => Err(text),
        }
    })
    .await;
    receiver
        .wait_series(
            &http,
            r#"ALERTS{alertname="ChatprobeProbeFailingInRegion",region="ap-south"}"#,
            1,
        )
        .await;
    let others = receiver
        .query(
            &http,
            r#"ALERTS{alertname="ChatprobeProbeFailingInRegion",region!="ap-south"}"#,
        )
        .await
        .unwrap_or_default();
    assert!(others.is_empty(), "{others:?}");

    // A stopped agent flushes and exits within the drain.
    let (_, mut agent) = agents.into_iter().next().expect("three agents");
    let stopping = Instant::now();
    agent.stop_cleanly("TERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(6),
        "{:?}",
        stopping.elapsed()
    );
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// What the test receiver answers: a script of statuses, then `then`.
struct Script {
    /// Answers for the next requests, in order (status, `Retry-After`).
    next: Vec<(u16, Option<&'static str>)>,
    /// The answer once the script is done.
    then: u16,
}

/// One request the test receiver got.
#[derive(Clone)]
struct Seen {
    at: Instant,
    answered: u16,
    headers: HeaderMap,
    /// Its series, decoded, when it was accepted.
    series: Vec<chatprobe::remote_write::TimeSeries>,
}

/// A remote write receiver in the test, answering as scripted.
#[derive(Clone)]
struct TestReceiver {
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestReceiver {
    async fn start(script: Script) -> (TestReceiver, String) {
        let receiver = TestReceiver {
            script: Arc::new(Mutex::new(script)),
            seen: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/api/v1/write", axum::routing::post(answer))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!(
            "http://{}/api/v1/write",
            listener.local_addr().expect("bound")
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    fn answer_from_now(&self, status: u16) {
        if let Ok(mut script) = self.script.lock() {
            script.next.clear();
            script.then = status;
        }
    }
}

async fn answer(State(receiver): State<TestReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    let (status, retry_after) = match receiver.script.lock() {
        Ok(mut script) if !script.next.is_empty() => script.next.remove(0),
        Ok(script) => (script.then, None),
        Err(_) => (500, None),
    };
    let series = match status {
        200 => decode(&body),
        _ => Vec::new(),
    };
    if let Ok(mut seen) = receiver.seen.lock() {
        seen.push(Seen {
            at: Instant::now(),
            answered: status,
            headers,
            series,
        });
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = match status {
        StatusCode::BAD_REQUEST => "out of order sample: tenant quota test",
        _ => "",
    };
    let mut response = (status, text).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static(seconds));
    }
    response
}

/// The series of a snappy-compressed `WriteRequest`.
fn decode(body: &[u8]) -> Vec<chatprobe::remote_write::TimeSeries> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("a snappy block");
    WriteRequest::decode(raw.as_slice())
        .expect("a WriteRequest")
        .timeseries
}

/// The timestamps of the accepted liveness samples, sorted.
fn liveness_stamps(seen: &[Seen]) -> Vec<i64> {
    let mut stamps: Vec<i64> = seen
        .iter()
        .flat_map(|request| &request.series)
        .filter(|series| {
            series
                .labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == LIVENESS)
        })
        .flat_map(|series| series.samples.iter().map(|sample| sample.timestamp))
        .collect();
    stamps.sort_unstable();
    stamps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_failing_and_refusing_receivers_cost_nothing_and_a_reload_applies() {
    let script = Script {
        next: vec![(429, Some("1")), (429, Some("1")), (500, None), (500, None)],
        then: 200,
    };
    let (receiver, url) = TestReceiver::start(script).await;
    let dir = TempDir::new("remote-write-answers");
    let http = http_client();
    let backend = start_backend(&fixture_path("backend.yaml"), &[]);
    let section = remote_write(&url, "500ms", "    headers: {X-Scope-OrgID: tenant-1}\n");
    let (config, mut agent) = pushing_agent(&dir, "eu-west", &backend.url(), &section);

    // Two 429s, two 500s, then accepted: the waits follow Retry-After, then the backoff.
    wait_for(
        "pushes accepted after the throttling",
        PATIENCE,
        POLL,
        || async {
            let seen = receiver.seen();
            match seen
                .iter()
                .filter(|request| request.answered == 200)
                .count()
                >= 3
            {
                true => Ok(()),
                false => Err(format!("{} requests", seen.len())),
            }
        },
    )
    .await;
    let seen = receiver.seen();
    let gaps: Vec<Duration> = seen
        .windows(2)
        .take(4)
        .map(|pair| pair[1].at - pair[0].at)
        .collect();
    assert!(
        gaps[0] >= Duration::from_millis(900) && gaps[1] >= Duration::from_millis(900),
        "Retry-After: 1 honoured: {gaps:?}"
    );
    assert!(gaps[3] > gaps[2], "the backoff grows: {gaps:?}");
    assert!(seen.iter().all(|request| {
        request
            .headers
            .get("x-scope-orgid")
            .is_some_and(|value| value == "tenant-1")
    }));
    let first = &seen[0].headers;
    for (name, value) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ] {
        assert_eq!(
            first.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name}"
        );
    }
    let text = wait_for("the failed attempts counted", PATIENCE, POLL, || async {
        let text = scrape(&http, &agent).await?;
        match samples(&text, &url, "failed") > 0.0 && samples(&text, &url, "sent") > 0.0 {
            true => Ok(text),
            false => Err(text),
        }
    })
    .await;
    for result in ["dropped_queue_full", "dropped_too_old", "dropped_rejected"] {
        assert_eq!(samples(&text, &url, result), 0.0, "{result}: {text}");
    }
    // Every round taken meanwhile was delivered: one liveness sample each 500 ms.
    let stamps = liveness_stamps(&receiver.seen());
    let widest = stamps
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or(i64::MAX);
    assert!(
        stamps.len() >= 8 && widest <= 800,
        "rounds lost: {stamps:?}"
    );

    // A refusing receiver: dropped and logged with its answer; the agent stays up.
    receiver.answer_from_now(400);
    let text = wait_for("a refused push counted", PATIENCE, POLL, || async {
        let text = scrape(&http, &agent).await?;
        match samples(&text, &url, "dropped_rejected") > 0.0 {
            true => Ok(text),
            false => Err(text),
        }
    })
    .await;
    assert!(samples(&text, &url, "sent") > 0.0, "{text}");
    let logged = agent.wait_for_line(|line| {
        line.contains("refused a push") && line.contains("out of order sample: tenant quota test")
    });
    assert!(logged.is_some(), "{}", agent.log());
    assert_eq!(agent.get("/healthz").0, 200);

    // A reload with a new header: accepted again, with it.
    receiver.answer_from_now(200);
    config.rewrite(&format!(
        "{}{}",
        config.text,
        remote_write(&url, "500ms", "    headers: {X-Scope-OrgID: tenant-2}\n")
    ));
    agent.signal("HUP");
    wait_for(
        "pushes with the reloaded header",
        PATIENCE,
        POLL,
        || async {
            let seen = receiver.seen();
            let reloaded = seen.iter().filter(|request| {
                request.answered == 200
                    && request
                        .headers
                        .get("x-scope-orgid")
                        .is_some_and(|v| v == "tenant-2")
            });
            match reloaded.count() >= 2 {
                true => Ok(()),
                false => Err(format!("{} requests", seen.len())),
            }
        },
    )
    .await;
    agent.stop_cleanly("TERM");
}

#[test]
fn bad_remote_write_configs_name_file_line_and_field() {
    let cases: BTreeMap<&str, (usize, &str, &str)> = BTreeMap::from([
        (
            "agent-remote-write-no-url.yaml",
            (10, "remote_write[0]", "missing field `url`"),
        ),
        (
            "agent-remote-write-header.yaml",
            (
                13,
                "remote_write[0].headers.X Scope OrgID",
                "not an HTTP header name",
            ),
        ),
        (
            "agent-remote-write-token-file.yaml",
            (
                12,
                "remote_write[0].bearer_token_file",
                "cannot read file /nonexistent/chatprobe/token",
            ),
        ),
    ]);
    for (name, (line, field, message)) in cases {
        let path = fixture_path(&format!("invalid/{name}"));
        let finished = binary::run("check", &path);
        assert!(!finished.success, "{name} passed");
        let stderr = finished.stderr;
        let place = format!("{}:{line}:", path.display());
        assert!(stderr.contains(&place), "{name}: not at {place}: {stderr}");
        assert!(
            stderr.contains(&format!("field `{field}`")),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
}
