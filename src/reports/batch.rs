//! Recording reports in batches: each report of a batch counted, a
//! duplicate or sampled out exactly as if recorded alone in its order, in
//! one transaction of a few multi-row statements whatever the batch's size
//! (the [`writer`](super::writer) makes the batches).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::AnyConnection;

use super::crowd::hour_start;
use super::ledger::{
    NewReport, ROWS_PER_STATEMENT, Recorded, count, placeholders, seconds, store_counted,
};
use crate::store::{Store, StoreError, column};

/// Records `reports`, each as if recorded alone in their order: counted
/// unless the same reporter's report of the same problem counted within
/// `window` (in the store or earlier in `reports`), or `stored_per_hour`
/// reports are already stored in its hour. One transaction, of a few
/// statements whatever the reports' number: a refused report leaves no
/// trace, nothing is counted unless all is committed, and replicas sharing
/// the store count a reporter once (each hour's row of `report_budget` is
/// locked first, so their batches of one hour take turns).
pub(crate) async fn record_batch(
    store: &Store,
    reports: &[NewReport],
    window: Duration,
    stored_per_hour: u32,
) -> Result<Vec<Recorded>, StoreError> {
    let mut transaction = store
        .timed("starting a batch of reports", store.pool().begin())
        .await?;
    let mut outcomes = vec![Recorded::Duplicate; reports.len()];
    for (hour, indices) in by_hour(reports) {
        let stored = lock_budget(store, &mut transaction, hour).await?;
        let mut room = u64::from(stored_per_hour).saturating_sub(stored);
        let mut counted: Vec<&NewReport> = Vec::new();
        for round in rounds(reports, &indices) {
            let batch = Claims {
                reports,
                round: &round,
                window,
            };
            for (index, outcome) in batch.claim(store, &mut transaction, &mut room).await? {
                outcomes[index] = outcome;
                if outcome == Recorded::Counted {
                    counted.push(&reports[index]);
                }
            }
        }
        store_counted(store, &mut transaction, &counted).await?;
        add_to_budget(store, &mut transaction, hour, counted.len()).await?;
    }
    store
        .timed("committing a batch of reports", transaction.commit())
        .await?;
    Ok(outcomes)
}

/// The indices of `reports` by the hour they fall in, hours in the order
/// they first appear, indices in order.
fn by_hour(reports: &[NewReport]) -> Vec<(i64, Vec<usize>)> {
    let mut hours: Vec<(i64, Vec<usize>)> = Vec::new();
    for (index, report) in reports.iter().enumerate() {
        let hour = hour_start(report.at);
        match hours.iter_mut().find(|(of, _)| *of == hour) {
            Some((_, indices)) => indices.push(index),
            None => hours.push((hour, vec![index])),
        }
    }
    hours
}

/// `indices` of `reports` in rounds: the first report of each reporter
/// and problem in the first, the second in the second, and so on, each
/// round in order. A round names a reporter and problem once, so one
/// statement can claim it (a multi-row upsert may touch a row once).
fn rounds(reports: &[NewReport], indices: &[usize]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for &index in indices {
        let report = &reports[index];
        let earlier = seen.entry((&report.reporter, &report.problem)).or_default();
        if rounds.len() <= *earlier {
            rounds.push(Vec::new());
        }
        rounds[*earlier].push(index);
        *earlier += 1;
    }
    rounds
}

/// Takes the row of `hour` in `report_budget` (made at 0 if missing) for
/// the rest of the transaction; the reports stored in that hour so far.
async fn lock_budget(
    store: &Store,
    connection: &mut AnyConnection,
    hour: i64,
) -> Result<u64, StoreError> {
    let what = "counting the hour's reports";
    let lock = sqlx::query(
        "INSERT INTO report_budget (hour, stored) VALUES ($1, 0) ON CONFLICT (hour) \
         DO UPDATE SET stored = report_budget.stored RETURNING stored",
    )
    .bind(hour);
    let row = store.timed(what, lock.fetch_one(&mut *connection)).await?;
    Ok(count(column(&row, 0, what)?))
}

