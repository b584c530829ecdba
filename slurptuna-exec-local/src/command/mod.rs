//! [`CommandLoss`]: a loss that is an external program (Python, R, Julia, MATLAB, shell) speaking
//! slurptuna's JSON line protocol, kept running for many batches.
//!
//! # Protocol
//!
//! slurptuna starts the command (no shell: `argv[0]` with the other elements as arguments, in
//! its own process group) once per concurrent caller and keeps it running for many batches, so
//! the interpreter's start and the imports are paid once. All messages are one JSON object per
//! line, UTF-8.
//!
//! - **Requests**, on the command's stdin, one per batch:
//!   `{"trial": 3, "entry_id": "p01", "params": {"alpha": 0.31, "kind": "a", "n": 4}, "seeds": [0, 1, 2]}`.
//!   `entry_id` is `null` outside `optimize_entries`; `params` holds the trial's parameter
//!   values (floats, integers, strings and booleans for categorical choices), keys sorted.
//! - **Replies**, on its stdout, one line per seed of the batch, in any order:
//!   `{"seed": 0, "value": 0.12}`, where the value is a number, an object of named numbers
//!   (`{"p1": 0.1, "p2": 0.3}`, their mean is used) or an array of numbers (their mean is used);
//!   or `{"seed": 0, "error": "message"}`, which fails the trial with that message for that seed.
//!   Other fields are ignored. The batch is done when every seed is answered; write nothing but
//!   log lines until the next request.
//! - **End**: end of file on stdin means exit (within a second; then the process group is
//!   killed).
//!
//! **Non-finite values.** JSON has no NaN or infinity. The tokens `NaN`, `Infinity` and
//! `-Infinity` (which Python's `json.dumps` writes), the same words as strings (also `Inf`,
//! `-Inf`, `inf`, `-inf`, `nan`), and `null` are accepted in values. NaN and `null` fail the
//! seed with "loss returned NaN", like a NaN from a Rust loss; an infinite value (or component,
//! or list element) fails it as an error of that seed, "returned Infinity" — a trial needs finite
//! values.
//!
//! **Everything else on stdout** (a stray `print`, blank lines, JSON without `"seed"`) is not a
//! reply: it is appended to the trial's log, `<trial_dir>/loss.log` (created on demand; dropped,
//! but counted in [`CommandLoss::stray_lines`], when the run has no trial directory), and never
//! changes a result. The command's **stderr** goes to the same log, each line prefixed
//! `[stderr] `, and its last lines are quoted in failure messages.
//!
//! **Failures.** When the command exits or crashes (the message names the exit code or the
//! signal), does not answer within `batch_timeout` (plus `startup_timeout` for the first batch of
//! a freshly started command), answers a seed twice, answers a seed it was not asked for, or
//! writes a line with a `"seed"` that is not a valid reply, the batch fails
//! ([`SeedFailure::Batch`], naming the command, the trial and what happened, with the tail of
//! its stderr), its whole process group is killed, and the next batch starts a fresh process.
//! A seed answered with `"error"` fails only its trial: the process is kept.
//!
//! Python buffers a piped stdout: slurptuna sets `PYTHONUNBUFFERED=1` unless the spec's or its
//! own environment sets it. Other languages must flush stdout after each reply (R:
//! `flush(stdout())`, Julia: `flush(stdout)`), or replies arrive only when the buffer fills.
//!
//! A minimal Python command:
//!
//! ```text
//! import json, sys
//! for line in sys.stdin:
//!     req = json.loads(line)
//!     p = req["params"]
//!     for seed in req["seeds"]:
//!         try:
//!             print(json.dumps({"seed": seed, "value": model(p, seed)}), flush=True)
//!         except Exception as e:
//!             print(json.dumps({"seed": seed, "error": repr(e)}), flush=True)
//! ```
//!
//! Command losses need a Unix system (process groups, `poll(2)`); elsewhere
//! [`BatchLoss::preflight`] and every batch fail with an error that says so.

mod process;
mod protocol;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slurptuna_core::{BatchLoss, BatchRequest, CoreError, LossValue, SeedFailure};

use self::process::{lock, CommandProcess, Stop, EXIT_WAIT, POLL};
use self::protocol::{Answer, Request};
use crate::error::LocalError;
use crate::os;

/// The file, in a trial's directory, that a command's stray stdout lines and its stderr go to.
pub const COMMAND_LOG_FILE: &str = "loss.log";

