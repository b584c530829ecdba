//! A trial directory written by slurptuna 0.1.0 (`slurptuna/tests/fixtures/runs-v1`, DISTRIBUTED,
//! stopped during trial 2 with both chunk results in the trial directory) resumes on this
//! release: its files are read, its chunk results (with their keys) are delivered, and nothing
//! is submitted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slurptuna_core::{ChunkIndex, Executor, Params, SeedLayout, TrialJob, TrialNumber};
use slurptuna_exec_slurm::FakeSlurm;

use crate::support::*;

fn fixture_trial() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../slurptuna/tests/fixtures/runs-v1/distributed/legacy-dist/trials/trial_00002")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_directory_of_the_previous_release_resumes_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let trial_dir = dir.path().join("trial_00002");
    copy_tree(&fixture_trial(), &trial_dir);
    // The trial as the resumed controller knows it from the journal: its recorded params and
    // seeds (the same as the task file's).
    let task = json(&trial_dir.join("task.json"));
    let params: Params = serde_json::from_value(task["params"].clone()).unwrap();
    let layout: SeedLayout = serde_json::from_value(task["layout"].clone()).unwrap();
    let job = TrialJob {
        loss_name: "bowl".into(),
        entry_id: None,
        trial: TrialNumber(2),
        params,
        chunks: vec![ChunkIndex(0), ChunkIndex(1)],
        layout: Arc::new(layout),
        trial_dir: Some(trial_dir.clone()),
        keep_seed_values: false,
    };
    let (fake, h) = FakeSlurm::new();
    let exec = options().executor(worker(dir.path()), 1, Arc::new(fake));
    let sink = Collect::default();
    within(30, exec.evaluate(job, &sink)).await.unwrap();
    let got = sink.chunks(2);
    assert_eq!(
        got.len(),
        2,
        "both stored chunks are delivered from their files"
    );
    assert_eq!(got[&ChunkIndex(1)].stats.count(), 3);
    assert!(
        h.calls().is_empty(),
        "nothing asked of Slurm: {:?}",
        h.calls()
    );
    // The job record is read as it was and left alone.
    let jobs = json(&trial_dir.join("jobs.json"));
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["jobs"][0]["job"], 5);
    // The task file, rewritten for its new place, is still a format-1 Slurm task file.
    let task = json(&trial_dir.join("task.json"));
    assert_eq!(task["format"], 1);
    assert!(task.get("task_index_env").is_none(), "{task}");
    assert_eq!(
        task["chunks_dir"],
        trial_dir.join("chunks").display().to_string()
    );
}
