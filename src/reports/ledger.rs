//! The reports' queries on the store, each written once for both databases:
//! recording one (counted once per reporter, problem and window; within the
//! cap of reports stored per hour), the window's distinct reporters, the
//! hourly counts, and pruning what is past retention.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// Records `report`: counted unless the same reporter's report of the same
/// problem counted within `window`, or `stored_per_hour` reports are
/// already stored this hour. One transaction: a refused report leaves no
/// trace, and replicas sharing the store count a reporter once.
pub(crate) async fn record(
    store: &Store,
    report: &NewReport,
    window: Duration,
    stored_per_hour: u32,
) -> Result<Recorded, StoreError> {
    let mut transaction = store
        .timed("starting a report", store.pool().begin())
        .await?;
    let cutoff = report.at - seconds(window);
    let claim = sqlx::query(
        "INSERT INTO report_reporters (reporter, problem, counted_at) VALUES ($1, $2, $3) \
         ON CONFLICT (reporter, problem) DO UPDATE SET counted_at = excluded.counted_at \
         WHERE report_reporters.counted_at <= $4",
    )
    .bind(&report.reporter)
    .bind(&report.problem)
    .bind(report.at)
    .bind(cutoff);
    let claimed = store
        .timed("claiming the reporter", claim.execute(&mut *transaction))
        .await?;
    if claimed.rows_affected() == 0 {
        return Ok(Recorded::Duplicate);
    }
    let hour = hour_start(report.at);
    let budget = sqlx::query(
        "INSERT INTO report_budget (hour, stored) VALUES ($1, 1) ON CONFLICT (hour) \
         DO UPDATE SET stored = report_budget.stored + 1 WHERE report_budget.stored < $2",
    )
    .bind(hour)
    .bind(i64::from(stored_per_hour));
    let within = store
        .timed(
            "counting the hour's reports",
            budget.execute(&mut *transaction),
        )
        .await?;
    if within.rows_affected() == 0 {
        return Ok(Recorded::Sampled);
    }
    store_counted(store, &mut transaction, &[report]).await?;
    store
        .timed("committing the report", transaction.commit())
        .await?;
    Ok(Recorded::Counted)
}

/// Stores `reports` as counted, in one transaction, without claiming their
/// reporters or checking the hourly cap: the rows and hourly counts that
/// counted reports leave, for loading a store with past reports (the
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

/// Writes the raw rows of counted `reports` and adds them to their hours'
/// counts, in `connection`'s transaction: a few multi-row statements
/// whatever their number.
async fn store_counted(
    store: &Store,
    connection: &mut sqlx::AnyConnection,
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
    let mut hours: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for report in reports {
        let key = (hour_start(report.at), &*report.problem, &*report.region);
        *hours.entry(key).or_default() += 1;
    }
    let hours: Vec<_> = hours.into_iter().collect();
    for chunk in hours.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO report_hours (hour, problem, region, reports) VALUES {} \
             ON CONFLICT (hour, problem, region) DO UPDATE \
             SET reports = report_hours.reports + excluded.reports",
            placeholders(chunk.len(), 4, 1)
        );
        let mut count = sqlx::query(&sql).persistent(false);
        for ((hour, problem, region), reports) in chunk {
            count = count.bind(*hour).bind(*problem).bind(*region).bind(*reports);
        }
        store
            .timed("counting reports", count.execute(&mut *connection))
            .await?;
    }
    Ok(())
}

/// Distinct reporters per problem and region of the reports after `since`.
pub(crate) async fn reporters_since(
    store: &Store,
    since: i64,
) -> Result<Vec<WindowCount>, StoreError> {
    let what = "counting the window's reporters";
    let select = sqlx::query(
        "SELECT problem, region, CAST(COUNT(DISTINCT reporter) AS BIGINT) FROM reports \
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

/// The hourly counts of the hours from `first` to `last` (hour starts), inclusive.
pub(crate) async fn hours_between(
    store: &Store,
    first: i64,
    last: i64,
) -> Result<Vec<HourCount>, StoreError> {
    let what = "reading hourly counts";
    let select = sqlx::query(
        "SELECT hour, problem, region, reports FROM report_hours WHERE hour >= $1 AND hour <= $2",
    )
    .bind(first)
    .bind(last);
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
        let hours = hours_between(&store, hour_start(NOW), hour_start(NOW))
            .await
            .expect("hours");
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[0].reports, 3);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Records with a cap of 3 stored reports an hour.
    async fn ledger_record(store: &Store, report: NewReport) -> Recorded {
        record(store, &report, WINDOW, 3)
            .await
            .expect("the store records")
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
        let hours = hours_between(&store, ancient - DAY, NOW)
            .await
            .expect("hours");
        let kept: Vec<i64> = hours.iter().map(|count| count.hour).collect();
        assert_eq!(kept, [hour_start(old), hour_start(NOW)]);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
