//! `optimize_run`: one study, from validated options to a result, over the chosen backends.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use indicatif::MultiProgress;
use slurptuna_core::{
    best_of, format_utc, BackendEnv, Executor, LossDefinition, ResumeRecord, RunMeta, Sampler,
    SeedLayout, Store, TrialRecord, ValidatedBest, WorkerCommand, RUN_FORMAT_VERSION,
};
use slurptuna_store::{FsStore, SyncPolicy};

use crate::controller::{Stop, Study};
use crate::error::{Error, Result};
use crate::mode::ExecutionMode;
use crate::options::{Durability, RunOptions, SamplerChoice};
use crate::progress::{bars_enabled, Progress};
use crate::result::OptimizeResult;
use crate::{signals, validate, worker};

/// Optimises `loss` over its parameter space: each trial's value is the mean loss over the seeds.
///
/// Every option is validated before anything is written. A new run directory
/// `run_root/<loss>_vNNNN` is claimed, or, with `run_name`, the named run is created or **resumed**:
/// trials continue until `n_trials` have finished in total, trials that were in flight are finished
/// with their recorded parameters, and stored chunk results are reused.
///
/// Failed trials are recorded with their reason and the study goes on; if no trial completes, the
/// result is [`Error::NoTrialCompleted`].
///
/// In a worker process (a local pool worker or a Slurm task started by slurptuna) this call
/// evaluates the assigned seeds and exits the process instead.
///
/// ```no_run
/// use slurptuna::{loss, optimize_run, RunOptions};
/// let model = loss("bowl")
///     .description("a noisy quadratic bowl")
///     .param("x", (0.0, 1.0))
///     .build(|p, seed, _ctx| Ok(((p.f64("x")? - 0.3).powi(2) + (seed % 7) as f64 * 1e-4).into()))?;
/// let r = optimize_run(&model, RunOptions { n_trials: 30, n_seeds: Some(20), ..Default::default() })?;
/// println!("best x = {}", r.best_params.f64("x")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn optimize_run(loss: &LossDefinition, opts: RunOptions) -> Result<OptimizeResult> {
    // A worker does its work (synchronous code) and exits before any runtime is started.
    worker::dispatch(&opts.scheduler);
    block_on(|| optimize_run_async(loss, opts))
}

/// [`optimize_run`] as a future, for programs that already run an async runtime (tokio: the
/// backends use its timers, processes and blocking threads).
///
/// It behaves exactly like [`optimize_run`]: the same validation, run directory, resume and
/// worker mode (a worker process evaluates its seeds and exits when it reaches this call).
///
/// ```no_run
/// use slurptuna::{loss, optimize_run_async, RunOptions};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let model = loss("bowl")
///     .description("a quadratic bowl")
///     .param("x", (0.0, 1.0))
///     .build(|p, _seed, _ctx| Ok(((p.f64("x")? - 0.3).powi(2)).into()))?;
/// let r = optimize_run_async(&model, RunOptions { n_trials: 20, ..Default::default() }).await?;
/// println!("best x = {}", r.best_params.f64("x")?);
/// # Ok(()) }
/// ```
pub async fn optimize_run_async(loss: &LossDefinition, opts: RunOptions) -> Result<OptimizeResult> {
    worker::dispatch(&opts.scheduler);
    let layout = Arc::new(validate::validate(loss, &opts)?);
    let call = Call::new(&opts, None);
    let shared = call.shared_executor(loss, &opts).await?;
    let r = run_study(loss, &opts, layout, &call, shared.as_ref()).await;
    if let Some(e) = &shared {
        shutdown(e.as_ref(), &opts, &r).await;
    }
    release(loss);
    r
}

/// Stops what a batch loss keeps between calls (a command loss's idle processes, including the
/// one its preflight started): the call is over.
pub(crate) fn release(loss: &LossDefinition) {
    if let Some(batch) = loss.batch() {
        batch.release();
    }
}

