//! The queue's decisions as pure functions: how long to wait before a retry, and what a failed
//! attempt, an expired lease or a cancel request does to a job. The SQL in `queue` applies
//! these decisions; keeping them here lets them be tested without a database.

use std::time::Duration;

use crate::model::JobStatus;

/// Exponential backoff with jitter between attempts.
///
/// Attempt `n` (1-based, the one that just failed) waits `base · 2^(n-1)`, capped at `max`, and
/// then jittered down to a uniformly random point in its upper half ("equal jitter"): retries
/// of jobs that failed together (a database blip) spread out instead of returning in lockstep,
/// while each still waits at least half its nominal delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), max: Duration::from_secs(300) }
    }
}

impl RetryPolicy {
    /// The nominal (un-jittered) delay after attempt `attempt` failed.
    pub fn nominal(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The delay with jitter; `unit` is a uniform sample in `[0, 1)` (pass `fastrand::f64()`).
    pub fn delay(&self, attempt: i32, unit: f64) -> Duration {
        let nominal = self.nominal(attempt);
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        nominal.mul_f64(0.5 + 0.5 * unit)
    }

    /// [`RetryPolicy::delay`] with a fresh random sample.
    pub fn jittered(&self, attempt: i32) -> Duration {
        self.delay(attempt, fastrand::f64())
    }
}

/// How an attempt ended, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded,
    /// Worth another attempt (a model still loading, a network blip).
    Retryable,
    /// No attempt will do better (corrupt input): fail now, whatever attempts remain.
    Permanent,
    Cancelled,
}

/// What happens to the job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Finish(JobStatus),
    /// Back to the queue, claimable after the delay.
    Retry(Duration),
}

/// The job's next state after attempt `attempts` (of `max_attempts`) ended as `end`.
pub fn after_attempt(end: &AttemptEnd, attempts: i32, max_attempts: i32, retry: &RetryPolicy, unit: f64) -> Next {
    match end {
        AttemptEnd::Succeeded => Next::Finish(JobStatus::Succeeded),
        AttemptEnd::Cancelled => Next::Finish(JobStatus::Cancelled),
        AttemptEnd::Permanent => Next::Finish(JobStatus::Failed),
        AttemptEnd::Retryable if attempts >= max_attempts => Next::Finish(JobStatus::Failed),
        AttemptEnd::Retryable => Next::Retry(retry.delay(attempts, unit)),
    }
}

/// The job's next state when its worker stopped heartbeating (crashed, killed, partitioned):
/// the attempt counts, so a job that kills its worker every time ends `failed` instead of
/// taking the fleet down forever; a cancel request made meanwhile wins.
pub fn after_lease_expiry(attempts: i32, max_attempts: i32, cancel_requested: bool) -> Next {
    if cancel_requested {
        Next::Finish(JobStatus::Cancelled)
    } else if attempts >= max_attempts {
        Next::Finish(JobStatus::Failed)
    } else {
        // No backoff: the worker died, not the job (as far as anyone knows).
        Next::Retry(Duration::ZERO)
    }
}

/// The error recorded when leases ran out on the last attempt.
pub fn lease_expired_error(attempts: i32) -> String {
    format!("the worker running attempt {attempts} stopped heartbeating (lease expired) and no attempts remain")
}

/// What a cancel request does to a job in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelEffect {
    /// Queued: cancelled on the spot.
    CancelNow,
    /// Running: flag it; the worker's handler is told and stops.
    Request,
    /// Already final: nothing to do.
    None,
}

pub fn cancel_effect(status: JobStatus) -> CancelEffect {
    match status {
        JobStatus::Queued => CancelEffect::CancelNow,
        JobStatus::Running => CancelEffect::Request,
        JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled => CancelEffect::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_from_base_up_to_max() {
        let p = RetryPolicy { base: ms(100), max: ms(1000) };
        let nominal: Vec<Duration> = (1..=7).map(|a| p.nominal(a)).collect();
        assert_eq!(nominal, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000), ms(1000)]);
        // Huge attempt counts neither overflow nor exceed the cap.
        assert_eq!(p.nominal(i32::MAX), ms(1000));
        assert_eq!(p.nominal(0), ms(100));
        assert_eq!(p.nominal(-3), ms(100));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_nominal_delay() {
        let p = RetryPolicy { base: ms(1000), max: Duration::from_secs(60) };
        assert_eq!(p.delay(2, 0.0), ms(1000));
        assert_eq!(p.delay(2, 1.0), ms(2000));
        assert_eq!(p.delay(2, 0.5), ms(1500));
        assert_eq!(p.delay(2, f64::NAN), ms(1000));
        let samples: Vec<Duration> = (0..200).map(|_| p.jittered(3)).collect();
        assert!(samples.iter().all(|d| *d >= ms(2000) && *d <= ms(4000)), "{samples:?}");
        // Real jitter: 200 samples are not all the same.
        assert!(samples.iter().any(|d| *d != samples[0]));
    }

    #[test]
    fn retries_until_attempts_run_out_then_fails() {
        let p = RetryPolicy { base: ms(100), max: ms(10_000) };
        let end = AttemptEnd::Retryable;
        assert_eq!(after_attempt(&end, 1, 3, &p, 0.0), Next::Retry(ms(50)));
        assert_eq!(after_attempt(&end, 2, 3, &p, 1.0), Next::Retry(ms(200)));
        assert_eq!(after_attempt(&end, 3, 3, &p, 0.0), Next::Finish(JobStatus::Failed));
        assert_eq!(after_attempt(&end, 1, 1, &p, 0.0), Next::Finish(JobStatus::Failed));
    }

    #[test]
    fn permanent_errors_success_and_cancellation_finish_at_once() {
        let p = RetryPolicy::default();
        assert_eq!(after_attempt(&AttemptEnd::Permanent, 1, 5, &p, 0.0), Next::Finish(JobStatus::Failed));
        assert_eq!(after_attempt(&AttemptEnd::Succeeded, 1, 5, &p, 0.0), Next::Finish(JobStatus::Succeeded));
        assert_eq!(after_attempt(&AttemptEnd::Cancelled, 1, 5, &p, 0.0), Next::Finish(JobStatus::Cancelled));
    }

    #[test]
    fn expired_leases_requeue_count_the_attempt_and_honour_cancels() {
        assert_eq!(after_lease_expiry(1, 3, false), Next::Retry(Duration::ZERO));
        assert_eq!(after_lease_expiry(3, 3, false), Next::Finish(JobStatus::Failed));
        assert_eq!(after_lease_expiry(1, 3, true), Next::Finish(JobStatus::Cancelled));
        assert!(lease_expired_error(3).contains("attempt 3"));
    }

    #[test]
    fn cancel_depends_on_status() {
        assert_eq!(cancel_effect(JobStatus::Queued), CancelEffect::CancelNow);
        assert_eq!(cancel_effect(JobStatus::Running), CancelEffect::Request);
        for s in [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled] {
            assert_eq!(cancel_effect(s), CancelEffect::None);
        }
    }
}
