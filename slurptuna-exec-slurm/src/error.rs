//! The one error type of `slurptuna-exec-slurm`.

use std::ffi::OsString;
use std::fmt;
use std::process::ExitStatus;

/// Everything that can go wrong talking to Slurm: a command that could not start, failed, was
/// refused, or printed something unreadable. (Option errors are
/// `slurptuna_core::CoreError::InvalidOption`, from [`crate::SlurmOptions::validate`] for
/// Slurm's own options and from the facade for the scheduler-independent ones; trial
/// directories and the worker side belong to `slurptuna_core::batch`.)
///
/// Messages are lowercase, say what failed and where, and what to do; the cause is kept as the
/// error's source, never flattened into the message. For the batch executor each variant has a
/// kind ([`crate::SlurmBatchClient`]): `SubmitLimit` backs off, `Failed` and `Parse` are retried,
/// the others stop the run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlurmError {
    /// A Slurm command could not be started at all (not installed, not on `PATH`), or did not
    /// answer in time.
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

impl From<SlurmError> for slurptuna_core::CoreError {
    fn from(e: SlurmError) -> Self {
        slurptuna_core::CoreError::Executor {
            executor: "slurm",
            source: Box::new(e),
        }
    }
}
