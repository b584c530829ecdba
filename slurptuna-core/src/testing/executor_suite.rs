//! `executor_suite`: the conformance suite of [`Executor`] backends, and the loss it evaluates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::evaluate::error_chain;
use crate::executor::{ExecError, Executor, FailureKind, TrialJob};
use crate::loss::{loss, LossDefinition};
use crate::params::Params;
use crate::seeds::{SeedLayout, SeedSpec};
use crate::space::search_param;
use crate::testing::{conformance, RecordingSink};
use crate::trial::TrialNumber;

/// The name of [`suite_loss`].
pub const SUITE_LOSS: &str = "slurptuna-conformance";

/// How long one seed of the `slow` behaviour takes.
const SLOW_SEED: Duration = Duration::from_millis(200);

/// The loss [`executor_suite`] evaluates. Build it (which registers it) in the executor under
/// test and in every worker program the executor starts, before the worker's `optimize_run`.
///
/// Parameters: `x` in `[0, 1]` and `behaviour`, one of
/// - `value`: returns `1000 x + seed`, so a value tells its params and seed apart;
/// - `fail`: like `value`, but returns an error for seed 3;
/// - `slow`: creates the file `beat-<pid>-<trial>-<seed>` in the directory named by the entry id,
///   then sleeps 200 ms, so that a test sees which seeds started and when.
pub fn suite_loss() -> LossDefinition {
    let built = loss(SUITE_LOSS)
        .description("the executor conformance suite's loss")
        .param("x", (0.0, 1.0))
        .param(
            "behaviour",
            search_param().allowed(["value", "fail", "slow"]),
        )
        .build(|p, seed, ctx| {
            let value = 1000.0 * p.f64("x")? + seed as f64;
            match p.str("behaviour")? {
                "fail" if seed == 3 => Err(format!("seed {seed} fails on purpose").into()),
                "slow" => {
                    let dir = ctx
                        .entry_id()
                        .ok_or("the slow behaviour needs an entry id")?;
                    let beat = Path::new(dir).join(format!(
                        "beat-{}-{}-{seed}",
                        std::process::id(),
                        ctx.trial_number()
                    ));
                    std::fs::write(beat, b"")?;
                    std::thread::sleep(SLOW_SEED);
                    Ok(value.into())
                }
                _ => Ok(value.into()),
            }
        });
    match built {
        Ok(l) => l,
        // The definition is a constant: it is valid.
        Err(e) => unreachable!("the suite loss is valid: {e}"),
    }
}

/// A job of [`suite_loss`]: trial `trial` with `behaviour` and `x`, the given seeds in chunks of
/// `chunk_size`, per-seed values kept, all chunks requested, its trial directory under `dir`.
pub fn suite_job(
    trial: u64,
    behaviour: &str,
    x: f64,
    seeds: Vec<u64>,
    chunk_size: u64,
    dir: &Path,
) -> Result<TrialJob> {
    let layout = SeedLayout::resolve(
        &SeedSpec {
            seeds: Some(seeds),
            chunk_size: Some(chunk_size),
            ..Default::default()
        },
        0,
    )?;
    let params: Params = [
        ("x", crate::ParamValue::Float(x)),
        ("behaviour", behaviour.into()),
    ]
    .into_iter()
    .collect();
    Ok(TrialJob {
        loss_name: SUITE_LOSS.to_string(),
        entry_id: None,
        trial: TrialNumber(trial),
        params,
        chunks: layout.chunks().collect(),
        layout: Arc::new(layout),
        trial_dir: Some(dir.join(format!("trial_{trial:05}"))),
        keep_seed_values: true,
    })
}

/// What [`executor_suite`] needs besides the executor.
pub struct ExecutorHarness<'a> {
    /// The executor under test; it evaluates [`suite_loss`].
    pub executor: &'a dyn Executor,
    /// A directory the executor's workers can see (trial directories and heartbeat files go
    /// below it).
    pub dir: &'a Path,
    /// How long work may take to start (a scheduler's queue). Default 60 s.
    pub start_timeout: Duration,
    /// How long work may take to stop after its future was dropped. Default 10 s.
    pub grace: Duration,
    /// Lists what the executor left alive (processes, jobs); the suite waits up to `grace` for
    /// it to be empty after a dropped evaluation. Default: not checked beyond heartbeats.
    pub leftovers: Option<&'a (dyn Fn() -> Vec<String> + Send + Sync)>,
}

impl<'a> ExecutorHarness<'a> {
    /// A harness with the default timeouts and no leftover check.
    pub fn new(executor: &'a dyn Executor, dir: &'a Path) -> Self {
        Self {
            executor,
            dir,
            start_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            leftovers: None,
        }
    }
}

