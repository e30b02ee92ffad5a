//! The reports' queries on the store, each written once for both databases:
//! recording one (counted once per reporter, problem and window; within the
//! cap of reports stored per hour), the window's distinct reporters, the
//! hourly counts, and pruning what is past retention.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use sqlx::AnyConnection;

use super::crowd::{HourCount, WindowCount, hour_start};
use crate::store::{Store, StoreError, column};

/// A report about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewReport {
    /// When, in seconds since the epoch.
    pub(crate) at: i64,
    /// The problem's id.
    pub(crate) problem: String,
    /// The region.
    pub(crate) region: String,
    /// The reporter's key (hex HMAC).
    pub(crate) reporter: String,
}

/// Rows one multi-row statement writes at most (4 parameters a row: well
/// under both databases' limits on parameters).
const ROWS_PER_STATEMENT: usize = 256;

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Stored and counted.
    Counted,
    /// The reporter's report of this problem already counted within the window.
    Duplicate,
    /// This hour's cap of stored reports is reached: not stored.
    Sampled,
}

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

/// Stores `reports` as counted, in one transaction, without claiming their
/// reporters or checking the hourly cap: the rows and counts that counted
/// reports leave, for loading a store with past reports (the
/// reports benchmark fills one so).
pub(crate) async fn load_counted(store: &Store, reports: &[NewReport]) -> Result<(), StoreError> {
    let mut transaction = store
        .timed("starting to load reports", store.pool().begin())
        .await?;
    let all: Vec<&NewReport> = reports.iter().collect();
    store_counted(store, &mut transaction, &all).await?;
    store
        .timed("committing the loaded reports", transaction.commit())
        .await
}

/// `rows` groups of `columns` placeholders, numbered from `$first`:
/// `($1, $2), ($3, $4)` for 2, 2, 1.
fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    let row = |index: usize| {
        let numbers: Vec<String> = (0..columns)
            .map(|column| format!("${}", first + index * columns + column))
            .collect();
        format!("({})", numbers.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// Writes the raw rows of counted `reports` and adds them to the counts of
/// their hours and seconds, in `connection`'s transaction: a few multi-row
/// statements whatever their number.
async fn store_counted(
    store: &Store,
    connection: &mut AnyConnection,
    reports: &[&NewReport],
) -> Result<(), StoreError> {
    for chunk in reports.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO reports (at, problem, region, reporter) VALUES {}",
            placeholders(chunk.len(), 4, 1)
        );
        let mut insert = sqlx::query(&sql).persistent(false);
        for report in chunk {
            insert = insert
                .bind(report.at)
                .bind(&report.problem)
                .bind(&report.region)
                .bind(&report.reporter);
        }
        store
            .timed("storing reports", insert.execute(&mut *connection))
            .await?;
    }
    let tally = |key: fn(i64) -> i64| {
        let mut counts: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
        for report in reports {
            let at = (key(report.at), &*report.problem, &*report.region);
            *counts.entry(at).or_default() += 1;
        }
        counts
    };
    add_counts(store, connection, Counts::Hours, tally(hour_start)).await?;
    add_counts(store, connection, Counts::Seconds, tally(|at| at)).await
}

/// A table of counted reports per problem, region and span of time.
#[derive(Debug, Clone, Copy)]
enum Counts {
    /// `report_hours`, by the hour's start: the baseline and the trend.
    Hours,
    /// `report_seconds`, by the second: the window's reporters.
    Seconds,
}

impl Counts {
    /// The table and its time column.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Counts::Hours => ("report_hours", "hour"),
            Counts::Seconds => ("report_seconds", "at"),
        }
    }
}

/// Adds `counts` (reports by time, problem and region) to the table `into`.
async fn add_counts(
    store: &Store,
    connection: &mut AnyConnection,
    into: Counts,
    counts: BTreeMap<(i64, &str, &str), i64>,
) -> Result<(), StoreError> {
    let (table, time) = into.table();
    let counts: Vec<_> = counts.into_iter().collect();
    for chunk in counts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} ({time}, problem, region, reports) VALUES {} \
             ON CONFLICT ({time}, problem, region) DO UPDATE \
             SET reports = {table}.reports + excluded.reports",
            placeholders(chunk.len(), 4, 1)
        );
        let mut add = sqlx::query(&sql).persistent(false);
        for ((at, problem, region), reports) in chunk {
            add = add.bind(*at).bind(*problem).bind(*region).bind(*reports);
        }
        store
            .timed("counting reports", add.execute(&mut *connection))
            .await?;
    }
    Ok(())
}

