use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna::inspect::{self, RunData, SortKey, StateFilter};
use slurptuna::{loss, optimize_run, search_param, LossDefinition, RunOptions, SamplerChoice};

use crate::util::{assert_success, bowl, opts, run_with_timeout, trial_sequence};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_slurptuna")
}

/// Runs `slurptuna args...`, expecting success; returns stdout.
fn cli(args: &[&std::ffi::OsStr]) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert_success(&cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `slurptuna args...`; returns (exit code, stderr).
fn cli_fails(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn params_json(p: &slurptuna::Params) -> serde_json::Value {
    serde_json::from_str(&p.to_json()).unwrap()
}

#[test]
fn quickstart_then_show_trials_csv_and_best_json() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &bowl("quick"),
        RunOptions {
            n_trials: 8,
            ..opts(dir.path())
        },
    )
    .unwrap();
    let run = r.run_dir.as_os_str();

    // The library.
    let data = RunData::load(&r.run_dir).unwrap();
    let b = inspect::best(&data).expect("a best trial");
    assert_eq!(b.value, r.best_value);
    assert_eq!(b.params, r.best_params);
    assert_eq!(b.trial, r.best_trial.0);
    assert_eq!(b.n_seeds, 6);
    assert!(inspect::is_finished(&data));
    let rows = inspect::trials(&data, None, SortKey::Number);
    assert_eq!(rows.len(), 8);
    let by_value = inspect::trials(&data, Some(StateFilter::Complete), SortKey::Value);
    assert_eq!(by_value[0].value, Some(r.best_value));
    assert!(by_value
        .windows(2)
        .all(|w| w[0].value.unwrap() <= w[1].value.unwrap()));
    assert!(inspect::trials(&data, Some(StateFilter::Failed), SortKey::Number).is_empty());

    // show
    let show = cli(&["show".as_ref(), run]);
    assert_eq!(show, inspect::show(&data).unwrap());
    assert!(
        show.contains("8 complete, 0 failed, 0 running, target 8 (done)"),
        "{show}"
    );
    assert!(
        show.contains(&format!("best       {} ±", r.best_value)),
        "{show}"
    );
    assert!(show.contains(&r.best_params.to_string()), "{show}");
    assert!(show.contains("6 (0..=5)"), "{show}");

    // trials --csv: a header and one line per trial, values in full precision.
    let csv = cli(&["trials".as_ref(), run, "--csv".as_ref()]);
    assert_eq!(csv, inspect::to_csv(&rows));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "number",
            "state",
            "value",
            "stderr",
            "n_seeds",
            "started_at",
            "finished_at",
            "params_c",
            "params_k",
            "params_x",
            "params_y",
            "reason"
        ]
    );
    let body: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(body.len(), 8);
    for (fields, t) in body.iter().zip(&r.trials) {
        assert_eq!(fields[0], t.number.0.to_string());
        assert_eq!(fields[1], "COMPLETE");
        assert_eq!(fields[2].parse::<f64>().unwrap(), t.value().unwrap());
        assert_eq!(fields[4], "6");
        assert_eq!(fields[7], t.params.str("c").unwrap());
        assert_eq!(fields[8], t.params.i64("k").unwrap().to_string());
        assert_eq!(
            fields[9].parse::<f64>().unwrap(),
            t.params.f64("x").unwrap()
        );
        assert!(fields[5].parse::<f64>().unwrap() > 1.0e9, "unix seconds");
    }

    // best --json
    let best = cli(&["best".as_ref(), run, "--json".as_ref()]);
    let v: serde_json::Value = serde_json::from_str(&best).unwrap();
    assert_eq!(v["value"].as_f64(), Some(r.best_value));
    assert_eq!(v["params"], params_json(&r.best_params));
    assert_eq!(v["trial"], r.best_trial.0);
    assert_eq!(v["n_seeds"], 6);

    // trials --json, --state, --sort
    let json = cli(&["trials".as_ref(), run, "--json".as_ref()]);
    assert_eq!(json.lines().count(), 8);
    let sorted = cli(&[
        "trials".as_ref(),
        run,
        "--state".as_ref(),
        "complete".as_ref(),
        "--sort".as_ref(),
        "value".as_ref(),
        "--json".as_ref(),
    ]);
    let first: serde_json::Value = serde_json::from_str(sorted.lines().next().unwrap()).unwrap();
    assert_eq!(first["value"].as_f64(), Some(r.best_value));

    // runs: one line, done
    let runs = cli(&["runs".as_ref(), dir.path().as_os_str()]);
    assert!(
        runs.contains("quick_v0001") && runs.contains("8/8") && runs.contains("done"),
        "{runs}"
    );
}

