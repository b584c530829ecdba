//! The retry policy: what to do after a chunk attempt failed, decided on its typed
//! [`FailureKind`], never on a scheduler's state name.

use crate::executor::FailureKind;

/// What the executor does after a chunk attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryDecision {
    /// Cancel the trial's other tasks and submit every chunk that has no result yet again
    /// (`fail_on_chunk_error`).
    RetryTrial,
    /// Submit only the failed chunk again; the trial's other tasks run on.
    RetryChunk,
    /// Fail the trial with this failure (and cancel its other tasks).
    GiveUp,
}

/// Retries of failed chunk attempts (from [`super::BatchConfig::retry_policy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Retries after a failed attempt (1: two attempts in all).
    pub trial_retry_attempts: u32,
    /// Retry the whole trial (its missing chunks) rather than the failed chunk alone.
    pub fail_on_chunk_error: bool,
}

impl RetryPolicy {
    /// Whether a failure of `kind` is worth another attempt at all. Every kind is: a loss may
    /// be flaky, a node may fail, a queue may be slow; the number of attempts bounds the cost.
    pub fn is_retryable(kind: FailureKind) -> bool {
        match kind {
            FailureKind::Loss
            | FailureKind::Crashed
            | FailureKind::Scheduler
            | FailureKind::TimeLimit
            | FailureKind::AttemptTimeout
            | FailureKind::Vanished
            | FailureKind::NoResult
            | FailureKind::Other => true,
        }
    }

    /// Whether the task of a failed attempt of `kind` may still be in the queue, so that it must
    /// be cancelled before its chunk is submitted again: only when the executor gave up waiting
    /// for it ([`FailureKind::AttemptTimeout`]); the other kinds are ends the scheduler reported.
    pub fn still_queued(kind: FailureKind) -> bool {
        kind == FailureKind::AttemptTimeout
    }

    /// The decision after a failure of `kind`, when `attempts` attempts were made: of the trial
    /// with `fail_on_chunk_error`, of the failed chunk without it.
    pub fn decide(&self, kind: FailureKind, attempts: u32) -> RetryDecision {
        if !Self::is_retryable(kind) || attempts > self.trial_retry_attempts {
            RetryDecision::GiveUp
        } else if self.fail_on_chunk_error {
            RetryDecision::RetryTrial
        } else {
            RetryDecision::RetryChunk
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [FailureKind; 8] = [
        FailureKind::Loss,
        FailureKind::Crashed,
        FailureKind::Scheduler,
        FailureKind::TimeLimit,
        FailureKind::AttemptTimeout,
        FailureKind::Vanished,
        FailureKind::NoResult,
        FailureKind::Other,
    ];

    #[test]
    fn every_kind_is_retried_while_attempts_remain() {
        for fail_on_chunk_error in [true, false] {
            let p = RetryPolicy {
                trial_retry_attempts: 1,
                fail_on_chunk_error,
            };
            let retry = if fail_on_chunk_error {
                RetryDecision::RetryTrial
            } else {
                RetryDecision::RetryChunk
            };
            for kind in KINDS {
                assert!(RetryPolicy::is_retryable(kind), "{kind:?}");
                assert_eq!(p.decide(kind, 1), retry, "{kind:?} after 1 attempt");
                assert_eq!(
                    p.decide(kind, 2),
                    RetryDecision::GiveUp,
                    "{kind:?} after 2 attempts"
                );
            }
        }
    }

    #[test]
    fn no_retries_gives_up_at_once_and_more_retries_wait_longer() {
        let none = RetryPolicy {
            trial_retry_attempts: 0,
            fail_on_chunk_error: true,
        };
        let three = RetryPolicy {
            trial_retry_attempts: 3,
            fail_on_chunk_error: false,
        };
        for kind in KINDS {
            assert_eq!(none.decide(kind, 1), RetryDecision::GiveUp, "{kind:?}");
            for attempts in 1..=3 {
                assert_eq!(three.decide(kind, attempts), RetryDecision::RetryChunk);
            }
            assert_eq!(three.decide(kind, 4), RetryDecision::GiveUp);
        }
    }

    #[test]
    fn only_an_attempt_timeout_leaves_a_task_to_cancel() {
        for kind in KINDS {
            assert_eq!(
                RetryPolicy::still_queued(kind),
                kind == FailureKind::AttemptTimeout,
                "{kind:?}"
            );
        }
    }
}