fn fail(check: &'static str, detail: impl Into<String>) -> crate::CoreError {
    conformance("executor", check, detail)
}

fn expect_values(sink: &RecordingSink, job: &TrialJob, check: &'static str) -> Result<()> {
    if let Some(p) = sink.problems().first() {
        return Err(fail(check, p.clone()));
    }
    let x = job.params.f64("x")?;
    let mut chunks = job.chunks.clone();
    chunks.sort();
    let want: Vec<f64> = chunks
        .iter()
        .flat_map(|&c| job.layout.chunk_seeds(c))
        .map(|s| 1000.0 * x + s as f64)
        .collect();
    match sink.values() {
        Some(v) if v == want => Ok(()),
        got => Err(fail(
            check,
            format!(
                "trial {}: chunks {:?} must deliver the values {want:?} in seed order, got {got:?}",
                job.trial, job.chunks
            ),
        )),
    }
}

async fn evaluate(
    h: &ExecutorHarness<'_>,
    job: &TrialJob,
    sink: &RecordingSink,
) -> Result<(), ExecError> {
    h.executor.evaluate(job.clone(), sink).await
}

/// Evaluates `job`, which must succeed; a failure is reported with what the sink refused.
async fn succeed(
    h: &ExecutorHarness<'_>,
    job: &TrialJob,
    sink: &RecordingSink,
    check: &'static str,
) -> Result<()> {
    match evaluate(h, job, sink).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let why = match sink.problems().first() {
                Some(p) => p.clone(),
                None => error_chain(&e),
            };
            Err(fail(check, format!("trial {}: {why}", job.trial)))
        }
    }
}

fn beats(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("beat-"))
                .count()
        })
        .unwrap_or(0)
}

/// The conformance suite for [`Executor`] backends, run on an executor of [`suite_loss`].
///
/// Checks: nothing requested, nothing done; every requested chunk delivered exactly once with
/// its values in seed order (non-contiguous seeds, a subset of chunks); concurrent trials kept
/// apart; a failing seed fails its trial with [`ExecError::Trial`] naming the seed, and the
/// executor goes on; a sink error is [`ExecError::Fatal`]; dropping the future stops the work
/// (no seed starts after `grace`, and `leftovers` empties).
pub async fn executor_suite(h: &ExecutorHarness<'_>) -> Result<()> {
    std::fs::create_dir_all(h.dir)
        .map_err(|e| fail("setup", format!("{}: {e}", h.dir.display())))?;
    let seeds = vec![100, 7, 3, 55, 42, 9, 11];

    let mut job = suite_job(0, "value", 0.25, seeds.clone(), 3, h.dir)?;
    job.chunks.clear();
    let sink = RecordingSink::for_job(&job);
    succeed(h, &job, &sink, "nothing requested").await?;
    if !sink.order().is_empty() || !sink.problems().is_empty() {
        return Err(fail("nothing requested", "no chunk may be delivered"));
    }

    let job = suite_job(1, "value", 0.25, seeds.clone(), 3, h.dir)?;
    let sink = RecordingSink::for_job(&job);
    succeed(h, &job, &sink, "each chunk once, in seed order").await?;
    expect_values(&sink, &job, "each chunk once, in seed order")?;

    let mut job = suite_job(2, "value", 0.5, seeds.clone(), 3, h.dir)?;
    job.chunks = vec![crate::ChunkIndex(1)];
    let sink = RecordingSink::for_job(&job);
    succeed(h, &job, &sink, "only the requested chunks").await?;
    expect_values(&sink, &job, "only the requested chunks")?;

    let jobs: Vec<TrialJob> = (0..4)
        .map(|k| {
            suite_job(
                10 + k,
                "value",
                0.1 * (k + 1) as f64,
                (0..6).collect(),
                2,
                h.dir,
            )
        })
        .collect::<Result<_>>()?;
    let sinks: Vec<RecordingSink> = jobs.iter().map(RecordingSink::for_job).collect();
    let outcomes = futures::future::join_all(
        jobs.iter()
            .zip(&sinks)
            .map(|(j, s)| succeed(h, j, s, "concurrent trials")),
    )
    .await;
    for ((job, sink), outcome) in jobs.iter().zip(&sinks).zip(outcomes) {
        outcome?;
        expect_values(sink, job, "concurrent trials")?;
    }

    let job = suite_job(20, "fail", 0.5, (0..6).collect(), 2, h.dir)?;
    let sink = RecordingSink::for_job(&job);
    match evaluate(h, &job, &sink).await {
        Err(ExecError::Trial(f)) if f.reason.contains("seed 3") => {
            if f.kind != FailureKind::Loss
                && f.kind != FailureKind::Crashed
                && f.kind != FailureKind::Scheduler
            {
                return Err(fail(
                    "a failing seed fails its trial",
                    format!("a loss error is reported as {:?}", f.kind),
                ));
            }
        }
        other => {
            return Err(fail(
                "a failing seed fails its trial",
                format!("must be ExecError::Trial naming seed 3, got {other:?}"),
            ))
        }
    }
    let job = suite_job(21, "value", 0.75, (0..4).collect(), 2, h.dir)?;
    let sink = RecordingSink::for_job(&job);
    succeed(
        h,
        &job,
        &sink,
        "a failing seed fails its trial (the next one runs)",
    )
    .await?;
    expect_values(&sink, &job, "a failing seed fails its trial")?;

    let job = suite_job(30, "value", 0.5, (0..6).collect(), 2, h.dir)?;
    let sink = RecordingSink::for_job(&job).fail_after(0);
    match evaluate(h, &job, &sink).await {
        Err(ExecError::Fatal(_)) => {}
        other => {
            return Err(fail(
                "a sink error is fatal",
                format!("must be ExecError::Fatal, got {other:?}"),
            ))
        }
    }

    let job = suite_job(31, "value", 0.5, (0..12).collect(), 2, h.dir)?;
    let sink = RecordingSink::for_job(&job).stop_after(1);
    match evaluate(h, &job, &sink).await {
        Ok(()) if sink.order().len() == 1 => {}
        other => {
            return Err(fail(
                "a Stop from the sink ends the trial",
                format!(
                    "must return Ok(()) after exactly one delivery, got {other:?} after {}",
                    sink.order().len()
                ),
            ))
        }
    }
    no_leftovers(h, "a Stop from the sink ends the trial").await?;

    dropping_stops_the_work(h).await
}

