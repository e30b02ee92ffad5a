//! The status page's store: what it keeps of its own (reports, their hourly
//! counts, the reporter-key secrets), in SQLite by default (`sqlite:PATH`,
//! one file to back up) or in PostgreSQL (`postgres://USER@HOST:PORT/DB`,
//! shared by several status-page replicas).
//!
//! One interface for both: [`Store`] wraps a pool of sqlx's `Any` driver,
//! and every query is written once, in the SQL both databases speak
//! (`$1` placeholders, numbered in the order they first appear, which
//! SQLite reads as positions too; `INSERT ... ON CONFLICT`; `BIGINT` and
//! `TEXT` columns; sums cast to `BIGINT`). What differs is kept in
//! [`Dialect`]: how a connection is set up and how migrations lock out a
//! second replica starting at the same time. [`migrate`] holds the
//! versioned schema, [`secret`] the daily secrets.

pub(crate) mod migrate;
pub(crate) mod secret;
mod url;

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, AnyRow, install_default_drivers};
use sqlx::{AnyPool, Executor as _, Row as _};

use crate::config::status_page::StoreLocation;
use crate::metrics::ReportMetrics;

/// The longest any one store operation may take, connecting included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database refused or failed an operation.
    #[error("store {operation}: {source}")]
    Database {
        /// What was being done.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// An operation did not finish within its timeout.
    #[error("store {operation}: no answer within {timeout:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The bound it broke.
        timeout: Duration,
    },
    /// A value in the store is not what this build wrote there.
    #[error("store holds {what} it cannot read: {message}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The task that writes reports has stopped (the page is shutting down).
    #[error("store {0}: the reports' writer has stopped")]
    Stopped(&'static str),
    /// The batch an operation was written in failed (every report in it
    /// shares the one failure).
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    /// The schema in the store is newer than this build knows.
    #[error(
        "store schema is at version {found}, newer than this chatprobe's {known}: upgrade chatprobe"
    )]
    SchemaTooNew {
        /// The version the store has.
        found: i64,
        /// The newest version this build has.
        known: i64,
    },
}

/// Which database a store is, for the little that differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// An SQLite file, one writer at a time.
    Sqlite,
    /// A PostgreSQL server, possibly shared by replicas.
    Postgres,
}

impl Dialect {
    /// Statements every new connection runs first.
    fn connection_setup(self) -> &'static [&'static str] {
        match self {
            // WAL lets the page read while a report is written; NORMAL
            // synchronous is durable across a crash of the process.
            Dialect::Sqlite => &[
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA busy_timeout = 5000",
            ],
            Dialect::Postgres => &["SET statement_timeout = '5s'"],
        }
    }

    /// Connections in the pool: SQLite takes one writer at a time anyway
    /// (several would only wait on each other's locks).
    fn max_connections(self) -> u32 {
        match self {
            Dialect::Sqlite => 1,
            Dialect::Postgres => 8,
        }
    }
}

/// An open store: a pool of connections, its dialect, and the metrics its
/// operations' durations and failures are counted in.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: AnyPool,
    dialect: Dialect,
    metrics: ReportMetrics,
}

impl Store {
    /// Opens (creating an SQLite file if needed) the store at `url` and
    /// brings its schema up to date; its operations are counted in `metrics`.
    pub(crate) async fn open(
        location: &StoreLocation,
        metrics: ReportMetrics,
    ) -> Result<Store, StoreError> {
        install_default_drivers();
        let dialect = url::dialect(location);
        let setup = dialect.connection_setup();
        let pool = AnyPoolOptions::new()
            .max_connections(dialect.max_connections())
            .acquire_timeout(OPERATION_TIMEOUT)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    for statement in setup {
                        connection.execute(*statement).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy(&url::driver_url(location))
            .map_err(|source| StoreError::Database {
                operation: "connect",
                source,
            })?;
        let store = Store {
            pool,
            dialect,
            metrics,
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// The connection pool every query runs on.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (SQLite checkpoints its journal into the file).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Which database this is.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Runs `operation` (named `what` in errors) within [`OPERATION_TIMEOUT`],
    /// its duration and any failure counted.
    pub(crate) async fn timed<T>(
        &self,
        what: &'static str,
        operation: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(OPERATION_TIMEOUT, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(StoreError::Database {
                operation: what,
                source,
            }),
            Err(_) => Err(StoreError::Timeout {
                operation: what,
                timeout: OPERATION_TIMEOUT,
            }),
        };
        self.metrics
            .store_operation(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.metrics.store_error();
        }
        result
    }
}

/// Column `index` of `row` as a `T`, a failure named after `what` was read.
pub(crate) fn column<'r, T>(
    row: &'r AnyRow,
    index: usize,
    what: &'static str,
) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(index).map_err(|source| StoreError::Database {
        operation: what,
        source,
    })
}
