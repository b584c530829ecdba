//! CommandLoss: a loss that is an external program speaking the JSON line protocol
//! (`tests/commands/*.py`, `*.sh`), through the thread executor and through `evaluate_seeds`.
//!
//! The Python tests need `python3` on PATH; without it they print `skipped: python3 not found`
//! and pass, unless `CI=true` or `SLURPTUNA_TEST_PYTHON=1`, where a missing python3 fails them.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slurptuna_core::testing::{executor_suite, ExecutorHarness, SUITE_LOSS};
use slurptuna_core::{
    evaluate_seeds, loss, search_param, ExecError, Executor, LossDefinition, LossValue, Params,
    SeedFailure, SeedTask, TrialNumber,
};
use slurptuna_exec_local::{
    process_is_running, CommandLoss, CommandSpec, ThreadExecutor, COMMAND_LOG_FILE,
};

use crate::support::{job, seeds, wait_until, within, CollectSink, TEST_TIMEOUT};

/// True when `python3` is on PATH. Otherwise prints a visible skip line and returns false, or
/// panics where Python is required (`CI=true`, `SLURPTUNA_TEST_PYTHON=1`).
fn have_python(test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("python3").is_file()));
    if found {
        return true;
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("SLURPTUNA_TEST_PYTHON").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: python3 is not on PATH, but CI=true or SLURPTUNA_TEST_PYTHON=1 requires it"
    );
    eprintln!("skipped: python3 not found ({test})");
    false
}

/// The directory of the interpreter `python3` runs, when that is not the `python3` found on
/// PATH: version-manager shims (pyenv, asdf) are shell scripts that take a few hundred
/// milliseconds to start Python, as long as the preflight window, which would make the
/// preflight test depend on the machine's load.
fn python_dir() -> Option<&'static PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        let exe = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        (exe.file_name()? == "python3").then(|| exe.parent().map(Path::to_path_buf))?
    })
    .as_ref()
}

/// A script of `tests/commands`.
fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/commands")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A scratch directory whose `pids/` the scripts write their pids to (`PID_DIR`).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pids")).unwrap();
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn pid_dir(&self) -> PathBuf {
        self.path().join("pids")
    }

    /// A spec running `argv` with `PID_DIR` set, and the directory of the real `python3` first
    /// on its `PATH` (see [`python_dir`]).
    fn spec(&self, argv: &[&str]) -> CommandSpec {
        let mut spec = CommandSpec::new(argv.iter().map(|a| a.to_string()).collect());
        spec.env.insert(
            "PID_DIR".into(),
            self.pid_dir().to_string_lossy().into_owned(),
        );
        if let Some(dir) = python_dir() {
            let mut dirs = vec![dir.clone()];
            dirs.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            if let Ok(path) = std::env::join_paths(dirs) {
                spec.env
                    .insert("PATH".into(), path.to_string_lossy().into_owned());
            }
        }
        spec
    }

    /// Every pid the scripts noted with `prefix` (`pid`, `child`), sorted.
    fn noted(&self, prefix: &str) -> Vec<u32> {
        let mut pids: Vec<u32> = std::fs::read_dir(self.pid_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
            })
            .collect();
        pids.sort();
        pids
    }

    /// The noted processes (commands and their children) that still run.
    fn alive(&self) -> Vec<u32> {
        let mut pids = self.noted("pid");
        pids.extend(self.noted("child"));
        pids.retain(|&p| process_is_running(p));
        pids
    }

    /// Waits (up to 5 s) until none of the noted processes runs.
    async fn assert_all_gone(&self) {
        let gone = wait_until(Duration::from_secs(5), || self.alive().is_empty()).await;
        assert!(gone, "processes left behind: {:?}", self.alive());
    }

    /// Like [`Scratch::assert_all_gone`], from a thread that is not async.
    fn assert_all_gone_now(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.alive().is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes left behind: {:?}",
                self.alive()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs `f` on its own thread, failing the test if it takes longer than [`TEST_TIMEOUT`].
fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(TEST_TIMEOUT)
        .expect("test timed out or panicked")
}

/// The loss of `loss.py`: x, n, kind and the misbehaviour `mode`.
fn model(name: &str, spec: CommandSpec) -> LossDefinition {
    model_with(name, CommandLoss::new(spec).unwrap())
}