#[test]
fn a_torn_last_journal_line_is_read_around() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &bowl("torn"),
        RunOptions {
            n_trials: 4,
            ..opts(dir.path())
        },
    )
    .unwrap();
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(r.run_dir.join("journal.jsonl"))
        .unwrap();
    f.write_all(br#"{"event":"asked","trial":4,"par"#).unwrap();
    drop(f);
    let data = RunData::load(&r.run_dir).unwrap();
    assert_eq!(data.history.trials().count(), 4);
    let show = cli(&["show".as_ref(), r.run_dir.as_os_str()]);
    assert!(show.contains("4 complete"), "{show}");
    let best = cli(&["best".as_ref(), r.run_dir.as_os_str(), "--json".as_ref()]);
    assert!(best.contains(&r.best_value.to_string()), "{best}");
}

#[test]
fn errors_say_what_to_do_and_exit_codes_follow_the_help() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for cmd in ["show", "trials", "best", "watch", "cancel"] {
        let (code, err) = cli_fails(&[cmd.as_ref(), missing.as_os_str()]);
        assert_eq!(code, Some(1), "{cmd}: {err}");
        assert!(
            err.contains("nope") && err.contains("check the path"),
            "{cmd}: {err}"
        );
    }
    let (code, err) = cli_fails(&[
        "trials".as_ref(),
        missing.as_os_str(),
        "--state".as_ref(),
        "bogus".as_ref(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = cli_fails(&[
        "watch".as_ref(),
        missing.as_os_str(),
        "--interval".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("positive number of seconds"), "{err}");
    for cmd in ["runs", "show", "trials", "best", "watch", "cancel"] {
        let help = cli(&[cmd.as_ref(), "--help".as_ref()]);
        assert!(
            help.contains("Example") && help.contains("Exit status: 0"),
            "{cmd}: {help}"
        );
    }
    // A run without a complete trial: best says what to do.
    let r = optimize_run(
        &bowl("cancelnone"),
        RunOptions {
            n_trials: 2,
            ..opts(dir.path())
        },
    )
    .unwrap();
    // SINGLE: cancel has nothing to do.
    let out = cli(&["cancel".as_ref(), r.run_dir.as_os_str(), "--yes".as_ref()]);
    assert!(out.contains("nothing to cancel"), "{out}");
}

/// The bowl, 3 ms per seed: slow enough for a reader to see trials in flight.
fn slow_bowl(name: &str) -> LossDefinition {
    loss(name)
        .description("slow test bowl")
        .param("x", (0.0, 1.0))
        .param("k", search_param().range(1, 6).dtype("int"))
        .build(|p, seed, _| {
            std::thread::sleep(Duration::from_millis(3));
            let (x, k) = (p.f64("x")?, p.i64("k")? as f64);
            Ok(((x - 0.3).powi(2) + 0.01 * (k - 3.0).abs() + (seed % 7) as f64 * 1e-4).into())
        })
        .expect("valid loss")
}

fn live_opts(root: &Path, name: &str) -> RunOptions {
    RunOptions {
        run_root: root.to_path_buf(),
        run_name: Some(name.to_string()),
        n_trials: 40,
        n_seeds: Some(8),
        chunk_size: Some(2),
        max_concurrent_trials: 8,
        sampler: SamplerChoice::Random,
        progress: false,
        ..Default::default()
    }
}

#[test]
fn reading_a_live_single_run_never_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("live");
    let loss = slow_bowl("live");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, run_dir) = (done.clone(), run_dir.clone());
        std::thread::spawn(move || {
            let (mut reads, mut saw_running, mut binary_reads) = (0u64, false, 0u64);
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "reader timed out"
                );
                if !run_dir.join("meta.json").is_file() {
                    std::thread::yield_now();
                    continue;
                }
                let data =
                    RunData::load(&run_dir).unwrap_or_else(|e| panic!("read {reads} failed: {e}"));
                let show = inspect::show(&data).unwrap();
                assert!(show.contains("trials"), "{show}");
                let rows = inspect::trials(&data, None, SortKey::Value);
                let _ = inspect::to_csv(&rows);
                let (_, _) = inspect::watch_frame(&data).unwrap();
                saw_running |= rows.iter().any(|r| r.state == "RUNNING");
                if reads % 25 == 0 {
                    cli(&["trials".as_ref(), run_dir.as_os_str(), "--csv".as_ref()]);
                    binary_reads += 1;
                }
                reads += 1;
            }
            (reads, saw_running, binary_reads)
        })
    };
    let watched = optimize_run(&loss, live_opts(dir.path(), "live"));
    done.store(true, Ordering::SeqCst);
    let (reads, saw_running, binary_reads) = reader.join().expect("no read failed");
    let watched = watched.unwrap();
    let alone = optimize_run(&loss, live_opts(dir.path(), "alone")).unwrap();
    assert_eq!(trial_sequence(&watched), trial_sequence(&alone));
    assert_eq!(watched.best_value, alone.best_value);
    assert!(reads > 10 && binary_reads > 0, "only {reads} reads");
    assert!(saw_running, "the reader never saw a trial in flight");
    eprintln!("{reads} reads ({binary_reads} through the binary) while the study ran");
}

