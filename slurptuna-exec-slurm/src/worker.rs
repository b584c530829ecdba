//! The worker side: what a Slurm array task does inside the user's re-executed program.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use slurptuna_core::{
    chunk_key, evaluate_chunk, registered_loss, registered_loss_names, ChunkIndex, SeedTask,
};

use crate::error::SlurmError;
use crate::files::{
    chunk_path, failure_path, read_json, write_json, ChunkFile, FailureFile, TaskFile, FORMAT,
};

/// The environment variable naming the task file of a Slurm worker (set by the batch script).
pub const TASK_FILE_ENV: &str = "SLURPTUNA_TASK_FILE";

/// Added to `SLURM_ARRAY_TASK_ID` to get the chunk index (arrays split at `MaxArraySize`).
pub const CHUNK_OFFSET_ENV: &str = "SLURPTUNA_CHUNK_OFFSET";

/// True when this process was started by a Slurm array task of slurptuna (the task file
/// variable is set).
pub fn is_slurm_worker() -> bool {
    std::env::var_os(TASK_FILE_ENV).is_some_and(|v| !v.is_empty())
}

fn env_u64(name: &str) -> Result<Option<u64>, SlurmError> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            SlurmError::WorkerEnv(format!("{name}={v:?} is not a non-negative integer"))
        }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(_) => Err(SlurmError::WorkerEnv(format!(
            "{name} is not valid unicode"
        ))),
    }
}

/// Evaluates this worker's chunk and writes its result.
///
/// Reads the task file named by [`TASK_FILE_ENV`], takes the chunk from `SLURM_ARRAY_TASK_ID`
/// (plus [`CHUNK_OFFSET_ENV`]), finds the loss with [`slurptuna_core::registered_loss`] and
/// evaluates the chunk's seeds with the task's `worker_parallelism` threads. The result is
/// written atomically with its key. A failing loss writes a failure record with the reason next
/// to where the result would be and returns `Err`, so the task exits non-zero. A worker never
/// submits jobs. The caller exits the process (0 on `Ok`, 1 on `Err`).
pub fn run_slurm_worker() -> Result<(), SlurmError> {
    let path = std::env::var_os(TASK_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| SlurmError::WorkerEnv(format!("{TASK_FILE_ENV} is not set")))?;
    let task: TaskFile = read_json(&path, "task file")?.ok_or_else(|| {
        SlurmError::WorkerEnv(format!("the task file {} does not exist", path.display()))
    })?;
    if task.format != FORMAT {
        return Err(SlurmError::WorkerEnv(format!(
            "the task file {} has format {} but this program reads format {FORMAT}: rebuild the worker program with the controller's slurptuna version",
            path.display(),
            task.format
        )));
    }
    let task_id = env_u64("SLURM_ARRAY_TASK_ID")?.ok_or_else(|| {
        SlurmError::WorkerEnv(
            "SLURM_ARRAY_TASK_ID is not set: a worker runs as a Slurm array task".into(),
        )
    })?;
    let chunk = ChunkIndex(task_id + env_u64(CHUNK_OFFSET_ENV)?.unwrap_or(0));
    if chunk.0 >= task.layout.num_chunks() {
        return Err(SlurmError::WorkerEnv(format!(
            "chunk {chunk} is out of range: trial {} has {} chunks",
            task.trial,
            task.layout.num_chunks()
        )));
    }
    let loss = registered_loss(&task.loss_name).ok_or_else(|| SlurmError::LossNotFound {
        requested: task.loss_name.clone(),
        argv: std::env::args().collect(),
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
    );
    let seed_task = SeedTask {
        loss: &loss,
        params: &task.params,
        entry_id: entry,
        trial: task.trial,
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
            let reason = failure.to_string();
            write_json(
                &failure_path(&task.chunks_dir, chunk),
                &FailureFile {
                    chunk,
                    key,
                    reason: reason.clone(),
                },
            )?;
            Err(SlurmError::ChunkFailed {
                trial: task.trial.0,
                chunk: chunk.0,
                reason,
            })
        }
    }
}
