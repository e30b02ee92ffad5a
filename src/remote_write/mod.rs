//! Pushing the agent's series with Prometheus remote write 1.0, for agents
//! no Prometheus can scrape (other clouds, behind NAT): every
//! `remote_write[].interval` the agent writes what `/metrics` serves (every
//! series, histograms as `_bucket`/`_sum`/`_count`, by the same exposition
//! code) plus its liveness series `chatprobe_agent_up`, timestamps the
//! round, ends the series gone since the round before with staleness
//! markers, and queues it for each receiver; each receiver's queue is
//! bounded in bytes, drops the oldest first and samples older than
//! `max_age`, and is sent in order with backoff. `/metrics` keeps serving
//! beside it.
//!
//! - `encode`: a round's series into batches (prost, snappy), staleness markers;
//! - `queue`: the bounded queue;
//! - `send`: one push and what its answer means;
//! - `pusher`: each receiver's sampler and sender tasks;
//! - `wire`: the protocol's messages.
//!
//! [`RemoteWrite`] is the agent's handle: started with the config, changed
//! on each reload, flushed within the shutdown drain.

mod encode;
mod pusher;
mod queue;
mod send;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

pub use pusher::LIVENESS;
pub use wire::{Label, Sample, TimeSeries, WriteRequest};

use crate::config::{AgentConfig, RemoteWriteConfig};
use crate::metrics::MetricsRegistry;
use pusher::{Pusher, Shared, Source};

/// Why pushing could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteWriteError {
    /// A receiver's HTTP client could not be built.
    #[error("remote_write `{url}`: {source}")]
    Client {
        /// The receiver.
        url: String,
        /// Why.
        source: send::ClientError,
    },
}

/// The agent's receivers, one [`Pusher`] each, by URL.
pub(crate) struct RemoteWrite {
    registry: Arc<MetricsRegistry>,
    pushers: BTreeMap<String, Pusher>,
}

impl RemoteWrite {
    /// Starts pushing to every receiver of `config`, sampling `registry`.
    pub(crate) fn start(
        config: &AgentConfig,
        registry: Arc<MetricsRegistry>,
    ) -> Result<RemoteWrite, RemoteWriteError> {
        let mut push = RemoteWrite {
            registry,
            pushers: BTreeMap::new(),
        };
        for entry in &config.remote_write {
            let pusher = push.start_pusher(entry, &config.region, None)?;
            push.pushers.insert(entry.url.clone(), pusher);
        }
        if !push.pushers.is_empty() {
            tracing::info!(receivers = push.pushers.len(), "remote write started");
        }
        Ok(push)
    }

    /// Follows a reloaded `config`: receivers unchanged run on undisturbed;
    /// a changed one restarts over its queue; a removed one stops, its queue
    /// dropped and its series gone; new ones start. A receiver that cannot
    /// start is logged and left out.
    pub(crate) fn apply(&mut self, config: &AgentConfig) {
        let mut old = std::mem::take(&mut self.pushers);
        for entry in &config.remote_write {
            let running = old.remove(&entry.url);
            let pusher = match running {
                Some(pusher) if pusher.config == *entry && pusher.region == config.region => pusher,
                running => {
                    let queue = running.map(Pusher::abort);
                    match self.start_pusher(entry, &config.region, queue) {
                        Ok(pusher) => pusher,
                        Err(err) => {
                            tracing::error!("reload: {err}; not pushing there");
                            continue;
                        }
                    }
                }
            };
            self.pushers.insert(entry.url.clone(), pusher);
        }
        for (url, gone) in old {
            let dropped = gone.abort().discard();
            self.registry.push.forget_url(&url);
            tracing::info!(url = %url, dropped_samples = dropped, "reload: remote write to this URL stopped");
        }
    }

    /// Takes a last round for every receiver and sends what is queued until
    /// `deadline`, all receivers at once.
    pub(crate) async fn stop(self, deadline: Instant) {
        let flushes = self
            .pushers
            .into_values()
            .map(|pusher| pusher.flush(deadline));
        futures_util::future::join_all(flushes).await;
    }

    /// Starts the pusher of `entry`, over `queue` when one is handed over.
    fn start_pusher(
        &mut self,
        entry: &RemoteWriteConfig,
        region: &str,
        queue: Option<Arc<Shared>>,
    ) -> Result<Pusher, RemoteWriteError> {
        let metrics = self.registry.push.clone();
        let shared = queue.unwrap_or_else(|| Shared::new(entry, metrics));
        let source = Source {
            registry: Arc::clone(&self.registry),
            region: region.to_string(),
        };
        Pusher::start(entry.clone(), region, source, shared).map_err(|source| {
            RemoteWriteError::Client {
                url: entry.url.clone(),
                source,
            }
        })
    }
}