/// Waits up to `grace` for the harness's leftovers (processes, jobs) to be gone.
async fn no_leftovers(h: &ExecutorHarness<'_>, check: &'static str) -> Result<()> {
    let Some(leftovers) = h.leftovers else {
        return Ok(());
    };
    let since = Instant::now();
    loop {
        let left = leftovers();
        if left.is_empty() {
            return Ok(());
        }
        if since.elapsed() > h.grace {
            return Err(fail(
                check,
                format!("still alive {:?} after the stop: {left:?}", h.grace),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dropping_stops_the_work(h: &ExecutorHarness<'_>) -> Result<()> {
    const CHECK: &str = "dropping the future stops the work";
    let beat_dir: PathBuf = h.dir.join("heartbeats");
    std::fs::create_dir_all(&beat_dir)
        .map_err(|e| fail(CHECK, format!("{}: {e}", beat_dir.display())))?;
    let mut job = suite_job(40, "slow", 0.5, (0..40).collect(), 4, h.dir)?;
    job.entry_id = Some(Arc::from(beat_dir.to_string_lossy().as_ref()));
    let sink = RecordingSink::for_job(&job);
    let started = Instant::now();
    {
        let work = evaluate(h, &job, &sink);
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => {
                    return Err(fail(CHECK, format!("the slow trial ended before it could be dropped: {r:?}")));
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if beats(&beat_dir) > 0 {
                        break;
                    }
                    if started.elapsed() > h.start_timeout {
                        return Err(fail(CHECK, format!("no seed started within {:?}", h.start_timeout)));
                    }
                }
            }
        }
    }
    // The evaluation future is dropped here.
    let dropped = Instant::now();
    if let Some(leftovers) = h.leftovers {
        loop {
            let left = leftovers();
            if left.is_empty() {
                break;
            }
            if dropped.elapsed() > h.grace {
                return Err(fail(
                    CHECK,
                    format!("still alive {:?} after the drop: {left:?}", h.grace),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // A seed that was running may finish; none may start after that.
    let settle = (2 * SLOW_SEED).min(h.grace);
    tokio::time::sleep(settle.saturating_sub(dropped.elapsed())).await;
    let before = beats(&beat_dir);
    tokio::time::sleep(3 * SLOW_SEED).await;
    let after = beats(&beat_dir);
    if after != before {
        return Err(fail(
            CHECK,
            format!(
                "{} seed(s) started more than {settle:?} after the evaluation was dropped",
                after - before
            ),
        ));
    }
    if sink.order().len() == job.chunks.len() {
        return Err(fail(
            CHECK,
            "every chunk was delivered: the trial was not stopped",
        ));
    }
    Ok(())
}
