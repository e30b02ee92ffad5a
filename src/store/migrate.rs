//! The store's schema, as numbered migrations applied in order at start and
//! recorded in `schema_migrations`; a store newer than this build is
//! refused rather than misread. Every statement is the SQL both databases
//! speak. A lock taken first in the migration's transaction (PostgreSQL: an
//! advisory lock; SQLite: the write lock, by a write that changes nothing)
//! keeps two processes starting together from applying a migration twice.

use sqlx::Executor as _;

use super::{Dialect, Store, StoreError};

/// One step of the schema.
struct Migration {
    /// Its number: migrations run in ascending order, each once.
    version: i64,
    /// What it does, recorded beside its number.
    name: &'static str,
    /// Its statements, run in one transaction.
    statements: &'static [&'static str],
}

/// The schema, oldest first. Append; never edit a released step.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "reports, hourly counts, reporters, the stored-per-hour budget, daily secrets",
        statements: &[
            // Raw reports, kept `reports.retention`: when, what, where, and the
            // reporter's key (an HMAC, never the address).
            "CREATE TABLE reports (at BIGINT NOT NULL, problem TEXT NOT NULL, \
         region TEXT NOT NULL, reporter TEXT NOT NULL)",
            "CREATE INDEX reports_at ON reports (at)",
            // Counted reports per hour (unix seconds of its start), kept 400 days.
            "CREATE TABLE report_hours (hour BIGINT NOT NULL, problem TEXT NOT NULL, \
         region TEXT NOT NULL, reports BIGINT NOT NULL, PRIMARY KEY (hour, problem, region))",
            // When each reporter's report of each problem last counted.
            "CREATE TABLE report_reporters (reporter TEXT NOT NULL, problem TEXT NOT NULL, \
         counted_at BIGINT NOT NULL, PRIMARY KEY (reporter, problem))",
            "CREATE INDEX report_reporters_counted_at ON report_reporters (counted_at)",
            // Reports stored per hour, against the cap, and those sampled out.
            "CREATE TABLE report_budget (hour BIGINT PRIMARY KEY, stored BIGINT NOT NULL)",
            // The reporter-key secret of each day (days since the epoch, UTC).
            "CREATE TABLE reporter_secrets (day BIGINT PRIMARY KEY, secret TEXT NOT NULL)",
        ],
    },
    Migration {
        version: 2,
        name: "subscribers, statements, the notification outbox, named secrets",
        statements: &[
            // "Notify me": the address and its choices (`features`: probe
            // names between commas, empty for all; `events`: `opened`,
            // `resolved` between commas), when the confirmation was last
            // asked for, when it was confirmed (NULL: not yet), and its
            // permanent failures.
            "CREATE TABLE subscribers (id BIGINT PRIMARY KEY, email TEXT NOT NULL UNIQUE, \
             features TEXT NOT NULL, events TEXT NOT NULL, created_at BIGINT NOT NULL, \
             confirmation_at BIGINT NOT NULL, confirmed_at BIGINT, bounces BIGINT NOT NULL, \
             bounced_at BIGINT)",
            // Every statement of every incident: the timeline.
            "CREATE TABLE statements (id BIGINT PRIMARY KEY, incident TEXT NOT NULL, \
             probe TEXT NOT NULL, at BIGINT NOT NULL, kind TEXT NOT NULL, event TEXT NOT NULL, \
             text TEXT NOT NULL, incident_json TEXT NOT NULL)",
            "CREATE INDEX statements_incident ON statements (incident, at)",
            // One row a notification still to deliver: to whom (`channel`
            // email: a subscriber's id; webhook: its URL), about what
            // (`subject`: a statement's id, or for a confirmation the
            // second it was asked for), which event; its attempts, when it
            // may be tried next, and until when a sender holds it.
            "CREATE TABLE outbox (channel TEXT NOT NULL, recipient TEXT NOT NULL, \
             subject BIGINT NOT NULL, event TEXT NOT NULL, created_at BIGINT NOT NULL, \
             attempts BIGINT NOT NULL, next_at BIGINT NOT NULL, leased_until BIGINT NOT NULL, \
             PRIMARY KEY (channel, recipient, subject, event))",
            "CREATE INDEX outbox_next_at ON outbox (next_at)",
            // Secrets made once and shared by every replica (token keys).
            "CREATE TABLE named_secrets (name TEXT PRIMARY KEY, secret TEXT NOT NULL)",
        ],
    },
    Migration {
        version: 3,
        name: "counted reports per second, for the window's reporters",
        statements: &[
            // Counted reports per second (unix seconds), kept one window:
            // the window's distinct reporters are their sum, a reporter's
            // report of a problem counting once a window.
            "CREATE TABLE report_seconds (at BIGINT NOT NULL, problem TEXT NOT NULL, \
             region TEXT NOT NULL, reports BIGINT NOT NULL, PRIMARY KEY (at, problem, region))",
            // From the raw reports of the last hour before the newest (a
            // window is at most an hour; the index on `at` finds them).
            "INSERT INTO report_seconds (at, problem, region, reports) \
             SELECT at, problem, region, COUNT(*) FROM reports \
             WHERE at > (SELECT MAX(at) FROM reports) - 3600 GROUP BY at, problem, region",
        ],
    },
];