/// Kills a child process and a tmux server when dropped (every path of a test).
#[cfg(feature = "fixtures")]
struct Cleanup {
    child: Option<std::process::Child>,
    tmux_socket: String,
}

#[cfg(feature = "fixtures")]
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("tmux")
            .args(["-L", &self.tmux_socket, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(feature = "fixtures")]
fn tmux_available() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    crate::util::present(ok, "tmux", "apt-get install tmux, to run the watch test")
}

#[cfg(feature = "fixtures")]
fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(feature = "fixtures")]
#[test]
fn watch_in_a_terminal_follows_the_study_and_exits_at_its_end() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run_dir: PathBuf = dir.path().join("watched");
    let child = Command::new(crate::util::fixture("study"))
        .arg(dir.path())
        .arg("watched")
        .arg("16")
        .arg("slow")
        .args(["n_seeds=20", "chunk=4", "parallelism=1"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = format!("slurptuna-watch-{}", std::process::id());
    let mut cleanup = Cleanup {
        child: Some(child),
        tmux_socket: socket.clone(),
    };
    wait_for("meta.json", Duration::from_secs(30), || {
        run_dir.join("meta.json").is_file()
    });
    let command = format!(
        "'{}' watch '{}' --interval 0.5; echo watch-exit=$?; sleep 120",
        bin(),
        run_dir.display()
    );
    let status = Command::new("tmux")
        .args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "120",
            "-y",
            "40",
            &command,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "tmux new-session failed");
    let mut seen = std::collections::BTreeSet::new();
    let mut pane = String::new();
    let start = Instant::now();
    while !pane.contains("watch-exit=") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "watch did not exit; last pane:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(250));
        let out = Command::new("tmux")
            .args(["-L", &socket, "capture-pane", "-p", "-t", "watch"])
            .output()
            .unwrap();
        pane = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in pane.lines() {
            if let Some(rest) = line.strip_prefix("trials   ") {
                if let Some((n, _)) = rest.split_once('/') {
                    seen.insert(n.parse::<u64>().unwrap());
                }
            }
        }
    }
    assert!(pane.contains("watch-exit=0"), "{pane}");
    assert!(pane.contains("study finished: 16/16 trials"), "{pane}");
    assert!(pane.contains("best     "), "{pane}");
    // The screen is cleared between frames: one frame on the pane.
    assert_eq!(pane.matches("trials   ").count(), 1, "{pane}");
    assert!(
        seen.len() >= 3 && seen.iter().any(|&n| n < 16) && seen.contains(&16),
        "the counts did not move: {seen:?}"
    );
    let status = cleanup.child.take().unwrap().wait().unwrap();
    assert!(status.success(), "the study failed: {status}");
}

/// The states of `jobs` still in Slurm's queue.
#[cfg(all(feature = "fixtures", feature = "slurm"))]
fn queued(run_dir: &Path) -> Vec<String> {
    let jobs: Vec<_> = inspect::recorded_jobs(run_dir)
        .unwrap()
        .into_iter()
        .map(|(_, j)| j)
        .collect();
    match inspect::job_states(&jobs) {
        inspect::JobStates::Known(m) => m.keys().map(|j| j.to_string()).collect(),
        inspect::JobStates::Unavailable(why) => panic!("{why}"),
    }
}

