//! A client of Prometheus' HTTP query API (`/api/v1/query_range`), as
//! Prometheus, Thanos, Mimir and other compatible servers serve it, with
//! optional bearer or basic authentication.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::credentials::{Auth, CredentialError};

/// Longest wait for one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a query did not give an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrometheusError {
    /// Nothing answered, or the answer did not arrive in time.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The address asked.
        url: String,
        /// What went wrong, with its causes.
        reason: String,
    },
    /// It answered, with an error.
    #[error("{url} answered {status}: {message}")]
    Answered {
        /// The address asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error it gave (or the start of its body).
        message: String,
    },
    /// A credential could not be read.
    #[error("the Prometheus credential: {0}")]
    Credential(#[from] CredentialError),
}

/// One series of a range query's answer: its labels and `(unix seconds,
/// value)` points, oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Series {
    /// The series' labels (without `__name__` for computed expressions).
    pub(crate) labels: BTreeMap<String, String>,
    /// Its points, oldest first.
    pub(crate) points: Vec<(u64, f64)>,
}

impl Series {
    /// The value of label `name` (empty when absent).
    pub(crate) fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// What the queries asked of Prometheus so far (or between two readings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Load {
    /// Range queries answered.
    pub(crate) queries: u64,
    /// Samples Prometheus read to answer them (its `totalQueryableSamples`
    /// statistic; 0 where a server does not give it).
    pub(crate) samples: u64,
    /// Points in the answers.
    pub(crate) points: u64,
}

impl Load {
    /// What was asked since `earlier`.
    pub(crate) fn since(self, earlier: Load) -> Load {
        Load {
            queries: self.queries.saturating_sub(earlier.queries),
            samples: self.samples.saturating_sub(earlier.samples),
            points: self.points.saturating_sub(earlier.points),
        }
    }
}

/// The running totals behind [`Load`].
#[derive(Debug, Default)]
struct LoadCounters {
    queries: AtomicU64,
    samples: AtomicU64,
    points: AtomicU64,
}

/// A Prometheus-compatible query API at a base URL.
#[derive(Debug, Clone)]
pub(crate) struct PrometheusClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    load: Arc<LoadCounters>,
}

/// The JSON envelope of every answer, borrowing from the body where it can
/// (an answer about every cell holds hundreds of thousands of values).
#[derive(Deserialize)]
struct Envelope<'a> {
    status: String,
    #[serde(default, borrow)]
    data: Option<MatrixData<'a>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct MatrixData<'a> {
    #[serde(default, borrow)]
    result: Vec<MatrixSeries<'a>>,
    /// Present when asked for with `stats=all` (Prometheus ≥ 2.35).
    #[serde(default)]
    stats: Option<QueryStats>,
}

#[derive(Deserialize)]
struct QueryStats {
    #[serde(default)]
    samples: Option<SampleStats>,
}

#[derive(Deserialize)]
struct SampleStats {
    #[serde(default, rename = "totalQueryableSamples")]
    total_queryable_samples: u64,
}

#[derive(Deserialize)]
struct MatrixSeries<'a> {
    #[serde(borrow)]
    metric: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    /// Read straight into points: an answer holds hundreds of thousands,
    /// and no copy of them as text is kept on the way.
    #[serde(default)]
    values: Vec<(f64, Point)>,
}

/// One value of an answer, parsed from its text (`"0.5"`, `"NaN"`,
/// `"+Inf"`); `None` for text that is not a number.
struct Point(Option<f64>);

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Point, D::Error> {
        deserializer.deserialize_str(PointVisitor)
    }
}

/// Parses a value's text as it is read.
struct PointVisitor;

impl serde::de::Visitor<'_> for PointVisitor {
    type Value = Point;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a sample value as a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Point, E> {
        Ok(Point(text.parse().ok()))
    }
}

impl PrometheusClient {
    /// A client of the query API under `base` (e.g. `http://prometheus:9090`
    /// or a Thanos/Mimir prefix such as `https://mimir/prometheus`).
    pub(crate) fn new(base: &str, auth: Auth) -> Result<Self, PrometheusError> {
        crate::client::init_tls();
        let http = reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .user_agent(concat!(
                "chatprobe/",
                env!("CARGO_PKG_VERSION"),
                " (status page)"
            ))
            .build()
            .map_err(|error| PrometheusError::Unreachable {
                url: base.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            load: Arc::default(),
        })
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// What every query so far asked of Prometheus.
    pub(crate) fn load(&self) -> Load {
        Load {
            queries: self.load.queries.load(Ordering::Relaxed),
            samples: self.load.samples.load(Ordering::Relaxed),
            points: self.load.points.load(Ordering::Relaxed),
        }
    }

    /// `query` evaluated every `step` seconds from `start` to `end` (unix seconds).
    pub(crate) async fn range(
        &self,
        query: &str,
        start: u64,
        end: u64,
        step: u64,
    ) -> Result<Vec<Series>, PrometheusError> {
        let url = format!("{}/api/v1/query_range", self.base);
        let params = [
            ("query", query.to_owned()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.max(1).to_string()),
            ("stats", "all".to_owned()),
        ];
        let request = self.authenticated(self.http.get(&url).query(&params))?;
        let unreachable = |error: reqwest::Error| PrometheusError::Unreachable {
            url: url.clone(),
            reason: crate::client::error_chain(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(unreachable)?;
        let answered = |message: String| PrometheusError::Answered {
            url: url.clone(),
            status,
            message,
        };
        let envelope: Envelope =
            serde_json::from_str(&body).map_err(|_| answered(body.chars().take(200).collect()))?;
        if envelope.status != "success" {
            return Err(answered(envelope.error.unwrap_or(envelope.status)));
        }
        let (result, samples) = envelope.data.map_or((Vec::new(), 0), |data| {
            let samples = data.stats.and_then(|stats| stats.samples);
            (
                data.result,
                samples.map_or(0, |s| s.total_queryable_samples),
            )
        });
        let points: usize = result.iter().map(|series| series.values.len()).sum();
        self.load.queries.fetch_add(1, Ordering::Relaxed);
        self.load.samples.fetch_add(samples, Ordering::Relaxed);
        self.load.points.fetch_add(points as u64, Ordering::Relaxed);
        Ok(result.into_iter().map(series).collect())
    }

    fn authenticated(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, PrometheusError> {
        Ok(self.auth.apply(request)?)
    }
}

/// A series of the answer, its values parsed (`NaN`, `+Inf` included) and
/// its times in whole seconds.
fn series(raw: MatrixSeries<'_>) -> Series {
    let points = raw
        .values
        .into_iter()
        .filter_map(|(at, Point(value))| Some((at as u64, value?)))
        .collect();
    let labels = raw
        .metric
        .into_iter()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    Series { labels, points }
}