/// The statement that takes the migration lock, held to the transaction's end.
fn migration_lock(dialect: Dialect) -> &'static str {
    match dialect {
        // Any number, the same in every replica: the advisory lock's key.
        Dialect::Postgres => "SELECT pg_advisory_xact_lock(4242170523)",
        Dialect::Sqlite => "UPDATE schema_migrations SET version = version WHERE version < 0",
    }
}

/// Brings `store`'s schema to the newest version.
pub(super) async fn run(store: &Store) -> Result<(), StoreError> {
    let pool = store.pool();
    store
        .timed(
            "creating schema_migrations",
            pool.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            ),
        )
        .await?;
    let mut transaction = store.timed("starting a migration", pool.begin()).await?;
    let lock = migration_lock(store.dialect());
    store
        .timed("locking migrations", transaction.execute(lock))
        .await?;
    let what = "reading the schema version";
    let version =
        sqlx::query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations");
    let row = store
        .timed(what, version.fetch_one(&mut *transaction))
        .await?;
    let current: i64 = super::column(&row, 0, what)?;
    let known = MIGRATIONS.last().map_or(0, |migration| migration.version);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        for statement in migration.statements {
            store
                .timed("migrating the schema", transaction.execute(*statement))
                .await?;
        }
        let record = sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(applied_at());
        store
            .timed("recording a migration", record.execute(&mut *transaction))
            .await?;
        tracing::info!(
            "store schema migrated to version {}: {}",
            migration.version,
            migration.name
        );
    }
    store
        .timed("committing the migration", transaction.commit())
        .await
}

/// Now, in seconds since the epoch, as the store keeps times.
fn applied_at() -> i64 {
    let now = crate::status::Timestamp::from_system(std::time::SystemTime::now());
    i64::try_from(now.unix_seconds()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::config::status_page::StoreLocation;
    use crate::metrics::ReportMetrics;
    use crate::store::Store;

    #[tokio::test]
    async fn stores_opened_together_on_one_file_migrate_it_once() {
        let dir = std::env::temp_dir().join(format!("chatprobe-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let url = StoreLocation::Sqlite(dir.join("status.db"));
        let (first, second, third) = tokio::join!(
            Store::open(&url, ReportMetrics::default()),
            Store::open(&url, ReportMetrics::default()),
            Store::open(&url, ReportMetrics::default())
        );
        for store in [first, second, third] {
            store.expect("every store opens").close().await;
        }
        let again = Store::open(&url, ReportMetrics::default())
            .await
            .expect("a migrated store opens");
        let versions = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(again.pool())
            .await
            .expect("the versions read");
        assert_eq!(versions.len(), MIGRATIONS.len());
        again.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A store at schema 2 holding reports: migration 3 counts the last
    /// hour's of them per second, and leaves the older ones out.
    #[tokio::test]
    async fn a_store_with_reports_migrates_to_per_second_counts() {
        use sqlx::Executor as _;
        let dir = std::env::temp_dir().join(format!("chatprobe-migrate3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let file = dir.join("status.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true);
        let old = sqlx::SqlitePool::connect_with(options)
            .await
            .expect("an SQLite file");
        old.execute(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at BIGINT NOT NULL)",
        )
        .await
        .expect("schema_migrations");
        for migration in &MIGRATIONS[..2] {
            for statement in migration.statements {
                old.execute(*statement).await.expect("an old migration");
            }
            sqlx::query("INSERT INTO schema_migrations VALUES ($1, $2, 0)")
                .bind(migration.version)
                .bind(migration.name)
                .execute(&old)
                .await
                .expect("its record");
        }
        let newest = 1_800_000_000_i64;
        let reports = [
            (newest - 7200, "not_sending", "ap-south", "old"),
            (newest - 10, "not_sending", "ap-south", "a"),
            (newest - 10, "not_sending", "ap-south", "b"),
            (newest - 10, "not_received", "unknown", "a"),
            (newest, "not_sending", "eu-west", "c"),
        ];
        for (at, problem, region, reporter) in reports {
            sqlx::query("INSERT INTO reports VALUES ($1, $2, $3, $4)")
                .bind(at)
                .bind(problem)
                .bind(region)
                .bind(reporter)
                .execute(&old)
                .await
                .expect("a report");
        }
        old.close().await;

        let store = Store::open(&StoreLocation::Sqlite(file), ReportMetrics::default())
            .await
            .expect("the store migrates");
        let rows = sqlx::query(
            "SELECT at, problem, region, reports FROM report_seconds ORDER BY at, problem, region",
        )
        .fetch_all(store.pool())
        .await
        .expect("the per-second counts");
        let counted: Vec<(i64, String, String, i64)> = rows
            .iter()
            .map(|row| {
                use sqlx::Row as _;
                (row.get(0), row.get(1), row.get(2), row.get(3))
            })
            .collect();
        let own = |at: i64, problem: &str, region: &str, reports: i64| {
            (at, problem.to_owned(), region.to_owned(), reports)
        };
        assert_eq!(
            counted,
            [
                own(newest - 10, "not_received", "unknown", 1),
                own(newest - 10, "not_sending", "ap-south", 2),
                own(newest, "not_sending", "eu-west", 1),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn migrations_are_numbered_one_up_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1, "{}", migration.name);
            assert!(!migration.statements.is_empty());
        }
    }
}
