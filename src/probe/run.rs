//! The record of one probe run: timed steps, each bounded by the step
//! timeout, and the failures found, turned into a [`ProbeOutcome`] at the end.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use crate::client::{ClientError, ClientResult};
use crate::outcome::{DETAIL_MAX, Failure, Operation, ProbeOutcome, Reason, StepTiming, shorten};

/// Proof that a failure was recorded on a run. Only [`Run`] makes one, when
/// it records a failure, so a step that stops a run early (`Err(Recorded)`)
/// cannot leave the run passing.
#[derive(Debug)]
pub(super) struct Recorded(());

/// What a step of a run gives: its value, or proof that the failure which
/// stopped it is recorded (so `?` ends the steps without losing it).
pub(super) type StepResult<T> = Result<T, Recorded>;

/// One run in progress.
pub(super) struct Run {
    started: Instant,
    started_at: SystemTime,
    step_timeout: Duration,
    steps: Vec<StepTiming>,
    failures: Vec<Failure>,
    messages_expected: u64,
    messages_delivered: u64,
}

impl Run {
    /// Starts a run whose steps each get at most `step_timeout`.
    pub(super) fn start(step_timeout: Duration) -> Run {
        Run {
            started: Instant::now(),
            started_at: SystemTime::now(),
            step_timeout,
            steps: Vec::new(),
            failures: Vec::new(),
            messages_expected: 0,
            messages_delivered: 0,
        }
    }

    /// Runs one client call as a step of `operation`: timed, bounded by the
    /// step timeout; a failure is recorded with the error's own reason.
    pub(super) async fn step<T>(
        &mut self,
        operation: Operation,
        call: impl Future<Output = ClientResult<T>>,
    ) -> StepResult<T> {
        let result = self.timed(operation, call).await;
        result.map_err(|err| self.fail(operation, err.reason(), err.to_string()))
    }

    /// Like [`Run::step`], but an error status (the service refused) is
    /// recorded as `refused` instead of `http_error`.
    pub(super) async fn step_or_refused<T>(
        &mut self,
        operation: Operation,
        refused: Reason,
        call: impl Future<Output = ClientResult<T>>,
    ) -> StepResult<T> {
        let result = self.timed(operation, call).await;
        result.map_err(|err| {
            let reason = match err {
                ClientError::Status { .. } => refused,
                _ => err.reason(),
            };
            self.fail(operation, reason, err.to_string())
        })
    }

    /// Like [`Run::step`], but hands the error back to the caller, which
    /// decides how to classify it.
    pub(super) async fn timed<T>(
        &mut self,
        operation: Operation,
        call: impl Future<Output = ClientResult<T>>,
    ) -> ClientResult<T> {
        let begun = Instant::now();
        let result = match tokio::time::timeout(self.step_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(self.step_timeout)),
        };
        self.record(operation, begun.elapsed());
        result
    }

    /// Records the timing of a step measured by the caller (waits for
    /// deliveries, which are bounded by their own deadline).
    pub(super) fn record(&mut self, operation: Operation, duration: Duration) {
        self.steps.push(StepTiming {
            operation,
            duration,
        });
    }

    /// Records a failure; one per operation and reason, later details are
    /// appended to the first, the whole cut to [`DETAIL_MAX`] characters.
    /// The returned proof lets a step stop the run.
    pub(super) fn fail(
        &mut self,
        operation: Operation,
        reason: Reason,
        detail: impl Into<String>,
    ) -> Recorded {
        debug_assert!(
            reason.operations().contains(&operation),
            "`{reason}` on `{operation}` is not in Reason::operations: add it there"
        );
        let detail = detail.into();
        let same =
            |failure: &&mut Failure| failure.operation == operation && failure.reason == reason;
        match self.failures.iter_mut().find(same) {
            Some(failure) if failure.detail.chars().count() < DETAIL_MAX => {
                let merged = format!("{}; {detail}", failure.detail);
                failure.detail = shorten(&merged, DETAIL_MAX);
            }
            Some(_) => {}
            None => self.failures.push(Failure {
                operation,
                reason,
                detail: shorten(&detail, DETAIL_MAX),
            }),
        }
        Recorded(())
    }

    /// True when any failure was recorded.
    pub(super) fn has_failures(&self) -> bool {
        !self.failures.is_empty()
    }

    /// Counts message deliveries waited for and those that arrived intact in time.
    pub(super) fn count_messages(&mut self, expected: u64, delivered: u64) {
        self.messages_expected += expected;
        self.messages_delivered += delivered;
    }

    /// The run's outcome.
    pub(super) fn finish(self) -> ProbeOutcome {
        ProbeOutcome {
            started_at: self.started_at,
            duration: self.started.elapsed(),
            steps: self.steps,
            failures: self.failures,
            messages_expected: self.messages_expected,
            messages_delivered: self.messages_delivered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_step_times_out_with_the_timeout_reason() {
        let mut run = Run::start(Duration::from_millis(20));
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        assert!(run.step(Operation::Send, slow).await.is_err());
        let outcome = run.finish();
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].operation, Operation::Send);
        assert_eq!(outcome.failures[0].reason, Reason::Timeout);
        assert_eq!(outcome.steps.len(), 1);
    }

    #[tokio::test]
    async fn client_errors_keep_their_reason_and_repeats_merge() {
        let mut run = Run::start(Duration::from_secs(1));
        for _ in 0..2 {
            let refused = async { Err::<(), _>(ClientError::Connect("refused".into())) };
            let _ = run.step(Operation::Login, refused).await;
        }
        let ok = run.step(Operation::Send, async { Ok(7) }).await;
        assert_eq!(ok.ok(), Some(7));
        let outcome = run.finish();
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].reason, Reason::ConnectError);
        assert_eq!(outcome.failures[0].detail.matches("refused").count(), 2);
        assert_eq!(outcome.steps.len(), 3);
    }

    /// Steps as a kind writes them: `?` stops at the first failed step.
    async fn two_steps(run: &mut Run) -> StepResult<u32> {
        let first = run.step(Operation::Login, async { Ok(1) }).await?;
        let refused = async { Err::<u32, _>(ClientError::Connect("refused".into())) };
        let second = run.step(Operation::Connect, refused).await?;
        Ok(first + second)
    }

    #[tokio::test]
    async fn a_run_stopped_early_carries_its_recorded_failure() {
        let mut run = Run::start(Duration::from_secs(1));
        let stopped = two_steps(&mut run).await;
        assert!(matches!(stopped, Err(Recorded(()))));
        let outcome = run.finish();
        assert!(!outcome.passed());
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].operation, Operation::Connect);
        assert_eq!(outcome.failures[0].reason, Reason::ConnectError);
        assert_eq!(outcome.steps.len(), 2);
    }

    #[test]
    fn recording_a_failure_is_what_yields_the_proof() {
        let mut run = Run::start(Duration::from_secs(1));
        let _proof: Recorded = run.fail(Operation::Leave, Reason::LeaveNotApplied, "still listed");
        assert!(run.has_failures());
        assert!(!run.finish().passed());
    }

    #[test]
    fn details_are_capped_however_long_or_many() {
        let mut run = Run::start(Duration::from_secs(1));
        let huge = "x".repeat(100_000);
        for _ in 0..50 {
            run.fail(Operation::Send, Reason::HttpError, huge.as_str());
            run.fail(Operation::Login, Reason::HttpError, "short");
        }
        for failure in run.finish().failures {
            assert!(
                failure.detail.chars().count() <= DETAIL_MAX + 1,
                "{}",
                failure.detail.len()
            );
        }
    }
}
