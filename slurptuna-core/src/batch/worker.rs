//! The generic worker: what an array task of any batch scheduler does inside the user's
//! re-executed program.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::batch::files::{
    chunk_path, failure_path, read_json, write_json, ChunkFile, FailureFile, TaskFile, FORMAT,
};
use crate::error::CoreError;
use crate::evaluate::{evaluate_chunk, SeedTask};
use crate::executor::chunk_key;
use crate::loss::{registered_loss, registered_loss_names};
use crate::trial::ChunkIndex;

/// The environment variable naming the task file of a batch worker (set by the batch script).
pub const TASK_FILE_ENV: &str = "SLURPTUNA_TASK_FILE";

/// Added to the task's index within its array to get the chunk index (arrays are split at the
/// scheduler's maximum array size). Unset means 0.
pub const CHUNK_OFFSET_ENV: &str = "SLURPTUNA_CHUNK_OFFSET";

/// True when this process was started as an array task of a batch executor (the task file
/// variable [`TASK_FILE_ENV`] is set), whatever the scheduler.
pub fn is_batch_worker() -> bool {
    std::env::var_os(TASK_FILE_ENV).is_some_and(|v| !v.is_empty())
}

/// Evaluates this worker's chunk and writes its result; the same for every batch scheduler.
///
/// Reads the task file named by [`TASK_FILE_ENV`]; takes the chunk from the environment
/// variable the task file names as holding the task's index (task files that name none, such as
/// those of slurptuna 0.1.0, mean `SLURM_ARRAY_TASK_ID`) plus [`CHUNK_OFFSET_ENV`]; finds the
/// loss with [`crate::registered_loss`] and evaluates the chunk's seeds with
/// [`crate::evaluate_chunk`] on the task's `worker_parallelism` threads. The result is written
/// atomically with its key. A failing loss writes a failure record with the reason next to
/// where the result would be and returns [`CoreError::ChunkFailed`], so the task exits non-zero.
/// A worker never submits jobs. The caller exits the process (0 on `Ok`, 1 on `Err`).
pub fn run_batch_worker() -> Result<(), CoreError> {
    run_worker(&|name| std::env::var_os(name), std::env::args().collect())
}

/// [`run_batch_worker`] with the environment given by `env` instead of the process's: for a
/// scheduler that runs array tasks inside the controller's process (a simulated cluster, as in
/// `cargo xtask bench scale`) and for tests. `env` answers [`TASK_FILE_ENV`], the task-index
/// variable the task file names, and [`CHUNK_OFFSET_ENV`].
pub fn run_batch_worker_with(env: &dyn Fn(&str) -> Option<OsString>) -> Result<(), CoreError> {
    run_worker(env, Vec::new())
}

/// The seed layout of the trial whose task file is `task_file` (which seeds each chunk holds):
/// what a simulated scheduler needs to know how long a task computes.
pub fn task_layout(task_file: &std::path::Path) -> Result<crate::SeedLayout, CoreError> {
    let task: TaskFile = read_json(task_file, "task file")?.ok_or_else(|| {
        worker_error(format!(
            "the task file {} does not exist",
            task_file.display()
        ))
    })?;
    Ok(task.layout)
}

fn worker_error(reason: impl Into<String>) -> CoreError {
    CoreError::Worker {
        reason: reason.into(),
    }
}

fn env_u64(env: &dyn Fn(&str) -> Option<OsString>, name: &str) -> Result<Option<u64>, CoreError> {
    let Some(v) = env(name) else {
        return Ok(None);
    };
    let Some(s) = v.to_str() else {
        return Err(worker_error(format!("{name} is not valid unicode")));
    };
    s.trim()
        .parse::<u64>()
        .map(Some)
        .map_err(|_| worker_error(format!("{name}={s:?} is not a non-negative integer")))
}

