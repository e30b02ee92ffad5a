//! A client of Prometheus' HTTP query API (`/api/v1/query_range`), as
//! Prometheus, Thanos, Mimir and other compatible servers serve it, with
//! optional bearer or basic authentication.

use std::collections::BTreeMap;
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

/// A Prometheus-compatible query API at a base URL.
#[derive(Debug, Clone)]
pub(crate) struct PrometheusClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

/// The JSON envelope of every answer.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<MatrixData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct MatrixData {
    #[serde(default)]
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
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
        })
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
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
        let result = envelope.data.map(|data| data.result).unwrap_or_default();
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
fn series(raw: MatrixSeries) -> Series {
    let points = raw
        .values
        .into_iter()
        .filter_map(|(at, value)| Some((at as u64, value.parse::<f64>().ok()?)))
        .collect();
    Series {
        labels: raw.metric,
        points,
    }
}
