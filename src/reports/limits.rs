//! Rate limits on reports: one for everyone together (per second) and one
//! per reporter key (per minute, a burst of as many), each answering how
//! long to wait when exceeded (the `Retry-After` of a 429).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use super::config::Limits;
use super::key::ReporterKey;

/// The page's rate limiters.
#[derive(Debug)]
pub(crate) struct RateLimits {
    everyone: DefaultDirectRateLimiter,
    per_reporter: DefaultKeyedRateLimiter<ReporterKey>,
    clock: DefaultClock,
}

/// `value`, at least 1.
fn at_least_one(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

impl RateLimits {
    /// Limiters for `limits`.
    pub(crate) fn new(limits: &Limits) -> RateLimits {
        RateLimits {
            everyone: governor::RateLimiter::direct(Quota::per_second(at_least_one(
                limits.per_second,
            ))),
            per_reporter: governor::RateLimiter::keyed(Quota::per_minute(at_least_one(
                limits.per_reporter_per_minute,
            ))),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when everyone together is over the limit.
    pub(crate) fn check_everyone(&self) -> Result<(), Duration> {
        self.everyone
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// `Err(wait)` when `key` is over its limit.
    pub(crate) fn check_reporter(&self, key: &ReporterKey) -> Result<(), Duration> {
        self.per_reporter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets reporters whose limit is back at full burst (bounded memory).
    pub(crate) fn forget_idle(&self) {
        self.per_reporter.retain_recent();
        self.per_reporter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reporter_gets_its_burst_then_a_wait_and_others_are_apart() {
        let limits = Limits {
            per_reporter_per_minute: 3,
            ..Limits::default()
        };
        let limiter = RateLimits::new(&limits);
        let first = ReporterKey([1; 32]);
        for _ in 0..3 {
            assert_eq!(limiter.check_reporter(&first), Ok(()));
        }
        let wait = limiter.check_reporter(&first).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(limiter.check_reporter(&ReporterKey([2; 32])), Ok(()));
        assert_eq!(limiter.check_everyone(), Ok(()));
    }
}