/// [`run_batch_worker`] with the environment and command line given.
pub(crate) fn run_worker(
    env: &dyn Fn(&str) -> Option<OsString>,
    argv: Vec<String>,
) -> Result<(), CoreError> {
    let path = env(TASK_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            worker_error(format!(
                "{TASK_FILE_ENV} is not set: a worker runs as a task of a job array that slurptuna submitted"
            ))
        })?;
    let task: TaskFile = read_json(&path, "task file")?.ok_or_else(|| {
        worker_error(format!(
            "the task file {} does not exist: the trial directory must be visible from the compute nodes",
            path.display()
        ))
    })?;
    if task.format != FORMAT {
        return Err(worker_error(format!(
            "the task file {} has format {} but this program reads format {FORMAT}: rebuild the worker program with the controller's slurptuna version",
            path.display(),
            task.format
        )));
    }
    let index_env = task.task_index_env.as_str();
    let index = env_u64(env, index_env)?.ok_or_else(|| {
        worker_error(format!(
            "{index_env} is not set: the task file {} says a worker runs as a task of a job array that gives its index in {index_env}",
            path.display()
        ))
    })?;
    let chunk = ChunkIndex(index + env_u64(env, CHUNK_OFFSET_ENV)?.unwrap_or(0));
    if chunk.0 >= task.layout.num_chunks() {
        return Err(worker_error(format!(
            "chunk {chunk} is out of range: trial {} has {} chunks",
            task.trial,
            task.layout.num_chunks()
        )));
    }
    let loss = registered_loss(&task.loss_name).ok_or_else(|| CoreError::LossNotFound {
        requested: task.loss_name.clone(),
        argv,
        available: registered_loss_names(),
    })?;
    let entry: Option<Arc<str>> = task.entry_id.as_deref().map(Arc::from);
    let key = chunk_key(
        &task.loss_name,
        entry.as_deref(),
        task.trial,
        &task.params,
        &task.layout,
        chunk,
    )
    .as_str()
    .to_string();
    let seed_task = SeedTask {
        loss: &loss,
        params: &task.params,
        entry_id: entry,
        trial: task.trial,
        trial_dir: path.parent(),
    };
    let never = AtomicBool::new(false);
    let outcome = evaluate_chunk(
        &seed_task,
        &task.layout,
        chunk,
        task.worker_parallelism.max(1),
        task.keep_seed_values,
        &never,
    );
    // A command loss's processes end with the task (they get EOF and are reaped).
    if let Some(batch) = loss.batch() {
        batch.release();
    }
    match outcome {
        Ok(result) => write_json(
            &chunk_path(&task.chunks_dir, chunk),
            &ChunkFile {
                format: FORMAT,
                chunk,
                key,
                result,
            },
        ),
        Err(failure) => {
            write_json(
                &failure_path(&task.chunks_dir, chunk),
                &FailureFile {
                    chunk,
                    key,
                    reason: failure.to_string(),
                },
            )?;
            Err(CoreError::ChunkFailed {
                trial: task.trial,
                chunk,
                failure,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::batch::files::{load_chunk, load_failure, FailureFile};
    use crate::{loss, Params, SeedLayout, SeedSpec, TrialNumber};

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "slurptuna-batch-worker-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("chunks")).unwrap();
        d
    }

    fn build_loss() {
        loss("batch-worker-unit")
            .description("x + seed; seed 4 fails")
            .param("x", (0.0, 1.0))
            .build(|p, seed, _| {
                if seed == 4 {
                    return Err("seed 4 fails on purpose".into());
                }
                Ok((p.f64("x")? + seed as f64).into())
            })
            .unwrap();
    }

    /// A task file of 6 seeds in chunks of 2 in `dir`, naming `index_env` (None: as 0.1.0 wrote
    /// them).
    fn task_file(dir: &Path, loss_name: &str, index_env: Option<&str>) -> (PathBuf, TaskFile) {
        let layout = SeedLayout::resolve(
            &SeedSpec {
                n_seeds: Some(6),
                chunk_size: Some(2),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        let task = TaskFile {
            format: FORMAT,
            loss_name: loss_name.into(),
            entry_id: Some("e".into()),
            trial: TrialNumber(3),
            params: [("x", 0.5)].into_iter().collect::<Params>(),
            layout,
            keep_seed_values: true,
            worker_parallelism: 2,
            chunks_dir: dir.join("chunks"),
            task_index_env: index_env.unwrap_or("SLURM_ARRAY_TASK_ID").into(),
        };
        let path = dir.join("task.json");
        write_json(&path, &task).unwrap();
        if index_env.is_none() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("task_index_env"), "{text}");
        }
        (path, task)
    }

    fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<OsString> {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| m.get(name).cloned()
    }

    fn key(task: &TaskFile, c: u64) -> String {
        chunk_key(
            &task.loss_name,
            task.entry_id.as_deref(),
            task.trial,
            &task.params,
            &task.layout,
            ChunkIndex(c),
        )
        .as_str()
        .to_string()
    }

    #[test]
    fn evaluates_the_chunk_its_scheduler_names_with_the_offset() {
        build_loss();
        let d = tempdir("pbs");
        let (path, task) = task_file(&d, "batch-worker-unit", Some("PBS_ARRAY_INDEX"));
        let env = env_of(&[
            (TASK_FILE_ENV, path.display().to_string()),
            ("PBS_ARRAY_INDEX", "0".into()),
            (CHUNK_OFFSET_ENV, "1".into()),
            // Another scheduler's variable is ignored.
            ("SLURM_ARRAY_TASK_ID", "2".into()),
        ]);
        run_worker(&env, vec![]).unwrap();
        let r = load_chunk(&task.chunks_dir, ChunkIndex(1), &key(&task, 1), 2).unwrap();
        assert_eq!(r.values, Some(vec![2.5, 3.5]));
        assert!(load_chunk(&task.chunks_dir, ChunkIndex(2), &key(&task, 2), 2).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn task_files_naming_no_variable_use_slurms() {
        build_loss();
        let d = tempdir("legacy");
        let (path, task) = task_file(&d, "batch-worker-unit", None);
        let env = env_of(&[
            (TASK_FILE_ENV, path.display().to_string()),
            ("SLURM_ARRAY_TASK_ID", "0".into()),
        ]);
        run_worker(&env, vec![]).unwrap();
        let r = load_chunk(&task.chunks_dir, ChunkIndex(0), &key(&task, 0), 2).unwrap();
        assert_eq!(r.values, Some(vec![0.5, 1.5]));
        // Seed 4 fails: a failure record with the key, and a typed error.
        let env = env_of(&[
            (TASK_FILE_ENV, path.display().to_string()),
            ("SLURM_ARRAY_TASK_ID", "2".into()),
        ]);
        match run_worker(&env, vec![]) {
            Err(CoreError::ChunkFailed {
                trial,
                chunk,
                failure,
            }) => {
                assert_eq!((trial, chunk), (TrialNumber(3), ChunkIndex(2)));
                assert!(failure.to_string().contains("seed 4"), "{failure}");
            }
            other => panic!("{other:?}"),
        }
        let why = load_failure(&task.chunks_dir, ChunkIndex(2), &key(&task, 2)).unwrap();
        assert!(why.contains("seed 4 fails on purpose"), "{why}");
        let _: FailureFile = read_json(&failure_path(&task.chunks_dir, ChunkIndex(2)), "f")
            .unwrap()
            .unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_broken_environment_says_what_is_missing() {
        build_loss();
        let d = tempdir("broken");
        let (path, _) = task_file(&d, "batch-worker-unit", Some("LSB_JOBINDEX"));
        let file = path.display().to_string();
        let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
            (vec![], "SLURPTUNA_TASK_FILE is not set"),
            (
                vec![(TASK_FILE_ENV, d.join("nope.json").display().to_string())],
                "does not exist",
            ),
            (
                vec![(TASK_FILE_ENV, file.clone())],
                "LSB_JOBINDEX is not set",
            ),
            (
                vec![(TASK_FILE_ENV, file.clone()), ("LSB_JOBINDEX", "x".into())],
                "LSB_JOBINDEX=\"x\" is not a non-negative integer",
            ),
            (
                vec![(TASK_FILE_ENV, file.clone()), ("LSB_JOBINDEX", "3".into())],
                "chunk 3 is out of range: trial 3 has 3 chunks",
            ),
        ];
        for (vars, want) in cases {
            let e = run_worker(&env_of(&vars), vec![]).unwrap_err();
            assert!(matches!(e, CoreError::Worker { .. }), "{e:?}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        let (path, _) = task_file(&d, "batch-worker-not-built", Some("LSB_JOBINDEX"));
        let env = env_of(&[
            (TASK_FILE_ENV, path.display().to_string()),
            ("LSB_JOBINDEX", "0".into()),
        ]);
        let e = run_worker(&env, vec!["prog".into(), "--flag".into()]).unwrap_err();
        let m = e.to_string();
        for want in [
            "batch-worker-not-built",
            "batch-worker-unit",
            "--flag",
            "build the loss before calling optimize_run",
        ] {
            assert!(m.contains(want), "{want}: {m}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