/// Runs the future `make()` builds to completion on a runtime of its own. Called from inside an
/// async runtime (where blocking on one is not allowed), it runs on a thread of its own, so the
/// synchronous API also works from async code.
pub(crate) fn block_on<T, F>(make: impl FnOnce() -> F + Send) -> Result<T>
where
    T: Send,
    F: std::future::Future<Output = Result<T>>,
{
    let run = move || -> Result<T> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("slurptuna")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        runtime.block_on(make())
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("slurptuna-call".into())
            .spawn_scoped(s, run)
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => Err(Error::Runtime(e)),
        }
    })
}

impl Drop for Call {
    fn drop(&mut self) {
        signals::disarm();
    }
}

/// What one `optimize_*` call shares between its studies.
pub(crate) struct Call {
    pub(crate) interrupted: Arc<AtomicBool>,
    pub(crate) bars: bool,
    pub(crate) multi: Option<MultiProgress>,
}

impl Call {
    pub(crate) fn new(opts: &RunOptions, multi: Option<MultiProgress>) -> Self {
        Self {
            interrupted: signals::arm(),
            bars: bars_enabled(opts.progress),
            multi,
        }
    }

    /// The executor shared by every study of this call in DISTRIBUTED mode (one poller, one
    /// global cap on running tasks), once its scheduler said it would accept the tasks as
    /// configured ([`Executor::preflight`]: before any run directory or trial exists); `None`
    /// in SINGLE mode, where each study has its own.
    pub(crate) async fn shared_executor(
        &self,
        loss: &LossDefinition,
        opts: &RunOptions,
    ) -> Result<Option<Arc<dyn Executor>>> {
        match opts.mode {
            ExecutionMode::Single => Ok(None),
            ExecutionMode::Distributed => {
                let backend = opts.scheduler.backend().ok_or(Error::NoScheduler)?;
                let worker = worker_command(opts)?;
                let distributed = validate::distributed_options(opts)?;
                let env = BackendEnv {
                    loss,
                    worker: &worker,
                    worker_parallelism: opts.worker_parallelism,
                    keep_jobs_on_interrupt: opts.keep_jobs_on_interrupt,
                    distributed: &distributed,
                };
                let executor = backend.executor(&env)?;
                executor.preflight().await?;
                Ok(Some(executor))
            }
        }
    }
}

/// How workers are started: this program (unless `loss_module` names another), its argv and
/// working directory.
fn worker_command(opts: &RunOptions) -> Result<WorkerCommand> {
    let io = |what: &'static str| {
        move |e: std::io::Error| {
            Error::option("loss_module", format!("cannot determine {what}: {e}"))
        }
    };
    let program = match &opts.loss_module {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(io("the current program"))?,
    };
    let args = if opts.forward_sys_argv_to_workers {
        std::env::args_os().skip(1).collect()
    } else {
        Vec::new()
    };
    let cwd = std::env::current_dir().map_err(io("the working directory"))?;
    Ok(WorkerCommand { program, args, cwd })
}

fn local_executor(loss: &LossDefinition, opts: &RunOptions) -> Result<Arc<dyn Executor>> {
    // A batch loss (an external command) already runs in processes of its own, one per
    // thread: worker processes around them would only add a hop.
    if opts.use_processes && !loss.is_batch() {
        let worker = worker_command(opts)?;
        let cfg = slurptuna_exec_local::ProcessPoolConfig {
            program: worker.program,
            args: worker.args,
            cwd: worker.cwd,
            workers: opts.worker_parallelism,
        };
        Ok(Arc::new(slurptuna_exec_local::ProcessExecutor::new(
            loss.clone(),
            cfg,
        )?))
    } else {
        Ok(Arc::new(slurptuna_exec_local::ThreadExecutor::new(
            loss.clone(),
            opts.worker_parallelism,
        )))
    }
}

