//! "Report a problem": what users say, beside what the probes see.
//!
//! `POST /api/reports` (JSON, for the service's own apps) and `POST /report`
//! (the public page's form) take a report of one of the configured problems
//! ([`config`]), from one reporter: a key made of the client's address
//! ([`client`]) and User-Agent under a daily secret ([`key`]), never the
//! address itself. One report per reporter, problem and window counts
//! ([`ledger`], in the [`crate::store`], written in batches by [`writer`]
//! and [`batch`]); rate limits ([`limits`]), a body
//! cap, same-origin posts ([`origin`]) and a cap of reports stored per hour
//! keep abuse out. The crowd signal ([`crowd`]) compares each problem's
//! distinct reporters in a region with the same hour of past weeks;
//! [`Reports::crowd`] is what the public page reads, `GET /api/reports`
//! serves it with the hourly trend ([`routes`]), and [`upkeep`] refreshes
//! `chatprobe_crowd_level` and prunes what is past retention.

pub(crate) mod batch;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod crowd;
pub(crate) mod key;
pub(crate) mod ledger;
pub(crate) mod limits;
pub(crate) mod origin;
pub(crate) mod regions;
pub(crate) mod routes;
pub(crate) mod upkeep;
pub(crate) mod writer;

use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use crate::metrics::{Refused, ReportMetrics};
use crate::status::Timestamp;
use crate::store::{Store, StoreError};
use client::Client;
use config::{ReportsConfig, SecretSource};
use crowd::{ProblemCrowd, Signal, TrendHour};
use key::Keys;
use ledger::{NewReport, Recorded};
use limits::RateLimits;
use regions::{KnownRegions, UNKNOWN};
use writer::Writer;

/// The reports side of the status page: its config, store (read here,
/// written by its writer), limits, keys, known regions and metrics.
#[derive(Debug)]
pub(crate) struct Reports {
    config: ReportsConfig,
    store: Store,
    writer: Writer,
    regions: KnownRegions,
    limits: RateLimits,
    keys: Keys,
    metrics: ReportMetrics,
}

/// A report as a user sent it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Submission {
    /// The problem's id.
    pub(crate) problem: String,
    /// The region the user chose, if any.
    #[serde(default)]
    pub(crate) region: Option<String>,
}

/// Why a report was refused, and how it is answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Over a rate limit: try again after the wait.
    #[error("too many reports: try again in {} s", retry_after_seconds(*.0))]
    RateLimited(Duration),
    /// A browser posted from another site.
    #[error("reports are taken only from this site's own page")]
    CrossSite,
    /// Not the content type the endpoint takes.
    #[error("send `Content-Type: {0}`")]
    UnsupportedType(&'static str),
    /// A body over the cap.
    #[error("the body is larger than {0} bytes")]
    TooLarge(u32),
    /// Anything else wrong with the request.
    #[error("{0}")]
    Invalid(String),
    /// The store cannot be reached.
    #[error("reports are unavailable right now: the store cannot be reached")]
    StoreDown,
}

/// A wait in whole seconds, at least 1 (a `Retry-After`).
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    let rounded_up = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    rounded_up.max(1)
}

impl Refusal {
    /// The metric reason it counts under (none for an unreachable store).
    fn reason(&self) -> Option<Refused> {
        match self {
            Refusal::RateLimited(_) => Some(Refused::RateLimited),
            Refusal::CrossSite => Some(Refused::CrossSite),
            Refusal::UnsupportedType(_) | Refusal::TooLarge(_) | Refusal::Invalid(_) => {
                Some(Refused::Invalid)
            }
            Refusal::StoreDown => None,
        }
    }
}

/// The crowd signal at one moment: what the public page reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Crowd {
    /// Every problem, in configured order, with its regions.
    pub(crate) problems: Vec<ProblemCrowd>,
    /// Whether this hour's cap of stored reports is reached (reports are
    /// being sampled: the page should say so).
    pub(crate) sampling: bool,
    /// The window reporters are counted over, in seconds.
    pub(crate) window_seconds: u64,
}

/// Now, in seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    let now = Timestamp::from_system(SystemTime::now()).unix_seconds();
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// The secret `source` holds.
fn read_secret(source: &SecretSource) -> anyhow::Result<Vec<u8>> {
    let text = match source {
        SecretSource::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading reports.secret_file {}", path.display()))?,
        SecretSource::Env(variable) => std::env::var(variable)
            .with_context(|| format!("reading reports.secret_env {variable}"))?,
    };
    let secret = text.trim();
    anyhow::ensure!(
        secret.len() >= 16,
        "the reports secret must be at least 16 characters"
    );
    Ok(secret.as_bytes().to_vec())
}