/// Default for [`CommandSpec::startup_timeout`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`BatchLoss::preflight`] watches a freshly started command for an early exit.
const PREFLIGHT_WINDOW: Duration = Duration::from_millis(300);

/// How long [`CommandLoss::release`] gives idle commands to exit after end of file on stdin.
const RELEASE_GRACE: Duration = Duration::from_secs(1);

/// How many seeds a failure message lists before it abbreviates.
const LISTED_SEEDS: usize = 10;

/// How to run a command loss: the `[loss]` table of a study file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program and arguments (no shell). A relative program path containing `/` is resolved
    /// against `cwd`; a bare name is looked up on `PATH`.
    pub argv: Vec<String>,
    /// Working directory of the command (default: the controller's).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// How long one batch may take before the command is killed and the trial fails (default:
    /// no limit).
    pub batch_timeout: Option<Duration>,
    /// How long a freshly started command may take to answer its first batch, on top of
    /// `batch_timeout` (default [`DEFAULT_STARTUP_TIMEOUT`]; without a `batch_timeout` no batch
    /// has a limit).
    pub startup_timeout: Duration,
    /// The most seeds per request (default: a chunk's share per worker).
    pub batch_size: Option<usize>,
}

impl CommandSpec {
    /// A spec running `argv` with every other field at its default.
    pub fn new(argv: Vec<String>) -> Self {
        CommandSpec {
            argv,
            cwd: None,
            env: BTreeMap::new(),
            batch_timeout: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            batch_size: None,
        }
    }
}

/// A [`BatchLoss`] that runs an external command (see the [module documentation](self) for the
/// protocol). Build the loss with `loss(name)...build_batch(CommandLoss::new(spec)?)`.
///
/// It keeps one process per concurrent caller: a batch takes an idle process (or starts one) and
/// hands it back when the batch went well. [`CommandLoss::release`] (which executors call when
/// they shut down) and dropping the loss stop the idle processes; a process whose batch failed,
/// timed out, was cancelled or panicked is killed with its process group on the spot.
///
/// ```no_run
/// use slurptuna_core::loss;
/// use slurptuna_exec_local::{CommandLoss, CommandSpec};
/// use std::time::Duration;
/// let spec = CommandSpec {
///     batch_timeout: Some(Duration::from_secs(600)),
///     ..CommandSpec::new(vec!["python3".into(), "model.py".into()])
/// };
/// let l = loss("model").description("the model, in Python").param("alpha", (0.0, 1.0))
///     .build_batch(CommandLoss::new(spec).unwrap()).unwrap();
/// l.preflight().unwrap();
/// ```
///
/// Cloning gives another handle on the same processes (keep one to call
/// [`CommandLoss::stray_lines`] or [`CommandLoss::idle_pids`] after building the loss); the idle
/// processes are stopped when the last handle is dropped.
#[derive(Clone)]
pub struct CommandLoss {
    inner: Arc<Inner>,
}

/// What the handles of one [`CommandLoss`] share.
struct Inner {
    spec: CommandSpec,
    idle: Mutex<Vec<CommandProcess>>,
    /// Bumped by [`CommandLoss::release`]: a process started before is not handed back.
    generation: AtomicU64,
    stray: AtomicU64,
}

impl fmt::Debug for CommandLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandLoss")
            .field("spec", &self.inner.spec)
            .field("idle_pids", &self.idle_pids())
            .finish_non_exhaustive()
    }
}

