//! The one error type of `slurptuna-exec-local`.

use std::path::PathBuf;

use slurptuna_core::CoreError;

/// Everything the local executors and the pool-worker entry point can fail with.
///
/// A loss that fails, panics, aborts or crashes its worker is **not** a `LocalError`: it fails its
/// trial (`ExecError::Trial`). These errors mean the executor itself cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A constructor argument is out of range.
    #[error("option '{option}': {reason}")]
    InvalidOption {
        /// The option, as named in `RunOptions`.
        option: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A job asked for another loss than the one a [`crate::ThreadExecutor`] was built with.
    #[error("the thread executor evaluates loss '{expected}' but the job asks for '{requested}'; build one executor per loss")]
    WrongLoss {
        /// The executor's loss.
        expected: String,
        /// The job's loss.
        requested: String,
    },
    /// The program of the pool could not be located or started.
    #[error("could not start worker process `{program}`; check that the program exists and is executable")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A worker process exited before it reached the pool-worker entry point.
    #[error("worker process {pid} (`{program}` {args:?}) exited with {status} before reaching the slurptuna worker entry point; the program must call optimize_run or optimize_entries (which serve worker requests) on every path, with the same arguments{stderr}")]
    ExitedBeforeHandshake {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// The worker's pid.
        pid: u32,
        /// How it ended (`exit code 3`, `signal 6 (SIGABRT)`).
        status: String,
        /// The last lines it wrote to stderr (preformatted, may be empty).
        stderr: String,
    },
    /// A worker process did not announce itself in time.
    #[error("worker process {pid} (`{program}` {args:?}) did not reach the slurptuna worker entry point within {timeout_secs} s; it was killed. If the program does slow work before calling optimize_run, raise the startup timeout; otherwise make sure it calls optimize_run or optimize_entries before anything that waits")]
    HandshakeTimeout {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// The worker's pid.
        pid: u32,
        /// The timeout, in seconds.
        timeout_secs: f64,
    },
    /// A worker process does not know the loss a trial asks for.
    #[error("worker process {pid} (`{program}`, argv {argv:?}) has no loss named '{requested}' (registered there: [{}]); build every loss before the first optimize_run/optimize_entries call, and keep forward_sys_argv_to_workers on if the program needs its arguments to build it", registered.join(", "))]
    LossNotRegistered {
        /// The loss the trial asks for.
        requested: String,
        /// The program.
        program: PathBuf,
        /// The worker's pid.
        pid: u32,
        /// The worker's argv as it saw it.
        argv: Vec<String>,
        /// The losses registered in the worker.
        registered: Vec<String>,
    },
    /// A worker sent something that does not follow the pool protocol.
    #[error("worker process {pid}: protocol violation: {detail}; the worker was killed (is the worker program built from the same slurptuna version?)")]
    Protocol {
        /// The worker's pid (0 when seen from the worker side).
        pid: u32,
        /// What was wrong.
        detail: String,
    },
    /// The pool was shut down; no new work is accepted.
    #[error("the process pool is shut down; create a new executor to evaluate more trials")]
    ShutDown,
    /// Pool-worker side: the environment set up by the pool is missing or malformed.
    #[error("this process was started as a slurptuna pool worker but {var} is {value:?}; pool workers are started by the process executor only (unset {var} to run the program normally)")]
    WorkerEnvironment {
        /// The variable.
        var: &'static str,
        /// Its value, if any.
        value: Option<String>,
    },
    /// Pool-worker side: talking to the parent over the pipes failed.
    #[error("pool worker: {what} failed; the parent process has probably gone away")]
    WorkerIo {
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A command loss ([`crate::CommandLoss`]) cannot be used: its program is missing or not
    /// executable, or it exits right after starting.
    #[error("command {argv:?}: {problem}")]
    Command {
        /// The command's program and arguments.
        argv: Vec<String>,
        /// What is wrong and what to do (with the command's last stderr lines, if any).
        problem: String,
    },
    /// An internal task of the executor failed (a panic in slurptuna or a runtime shutting down).
    #[error("internal task of the {executor} executor failed: {detail}")]
    Internal {
        /// `threads` or `processes`.
        executor: &'static str,
        /// What happened.
        detail: String,
    },
}

impl LocalError {
    /// Wraps this error as a [`CoreError::Executor`] of backend `executor`.
    pub fn into_core(self, executor: &'static str) -> CoreError {
        CoreError::Executor {
            executor,
            source: Box::new(self),
        }
    }
}