#[cfg(all(feature = "fixtures", feature = "slurm"))]
#[test]
fn cancel_stops_the_jobs_of_a_distributed_run_and_a_rerun_resumes() {
    if !crate::util::cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("cancelled");
    // 4 tasks of 2 s each (100 seeds × 20 ms): still in the queue when cancelled.
    let study = |n: &str| {
        let mut c = Command::new(crate::util::fixture("study"));
        c.arg(dir.path())
            .arg("cancelled")
            .arg(n)
            .arg("slow")
            .args(["n_seeds=400", "chunk=100", "poll=0.3", "mode=distributed"])
            .current_dir(dir.path());
        c
    };
    let child = study("1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut cleanup = Cleanup {
        child: Some(child),
        tmux_socket: format!("slurptuna-cancel-{}", std::process::id()),
    };
    let jobs_file = run_dir.join("trials/trial_00000/jobs.json");
    wait_for("jobs.json", Duration::from_secs(60), || {
        inspect::recorded_jobs(&run_dir).is_ok_and(|j| !j.is_empty()) && jobs_file.is_file()
    });
    let show = cli(&["show".as_ref(), run_dir.as_os_str()]);
    assert!(show.contains("in the queue"), "{show}");
    // One cancel: the controller (on this host) stops as on Ctrl-C, and the jobs are gone.
    let out = cli(&["cancel".as_ref(), run_dir.as_os_str(), "--yes".as_ref()]);
    assert!(out.contains("cancelled job"), "{out}");
    assert!(out.contains("stopped the controller"), "{out}");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = cleanup.child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the controller did not stop after the cancel"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !status.success(),
        "an interrupted study exits with an error"
    );
    // Interrupted, not failed: the trial is unfinished and a re-run finishes it.
    let data = RunData::load(&run_dir).unwrap();
    assert!(
        inspect::trials(&data, Some(StateFilter::Failed), SortKey::Number).is_empty(),
        "the cancelled trial must not be recorded as failed"
    );
    wait_for("the queue to empty", Duration::from_secs(30), || {
        queued(&run_dir).is_empty()
    });
    // A re-run with one more trial resumes the run and finishes.
    let mut rerun = study("2");
    let out = run_with_timeout(&mut rerun, Duration::from_secs(240));
    assert_success(&rerun, &out);
    let data = RunData::load(&run_dir).unwrap();
    assert_eq!(data.meta.resumes.len(), 1);
    assert!(inspect::is_finished(&data));
    assert_eq!(
        inspect::trials(&data, Some(StateFilter::Complete), SortKey::Number).len(),
        2
    );
    assert!(queued(&run_dir).is_empty());
}

/// `(params, state)` of every trial of a run, in trial order (state with its value or reason).
#[cfg(all(feature = "fixtures", feature = "slurm"))]
fn run_sequence(run_dir: &Path) -> Vec<(String, String)> {
    RunData::load(run_dir)
        .unwrap()
        .trials()
        .map(|t| (t.params.to_json(), format!("{:?}", t.state)))
        .collect()
}

#[test]
#[cfg(all(feature = "fixtures", feature = "slurm"))]
fn reading_a_live_distributed_run_never_fails_and_changes_nothing() {
    if !crate::util::cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let study = |name: &str| {
        let mut c = Command::new(crate::util::fixture("study"));
        c.arg(dir.path())
            .arg(name)
            .arg("3")
            .arg("slow")
            .args(["n_seeds=16", "chunk=4", "poll=0.3", "mode=distributed"])
            .current_dir(dir.path());
        c
    };
    let run_dir = dir.path().join("watched");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, run_dir) = (done.clone(), run_dir.clone());
        std::thread::spawn(move || {
            let (mut reads, mut saw_jobs) = (0u64, false);
            while !done.load(Ordering::SeqCst) {
                if run_dir.join("meta.json").is_file() {
                    let data = RunData::load(&run_dir)
                        .unwrap_or_else(|e| panic!("read {reads} failed: {e}"));
                    let show = inspect::show(&data).unwrap();
                    assert!(show.contains("trials"), "{show}");
                    let _ = inspect::watch_frame(&data).unwrap();
                    let _ = inspect::to_csv(&inspect::trials(&data, None, SortKey::Number));
                    saw_jobs |= !inspect::recorded_jobs(&run_dir).unwrap().is_empty();
                    reads += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (reads, saw_jobs)
        })
    };
    let mut watched = study("watched");
    let out = run_with_timeout(&mut watched, Duration::from_secs(240));
    done.store(true, Ordering::SeqCst);
    let (reads, saw_jobs) = reader.join().expect("no read failed");
    assert_success(&watched, &out);
    let mut alone = study("alone");
    let out = run_with_timeout(&mut alone, Duration::from_secs(240));
    assert_success(&alone, &out);
    assert_eq!(
        run_sequence(&run_dir),
        run_sequence(&dir.path().join("alone")),
        "a reader changed the run"
    );
    assert!(
        reads > 10 && saw_jobs,
        "{reads} reads, jobs seen: {saw_jobs}"
    );
    assert!(queued(&run_dir).is_empty());
}