fn sampler(opts: &RunOptions) -> Arc<dyn Sampler> {
    use slurptuna_sampler::{QmcSampler, RandomSampler, TpeSampler};
    match &opts.sampler {
        SamplerChoice::Tpe => Arc::new(TpeSampler::new(opts.random_seed)),
        SamplerChoice::Random => Arc::new(RandomSampler::new(opts.random_seed)),
        SamplerChoice::Qmc => Arc::new(QmcSampler::new(opts.random_seed)),
        SamplerChoice::Custom(s) => s.clone(),
    }
}

fn new_meta(
    loss: &LossDefinition,
    opts: &RunOptions,
    layout: &SeedLayout,
    sampler: &str,
    backend: &str,
) -> RunMeta {
    let seeds = layout.seeds();
    RunMeta {
        format_version: RUN_FORMAT_VERSION,
        loss_name: loss.name().to_string(),
        description: loss.description().to_string(),
        run_name: String::new(),
        run_dir: String::new(),
        mode: opts.mode.as_str().to_string(),
        backend: backend.to_string(),
        n_trials: opts.n_trials,
        entry_id: opts.entry_id.clone(),
        started_at_utc: format_utc(SystemTime::now()),
        seed_start: seeds.get(0),
        seed_end: seeds.get(layout.n_seeds() - 1),
        n_seeds: layout.n_seeds(),
        chunk_size: layout.chunk_size(),
        num_chunks: layout.num_chunks(),
        max_concurrent_trials: opts.max_concurrent_trials as u64,
        worker_parallelism: opts.worker_parallelism as u64,
        direction: opts.direction,
        random_seed: opts.random_seed,
        sampler: sampler.to_string(),
        space: loss.space().clone(),
        seeds_fingerprint: format!("{:016x}", layout.fingerprint()),
        resumes: Vec::new(),
        completed_at_utc: None,
        duration_seconds: None,
        best_value: None,
        best_params: None,
        settings: settings(opts),
    }
}

/// The settings recorded at the top level of `meta.json`: the original's DISTRIBUTED fields
/// (recorded in SINGLE mode too, as the original does), then the scheduler's own.
fn settings(opts: &RunOptions) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut m = serde_json::Map::new();
    m.insert(
        "array_parallelism_limit".into(),
        json!(opts.array_parallelism_limit),
    );
    m.insert("max_queued_tasks".into(), json!(opts.max_queued_tasks));
    m.insert(
        "worker_time_limit_seconds".into(),
        json!(opts.worker_time_limit.as_secs()),
    );
    m.insert("slurm_qos".into(), json!(opts.slurm_qos));
    m.insert("durability".into(), json!(opts.durability.as_str()));
    m.insert(
        "sync_interval_seconds".into(),
        json!(opts.sync_interval.as_secs_f64()),
    );
    m.insert(
        "racing".into(),
        match &opts.racing {
            Some(r) => json!({ "alpha": r.alpha, "min_seeds": r.min_seeds, "margin": r.margin }),
            None => json!(false),
        },
    );
    if let Some(v) = &opts.validation_seeds {
        let seeds = match v {
            crate::options::ValidationSeeds::Count(n) => json!(n),
            crate::options::ValidationSeeds::List(l) => json!(l),
        };
        m.insert("validation_seeds".into(), seeds);
        m.insert("validate_top_k".into(), json!(opts.validate_top_k));
    }
    if let Some(scheduler) = opts.scheduler.backend() {
        m.insert("scheduler".into(), json!(scheduler.name()));
        m.extend(scheduler.settings());
    }
    m
}

/// The store's fsync policy for `opts.durability`.
fn sync_policy(opts: &RunOptions) -> SyncPolicy {
    match opts.durability {
        Durability::Always => SyncPolicy::Always,
        Durability::Grouped => SyncPolicy::Grouped {
            interval: opts.sync_interval,
        },
    }
}

