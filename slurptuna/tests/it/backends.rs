//! Backends as values: the sync API inside async runtimes, the async API, a user's own executor
//! in DISTRIBUTED mode, and a build without a scheduler.

use std::sync::Arc;

use slurptuna::testing::FakeExecutor;
use slurptuna::{optimize_run, optimize_run_async, ExecutionMode, RunOptions, Scheduler};

use crate::util::{bowl, opts, trial_sequence};

fn small(root: &std::path::Path, name: &str) -> RunOptions {
    RunOptions {
        n_trials: 4,
        run_name: Some(name.into()),
        ..opts(root)
    }
}

#[test]
fn optimize_run_completes_inside_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let expected = optimize_run(&bowl("rt"), small(dir.path(), "plain")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // As in `#[tokio::main] async fn main() { optimize_run(..) }`.
    let r = rt
        .block_on(async { optimize_run(&bowl("rt"), small(dir.path(), "multi")) })
        .unwrap();
    assert_eq!(trial_sequence(&r), trial_sequence(&expected));
}

#[test]
fn optimize_run_completes_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let expected = optimize_run(&bowl("rt1"), small(dir.path(), "plain")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(async { optimize_run(&bowl("rt1"), small(dir.path(), "current")) })
        .unwrap();
    assert_eq!(trial_sequence(&r), trial_sequence(&expected));
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_api_gives_what_the_sync_one_gives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let expected = tokio::task::spawn_blocking(move || {
        optimize_run(&bowl("async"), small(&root, "sync")).unwrap()
    })
    .await
    .unwrap();
    let r = optimize_run_async(&bowl("async"), small(dir.path(), "async"))
        .await
        .unwrap();
    assert_eq!(trial_sequence(&r), trial_sequence(&expected));
}

#[test]
fn a_users_own_executor_runs_a_distributed_study() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, handle) = FakeExecutor::new(bowl("own"));
    let r = optimize_run(
        &bowl("own"),
        RunOptions {
            mode: ExecutionMode::Distributed,
            scheduler: Scheduler::executor(Arc::new(fake)),
            ..small(dir.path(), "own")
        },
    )
    .unwrap();
    assert_eq!(r.n_complete, 4);
    assert_eq!(
        handle.calls().len(),
        4,
        "every trial went to the user's executor"
    );
    let single = optimize_run(&bowl("own"), small(dir.path(), "single")).unwrap();
    assert_eq!(trial_sequence(&r), trial_sequence(&single));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.run_dir.join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["mode"], "distributed");
    assert_eq!(meta["backend"], "fake");
}

#[cfg(not(feature = "slurm"))]
#[test]
fn without_a_scheduler_distributed_mode_is_an_error_before_any_run_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let e = optimize_run(
        &bowl("none"),
        RunOptions {
            mode: ExecutionMode::Distributed,
            ..opts(&root)
        },
    )
    .unwrap_err();
    assert!(matches!(e, slurptuna::Error::NoScheduler), "{e}");
    assert!(e.to_string().contains("'mode'"), "{e}");
    assert!(!root.exists());
    assert!(Scheduler::compiled().is_empty());
}

#[test]
fn the_distributed_knobs_have_the_seeds_defaults() {
    let o = RunOptions::default();
    assert_eq!(o.slurm_qos.as_deref(), Some("short"));
    assert_eq!(o.mem_per_cpu, "2G");
    assert_eq!(
        (o.slurm_poll_seconds, o.slurm_timeout_minutes),
        (15.0, 120.0)
    );
    assert_eq!((o.cpus_per_task, o.trial_retry_attempts), (1, 1));
    assert!(o.fail_on_chunk_error);
    assert_eq!(o.array_parallelism_limit, None);
    assert_eq!(o.worker_time_limit, std::time::Duration::from_secs(7200));
    let e = slurptuna::EntriesOptions::default();
    assert_eq!((e.slurm_qos, e.mem_per_cpu), (o.slurm_qos, o.mem_per_cpu));
}

#[cfg(feature = "slurm")]
#[test]
fn slurm_is_the_default_scheduler() {
    assert_eq!(Scheduler::default().name(), Some("slurm"));
    assert_eq!(Scheduler::compiled(), ["slurm"]);
    assert!(Scheduler::named("slurm").is_some());
    assert!(Scheduler::named("pbs").is_none());
}
