//! The reports' queries on the store, each written once for both databases:
//! storing counted reports (their raw rows and their counts per hour and per
//! second; [`batch`](super::batch) decides which count), the window's
//! distinct reporters, the hourly counts, and pruning what is past retention.

use std::collections::BTreeMap;
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
pub(super) const ROWS_PER_STATEMENT: usize = 256;

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
pub(super) fn placeholders(rows: usize, columns: usize, first: usize) -> String {
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
pub(super) async fn store_counted(
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
pub(super) fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A count the database returned (never negative).
pub(super) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::status_page::StoreLocation;
    use crate::metrics::ReportMetrics;
    use crate::reports::batch::record_batch;

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
