//! The `os` module on systems that are not Unix: there are no worker processes there (they need
//! process groups, signals and a reply pipe on file descriptor 3), so
//! [`crate::ProcessExecutor::new`] fails with a clear error and only threads evaluate seeds. The
//! other functions keep the pool code compiling; none of them is reached. `process_is_running` is
//! not offered here. Command losses ([`crate::CommandLoss`]) need process groups and `poll(2)`
//! too: starting one fails with an error that says so.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus};

use crate::error::LocalError;

/// The file descriptor on which a pool worker writes its replies (on Unix).
pub(crate) const REPLY_FD: i32 = 3;

/// Worker processes need a Unix system.
pub(crate) fn check_process_pool() -> Result<(), LocalError> {
    Err(LocalError::InvalidOption {
        option: "use_processes",
        reason: "worker processes need a Unix system (process groups, signals, a reply pipe on \
                 file descriptor 3); on this system leave use_processes off and the seeds are \
                 evaluated on threads"
            .into(),
    })
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "worker processes need a Unix system",
    )
}

fn command_unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "command losses need a Unix system (process groups, poll); on this system write the \
         loss in Rust",
    )
}

/// Never starts anything: command losses need a Unix system.
pub(crate) fn spawn_in_group(_cmd: &mut Command) -> io::Result<Child> {
    Err(command_unsupported())
}

/// Never reached: no command is started on this system.
pub(crate) fn set_nonblocking(_stdin: &ChildStdin) -> io::Result<()> {
    Err(command_unsupported())
}

/// What [`wait_io`] found ready (never anything here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The child's stdout can be read without blocking.
    pub(crate) readable: bool,
    /// The child's stdin can be written without blocking.
    pub(crate) writable: bool,
}

/// Never reached: no command is started on this system.
pub(crate) fn wait_io(
    _stdout: &ChildStdout,
    _stdin: Option<&ChildStdin>,
    _timeout: std::time::Duration,
) -> io::Result<Ready> {
    Err(command_unsupported())
}

/// True when `path` is a file (permissions are not checked here).
pub(crate) fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Never starts anything: worker processes need a Unix system.
pub(crate) fn spawn_worker_process(_cmd: &mut Command) -> io::Result<(Child, File)> {
    Err(unsupported())
}

/// Never opens anything: worker processes need a Unix system.
pub(crate) fn open_reply_fd(_fd: i32) -> io::Result<File> {
    Err(unsupported())
}

/// No worker process exists here; a child counts as alive until it is reaped.
pub(crate) fn has_exited(_pid: u32) -> bool {
    false
}

/// Nothing to signal: no worker is ever started on this system.
pub(crate) fn kill_group(_pid: u32) {}

/// `exit code 3`, or the status as the system prints it.
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        None => "an unknown status".to_string(),
        Some(s) => match s.code() {
            Some(code) => format!("exit code {code}"),
            None => format!("status {s}"),
        },
    }
}