impl CommandLoss {
    /// Checks `spec` (non-empty argv, positive timeouts and batch size); starts nothing.
    ///
    /// ```
    /// use slurptuna_exec_local::{CommandLoss, CommandSpec};
    /// let e = CommandLoss::new(CommandSpec { batch_size: Some(0), ..CommandSpec::new(vec!["sh".into()]) });
    /// assert!(e.unwrap_err().to_string().contains("batch_size"));
    /// ```
    pub fn new(spec: CommandSpec) -> Result<CommandLoss, LocalError> {
        if spec.argv.first().is_none_or(|p| p.is_empty()) {
            return Err(LocalError::InvalidOption {
                option: "command",
                reason: "the command is empty: give the program and its arguments, e.g. [\"python3\", \"model.py\"]".into(),
            });
        }
        if spec.batch_size == Some(0) {
            return Err(LocalError::InvalidOption {
                option: "batch_size",
                reason: "must be at least 1 (leave it out to send each worker thread its share of a chunk in one request)".into(),
            });
        }
        if spec.batch_timeout == Some(Duration::ZERO) {
            return Err(LocalError::InvalidOption {
                option: "batch_timeout_seconds",
                reason: "must be > 0 (leave it out for no limit)".into(),
            });
        }
        if spec.startup_timeout.is_zero() {
            return Err(LocalError::InvalidOption {
                option: "startup_timeout_seconds",
                reason: format!(
                    "must be > 0 (it is added to batch_timeout_seconds for the first batch of a freshly started command; default {} s)",
                    DEFAULT_STARTUP_TIMEOUT.as_secs()
                ),
            });
        }
        Ok(CommandLoss {
            inner: Arc::new(Inner {
                spec,
                idle: Mutex::new(Vec::new()),
                generation: AtomicU64::new(0),
                stray: AtomicU64::new(0),
            }),
        })
    }

    /// The spec it runs.
    pub fn spec(&self) -> &CommandSpec {
        &self.inner.spec
    }

    /// How many stdout lines that were not replies the commands wrote so far (logged to the
    /// trial's `loss.log`, or dropped when the run has no trial directory).
    pub fn stray_lines(&self) -> u64 {
        self.inner.stray.load(Ordering::Relaxed)
    }

    /// The process ids of the idle commands (each also its process group id).
    pub fn idle_pids(&self) -> Vec<u32> {
        lock(&self.inner.idle)
            .iter()
            .map(CommandProcess::pid)
            .collect()
    }

    /// Closes the stdin of every idle command (end of file: exit), gives them up to a second
    /// in all, then kills their process groups and reaps them. Commands busy with a batch are
    /// not handed back afterwards: they are stopped the same way when their batch ends. A later
    /// batch starts fresh processes.
    pub fn release(&self) {
        self.inner.release();
    }
}

impl Inner {
    fn release(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let procs = std::mem::take(&mut *lock(&self.idle));
        finish_all(procs);
    }

    /// The argv, for messages: `["python3", "model.py"]`.
    fn argv(&self) -> String {
        format!("{:?}", self.spec.argv)
    }

    /// The program to start: a path with `/` checked (relative to `cwd`), a bare name found
    /// on `PATH`.
    fn resolve_program(&self) -> Result<PathBuf, String> {
        let prog = self.spec.argv.first().map_or("", String::as_str);
        let path = Path::new(prog);
        if let Some(cwd) = &self.spec.cwd {
            if !cwd.is_dir() {
                return Err(format!(
                    "its working directory {} does not exist: fix `cwd` or create the directory",
                    cwd.display()
                ));
            }
        }
        if prog.contains('/') || (cfg!(windows) && prog.contains('\\')) {
            let full = if path.is_absolute() {
                path.to_path_buf()
            } else {
                let base = match &self.spec.cwd {
                    Some(c) => c.clone(),
                    None => std::env::current_dir()
                        .map_err(|e| format!("cannot read the current directory: {e}"))?,
                };
                base.join(path)
            };
            if !full.exists() {
                return Err(format!(
                    "program `{prog}` does not exist (looked for {}): fix the path{}",
                    full.display(),
                    if path.is_absolute() {
                        ""
                    } else {
                        " (a relative path is taken from the command's working directory)"
                    }
                ));
            }
            if !os::is_executable(&full) {
                return Err(format!(
                    "program {} is not an executable file: make it one (chmod +x, with a #! line) or start it through its interpreter, e.g. [\"sh\", \"{prog}\"]",
                    full.display()
                ));
            }
            // Absolute, so that the working directory cannot change what it means.
            Ok(full)
        } else {
            let search = self
                .spec
                .env
                .get("PATH")
                .map(OsString::from)
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_default();
            let found = std::env::split_paths(&search)
                .map(|dir| dir.join(prog))
                .any(|candidate| os::is_executable(&candidate));
            if found {
                // The system looks it up the same way (with the spec's PATH, if it has one).
                Ok(PathBuf::from(prog))
            } else {
                Err(format!(
                    "program `{prog}` was not found on PATH: install it, or give its full path as the first element of the command"
                ))
            }
        }
    }