/// Adds `counted` reports to the row of `hour` in `report_budget`.
async fn add_to_budget(
    store: &Store,
    connection: &mut AnyConnection,
    hour: i64,
    counted: usize,
) -> Result<(), StoreError> {
    if counted == 0 {
        return Ok(());
    }
    let add = sqlx::query("UPDATE report_budget SET stored = stored + $2 WHERE hour = $1")
        .bind(hour)
        .bind(i64::try_from(counted).unwrap_or(i64::MAX));
    store
        .timed("counting the hour's reports", add.execute(&mut *connection))
        .await?;
    Ok(())
}

/// One round of a batch to claim: reports naming a reporter and problem once.
struct Claims<'a> {
    /// The batch.
    reports: &'a [NewReport],
    /// The indices of this round's reports.
    round: &'a [usize],
    /// The dedup window.
    window: Duration,
}

impl Claims<'_> {
    /// Each report's outcome, `room` (reports the hour may still store)
    /// taken from: all claimed in one statement when there is room for
    /// all; else one at a time while there is room, and past it only told
    /// apart (duplicate or sampled) without a write.
    async fn claim(
        &self,
        store: &Store,
        connection: &mut AnyConnection,
        room: &mut u64,
    ) -> Result<Vec<(usize, Recorded)>, StoreError> {
        if self.round.len() as u64 <= *room {
            let outcomes = self.claim_all(store, connection, self.round).await?;
            *room -= outcomes
                .iter()
                .filter(|(_, o)| *o == Recorded::Counted)
                .count() as u64;
            return Ok(outcomes);
        }
        let mut outcomes = Vec::with_capacity(self.round.len());
        for &index in self.round {
            let outcome = match *room {
                0 => self.sampled_or_duplicate(store, connection, index).await?,
                _ => self.claim_all(store, connection, &[index]).await?[0].1,
            };
            if outcome == Recorded::Counted {
                *room -= 1;
            }
            outcomes.push((index, outcome));
        }
        Ok(outcomes)
    }

    /// Claims the reporters of `indices` (a reporter's claim is taken when
    /// it has none for the problem or its last counted before the window):
    /// counted if claimed, else a duplicate.
    async fn claim_all(
        &self,
        store: &Store,
        connection: &mut AnyConnection,
        indices: &[usize],
    ) -> Result<Vec<(usize, Recorded)>, StoreError> {
        let what = "claiming reporters";
        let mut claimed: HashSet<(String, String)> = HashSet::new();
        for chunk in indices.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO report_reporters (reporter, problem, counted_at) VALUES {} \
                 ON CONFLICT (reporter, problem) DO UPDATE SET counted_at = excluded.counted_at \
                 WHERE report_reporters.counted_at <= excluded.counted_at - $1 \
                 RETURNING reporter, problem",
                placeholders(chunk.len(), 3, 2)
            );
            let mut claim = sqlx::query(&sql)
                .persistent(chunk.len() == 1)
                .bind(seconds(self.window));
            for &index in chunk {
                let report = &self.reports[index];
                claim = claim
                    .bind(&report.reporter)
                    .bind(&report.problem)
                    .bind(report.at);
            }
            for row in store.timed(what, claim.fetch_all(&mut *connection)).await? {
                claimed.insert((column(&row, 0, what)?, column(&row, 1, what)?));
            }
        }
        Ok(indices
            .iter()
            .map(|&index| {
                let report = &self.reports[index];
                let key = (report.reporter.clone(), report.problem.clone());
                match claimed.contains(&key) {
                    true => (index, Recorded::Counted),
                    false => (index, Recorded::Duplicate),
                }
            })
            .collect())
    }

    /// The outcome of report `index` when its hour has no room: a
    /// duplicate when its reporter's report of the problem counted within
    /// the window, else sampled out.
    async fn sampled_or_duplicate(
        &self,
        store: &Store,
        connection: &mut AnyConnection,
        index: usize,
    ) -> Result<Recorded, StoreError> {
        let what = "looking for the reporter";
        let report = &self.reports[index];
        let select = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM report_reporters \
             WHERE reporter = $1 AND problem = $2 AND counted_at > $3",
        )
        .bind(&report.reporter)
        .bind(&report.problem)
        .bind(report.at - seconds(self.window));
        let row = store
            .timed(what, select.fetch_one(&mut *connection))
            .await?;
        let counted: i64 = column(&row, 0, what)?;
        Ok(match counted {
            0 => Recorded::Sampled,
            _ => Recorded::Duplicate,
        })
    }
}