/// Claims (or re-opens) the run directory and reconciles `meta.json`.
fn open_store(
    loss: &LossDefinition,
    opts: &RunOptions,
    mut meta: RunMeta,
) -> Result<(FsStore, RunMeta)> {
    let (store, previous) = match &opts.run_name {
        None => (
            FsStore::create_versioned(&opts.run_root, loss.name(), &meta)?,
            None,
        ),
        Some(name) => {
            // Checked (again, it is cheap) so the path is built from a `RunName` only.
            let name = validate::check_dir_name("run_name", name)?;
            FsStore::open_or_create(&opts.run_root.join(name.as_str()), &meta)?
        }
    };
    let store = store.with_sync_policy(sync_policy(opts));
    let run_dir = store.run_dir().map(PathBuf::from).unwrap_or_default();
    meta.run_dir = run_dir.display().to_string();
    meta.run_name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(prev) = previous {
        let differences = prev.resume_conflicts(&meta);
        if !differences.is_empty() {
            return Err(Error::ResumeMismatch {
                run_dir,
                differences,
            });
        }
        let history = store.load()?;
        meta.started_at_utc = prev.started_at_utc.clone();
        meta.resumes = prev.resumes.clone();
        meta.resumes.push(ResumeRecord {
            at_utc: format_utc(SystemTime::now()),
            finished_trials: history.n_finished() as u64,
            unfinished_trials: history.unfinished().count() as u64,
        });
    }
    store.write_meta(&meta)?;
    Ok((store, meta))
}

