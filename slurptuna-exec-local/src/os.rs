//! Unix process plumbing: the reply pipe, process groups, non-reaping exit checks, signal names.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// The file descriptor on which a pool worker writes its replies.
pub(crate) const REPLY_FD: RawFd = 3;

/// A pipe whose both ends are close-on-exec: `(read, write)`.
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child between fork and exec: makes `fd` available as [`REPLY_FD`], surviving exec.
/// Only async-signal-safe calls (dup2, fcntl).
pub(crate) fn install_reply_fd(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscalls on descriptors of this (forked) process.
    unsafe {
        if fd == REPLY_FD {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(fd, REPLY_FD) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks `fd` close-on-exec; fails if `fd` is not open.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an arbitrary descriptor number is safe; it fails with EBADF if closed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True when child `pid` has exited (or cannot be waited for), **without reaping it**, so its
/// pid and process group id stay reserved until the caller reaps it.
pub(crate) fn has_exited(pid: u32) -> bool {
    // SAFETY: siginfo_t is plain data; zeroed is its documented initial state for WNOHANG.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with a valid out-pointer; WNOWAIT leaves the child waitable.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return true;
    }
    // SAFETY: waitid filled `info` (or left it zeroed when the child is still running).
    unsafe { info.si_pid() != 0 }
}

/// Sends `signal` to the process group led by `pid` (workers are group leaders). Callers make
/// sure the leader is not reaped yet, so the group id cannot have been reused.
pub(crate) fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill with a negative pid signals a process group; errors (ESRCH) are harmless.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// The conventional name of a signal.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "unknown signal",
    }
}

/// `exit code 3` or `signal 6 (SIGABRT)`.
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        None => "an unknown status".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {sig} ({})", signal_name(sig)),
            (None, None) => format!("status {s}"),
        },
    }
}

/// True when process `pid` exists and is not a zombie (Linux `/proc`, else `kill(pid, 0)`).
pub fn process_is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name, which may contain spaces.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => {
            // SAFETY: signal 0 only checks for existence and permission.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn statuses_are_described_with_signal_names() {
        assert_eq!(
            describe_status(Some(ExitStatus::from_raw(libc::SIGABRT))),
            "signal 6 (SIGABRT)"
        );
        assert_eq!(
            describe_status(Some(ExitStatus::from_raw(3 << 8))),
            "exit code 3"
        );
        assert_eq!(describe_status(None), "an unknown status");
    }

    #[test]
    fn own_process_is_running_and_a_reaped_child_is_not() {
        assert!(process_is_running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !has_exited(pid) {
            assert!(std::time::Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Exited but not reaped: a zombie, which does not count as running.
        assert!(!process_is_running(pid));
        assert!(child.wait().unwrap().success());
        assert!(has_exited(pid));
    }
}
