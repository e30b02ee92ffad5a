//! "Report a problem" end to end: the real `chatprobe status-page` binary
//! over real sockets, its reports kept in an SQLite file or in a real
//! PostgreSQL the test starts ([`crate::harness::postgres`]). Each case of
//! [`cases`] runs against both stores; [`store`] holds what only a
//! shared or a crashing store shows.

mod bench;
mod cases;
mod exposition;
mod store;

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::harness::binary::{Running, start_status_page_with_env};
use crate::harness::dir::TempDir;
use crate::harness::http::{get_json, get_text, metric, wait_for};
use crate::harness::postgres::Postgres;

/// The metric families only the status page serves (not the agents).
pub const STATUS_PAGE_METRICS: [&str; 8] = [
    "chatprobe_user_reports_total",
    "chatprobe_user_reports_refused_total",
    "chatprobe_crowd_level",
    "chatprobe_store_errors_total",
    "chatprobe_notifications_sent_total",
    "chatprobe_notifications_failed_total",
    "chatprobe_notification_queue_depth",
    "chatprobe_notification_oldest_seconds",
];

/// A Prometheus nobody listens on: the reports need none.
const NO_PROMETHEUS: &str = "http://127.0.0.1:1";
/// The regions the pages are told of (`--region`).
pub const REGIONS: [&str; 2] = ["eu-west", "us-east"];
/// Longest wait for a state change.
const PATIENCE: Duration = Duration::from_secs(30);
/// How often a test looks.
const POLL: Duration = Duration::from_millis(200);

/// Where a page keeps its reports.
pub enum Store {
    /// An SQLite file in the test's directory.
    Sqlite,
    /// A real PostgreSQL, started for the test.
    Postgres(Postgres),
}

impl Store {
    /// A real PostgreSQL, started; `None` when it is not installed (the
    /// test skips, loudly, or fails under the full suite).
    pub fn postgres() -> Option<Store> {
        Postgres::start().map(Store::Postgres)
    }

    /// Its `--store` URL, an SQLite file kept in `dir`.
    pub fn url(&self, dir: &TempDir) -> String {
        match self {
            Store::Sqlite => format!("sqlite:{}", dir.join("status.db").display()),
            Store::Postgres(postgres) => postgres.url(),
        }
    }
}

/// `chatprobe status-page --config FILE` with its reports in `store_url`,
/// the [`REGIONS`] named in `public.regions`, and `reports` (YAML of the
/// `reports:` settings) when given.
pub fn start_page(dir: &TempDir, store_url: &str, reports: Option<&str>) -> Running {
    start_page_with_env(dir, store_url, reports, &[])
}

/// [`start_page`] with `env` set for the page alone.
pub fn start_page_with_env(
    dir: &TempDir,
    store_url: &str,
    reports: Option<&str>,
    env: &[(&str, &str)],
) -> Running {
    let mut config = format!(
        "prometheus: {{url: \"{NO_PROMETHEUS}\"}}\nlisten: 127.0.0.1:0\nstore: {store_url}\npublic:\n  regions:\n"
    );
    for region in REGIONS {
        config.push_str(&format!("    {region}: {{name: {region}}}\n"));
    }
    if let Some(yaml) = reports {
        config.push_str("reports:\n");
        for line in yaml.lines() {
            config.push_str(&format!("  {line}\n"));
        }
    }
    let path = dir.write(
        &format!("status-page-{}.yaml", crate::harness::free_port()),
        &config,
    );
    start_status_page_with_env(&path, env)
}

/// An HTTP client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    chatprobe::client::init_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client can be built")
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// `counted` of a 200 answer, failing the test on any other.
    pub fn counted(&self) -> bool {
        assert_eq!(self.status, 200, "{}", self.body);
        let json: Value = serde_json::from_str(&self.body).expect("a JSON answer");
        json["counted"].as_bool().expect("counted is a boolean")
    }
}

/// `POST path` on `page` with `body` and `headers`.
pub async fn post(
    http: &reqwest::Client,
    page: &Running,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut request = http.post(format!("{}{path}", page.url())).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("POST {path}: {error}"));
    answer(response).await
}