    /// Starts a fresh process.
    fn spawn(&self) -> Result<CommandProcess, String> {
        let program = self.resolve_program()?;
        let generation = self.generation.load(Ordering::SeqCst);
        CommandProcess::spawn(&program, &self.spec, generation).map_err(|e| {
            format!("could not be started: {e}; check that the program exists and is executable")
        })
    }

    /// An idle process that still runs, or a fresh one.
    fn take_process(&self) -> Result<CommandProcess, String> {
        loop {
            let idle = lock(&self.idle).pop();
            match idle {
                Some(mut p) if p.has_exited() => {
                    let status = os::describe_status(p.kill());
                    tracing::warn!(
                        pid = p.pid(),
                        "command {} exited between batches ({status}){}; starting a new one",
                        self.argv(),
                        p.stderr_tail()
                    );
                }
                Some(p) => return Ok(p),
                None => return self.spawn(),
            }
        }
    }

    /// Hands a process back after a clean batch (or stops it, after a release).
    fn give_back(&self, proc: CommandProcess) {
        if proc.generation == self.generation.load(Ordering::SeqCst) {
            lock(&self.idle).push(proc);
        } else {
            finish_all(vec![proc]);
        }
    }

    /// Kills `proc` and says what happened, with its stderr tail.
    fn failure(
        &self,
        mut proc: CommandProcess,
        stop: Stop,
        request: &BatchRequest<'_>,
        limit: Option<Duration>,
    ) -> SeedFailure {
        let pid = proc.pid();
        let what = match stop {
            Stop::Cancelled => {
                proc.kill();
                return SeedFailure::Cancelled;
            }
            Stop::Exited { what } => {
                if proc.wait_exit(EXIT_WAIT) {
                    format!("exited with {}", os::describe_status(proc.kill()))
                } else {
                    proc.kill();
                    format!("{what} but kept running; it was killed")
                }
            }
            Stop::TimedOut { output } => {
                proc.kill();
                let allowance = match (self.spec.batch_timeout, limit) {
                    (Some(b), Some(l)) if l > b => format!(
                        "batch_timeout_seconds = {} + startup_timeout_seconds = {} for the first batch of a fresh command",
                        secs(b),
                        secs(l - b)
                    ),
                    (Some(b), _) => format!("batch_timeout_seconds = {}", secs(b)),
                    (None, _) => "no limit".to_string(),
                };
                let hint = if output {
                    ""
                } else {
                    "; it wrote nothing on stdout: if it does answer, make sure it flushes stdout after each reply"
                };
                format!(
                    "did not answer within {} s ({allowance}); it was killed with its process group. Raise batch_timeout_seconds if the loss is just slow{hint}",
                    limit.map_or(0.0, |l| l.as_secs_f64())
                )
            }
            Stop::Twice(seed) => {
                proc.kill();
                format!("answered seed {seed} twice; it was killed (each seed of a request is answered exactly once)")
            }
            Stop::Unknown(seed) => {
                proc.kill();
                format!("answered seed {seed}, which the request did not ask for; it was killed")
            }
            Stop::Late(seed) => {
                proc.kill();
                format!("answered seed {seed} between batches (after its previous batch was complete); it was killed")
            }
            Stop::Malformed(m) => {
                proc.kill();
                format!("broke the protocol: {m}; it was killed (a reply is {{\"seed\": N, \"value\": X}} or {{\"seed\": N, \"error\": \"...\"}})")
            }
            Stop::Io(e) => {
                proc.kill();
                format!("could not be talked to ({e}); it was killed")
            }
        };
        SeedFailure::Batch {
            message: format!(
                "command {} (pid {pid}), evaluating trial {} ({}): {what}{}",
                self.argv(),
                request.trial,
                describe_seeds(request.seeds),
                proc.stderr_tail()
            ),
        }
    }

    /// The typed form of [`BatchLoss::preflight`].
    fn check(&self) -> Result<(), LocalError> {
        let problem = |problem: String| LocalError::Command {
            argv: self.spec.argv.clone(),
            problem,
        };
        self.resolve_program().map_err(problem)?;
        {
            let mut idle = lock(&self.idle);
            idle.retain(|p| !p.has_exited());
            if !idle.is_empty() {
                return Ok(());
            }
        }
        let mut proc = self.spawn().map_err(problem)?;
        if proc.wait_exit(PREFLIGHT_WINDOW) {
            let status = os::describe_status(proc.kill());
            return Err(problem(format!(
                "exited with {status} within {} ms of starting, before any request (a command loss keeps running and reads requests from stdin); run it by hand to see why{}",
                PREFLIGHT_WINDOW.as_millis(),
                proc.stderr_tail()
            )));
        }
        self.give_back(proc);
        Ok(())
    }
}