/// Distinct reporters per problem and region of the reports after `since`
/// (up to a window before now): the counted reports of those seconds, as
/// a reporter's report of a problem counts once a window. Read from the
/// counts per second, never from the raw reports, so a storm of reports
/// does not slow the page down.
pub(crate) async fn reporters_since(
    store: &Store,
    since: i64,
) -> Result<Vec<WindowCount>, StoreError> {
    let what = "counting the window's reporters";
    let select = sqlx::query(
        "SELECT problem, region, CAST(SUM(reports) AS BIGINT) FROM report_seconds \
         WHERE at > $1 GROUP BY problem, region",
    )
    .bind(since);
    let rows = store.timed(what, select.fetch_all(store.pool())).await?;
    rows.iter()
        .map(|row| {
            Ok(WindowCount {
                problem: column(row, 0, what)?,
                region: column(row, 1, what)?,
                reporters: count(column(row, 2, what)?),
            })
        })
        .collect()
}
/// The hourly counts of the hours in `spans` (first and last hour start,
/// inclusive, each), in one query.
pub(crate) async fn hours_in(
    store: &Store,
    spans: &[(i64, i64)],
) -> Result<Vec<HourCount>, StoreError> {
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let what = "reading hourly counts";
    let ranges: Vec<String> = (0..spans.len())
        .map(|index| {
            format!(
                "(hour >= ${} AND hour <= ${})",
                2 * index + 1,
                2 * index + 2
            )
        })
        .collect();
    let sql = format!(
        "SELECT hour, problem, region, reports FROM report_hours WHERE {}",
        ranges.join(" OR ")
    );
    let mut select = sqlx::query(&sql);
    for (first, last) in spans {
        select = select.bind(*first).bind(*last);
    }
    let rows = store.timed(what, select.fetch_all(store.pool())).await?;
    rows.iter()
        .map(|row| {
            Ok(HourCount {
                hour: column(row, 0, what)?,
                problem: column(row, 1, what)?,
                region: column(row, 2, what)?,
                reports: count(column(row, 3, what)?),
            })
        })
        .collect()
}

/// Reports stored in the hour that starts at `hour`.
pub(crate) async fn stored_in_hour(store: &Store, hour: i64) -> Result<u64, StoreError> {
    let what = "reading the hour's stored reports";
    let select = sqlx::query(
        "SELECT CAST(COALESCE(SUM(stored), 0) AS BIGINT) FROM report_budget WHERE hour = $1",
    )
    .bind(hour);
    let row = store.timed(what, select.fetch_one(store.pool())).await?;
    Ok(count(column(&row, 0, what)?))
}

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Raw reports.
    pub(crate) reports: Duration,
    /// Hourly counts.
    pub(crate) hours: Duration,
    /// The dedup window (reporters older than it are forgotten).
    pub(crate) window: Duration,
}

/// Deletes what is older than `retention` at `now`; the rows removed.
pub(crate) async fn prune(
    store: &Store,
    now: i64,
    retention: Retention,
) -> Result<u64, StoreError> {
    let reports_before = now - seconds(retention.reports);
    let hours_before = hour_start(now - seconds(retention.hours));
    let deletions = [
        ("DELETE FROM reports WHERE at < $1", reports_before),
        ("DELETE FROM report_hours WHERE hour < $1", hours_before),
        ("DELETE FROM report_budget WHERE hour < $1", hour_start(now)),
        (
            "DELETE FROM report_reporters WHERE counted_at <= $1",
            now - seconds(retention.window),
        ),
        (
            "DELETE FROM report_seconds WHERE at <= $1",
            now - seconds(retention.window),
        ),
    ];
    let mut removed = 0;
    for (statement, before) in deletions {
        let delete = sqlx::query(statement).bind(before);
        removed += store
            .timed("pruning", delete.execute(store.pool()))
            .await?
            .rows_affected();
    }
    Ok(removed)
}

