//! One writer for the reports: requests hand their report to a task over a
//! bounded queue and wait for its answer; the task takes whatever has
//! queued (up to [`MOST_IN_A_BATCH`]) and records it in one transaction
//! ([`batch::record_batch`]), then answers each request. While one batch
//! commits the next one queues, so a busy page makes a few transactions a
//! second of many reports each, where a report a transaction would make as
//! many transactions as reports (each of several round trips to the store,
//! and on SQLite one at a time). An answer is sent only after the commit:
//! nothing acknowledged is lost, and a failed batch fails every report in
//! it (each answered 503).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::ledger::{NewReport, Recorded};
use crate::store::{Store, StoreError};

/// Reports recorded in one transaction at most.
const MOST_IN_A_BATCH: usize = 512;
/// Reports waiting for the writer at most; a request beyond waits for room.
const QUEUE: usize = 4096;

/// What a request is answered: its report's fate, or the batch's failure.
type Answer = Result<Recorded, Arc<StoreError>>;

/// A report waiting to be written, and where its answer goes.
#[derive(Debug)]
struct Job {
    report: NewReport,
    answer: oneshot::Sender<Answer>,
}

/// The handle requests record through; the task ends when it is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on `store` (needs a Tokio runtime), with the
    /// dedup `window` and the cap `stored_per_hour`.
    pub(crate) fn start(store: Store, window: Duration, stored_per_hour: u32) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, jobs, window, stored_per_hour));
        Writer { queue }
    }

    /// Records `report` in the next batch; its outcome once committed.
    pub(crate) async fn record(&self, report: NewReport) -> Result<Recorded, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Job { report, answer })
            .await
            .map_err(|_| StoreError::Stopped("recording a report"))?;
        match answered.await {
            Ok(Ok(recorded)) => Ok(recorded),
            Ok(Err(failure)) => Err(StoreError::Shared(failure)),
            Err(_) => Err(StoreError::Stopped("recording a report")),
        }
    }
}

/// Writes what `jobs` brings, a batch at a time, until every [`Writer`] is gone.
async fn run(store: Store, mut jobs: mpsc::Receiver<Job>, window: Duration, stored_per_hour: u32) {
    let mut batch: Vec<Job> = Vec::with_capacity(MOST_IN_A_BATCH);
    while jobs.recv_many(&mut batch, MOST_IN_A_BATCH).await > 0 {
        let (reports, answers): (Vec<NewReport>, Vec<oneshot::Sender<Answer>>) =
            batch.drain(..).map(|job| (job.report, job.answer)).unzip();
        let outcomes = batch::record_batch(&store, &reports, window, stored_per_hour)
            .await
            .map_err(Arc::new);
        for (index, answer) in answers.into_iter().enumerate() {
            let answered = match &outcomes {
                Ok(outcomes) => outcomes
                    .get(index)
                    .copied()
                    .ok_or_else(|| Arc::new(StoreError::Stopped("answering a report"))),
                Err(failure) => Err(Arc::clone(failure)),
            };
            // A request that gave up waiting has nobody to answer.
            let _ = answer.send(answered);
        }
    }
}