/// Closes the stdin of every process, waits up to [`RELEASE_GRACE`] in all for them to exit,
/// then kills their process groups and reaps them.
fn finish_all(mut procs: Vec<CommandProcess>) {
    if procs.is_empty() {
        return;
    }
    for p in &mut procs {
        p.close_stdin();
    }
    let deadline = Instant::now() + RELEASE_GRACE;
    while Instant::now() < deadline && procs.iter().any(|p| !p.has_exited()) {
        std::thread::sleep(POLL);
    }
    // Dropping kills each process group and reaps the leader.
    drop(procs);
}

/// `2` or `0.5`, for messages.
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// `seeds [0, 1, 2]` or `seeds [0, 1, ..., 99] (100 seeds)`.
fn describe_seeds(seeds: &[u64]) -> String {
    if seeds.len() <= LISTED_SEEDS {
        format!("seeds {seeds:?}")
    } else {
        let head: Vec<String> = seeds[..LISTED_SEEDS - 1]
            .iter()
            .map(u64::to_string)
            .collect();
        format!(
            "seeds [{}, ..., {}] ({} seeds)",
            head.join(", "),
            seeds[seeds.len() - 1],
            seeds.len()
        )
    }
}

/// The values in request order; a seed error fails the batch with the earliest failing seed
/// (an earlier NaN counts as failing, as the caller would report it).
fn into_values(seeds: &[u64], answers: Vec<Answer>) -> Result<Vec<LossValue>, SeedFailure> {
    if !answers.iter().any(|a| matches!(a, Answer::Error(_))) {
        return Ok(answers
            .into_iter()
            .map(|a| match a {
                Answer::Value(v) => v,
                Answer::Error(_) => LossValue::Scalar(f64::NAN),
            })
            .collect());
    }
    for (&seed, answer) in seeds.iter().zip(answers) {
        match answer {
            Answer::Error(message) => return Err(SeedFailure::Error { seed, message }),
            Answer::Value(v) if v.total().is_nan() => return Err(SeedFailure::NotANumber { seed }),
            Answer::Value(_) => {}
        }
    }
    Err(SeedFailure::Batch {
        message: "internal error: a seed error was lost".into(),
    })
}

impl Inner {
    fn evaluate_batch(
        &self,
        request: &BatchRequest<'_>,
        cancel: &AtomicBool,
    ) -> Result<Vec<LossValue>, SeedFailure> {
        if request.seeds.is_empty() {
            return Ok(Vec::new());
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(SeedFailure::Cancelled);
        }
        let mut sorted = request.seeds.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(SeedFailure::Batch {
                message: format!(
                    "command {}: trial {} asks for seed {} twice in one batch",
                    self.argv(),
                    request.trial,
                    w[0]
                ),
            });
        }
        let mut proc = self.take_process().map_err(|why| SeedFailure::Batch {
            message: format!(
                "command {}, evaluating trial {}: {why}",
                self.argv(),
                request.trial
            ),
        })?;
        let limit = self.spec.batch_timeout.map(|t| {
            if proc.batches == 0 {
                t.saturating_add(self.spec.startup_timeout)
            } else {
                t
            }
        });
        let line = Request {
            trial: request.trial.0,
            entry_id: request.entry_id,
            params: request.params,
            seeds: request.seeds,
        }
        .to_line();
        let deadline = limit.and_then(|l| Instant::now().checked_add(l));
        let (outcome, stray) = proc.run(&line, request.seeds, request.trial_dir, deadline, cancel);
        self.stray.fetch_add(stray, Ordering::Relaxed);
        match outcome {
            Ok(answers) => {
                proc.batches += 1;
                self.give_back(proc);
                into_values(request.seeds, answers)
            }
            Err(stop) => Err(self.failure(proc, stop, request, limit)),
        }
    }
}

impl BatchLoss for CommandLoss {
    /// Sends the batch to an idle command (or a fresh one) and reads its replies; see the
    /// module documentation for what fails a seed and what fails the batch.
    fn evaluate_batch(
        &self,
        request: &BatchRequest<'_>,
        cancel: &AtomicBool,
    ) -> Result<Vec<LossValue>, SeedFailure> {
        self.inner.evaluate_batch(request, cancel)
    }

