//! The one error type of `slurptuna-exec-slurm`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong in the Slurm backend: bad options, a Slurm command that could
/// not start or failed, unreadable task files, a worker that could not evaluate its chunk.
///
/// Messages are lowercase, say what failed and where, and what to do; the cause is kept as the
/// error's source, never flattened into the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlurmError {
    /// A [`crate::SlurmConfig`] option is out of range or malformed.
    #[error("slurm option '{option}': {reason}")]
    InvalidConfig {
        /// The option name (a `SlurmConfig` field).
        option: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A Slurm command could not be started at all (not installed, not on `PATH`).
    #[error("could not run `{program}`: is Slurm installed and on PATH?")]
    Spawn {
        /// The command (`sbatch`, `squeue`, ...).
        program: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// A Slurm command ran and exited unsuccessfully.
    #[error("{}", CommandFailure(.argv, .status, .stdout, .stderr))]
    Failed {
        /// The full command line.
        argv: Vec<OsString>,
        /// Its exit status (a signal is shown by name).
        status: ExitStatus,
        /// What it printed on stdout.
        stdout: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// `sbatch` refused the job because of a submit limit (`QOSMaxSubmitJobPerUserLimit`, "job
    /// violates accounting/QOS policy"); the executor backs off and tries again.
    #[error("sbatch hit a submit limit (will back off and retry): {stderr}")]
    SubmitLimit {
        /// What sbatch said.
        stderr: String,
    },
    /// `sbatch` rejected the `--qos` value; fix `slurm_qos` (or set it to `None`).
    #[error(
        "sbatch rejected --qos={qos}: {stderr}; set slurm_qos to a QoS you may use, or to None"
    )]
    InvalidQos {
        /// The QoS given.
        qos: String,
        /// What sbatch said.
        stderr: String,
    },
    /// A Slurm command printed something this backend cannot read.
    #[error("cannot parse the output of `{command}`: {reason} (output: {output:?})")]
    Parse {
        /// The command (`sbatch`, `squeue`, `sacct`).
        command: &'static str,
        /// What was expected.
        reason: String,
        /// The offending output (truncated).
        output: String,
    },
    /// A file of the trial directory (task file, chunk result, job record) could not be read or
    /// written.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`cannot write`, `cannot read`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the trial directory holds malformed JSON.
    #[error("malformed {what} in {path}: delete the file to have it rewritten")]
    Json {
        /// Which file (`task file`, `chunk result`, `job record`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The worker was started without a usable environment (`SLURPTUNA_TASK_FILE`,
    /// `SLURM_ARRAY_TASK_ID`).
    #[error("worker environment: {0}")]
    WorkerEnv(String),
    /// The worker program did not build the loss the task asks for.
    #[error(
        "the worker program did not build the loss '{requested}' (argv: {argv:?}; losses it built: {available:?}): \
         build the loss before calling optimize_run, and keep forward_sys_argv_to_workers on if its name depends on the arguments"
    )]
    LossNotFound {
        /// The loss named in the task file.
        requested: String,
        /// The worker's own command line (the forwarded argv).
        argv: Vec<String>,
        /// `registered_loss_names()` in the worker.
        available: Vec<String>,
    },
    /// The loss failed on a seed of this worker's chunk (a failure record was written).
    #[error("chunk {chunk} of trial {trial} failed: {reason}")]
    ChunkFailed {
        /// Trial number.
        trial: u64,
        /// Chunk index.
        chunk: u64,
        /// The seed failure.
        reason: String,
    },
    /// The job directory needed for the task files is unknown.
    #[error("trial {trial} has no trial directory and no scratch_dir is configured: the Slurm backend needs a directory shared with the compute nodes")]
    NoTrialDir {
        /// Trial number.
        trial: u64,
    },
}

struct CommandFailure<'a>(&'a Vec<OsString>, &'a ExitStatus, &'a String, &'a String);

impl fmt::Display for CommandFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let argv: Vec<String> = self
            .0
            .iter()
            .map(|a| format!("{:?}", a.to_string_lossy()))
            .collect();
        write!(
            f,
            "`{}` did not exit successfully ({})",
            argv.join(" "),
            describe_status(self.1)
        )?;
        let (out, err) = (self.2.trim(), self.3.trim());
        if !out.is_empty() {
            write!(f, "\n--- stdout\n{out}")?;
        }
        if !err.is_empty() {
            write!(f, "\n--- stderr\n{err}")?;
        }
        Ok(())
    }
}

/// `exit status 3` or `signal 9 (SIGKILL)`.
pub(crate) fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => format!("signal {sig} ({})", signal_name(sig)),
        None => status.to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => "unknown signal",
    }
}

impl SlurmError {
    pub(crate) fn config(option: &'static str, reason: impl Into<String>) -> Self {
        SlurmError::InvalidConfig {
            option,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SlurmError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<SlurmError> for slurptuna_core::CoreError {
    fn from(e: SlurmError) -> Self {
        match e {
            SlurmError::InvalidConfig { option, reason } => {
                slurptuna_core::CoreError::InvalidOption { option, reason }
            }
            other => slurptuna_core::CoreError::Executor {
                executor: "slurm",
                source: Box::new(other),
            },
        }
    }
}
