//! `optimize_entries`: one study per entry (participant, condition), sharing one call's backends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::MultiProgress;
use slurptuna_core::LossDefinition;
use slurptuna_store::{create_versioned_dir, EntriesSummary};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::options::EntriesOptions;
use crate::result::{MultiOptimizeResult, OptimizeResult};
use crate::run::{block_on, run_study, shutdown, Call};
use crate::{validate, worker};

/// Fits `loss` separately for each entry: one study per entry, in its own run directory
/// `<parent>/<label>` (label = the id made safe for a directory name; collisions are errors).
///
/// Entry `i` (input order) uses sampler seed `random_seed + i` and sees its id in
/// `Context::entry_id`. Up to `max_concurrent_entries` entries run at once (default: all). The
/// parent `summary.json` is rewritten as entries finish. If some entries fail, the others still
/// finish and are saved, and the error ([`Error::EntriesFailed`]) carries their results and
/// lists which entries failed and why. With an existing
/// `run_name_prefix`, every entry resumes.
///
/// ```no_run
/// use slurptuna::{loss, optimize_entries, EntriesOptions};
/// let model = loss("fit")
///     .description("per-participant fit")
///     .param("alpha", (0.0, 1.0))
///     .build(|p, _seed, ctx| {
///         let target = if ctx.entry_id() == Some("p01") { 0.2 } else { 0.8 };
///         Ok((p.f64("alpha")? - target).abs().into())
///     })?;
/// let m = optimize_entries(&model, ["p01", "p02"], EntriesOptions { n_trials: 20, ..Default::default() })?;
/// println!("{}", m.best_params_by_entry["p01"].f64("alpha")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn optimize_entries<I>(
    loss: &LossDefinition,
    entry_ids: I,
    opts: EntriesOptions,
) -> Result<MultiOptimizeResult>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    // A worker does its work (synchronous code) and exits before any runtime is started.
    worker::dispatch(&opts.scheduler);
    let ids = owned(entry_ids);
    block_on(|| optimize_entries_async(loss, ids, opts))
}

/// [`optimize_entries`] as a future, for programs that already run a tokio runtime; it behaves
/// exactly like the synchronous call.
pub async fn optimize_entries_async<I>(
    loss: &LossDefinition,
    entry_ids: I,
    opts: EntriesOptions,
) -> Result<MultiOptimizeResult>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    worker::dispatch(&opts.scheduler);
    let ids = owned(entry_ids);
    let (labels, probe) = validate::entries(&ids, &opts)?;
    let layout = Arc::new(validate::validate(loss, &probe)?);

    let call = Call::new(&probe, Some(MultiProgress::new()));
    let shared = call.shared_executor(loss, &probe).await?;
    let parent = match &opts.run_name_prefix {
        Some(prefix) => {
            let dir = opts.run_root.join(prefix);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::option(
                    "run_name_prefix",
                    format!("cannot create {}: {e}", dir.display()),
                )
            })?;
            dir
        }
        None => create_versioned_dir(&opts.run_root, &format!("{}_entries", loss.name()))?,
    };
    let limit = opts
        .max_concurrent_entries
        .unwrap_or(ids.len())
        .min(ids.len());
    let done: Mutex<BTreeMap<usize, Result<OptimizeResult>>> = Mutex::new(BTreeMap::new());

    let outcome: Result<()> = async {
        let gate = Semaphore::new(limit);
        let mut studies = FuturesUnordered::new();
        for (i, (id, label)) in ids.iter().zip(&labels).enumerate() {
            let entry_opts = opts.for_entry(i, id, parent.clone(), label.as_str());
            let (gate, call, layout, shared) = (&gate, &call, layout.clone(), shared.as_ref());
            studies.push(async move {
                let _permit = gate.acquire().await;
                (i, run_study(loss, &entry_opts, layout, call, shared).await)
            });
        }
        while let Some((i, r)) = studies.next().await {
            let interrupted = matches!(r, Err(Error::Interrupted { .. }));
            let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
            done.insert(i, r);
            write_summary(&parent, &ids, &done)?;
            if interrupted {
                break;
            }
        }
        drop(studies);
        if let Some(e) = &shared {
            let r: Result<()> = if call.interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                Err(Error::Interrupted {
                    run_dir: parent.clone(),
                })
            } else {
                Ok(())
            };
            shutdown(e.as_ref(), &probe, &r).await;
            r?;
        }
        Ok(())
    }
    .await;
    crate::run::release(loss);
    outcome?;

    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    let mut result = MultiOptimizeResult {
        loss_name: loss.name().to_string(),
        n_entries: ids.len(),
        entries: ids.clone(),
        results_by_entry: BTreeMap::new(),
        best_values_by_entry: BTreeMap::new(),
        best_params_by_entry: BTreeMap::new(),
        run_dirs_by_entry: BTreeMap::new(),
        run_dir: parent.clone(),
        mode: opts.mode,
    };
    for (i, r) in done {
        let id = ids[i].clone();
        match r {
            Ok(r) => {
                result.best_values_by_entry.insert(id.clone(), r.best_value);
                result
                    .best_params_by_entry
                    .insert(id.clone(), r.best_params.clone());
                result
                    .run_dirs_by_entry
                    .insert(id.clone(), r.run_dir.clone());
                result.results_by_entry.insert(id, r);
            }
            Err(e) => failures.push((id, Box::new(e))),
        }
    }
    if !failures.is_empty() {
        return Err(Error::EntriesFailed {
            finished: Box::new(result),
            failures,
        });
    }
    Ok(result)
}

fn owned<I>(ids: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    ids.into_iter().map(|s| s.as_ref().to_string()).collect()
}

fn write_summary(
    parent: &Path,
    ids: &[String],
    done: &BTreeMap<usize, Result<OptimizeResult>>,
) -> Result<()> {
    let mut s = EntriesSummary {
        entries: ids.to_vec(),
        ..Default::default()
    };
    for (&i, r) in done {
        let id = ids[i].clone();
        match r {
            Ok(r) => {
                s.best_params_by_entry
                    .insert(id.clone(), r.best_params.clone());
                s.best_values_by_entry.insert(id.clone(), r.best_value);
                let label = r
                    .run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                s.labels_by_entry.insert(id, label);
            }
            Err(e) => {
                s.errors_by_entry.insert(id, e.to_string());
            }
        }
    }
    s.write(parent)?;
    Ok(())
}