    fn max_batch(&self) -> usize {
        self.inner.spec.batch_size.unwrap_or(usize::MAX)
    }

    /// Checks that the program exists and is executable, then starts one process and watches it
    /// for 300 ms: a command that exits that soon (a missing script or module) is an error
    /// naming the argv, the exit status and the stderr tail. The process is kept for the first
    /// batch.
    fn preflight(&self) -> Result<(), CoreError> {
        self.inner
            .check()
            .map_err(|e| CoreError::InvalidLoss(e.to_string()))
    }

    fn release(&self) {
        self.inner.release();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_validated_naming_the_option() {
        let spec = |f: fn(&mut CommandSpec)| {
            let mut s = CommandSpec::new(vec!["sh".into()]);
            f(&mut s);
            CommandLoss::new(s)
        };
        for (f, option) in [
            ((|s| s.argv.clear()) as fn(&mut CommandSpec), "command"),
            (|s| s.argv = vec![String::new()], "command"),
            (|s| s.batch_size = Some(0), "batch_size"),
            (
                |s| s.batch_timeout = Some(Duration::ZERO),
                "batch_timeout_seconds",
            ),
            (
                |s| s.startup_timeout = Duration::ZERO,
                "startup_timeout_seconds",
            ),
        ] {
            match spec(f) {
                Err(LocalError::InvalidOption { option: o, .. }) => assert_eq!(o, option),
                other => panic!("{option}: {other:?}"),
            }
        }
        let l = spec(|s| s.batch_size = Some(10)).unwrap();
        assert_eq!(l.max_batch(), 10);
        assert_eq!(spec(|_| {}).unwrap().max_batch(), usize::MAX);
    }

    #[test]
    fn long_seed_lists_are_abbreviated() {
        assert_eq!(describe_seeds(&[1, 2]), "seeds [1, 2]");
        let many: Vec<u64> = (0..100).collect();
        assert_eq!(
            describe_seeds(&many),
            "seeds [0, 1, 2, 3, 4, 5, 6, 7, 8, ..., 99] (100 seeds)"
        );
    }

    #[test]
    fn the_earliest_failing_seed_is_reported() {
        let v = |x: f64| Answer::Value(LossValue::Scalar(x));
        let e = |m: &str| Answer::Error(m.into());
        assert_eq!(
            into_values(&[1, 2], vec![v(1.0), v(f64::NAN)])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            into_values(&[1, 2, 3], vec![v(1.0), e("bad"), e("worse")]),
            Err(SeedFailure::Error {
                seed: 2,
                message: "bad".into()
            })
        );
        assert_eq!(
            into_values(&[1, 2, 3], vec![v(f64::NAN), e("bad"), v(1.0)]),
            Err(SeedFailure::NotANumber { seed: 1 })
        );
    }

    #[cfg(unix)]
    #[test]
    fn programs_are_resolved_on_path_or_relative_to_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let loss = |argv: &[&str], cwd: Option<&Path>| {
            let mut s = CommandSpec::new(argv.iter().map(|a| a.to_string()).collect());
            s.cwd = cwd.map(Path::to_path_buf);
            CommandLoss::new(s).unwrap().inner
        };
        assert!(loss(&["sh"], None).resolve_program().is_ok());
        let e = loss(&["no-such-interpreter-xyz"], None)
            .resolve_program()
            .unwrap_err();
        assert!(e.contains("not found on PATH"), "{e}");
        std::fs::write(dir.path().join("plain.txt"), "x").unwrap();
        let e = loss(&["./plain.txt"], Some(dir.path()))
            .resolve_program()
            .unwrap_err();
        assert!(e.contains("not an executable file"), "{e}");
        let e = loss(&["./missing.sh"], Some(dir.path()))
            .resolve_program()
            .unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let e = loss(&["sh"], Some(&dir.path().join("nowhere")))
            .resolve_program()
            .unwrap_err();
        assert!(e.contains("working directory"), "{e}");
        {
            use std::os::unix::fs::PermissionsExt;
            let script = dir.path().join("ok.sh");
            std::fs::write(&script, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let p = loss(&["./ok.sh"], Some(dir.path()))
            .resolve_program()
            .unwrap();
        assert!(p.is_absolute() && p.ends_with("ok.sh"), "{}", p.display());
    }
}
