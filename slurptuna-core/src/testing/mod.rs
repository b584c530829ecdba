//! Test support, public under the `testing` feature: in-memory twins of the backends and the
//! conformance suites every implementation of a trait runs. Not a stable API.
//!
//! - [`MemoryStore`]: a [`Store`](crate::Store) in memory (clones share state).
//! - [`FakeExecutor`] and its [`FakeExecutorHandle`]: an [`Executor`](crate::Executor) that
//!   evaluates in-process and is scripted through the handle (delays, partial delivery then
//!   failure, fatal errors), with a record of every call.
//! - [`RecordingSink`]: the one [`ChunkSink`](crate::ChunkSink) tests use; it refuses a chunk
//!   delivered twice, a chunk that was not asked for and a result with the wrong seed count.
//! - The suites: [`executor_suite`] (with [`suite_loss`], the loss an executor under test must be
//!   able to evaluate, also in its worker processes), [`sampler_suite`] and [`store_suite`].
//!   Each returns [`CoreError::Conformance`] naming the check an
//!   implementation failed.

mod executor_suite;
mod fake;
mod memory;
mod sampler_suite;
mod sink;
mod store_suite;

pub use executor_suite::{executor_suite, suite_job, suite_loss, ExecutorHarness, SUITE_LOSS};
pub use fake::{FakeExecutor, FakeExecutorHandle};
pub use memory::MemoryStore;
pub use sampler_suite::sampler_suite;
pub use sink::RecordingSink;
pub use store_suite::store_suite;

use crate::error::CoreError;

pub(crate) fn conformance(
    suite: &'static str,
    check: &'static str,
    detail: impl Into<String>,
) -> CoreError {
    CoreError::Conformance {
        suite,
        check,
        detail: detail.into(),
    }
}
