use std::time::Duration;

use slurptuna_core::testing::{executor_suite, suite_loss, ExecutorHarness};
use slurptuna_exec_local::ThreadExecutor;

use crate::support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thread_executor_passes_the_executor_suite() {
    let dir = tempfile::tempdir().unwrap();
    for parallelism in [1, 3] {
        let exec = ThreadExecutor::new(suite_loss(), parallelism);
        let d = dir.path().join(format!("p{parallelism}"));
        within(executor_suite(&ExecutorHarness::new(&exec, &d)))
            .await
            .unwrap();
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_executor_passes_the_executor_suite() {
    let dir = tempfile::tempdir().unwrap();
    for workers in [1, 3] {
        let exec = crate::support::pool_with(suite_loss(), workers, &[]);
        let d = dir.path().join(format!("w{workers}"));
        let leftovers = || crate::support::live_beaters(&d, "worker process");
        let harness = ExecutorHarness {
            leftovers: Some(&leftovers),
            grace: Duration::from_secs(15),
            ..ExecutorHarness::new(&exec, &d)
        };
        within(executor_suite(&harness)).await.unwrap();
        within(slurptuna_core::Executor::shutdown(&exec, false))
            .await
            .unwrap();
    }
}