impl Reports {
    /// The reports of `config` on `store`, for the regions `regions` holds,
    /// counted in `metrics`; starts their writer (within a Tokio runtime).
    pub(crate) fn new(
        config: ReportsConfig,
        store: Store,
        regions: KnownRegions,
        metrics: ReportMetrics,
    ) -> anyhow::Result<Reports> {
        let configured = config.secret.as_ref().map(read_secret).transpose()?;
        Ok(Reports {
            writer: Writer::start(store.clone(), config.window, config.limits.stored_per_hour),
            limits: RateLimits::new(&config.limits),
            keys: Keys::new(configured),
            config,
            store,
            regions,
            metrics,
        })
    }

    /// Closes the store: after the last request.
    pub(crate) async fn close(&self) {
        self.store.close().await;
    }

    /// The config it runs with.
    pub(crate) fn config(&self) -> &ReportsConfig {
        &self.config
    }

    /// Takes `submission` from `client` at `now`: checks the problem and
    /// region, makes the reporter's key, applies its rate limit and records
    /// the report. Every outcome is counted in the metrics.
    pub(crate) async fn submit(
        &self,
        client: &Client,
        submission: &Submission,
        now: i64,
    ) -> Result<Recorded, Refusal> {
        let result = self.record(client, submission, now).await;
        match &result {
            Ok(Recorded::Counted) => {}
            Ok(Recorded::Duplicate) => self.metrics.refuse(Refused::Duplicate),
            Ok(Recorded::Sampled) => self.metrics.refuse(Refused::Sampled),
            Err(refusal) => self.refused(refusal),
        }
        result
    }

    /// Counts a refusal (made here or before the report was read; a store
    /// failure is counted by the store).
    pub(crate) fn refused(&self, refusal: &Refusal) {
        if let Some(reason) = refusal.reason() {
            self.metrics.refuse(reason);
        }
    }

    /// [`Reports::submit`] before counting.
    async fn record(
        &self,
        client: &Client,
        submission: &Submission,
        now: i64,
    ) -> Result<Recorded, Refusal> {
        let problem = self.config.problem(&submission.problem).ok_or_else(|| {
            Refusal::Invalid(format!(
                "unknown problem `{}`",
                shorten(&submission.problem)
            ))
        })?;
        let region = self.region(client, submission.region.as_deref())?;
        let key = self
            .keys
            .key(&self.store, now, client.address, &client.user_agent)
            .await
            .map_err(|error| self.store_down(&error))?;
        self.limits
            .check_reporter(&key)
            .map_err(Refusal::RateLimited)?;
        let reporter = key.hex();
        let report = NewReport {
            at: now,
            problem: problem.id.0.clone(),
            region: region.clone(),
            reporter,
        };
        let recorded = self
            .writer
            .record(report)
            .await
            .map_err(|error| self.store_down(&error))?;
        if recorded == Recorded::Counted {
            self.metrics.count(&problem.id.0, &region);
        }
        Ok(recorded)
    }

    /// The report's region: the user's choice (a known one), else the
    /// trusted proxy's header (unknown ones become `unknown`), else `unknown`.
    fn region(&self, client: &Client, chosen: Option<&str>) -> Result<String, Refusal> {
        match chosen.filter(|region| !region.is_empty()) {
            Some(region) if self.regions.contains(region) => Ok(region.to_string()),
            Some(region) => Err(Refusal::Invalid(format!(
                "unknown region `{}`",
                shorten(region)
            ))),
            None => Ok(client
                .region
                .as_deref()
                .filter(|region| self.regions.contains(region))
                .unwrap_or(UNKNOWN)
                .to_string()),
        }
    }

    /// Logs a store failure (the store counted it), and makes it a 503.
    pub(crate) fn store_down(&self, error: &StoreError) -> Refusal {
        tracing::warn!("reports: {error}");
        Refusal::StoreDown
    }

    /// The crowd signal at `now`: per problem and region, the distinct
    /// reporters in the window, the baseline and the level; the problems'
    /// features; whether reports are being sampled.
    pub(crate) async fn crowd(&self, now: i64) -> Result<Crowd, StoreError> {
        let window_seconds = self.config.window.as_secs();
        let since = now - i64::try_from(window_seconds).unwrap_or(i64::MAX);
        let window = ledger::reporters_since(&self.store, since).await?;
        let counts = ledger::hours_in(&self.store, &crowd::baseline_spans(now)).await?;
        let stored = ledger::stored_in_hour(&self.store, crowd::hour_start(now)).await?;
        let regions = self.regions.all();
        let signal = Signal {
            problems: &self.config.problems,
            regions: &regions,
            window: self.config.window,
            min_reporters: self.config.min_reporters,
        };
        Ok(Crowd {
            problems: signal.assess(now, &window, &counts),
            sampling: stored >= u64::from(self.config.limits.stored_per_hour),
            window_seconds,
        })
    }

    /// The last `hours` hours of counted reports and their baselines, up to now.
    pub(crate) async fn trend(&self, now: i64, hours: u32) -> Result<Vec<TrendHour>, StoreError> {
        let counts = ledger::hours_in(&self.store, &crowd::trend_spans(now, hours)).await?;
        Ok(crowd::trend(&self.config.problems, &counts, now, hours))
    }
}

/// At most 64 characters of `text`, for an error that quotes it.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}