/// A duration in whole seconds, as the store's times are.
fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A count the database returned (never negative).
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::status_page::StoreLocation;
    use crate::metrics::ReportMetrics;

    const DAY: i64 = 24 * 3600;
    const WINDOW: Duration = Duration::from_secs(900);
    /// Sunday 2026-11-29 16:25 UTC.
    const NOW: i64 = 1_795_969_500;

    /// An SQLite store in a fresh file, and the file's folder to remove.
    async fn store(tag: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("chatprobe-ledger-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let url = StoreLocation::Sqlite(dir.join("status.db"));
        (
            Store::open(&url, ReportMetrics::default())
                .await
                .expect("the store opens"),
            dir,
        )
    }

    fn report(at: i64, reporter: &str) -> NewReport {
        NewReport {
            at,
            problem: "not_sending".to_owned(),
            region: "eu-west".to_owned(),
            reporter: reporter.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_reporter_counts_once_a_window_and_the_hourly_cap_samples() {
        let (store, dir) = store("record").await;
        assert_eq!(
            ledger_record(&store, report(NOW, "a")).await,
            Recorded::Counted
        );
        assert_eq!(
            ledger_record(&store, report(NOW + 60, "a")).await,
            Recorded::Duplicate
        );
        assert_eq!(
            ledger_record(&store, report(NOW + 899, "a")).await,
            Recorded::Duplicate
        );
        assert_eq!(
            ledger_record(&store, report(NOW + 900, "a")).await,
            Recorded::Counted
        );
        assert_eq!(
            ledger_record(&store, report(NOW + 901, "b")).await,
            Recorded::Counted
        );
        // The cap of 3 stored an hour is reached: c is sampled out, and not
        // remembered as counted either.
        assert_eq!(
            ledger_record(&store, report(NOW + 902, "c")).await,
            Recorded::Sampled
        );
        assert_eq!(
            ledger_record(&store, report(NOW + 903, "c")).await,
            Recorded::Sampled
        );
        assert_eq!(stored_in_hour(&store, hour_start(NOW)).await.ok(), Some(3));
        let window = reporters_since(&store, NOW + 900 - 900)
            .await
            .expect("the window");
        assert_eq!(window.len(), 1);
        assert_eq!(window[0].reporters, 2);
        let hours = hours_in(&store, &[(hour_start(NOW), hour_start(NOW))])
            .await
            .expect("hours");
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[0].reports, 3);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_batch_records_as_its_reports_would_one_by_one() {
        let (store, dir) = store("batch").await;
        assert_eq!(
            ledger_record(&store, report(NOW, "a")).await,
            Recorded::Counted
        );
        // One stored, room for two more this hour: more claims than room,
        // so one at a time; repeats of a reporter wait for a later round.
        let batch: Vec<NewReport> = [(1, "a"), (2, "b"), (3, "b"), (4, "c"), (5, "d"), (6, "a")]
            .iter()
            .map(|(after, reporter)| report(NOW + after, reporter))
            .collect();
        let outcomes = record_batch(&store, &batch, WINDOW, 3)
            .await
            .expect("the batch records");
        use Recorded::{Counted, Duplicate, Sampled};
        assert_eq!(
            outcomes,
            [Duplicate, Counted, Duplicate, Counted, Sampled, Duplicate]
        );
        // Room for all: claimed in one statement; two hours in one batch.
        let next_hour = hour_start(NOW) + 3600;
        let batch: Vec<NewReport> = [(0, "e"), (1, "f"), (2, "e")]
            .iter()
            .map(|(after, reporter)| report(next_hour + after, reporter))
            .chain([report(NOW + 7, "g")])
            .collect();
        let outcomes = record_batch(&store, &batch, WINDOW, 3)
            .await
            .expect("the batch records");
        assert_eq!(outcomes, [Counted, Counted, Duplicate, Sampled]);
        assert_eq!(stored_in_hour(&store, hour_start(NOW)).await.ok(), Some(3));
        assert_eq!(stored_in_hour(&store, next_hour).await.ok(), Some(2));
        let hours = hours_in(&store, &[(hour_start(NOW), next_hour)])
            .await
            .expect("hours");
        let counts: Vec<(i64, u64)> = hours.iter().map(|h| (h.hour, h.reports)).collect();
        assert_eq!(counts, [(hour_start(NOW), 3), (next_hour, 2)]);
        let window = reporters_since(&store, NOW - 1).await.expect("the window");
        assert_eq!(window[0].reporters, 5);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Records `report` alone with a cap of 3 stored reports an hour.
    async fn ledger_record(store: &Store, report: NewReport) -> Recorded {
        let outcomes = record_batch(store, &[report], WINDOW, 3)
            .await
            .expect("the store records");
        outcomes[0]
    }

    #[tokio::test]
    async fn pruning_keeps_hourly_counts_longer_than_raw_reports() {
        let (store, dir) = store("prune").await;
        let old = NOW - 100 * DAY;
        let ancient = NOW - 500 * DAY;
        for (at, reporter) in [(ancient, "x"), (old, "y"), (NOW, "z")] {
            assert_eq!(
                ledger_record(&store, report(at, reporter)).await,
                Recorded::Counted
            );
        }
        let retention = Retention {
            reports: Duration::from_secs(90 * 86400),
            hours: Duration::from_secs(400 * 86400),
            window: WINDOW,
        };
        let removed = prune(&store, NOW, retention).await.expect("pruned");
        assert!(removed >= 4, "{removed}");
        let raw = reporters_since(&store, ancient - 1).await.expect("reports");
        assert_eq!(raw.iter().map(|count| count.reporters).sum::<u64>(), 1);
        let hours = hours_in(&store, &[(ancient - DAY, NOW)])
            .await
            .expect("hours");
        let kept: Vec<i64> = hours.iter().map(|count| count.hour).collect();
        assert_eq!(kept, [hour_start(old), hour_start(NOW)]);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