/// [`post`] of a body the page refuses before reading it all: the page
/// answers and closes the connection, which can reset it while the body is
/// still being sent, before the answer is read; tried afresh up to five
/// times (each on a new connection) for the answer. The answer, and the
/// tries it took (each one a request the page refused and counted).
pub async fn post_refused_body(
    page: &Running,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Answer, usize) {
    let mut last = String::new();
    for tries in 1..=5 {
        let mut request = client()
            .post(format!("{}{path}", page.url()))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send().await {
            Ok(response) => return (answer(response).await, tries),
            Err(error) => last = error.to_string(),
        }
    }
    panic!("POST {path}: no answer in five tries: {last}");
}

/// What `response` says.
async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}

/// A JSON report of `problem` (in `region`, if given) from the reporter
/// `user_agent`, with `headers` besides.
pub async fn report(
    http: &reqwest::Client,
    page: &Running,
    problem: &str,
    region: Option<&str>,
    user_agent: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let body = match region {
        Some(region) => serde_json::json!({ "problem": problem, "region": region }),
        None => serde_json::json!({ "problem": problem }),
    };
    let mut all = vec![
        ("content-type", "application/json"),
        ("user-agent", user_agent),
    ];
    all.extend_from_slice(headers);
    post(http, page, "/api/reports", &all, body.to_string()).await
}

/// `GET /api/reports?hours=N`.
pub async fn reports_json(http: &reqwest::Client, page: &Running, hours: u32) -> Value {
    let url = format!("{}/api/reports?hours={hours}", page.url());
    get_json(http, &url)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The entry of `problem` in `GET /api/reports`.
pub async fn problem_json(http: &reqwest::Client, page: &Running, problem: &str) -> Value {
    let json = reports_json(http, page, 1).await;
    let problems = json["problems"].as_array().expect("problems is a list");
    problems
        .iter()
        .find(|entry| entry["id"] == problem)
        .cloned()
        .unwrap_or_else(|| panic!("no {problem} in {json}"))
}

/// The entry of `region` of `problem` in `GET /api/reports`.
pub async fn region_json(
    http: &reqwest::Client,
    page: &Running,
    problem: &str,
    region: &str,
) -> Value {
    let entry = problem_json(http, page, problem).await;
    let regions = entry["regions"].as_array().expect("regions is a list");
    regions
        .iter()
        .find(|entry| entry["region"] == region)
        .cloned()
        .unwrap_or_else(|| panic!("no {region} in {entry}"))
}

/// The value of `series` on the page's `/metrics` (0 when absent).
pub async fn page_metric(http: &reqwest::Client, page: &Running, series: &str) -> f64 {
    let text = get_text(http, &format!("{}/metrics", page.url()))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    metric(&text, series).unwrap_or(0.0)
}

/// Waits until `series` on `/metrics` is `wanted`.
pub async fn wait_for_metric(http: &reqwest::Client, page: &Running, series: &str, wanted: f64) {
    wait_for(&format!("{series} = {wanted}"), PATIENCE, POLL, || async {
        let value = page_metric(http, page, series).await;
        if value == wanted {
            Ok(())
        } else {
            Err(format!("{value}"))
        }
    })
    .await;
}

/// Writes hourly counts `(hour start, problem, region, reports)` straight
/// into the store at `url` (one the page has already created): past weeks'
/// history, for the baseline.
pub async fn seed_hourly_counts(url: &str, rows: &[(i64, &str, &str, i64)]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("the test connects to the store");
    for (hour, problem, region, reports) in rows {
        sqlx::query(
            "INSERT INTO report_hours (hour, problem, region, reports) VALUES ($1, $2, $3, $4)",
        )
        .bind(hour)
        .bind(*problem)
        .bind(*region)
        .bind(reports)
        .execute(&pool)
        .await
        .expect("an hourly count is written");
    }
    pool.close().await;
}

/// Generates one test a store kind for each `case` of [`cases`] taking a [`Store`].
macro_rules! on_both_stores {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::super::Store::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(store) = super::super::Store::postgres() else { return };
                    super::$case(store).await;
                }
            )+
        }
    };
}
use on_both_stores;