/// [`model`] on a command loss the caller keeps a handle of.
fn model_with(name: &str, command: CommandLoss) -> LossDefinition {
    loss(name)
        .description("tests/commands/loss.py")
        .param("x", (0.0, 1.0))
        .param("n", (1, 5))
        .param("kind", search_param().allowed(["a", "b"]))
        .param(
            "mode",
            search_param().allowed([
                "value",
                "components",
                "list",
                "crash_high",
                "garbage",
                "twice",
                "unknown",
                "nan",
                "null",
                "inf",
                "error",
                "slow",
            ]),
        )
        .build_batch(command)
        .unwrap()
}

fn params(x: f64, n: i64, kind: &str, mode: &str) -> Params {
    let mut p = Params::new();
    p.insert("x", x);
    p.insert("n", n);
    p.insert("kind", kind);
    p.insert("mode", mode);
    p
}

/// What `loss.py` computes, in the same order of operations.
fn expected(x: f64, n: i64, kind: &str, seed: u64) -> f64 {
    x * 1.37 + seed as f64 * 0.113 + n as f64 * 0.01 + if kind == "b" { 0.5 } else { 0.0 }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn release(l: &LossDefinition) {
    l.batch().expect("a batch loss").release();
}

/// Evaluates `seeds` of `l` directly (no executor) with `parallelism` threads.
fn direct(
    l: &LossDefinition,
    p: &Params,
    seeds: &[u64],
    parallelism: usize,
    trial_dir: Option<&Path>,
) -> Result<Vec<f64>, SeedFailure> {
    let task = SeedTask {
        loss: l,
        params: p,
        entry_id: None,
        trial: TrialNumber(7),
        trial_dir,
    };
    evaluate_seeds(&task, seeds, parallelism, &AtomicBool::new(false))
}

/// The trial failure reason of `e`.
fn reason(e: ExecError) -> String {
    match e {
        ExecError::Trial(f) => f.reason,
        other => panic!("expected a trial failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_loss_gives_the_rust_values_bit_for_bit() {
    if !have_python("a_python_loss_gives_the_rust_values_bit_for_bit") {
        return;
    }
    within(async {
        let s = Scratch::new();
        let list = [100u64, 7, 3, 55, 42, 9, 11, 0, 1, 2, 13];
        for parallelism in [1, 3] {
            let l = model(
                &format!("cmd-values-{parallelism}"),
                s.spec(&["python3", &script("loss.py")]),
            );
            let before = s.noted("pid").len();
            let exec = ThreadExecutor::new(l.clone(), parallelism);
            for (trial, (x, n, kind)) in [(0.3, 2, "b"), (0.71, 5, "a")].into_iter().enumerate() {
                let sink = CollectSink::default();
                let j = job(
                    l.name(),
                    trial as u64,
                    params(x, n, kind, "value"),
                    &seeds(&list, 4),
                    None,
                );
                exec.evaluate(j, &sink).await.unwrap();
                let want: Vec<f64> = list.iter().map(|&sd| expected(x, n, kind, sd)).collect();
                let got = sink.trial_values(TrialNumber(trial as u64));
                assert_eq!(bits(&got), bits(&want), "parallelism {parallelism}");
            }
            let sequential = s.noted("pid").len() - before;
            if parallelism == 1 {
                // One process serves every batch of the one caller.
                assert_eq!(sequential, 1, "processes are kept between batches");
            } else {
                assert!(sequential <= parallelism, "{sequential} processes started");
            }
            // Concurrent trials on one loss, each batch on a process of its own.
            let sinks = [CollectSink::default(), CollectSink::default()];
            let jobs = [(10, 0.1), (11, 0.9)].map(|(t, x)| {
                job(
                    l.name(),
                    t,
                    params(x, 1, "a", "value"),
                    &seeds(&list, 6),
                    None,
                )
            });
            let [j0, j1] = jobs;
            let (r0, r1) = tokio::join!(exec.evaluate(j0, &sinks[0]), exec.evaluate(j1, &sinks[1]));
            r0.unwrap();
            r1.unwrap();
            for (t, x, sink) in [(10, 0.1, &sinks[0]), (11, 0.9, &sinks[1])] {
                let want: Vec<f64> = list.iter().map(|&sd| expected(x, 1, "a", sd)).collect();
                assert_eq!(bits(&sink.trial_values(TrialNumber(t))), bits(&want));
            }
            let started = s.noted("pid").len() - before;
            assert!(started <= 2 * parallelism, "{started} processes started");
            release(&l);
            s.assert_all_gone().await;
        }
    })
    .await;
}

#[test]
fn components_and_lists_are_averaged_and_small_batches_come_back_in_order() {
    if !have_python("components_and_lists_are_averaged_and_small_batches_come_back_in_order") {
        return;
    }
    let s = Arc::new(Scratch::new());
    let s2 = s.clone();
    blocking(move || {
        let mut spec = s2.spec(&["python3", &script("loss.py")]);
        spec.batch_size = Some(2);
        let l = model("cmd-shapes", spec);
        let list: Vec<u64> = (20..33).collect();
        for (mode, value) in [
            (
                "components",
                (|v: f64| LossValue::Components([("a".into(), v), ("b".into(), 2.0 * v)].into()))
                    as fn(f64) -> LossValue,
            ),
            ("list", |v| LossValue::List(vec![v, v + 1.0])),
            ("value", LossValue::Scalar),
        ] {
            for parallelism in [1, 3] {
                let got = direct(&l, &params(0.4, 3, "a", mode), &list, parallelism, None)
                    .unwrap_or_else(|e| panic!("{mode}: {e}"));
                let want: Vec<f64> = list
                    .iter()
                    .map(|&sd| value(expected(0.4, 3, "a", sd)).total())
                    .collect();
                assert_eq!(bits(&got), bits(&want), "{mode}, parallelism {parallelism}");
            }
        }
        release(&l);
        s2.assert_all_gone_now();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_its_trial_and_the_next_trial_runs() {
    if !have_python("a_crash_fails_its_trial_and_the_next_trial_runs") {
        return;
    }
    within(async {
        let s = Scratch::new();
        let l = model("cmd-crash", s.spec(&["python3", &script("loss.py")]));
        let exec = ThreadExecutor::new(l.clone(), 2);
        let sink = CollectSink::default();
        let list = [1u64, 2, 3, 4];
        let e = exec
            .evaluate(
                job(
                    l.name(),
                    1,
                    params(0.9, 1, "a", "crash_high"),
                    &seeds(&list, 4),
                    None,
                ),
                &sink,
            )
            .await
            .unwrap_err();
        let r = reason(e);
        for want in [
            "exit code 3",
            "model diverged for x=0.9",
            "loss.py",
            "trial 1",
            "python3",
        ] {
            assert!(r.contains(want), "missing {want:?} in: {r}");
        }
        assert!(sink.results().is_empty());
        let j = job(
            l.name(),
            2,
            params(0.2, 1, "a", "crash_high"),
            &seeds(&list, 4),
            None,
        );
        exec.evaluate(j, &sink).await.unwrap();
        let want: Vec<f64> = list.iter().map(|&sd| expected(0.2, 1, "a", sd)).collect();
        assert_eq!(bits(&sink.trial_values(TrialNumber(2))), bits(&want));
        release(&l);
        s.assert_all_gone().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_command_is_killed_with_its_children_after_the_batch_timeout() {
    within(async {
        let s = Scratch::new();
        let mut spec = s.spec(&["sh", &script("hang.sh")]);
        spec.batch_timeout = Some(Duration::from_millis(500));
        spec.startup_timeout = Duration::from_millis(500);
        let l = loss("cmd-hang")
            .description("tests/commands/hang.sh")
            .param("x", (0.0, 1.0))
            .build_batch(CommandLoss::new(spec).unwrap())
            .unwrap();
        let exec = ThreadExecutor::new(l.clone(), 1);
        for round in 1..=2 {
            let sink = CollectSink::default();
            let started = Instant::now();
            let e = exec
                .evaluate(
                    job(
                        l.name(),
                        round,
                        crate::support::x(0.5),
                        &seeds(&[1, 2], 2),
                        None,
                    ),
                    &sink,
                )
                .await
                .unwrap_err();
            let took = started.elapsed();
            let r = reason(e);
            for want in [
                "did not answer within 1 s",
                "batch_timeout_seconds = 0.5",
                "startup_timeout_seconds = 0.5",
                "hang.sh",
                "killed",
                "about to hang",
                "flushes stdout",
            ] {
                assert!(r.contains(want), "missing {want:?} in: {r}");
            }
            assert!(
                took >= Duration::from_secs(1) && took < Duration::from_secs(10),
                "{took:?}"
            );
            // The command and the child it started are gone; the next batch gets a fresh one.
            s.assert_all_gone().await;
            assert_eq!(s.noted("pid").len(), round as usize);
            assert_eq!(s.noted("child").len(), round as usize);
        }
        release(&l);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_output_goes_to_the_trial_log_and_never_changes_a_result() {
    if !have_python("stray_output_goes_to_the_trial_log_and_never_changes_a_result") {
        return;
    }
    within(async {
        let s = Scratch::new();
        let command = CommandLoss::new(s.spec(&["python3", &script("loss.py")])).unwrap();
        let l = model_with("cmd-garbage", command.clone());
        let exec = ThreadExecutor::new(l.clone(), 2);
        let sink = CollectSink::default();
        let list = [5u64, 6, 7, 8, 9];
        let trial_dir = s.path().join("run").join("trial_00003");
        let mut j = job(
            l.name(),
            3,
            params(0.25, 4, "b", "garbage"),
            &seeds(&list, 5),
            None,
        );
        j.trial_dir = Some(trial_dir.clone());
        exec.evaluate(j, &sink).await.unwrap();
        let want: Vec<f64> = list.iter().map(|&sd| expected(0.25, 4, "b", sd)).collect();
        assert_eq!(bits(&sink.trial_values(TrialNumber(3))), bits(&want));
        let log_path = trial_dir.join(COMMAND_LOG_FILE);
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // Stderr is written by its own thread: wait for it.
        let complete = wait_until(Duration::from_secs(5), || {
            list.iter()
                .all(|sd| log().contains(&format!("[stderr] warning for seed {sd}")))
        })
        .await;
        let text = log();
        assert!(complete, "stderr lines missing from the log:\n{text}");
        for want in [
            "starting up (not a reply)\n",
            "hello from the model\n",
            "{\"epoch\": 0, \"loss\": NaN}\n",
            "[1, 2]\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in the log:\n{text}");
        }
        assert!(
            !text.contains("\"seed\""),
            "replies are not logged:\n{text}"
        );
        // 1 line at each start-up, 4 per seed.
        assert_eq!(command.stray_lines(), s.noted("pid").len() as u64 + 20);
        // Without a trial directory the lines are dropped, and the values are the same.
        let list2 = [1u64, 2, 3];
        let got = blocking({
            let l = l.clone();
            move || direct(&l, &params(0.5, 2, "a", "garbage"), &list2, 1, None)
        })
        .unwrap();
        let want: Vec<f64> = list2.iter().map(|&sd| expected(0.5, 2, "a", sd)).collect();
        assert_eq!(bits(&got), bits(&want));
        assert_eq!(command.stray_lines(), s.noted("pid").len() as u64 + 20 + 12);
        release(&l);
        s.assert_all_gone().await;
    })
    .await;
}

#[test]
fn protocol_violations_fail_the_batch_and_kill_the_command() {
    if !have_python("protocol_violations_fail_the_batch_and_kill_the_command") {
        return;
    }
    let s = Arc::new(Scratch::new());
    let s2 = s.clone();
    blocking(move || {
        let l = model("cmd-violations", s2.spec(&["python3", &script("loss.py")]));
        for (mode, want) in [
            ("twice", "answered seed 1 twice"),
            (
                "unknown",
                "answered seed 123456789, which the request did not ask for",
            ),
        ] {
            let e = direct(&l, &params(0.5, 1, "a", mode), &[0, 1, 2], 1, None).unwrap_err();
            let SeedFailure::Batch { message } = &e else {
                panic!("{mode}: expected a batch failure, got {e:?}")
            };
            for w in [want, "loss.py", "trial 7", "seeds [0, 1, 2]", "killed"] {
                assert!(message.contains(w), "{mode}: missing {w:?} in: {message}");
            }
            // The offending process is gone; the next batch starts a fresh one and succeeds.
            s2.assert_all_gone_now();
            let got = direct(&l, &params(0.5, 1, "a", "value"), &[0, 1, 2], 1, None).unwrap();
            assert_eq!(got.len(), 3);
        }
        release(&l);
        s2.assert_all_gone_now();
        assert_eq!(
            s2.noted("pid").len(),
            3,
            "one fresh process after each failure"
        );
    });
}

#[test]
fn nan_null_infinity_and_seed_errors_fail_the_seed_and_keep_the_process() {
    if !have_python("nan_null_infinity_and_seed_errors_fail_the_seed_and_keep_the_process") {
        return;
    }
    let s = Arc::new(Scratch::new());
    let s2 = s.clone();
    blocking(move || {
        let l = model("cmd-non-finite", s2.spec(&["python3", &script("loss.py")]));
        let cases: [(&str, &str, SeedFailure); 5] = [
            ("nan", "a", SeedFailure::NotANumber { seed: 11 }),
            ("null", "a", SeedFailure::NotANumber { seed: 11 }),
            (
                "inf",
                "a",
                SeedFailure::Error {
                    seed: 11,
                    message: "returned Infinity (loss values must be finite)".into(),
                },
            ),
            (
                "inf",
                "b",
                SeedFailure::Error {
                    seed: 11,
                    message: "returned -Infinity (loss values must be finite)".into(),
                },
            ),
            (
                "error",
                "a",
                SeedFailure::Error {
                    seed: 11,
                    message: "no convergence for seed 11".into(),
                },
            ),
        ];
        for (mode, kind, want) in cases {
            let e = direct(&l, &params(0.5, 1, kind, mode), &[10, 11, 12], 1, None).unwrap_err();
            assert_eq!(e, want, "{mode}");
        }
        assert!(SeedFailure::NotANumber { seed: 11 }
            .to_string()
            .contains("seed 11: loss returned NaN"));
        // A seed failure keeps the protocol: the one process served every batch.
        let got = direct(&l, &params(0.5, 1, "a", "value"), &[10, 11, 12], 1, None).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(s2.noted("pid").len(), 1);
        release(&l);
        s2.assert_all_gone_now();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_error_fails_the_trial_naming_seed_and_message() {
    if !have_python("a_seed_error_fails_the_trial_naming_seed_and_message") {
        return;
    }
    within(async {
        let s = Scratch::new();
        let l = model("cmd-seed-error", s.spec(&["python3", &script("loss.py")]));
        let exec = ThreadExecutor::new(l.clone(), 1);
        let e = exec
            .evaluate(
                job(
                    l.name(),
                    4,
                    params(0.5, 1, "a", "error"),
                    &seeds(&[3, 4, 5], 3),
                    None,
                ),
                &CollectSink::default(),
            )
            .await
            .unwrap_err();
        let r = reason(e);
        assert!(
            r.contains("seed 4: loss returned an error: no convergence for seed 4"),
            "{r}"
        );
        release(&l);
        s.assert_all_gone().await;
    })
    .await;
}

#[test]
fn preflight_names_the_command_that_cannot_start() {
    let s = Arc::new(Scratch::new());
    let s2 = s.clone();
    blocking(move || {
        let check = |name: &str, spec: CommandSpec| {
            let command = CommandLoss::new(spec).unwrap();
            let l = loss(name)
                .description("preflight")
                .param("x", (0.0, 1.0))
                .build_batch(command.clone())
                .unwrap();
            let r = l.preflight().map_err(|e| e.to_string());
            (l, command, r)
        };
        let (_, _, r) = check(
            "cmd-pre-missing",
            s2.spec(&["no-such-interpreter-xyz", "m.py"]),
        );
        let e = r.unwrap_err();
        for want in [
            "[\"no-such-interpreter-xyz\", \"m.py\"]",
            "not found on PATH",
            "install it",
        ] {
            assert!(e.contains(want), "missing {want:?} in: {e}");
        }
        let (_, _, r) = check(
            "cmd-pre-exit",
            s2.spec(&["sh", "-c", "echo 'no model' >&2; exit 4"]),
        );
        let e = r.unwrap_err();
        for want in ["exit code 4", "no model", "[\"sh\", \"-c\""] {
            assert!(e.contains(want), "missing {want:?} in: {e}");
        }
        let mut spec = s2.spec(&["./echo.sh"]);
        spec.cwd = Some(PathBuf::from(script("")));
        let (l, command, r) = check("cmd-pre-ok", spec);
        r.unwrap();
        // The process preflight started serves the first batch.
        let idle = command.idle_pids();
        assert_eq!(idle.len(), 1);
        assert_eq!(s2.noted("pid"), idle);
        let got = direct(&l, &crate::support::x(0.5), &[4, 5], 1, None).unwrap();
        assert_eq!(got, vec![4.0, 5.0]);
        assert_eq!(command.idle_pids(), idle);
        release(&l);
        assert!(command.idle_pids().is_empty());
        if have_python("preflight_names_the_command_that_cannot_start") {
            let mut spec = s2.spec(&["python3", "missing.py"]);
            spec.cwd = Some(s2.path().to_path_buf());
            let (_, _, r) = check("cmd-pre-python", spec);
            let e = r.unwrap_err();
            for want in [
                "[\"python3\", \"missing.py\"]",
                "exit code 2",
                "missing.py",
                "run it by hand",
            ] {
                assert!(e.contains(want), "missing {want:?} in: {e}");
            }
        }
        s2.assert_all_gone_now();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_evaluation_kills_the_command() {
    if !have_python("dropping_the_evaluation_kills_the_command") {
        return;
    }
    within(async {
        let s = Scratch::new();
        let l = model("cmd-cancel", s.spec(&["python3", &script("loss.py")]));
        let exec = ThreadExecutor::new(l.clone(), 1);
        let sink = CollectSink::default();
        let j = job(
            l.name(),
            0,
            params(0.5, 1, "a", "slow"),
            &seeds(&(0..20).collect::<Vec<_>>(), 20),
            None,
        );
        let started = || {
            std::fs::read_dir(s.pid_dir())
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
                        .count()
                })
                .unwrap_or(0)
        };
        {
            let work = exec.evaluate(j, &sink);
            tokio::pin!(work);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                tokio::select! {
                    r = &mut work => panic!("the slow trial ended: {r:?}"),
                    () = tokio::time::sleep(Duration::from_millis(10)) => {
                        if started() > 0 {
                            break;
                        }
                        assert!(Instant::now() < deadline, "no seed started");
                    }
                }
            }
        }
        // The future is dropped: the command is killed within a tick of the cancel flag.
        let dropped = Instant::now();
        s.assert_all_gone().await;
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "{:?}",
            dropped.elapsed()
        );
        assert_eq!(s.noted("pid").len(), 1);
        let before = started();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(started(), before, "no seed starts after the drop");
        assert!(sink.results().is_empty());
        release(&l);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_command_passes_the_executor_suite() {
    if !have_python("a_python_command_passes_the_executor_suite") {
        return;
    }
    within(async {
        let s = Scratch::new();
        for parallelism in [1, 3] {
            // The suite's loss, with the same name, parameters and formula, as a command.
            let l = loss(SUITE_LOSS)
                .description("the executor conformance suite's loss, as a Python command")
                .param("x", (0.0, 1.0))
                .param(
                    "behaviour",
                    search_param().allowed(["value", "fail", "slow"]),
                )
                .build_batch(CommandLoss::new(s.spec(&["python3", &script("suite.py")])).unwrap())
                .unwrap();
            let exec = ThreadExecutor::new(l.clone(), parallelism);
            let d = s.path().join(format!("p{parallelism}"));
            let leftovers = || crate::support::live_beaters(&d, "command process");
            let harness = ExecutorHarness {
                leftovers: Some(&leftovers),
                ..ExecutorHarness::new(&exec, &d)
            };
            executor_suite(&harness).await.unwrap();
            release(&l);
            s.assert_all_gone().await;
        }
    })
    .await;
}

#[test]
fn overhead_per_seed_with_a_persistent_command() {
    // Not a timing assertion: prints what a batch of 10 seeds costs beyond the command's work.
    let s = Arc::new(Scratch::new());
    let s2 = s.clone();
    blocking(move || {
        let mut argvs = vec![vec!["sh".to_string(), script("echo.sh")]];
        if have_python("overhead_per_seed_with_a_persistent_command") {
            argvs.push(vec!["python3".to_string(), script("echo.py")]);
        }
        for argv in argvs {
            let mut spec = s2.spec(&argv.iter().map(String::as_str).collect::<Vec<_>>());
            spec.batch_size = Some(10);
            let l = loss("cmd-overhead")
                .description("echoes the seed")
                .param("x", (0.0, 1.0))
                .build_batch(CommandLoss::new(spec).unwrap())
                .unwrap();
            let p = crate::support::x(0.5);
            let warm: Vec<u64> = (0..10).collect();
            direct(&l, &p, &warm, 1, None).unwrap();
            let list: Vec<u64> = (0..2000).collect();
            let started = Instant::now();
            let got = direct(&l, &p, &list, 1, None).unwrap();
            let took = started.elapsed();
            assert_eq!(got, list.iter().map(|&x| x as f64).collect::<Vec<_>>());
            eprintln!(
                "command {:?}: 2000 seeds in batches of 10: {:.1} µs per seed, {:.3} ms per batch (command's own work included)",
                argv.iter().map(|a| a.rsplit('/').next().unwrap_or(a)).collect::<Vec<_>>(),
                took.as_secs_f64() * 1e6 / 2000.0,
                took.as_secs_f64() * 1e3 / 200.0
            );
            release(&l);
        }
        s2.assert_all_gone_now();
    });
}

/// A command in sh that notes its pid, then answers every seed with 1 after `delay` seconds.
fn slow_echo(s: &Scratch, delay: &str) -> CommandSpec {
    let body = format!(
        r#"echo $$ > "$PID_DIR/pid-$$"
while IFS= read -r line; do
    sleep {delay}
    seeds=${{line##*\"seeds\":[}}
    seeds=${{seeds%%]*}}
    IFS=,
    for seed in $seeds; do printf '{{"seed":%s,"value":1}}\n' "$seed"; done
    unset IFS
done"#
    );
    s.spec(&["sh", "-c", &body])
}

#[test]
fn a_release_during_a_batch_stops_that_process_when_the_batch_ends() {
    let s = Arc::new(Scratch::new());
    let s2 = s.clone();
    blocking(move || {
        let command = CommandLoss::new(slow_echo(&s2, "0.5")).unwrap();
        let l = loss("cmd-release-busy")
            .description("slow echo")
            .param("x", (0.0, 1.0))
            .build_batch(command.clone())
            .unwrap();
        let l2 = l.clone();
        let batch =
            std::thread::spawn(move || direct(&l2, &crate::support::x(0.5), &[1, 2, 3], 1, None));
        let deadline = Instant::now() + Duration::from_secs(10);
        while s2.noted("pid").is_empty() {
            assert!(Instant::now() < deadline, "the command did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        command.release();
        // The batch in progress completes; its process is not handed back but stopped.
        assert_eq!(batch.join().unwrap().unwrap(), vec![1.0; 3]);
        assert!(command.idle_pids().is_empty());
        s2.assert_all_gone_now();
        // A later batch starts afresh.
        assert_eq!(
            direct(&l, &crate::support::x(0.5), &[4], 1, None).unwrap(),
            vec![1.0]
        );
        assert_eq!(command.idle_pids().len(), 1);
        assert_eq!(s2.noted("pid").len(), 2);
        drop(l);
        command.release();
        s2.assert_all_gone_now();
    });
}

#[test]
fn a_command_that_cannot_start_fails_the_batch_naming_it() {
    let s = Scratch::new();
    let l = loss("cmd-no-program")
        .description("missing interpreter")
        .param("x", (0.0, 1.0))
        .build_batch(CommandLoss::new(s.spec(&["no-such-interpreter-xyz", "m.py"])).unwrap())
        .unwrap();
    let e = direct(&l, &crate::support::x(0.5), &[1, 2], 1, None).unwrap_err();
    let SeedFailure::Batch { message } = &e else {
        panic!("expected a batch failure, got {e:?}")
    };
    for want in [
        "[\"no-such-interpreter-xyz\", \"m.py\"]",
        "trial 7",
        "not found on PATH",
    ] {
        assert!(message.contains(want), "missing {want:?} in: {message}");
    }
}