/// Runs one study (used by `optimize_run` and once per entry by `optimize_entries`).
pub(crate) async fn run_study(
    loss: &LossDefinition,
    opts: &RunOptions,
    layout: Arc<SeedLayout>,
    call: &Call,
    shared: Option<&Arc<dyn Executor>>,
) -> Result<OptimizeResult> {
    let started = SystemTime::now();
    let sampler = sampler(opts);
    let backend = match (shared, opts.use_processes && !loss.is_batch()) {
        (Some(e), _) => e.name(),
        (None, true) => "processes",
        (None, false) => "threads",
    };
    let meta = new_meta(loss, opts, &layout, sampler.name(), backend);
    let (store, mut meta) = open_store(loss, opts, meta)?;
    let run_dir = store.run_dir().map(PathBuf::from).unwrap_or_default();
    let history = store.load()?;
    let executor = match shared {
        Some(e) => e.clone(),
        None => local_executor(loss, opts)?,
    };
    let label = match &opts.entry_id {
        Some(id) => format!("{} [{id}]", loss.name()),
        None => loss.name().to_string(),
    };
    let progress = Progress::new(&label, opts.progress, call.bars, call.multi.as_ref());
    let study_layout = layout.clone();
    let study = Study {
        loss,
        entry_id: opts.entry_id.as_deref().map(Arc::from),
        direction: opts.direction,
        n_trials: opts.n_trials,
        max_concurrent: opts.max_concurrent_trials,
        layout,
        keep_seed_values: opts.keep_seed_values,
        store: &store,
        sampler: sampler.as_ref(),
        executor: executor.as_ref(),
        progress: &progress,
        interrupted: &call.interrupted,
        summary_interval: opts.sync_interval,
        // A batch scheduler's jobs outlive the controller: the trial they compute must be in a
        // journal that an OS crash cannot forget.
        sync_before_dispatch: shared.is_some(),
        racing: opts.racing.map(|r| {
            crate::controller::Racing::new(
                r.config(study_layout.n_seeds(), study_layout.chunk_size()),
                opts.random_seed,
            )
        }),
    };
    let validation = crate::validate::validation_layout(opts, &study_layout)?.map(Arc::new);
    let stored_validations = history.validations().clone();
    let outcome = match study.run(history).await {
        Ok(finished) => match &validation {
            Some(v) => study
                .validate(
                    &finished,
                    v.clone(),
                    opts.validate_top_k,
                    &stored_validations,
                )
                .await
                .map(|best| (finished, best)),
            None => Ok((finished, None)),
        },
        Err(stop) => Err(stop),
    };
    if shared.is_none() {
        executor.shutdown(false).await?;
    }
    let (finished, validated) = match outcome {
        Ok(f) => f,
        Err(Stop::Interrupted) => return Err(Error::Interrupted { run_dir }),
        Err(Stop::Fatal(e)) => return Err(e.into()),
    };
    let n_complete = finished.iter().filter(|t| t.value().is_some()).count() as u64;
    let n_pruned = finished.iter().filter(|t| t.pruned().is_some()).count() as u64;
    let n_failed = finished.len() as u64 - n_complete - n_pruned;
    let (seeds_evaluated, seeds_saved) =
        crate::controller::seed_counts(&finished, study_layout.n_seeds());
    let Some(best) = best_of(&finished, opts.direction).cloned() else {
        let last_failure = finished
            .iter()
            .rev()
            .find_map(|t| match &t.state {
                slurptuna_core::TrialState::Failed { reason } => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "none recorded".to_string());
        return Err(Error::NoTrialCompleted {
            run_dir,
            n_failed,
            last_failure,
        });
    };
    if let Some(v) = &validated {
        store.write_summary(&slurptuna_core::RunSummary {
            validated: Some(v.clone()),
            ..crate::controller::summarize(
                &finished,
                opts.direction,
                opts.n_trials,
                study_layout.n_seeds(),
            )
        })?;
        report_validated(v, &best, opts.progress);
    }
    let best_value = best.value().unwrap_or(f64::NAN);
    let now = SystemTime::now();
    meta.completed_at_utc = Some(format_utc(now));
    meta.duration_seconds = Some(
        now.duration_since(started)
            .unwrap_or_default()
            .as_secs_f64(),
    );
    meta.best_value = Some(best_value);
    meta.best_params = Some(best.params.clone());
    store.write_meta(&meta)?;
    Ok(OptimizeResult {
        loss_name: loss.name().to_string(),
        best_value,
        best_params: best.params,
        best_trial: best.number,
        n_trials: opts.n_trials,
        n_complete,
        n_failed,
        n_pruned,
        seeds_evaluated,
        seeds_saved,
        study_name: loss.name().to_string(),
        run_dir,
        mode: opts.mode,
        trials: finished,
        validated,
    })
}

/// Says what the honest best found: the validated best beside the fit's, and when they differ
/// (a `tracing` event if the program set a subscriber, else a line on stderr unless `progress`
/// is off).
fn report_validated(v: &ValidatedBest, fit: &TrialRecord, progress: bool) {
    let fit_value = fit.value().unwrap_or(f64::NAN);
    let line = if v.differs() {
        format!(
            "the validated best differs from the fit's best: trial {} has mean {:.6} ± {:.2e} on {} fresh seeds; the fit's best, trial {} (fit mean {:.6}), was a lucky draw",
            v.trial.0, v.value, v.stderr, v.n_seeds, fit.number.0, fit_value
        )
    } else {
        format!(
            "the fit's best trial {} is also the validated best: mean {:.6} ± {:.2e} on {} fresh seeds (fit mean {:.6})",
            v.trial.0, v.value, v.stderr, v.n_seeds, fit_value
        )
    };
    match (tracing::dispatcher::has_been_set(), v.differs()) {
        (true, true) => tracing::warn!("{line}"),
        (true, false) => tracing::info!("{line}"),
        (false, _) if progress => eprintln!("slurptuna: {line}"),
        (false, _) => {}
    }
}

/// Stops a shared executor after the call: on interruption, its jobs are cancelled unless the user
/// asked to keep them for a resume.
pub(crate) async fn shutdown<T>(executor: &dyn Executor, opts: &RunOptions, r: &Result<T>) {
    let keep = matches!(r, Err(Error::Interrupted { .. })) && opts.keep_jobs_on_interrupt;
    if let Err(e) = executor.shutdown(keep).await {
        tracing::warn!(error = %e, "could not stop the executor cleanly");
    }
}
