//! The reports' background work: `chatprobe_crowd_level` refreshed from the
//! store every [`CROWD_EVERY`], and every [`PRUNE_EVERY`] (and at start) raw
//! reports past `retention`, hourly counts past 400 days, old secrets and
//! idle rate-limit entries removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::config::HOURLY_RETENTION;
use super::ledger::{self, Retention};
use super::{Reports, unix_now};
use crate::store::secret;

/// How often the crowd level metric is recomputed.
pub(crate) const CROWD_EVERY: Duration = Duration::from_secs(5);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the upkeep of `reports` until the task is dropped.
pub(crate) async fn run(reports: Arc<Reports>) {
    let mut crowd = tokio::time::interval(CROWD_EVERY);
    crowd.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crowd.tick() => refresh_crowd(&reports).await,
            _ = prune.tick() => prune_old(&reports).await,
        }
    }
}

/// Sets `chatprobe_crowd_level` from the store (left as it was when the
/// store cannot be read).
pub(crate) async fn refresh_crowd(reports: &Reports) {
    match reports.crowd(unix_now()).await {
        Ok(crowd) => {
            let levels: BTreeMap<(String, String), u8> = crowd
                .problems
                .iter()
                .flat_map(|problem| {
                    problem.regions.iter().map(|region| {
                        (
                            (problem.id.clone(), region.region.clone()),
                            region.level.gauge(),
                        )
                    })
                })
                .collect();
            reports.metrics.set_crowd(levels);
        }
        Err(error) => {
            reports.store_down(&error);
        }
    }
}

/// Removes what is past retention.
async fn prune_old(reports: &Reports) {
    let now = unix_now();
    let retention = Retention {
        reports: reports.config.retention,
        hours: HOURLY_RETENTION,
        window: reports.config.window,
    };
    let yesterday = now.div_euclid(24 * 3600) - 1;
    let pruned = match ledger::prune(&reports.store, now, retention).await {
        Ok(rows) => secret::forget_before(&reports.store, yesterday)
            .await
            .map(|secrets| rows + secrets),
        Err(error) => Err(error),
    };
    match pruned {
        Ok(rows) => tracing::debug!("reports: pruned {rows} rows past retention"),
        Err(error) => {
            reports.store_down(&error);
        }
    }
    reports.limits.forget_idle();
}
