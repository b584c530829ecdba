//! `slurptuna submit`: the controller as a Slurm job that requeues itself before its time limit,
//! on the real local Slurm (skips visibly without one; fails in CI).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{assert_no_jobs_left, assert_success, cluster, run_with_timeout};

/// A study whose awk loss takes 0.3 s per request and records every request it answers in
/// `ledger.txt`, so that the test can count how often each seed ran.
const STUDY: &str = r#"
[study]
name = "submitted"
description = "a submitted controller"

[params]
alpha = [0.0, 1.0]

[loss]
command = ["./loss.sh"]

[run]
mode = "distributed"
n_trials = 6
n_seeds = 8
chunk_size = 4
slurm_poll_seconds = 0.5
mem_per_cpu = "200M"
worker_time_limit = 120

[slurm]
slurm_rpc_per_second = 20
"#;

const LOSS: &str = r#"#!/bin/sh
if awk -W version 2>/dev/null | grep -q mawk; then set -- -W interactive; fi
exec awk "$@" '{
  print $0 >> "ledger.txt"; fflush("ledger.txt")
  system("sleep 0.3")
  match($0, /"alpha":[-0-9.eE+]+/); alpha = substr($0, RSTART + 8, RLENGTH - 8)
  match($0, /"seeds":\[[0-9,]*\]/); n = split(substr($0, RSTART + 9, RLENGTH - 10), s, ",")
  for (i = 1; i <= n; i++)
    printf "{\"seed\": %s, \"value\": %.17g}\n", s[i], (alpha - 0.3) ^ 2 + s[i] * 1e-4
  fflush()
}'
"#;

fn slurptuna(args: &[&str], dir: &Path) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slurptuna"));
    cmd.args(args).current_dir(dir);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert_success(&cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scontrol_job(job: u64) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", &job.to_string()])
        .output()
        .expect("scontrol");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(record: &'a str, key: &str) -> Option<&'a str> {
    record
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn complete_trials(dir: &Path, run_dir: &str) -> usize {
    if !Path::new(run_dir).join("meta.json").exists() {
        return 0;
    }
    slurptuna(&["trials", run_dir, "--json"], dir)
        .lines()
        .filter(|l| l.contains("\"COMPLETE\""))
        .count()
}

/// Waits for `what` up to `secs`, cancelling `job` and failing on timeout.
fn wait_for(job: u64, secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = Command::new("scancel").arg(job.to_string()).status();
            panic!("timed out waiting for {what}: {}", scontrol_job(job));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn real_submitted_controller_requeues_itself_and_every_seed_runs_once() {
    if !cluster() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("study.toml"), STUDY).unwrap();
    std::fs::write(dir.join("loss.sh"), LOSS).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("loss.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    // A bad option is refused before anything is written or submitted.
    let mut bad = Command::new(env!("CARGO_BIN_EXE_slurptuna"));
    bad.args(["submit", "study.toml", "--partition", "no_such_partition"])
        .current_dir(dir);
    let out = run_with_timeout(&mut bad, Duration::from_secs(60));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("partition"), "{err}");
    assert!(
        !dir.join("runs").exists(),
        "nothing written for a refused job"
    );

    let printed = slurptuna(
        &[
            "submit",
            "study.toml",
            "--time",
            "00:10:00",
            "--grace",
            "60",
            "--mem",
            "300M",
            "--json",
        ],
        dir,
    );
    let v: serde_json::Value = serde_json::from_str(printed.trim()).expect(&printed);
    let job = v["job"].as_u64().expect("job id");
    let run_dir = v["run_dir"].as_str().expect("run dir").to_string();
    let log = v["log"].as_str().expect("log").to_string();
    assert!(run_dir.ends_with("runs/submitted"), "{run_dir}");

    // Mid-run, the warning Slurm sends before the time limit: the controller stops cleanly,
    // keeps its arrays and requeues its own job.
    wait_for(job, 180, "two complete trials", || {
        complete_trials(dir, &run_dir) >= 2
    });
    let status = Command::new("scancel")
        .args(["--signal=USR1", "--batch", &job.to_string()])
        .status()
        .expect("scancel");
    assert!(status.success());
    wait_for(job, 60, "the requeue", || {
        field(&scontrol_job(job), "Restarts").is_some_and(|r| r != "0")
    });
    wait_for(
        job,
        400,
        "the requeued controller to finish the study",
        || {
            let rec = scontrol_job(job);
            rec.is_empty()
                || field(&rec, "JobState").is_some_and(|s| {
                    s != "PENDING"
                        && s != "RUNNING"
                        && s != "REQUEUED"
                        && s != "CONFIGURING"
                        && s != "COMPLETING"
                })
        },
    );
    let rec = scontrol_job(job);
    assert!(
        rec.is_empty() || field(&rec, "JobState") == Some("COMPLETED"),
        "{rec}"
    );
    assert_eq!(complete_trials(dir, &run_dir), 6);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log_text.contains("requeued the controller job"),
        "the first run requeued itself: {log_text}"
    );

    // Every seed of every trial was evaluated exactly once, across the requeue.
    let ledger = std::fs::read_to_string(dir.join("ledger.txt")).unwrap();
    let mut runs: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    for line in ledger.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect(line);
        let trial = r["trial"].as_u64().expect("trial");
        for s in r["seeds"].as_array().expect("seeds") {
            *runs.entry((trial, s.as_u64().unwrap())).or_insert(0) += 1;
        }
    }
    assert_eq!(runs.len(), 6 * 8, "{runs:?}");
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");

    // Nothing left in the queue.
    assert_no_jobs_left(dir);
}
