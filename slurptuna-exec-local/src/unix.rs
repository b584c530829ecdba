//! Unix process plumbing (the `os` module on Unix): the reply pipe, process groups, non-reaping
//! exit checks, signal names.
//!
//! Everything here is POSIX except where marked: the exit check uses `waitid(WNOWAIT)` where the
//! system has it (Linux, macOS, the BSDs, illumos), and [`process_is_running`] reads `/proc` on
//! Linux and asks `proc_pidinfo` on macOS so that a zombie does not count as running.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus};
#[cfg(not(target_os = "linux"))]
use std::sync::{Mutex, PoisonError};

use crate::error::LocalError;

/// The file descriptor on which a pool worker writes its replies.
pub(crate) const REPLY_FD: RawFd = 3;

/// Worker processes are available on Unix.
pub(crate) fn check_process_pool() -> Result<(), LocalError> {
    Ok(())
}

/// Held while a worker is started, except on Linux. Where pipes are not created close-on-exec
/// atomically (macOS has no `pipe2`: std sets the flag right after `pipe`, for our reply pipe and
/// for the stdio pipes of a `Command` alike), a worker started concurrently could inherit another
/// worker's pipe ends, and the pool would never see end-of-file from a worker that died. Starting
/// one worker at a time rules that out among the pool's own workers.
#[cfg(not(target_os = "linux"))]
static SPAWN: Mutex<()> = Mutex::new(());

/// Starts `cmd` as a worker: the leader of its own process group, with the write end of a fresh
/// pipe as [`REPLY_FD`]. Returns the child and the read end of that pipe.
pub(crate) fn spawn_worker_process(cmd: &mut Command) -> io::Result<(Child, File)> {
    #[cfg(not(target_os = "linux"))]
    let _one_at_a_time = SPAWN.lock().unwrap_or_else(PoisonError::into_inner);
    let (read_end, write_end) = pipe_cloexec()?;
    cmd.process_group(0);
    let raw = write_end.as_raw_fd();
    // SAFETY: the closure only calls dup2/fcntl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || install_reply_fd(raw));
    }
    let child = cmd.spawn()?;
    drop(write_end);
    Ok((child, File::from(read_end)))
}

/// Starts `cmd` (a command loss) as the leader of its own process group, so that
/// [`kill_group`] also stops the processes it starts. Serialised like
/// [`spawn_worker_process`] where pipes are not created close-on-exec atomically.
pub(crate) fn spawn_in_group(cmd: &mut Command) -> io::Result<Child> {
    #[cfg(not(target_os = "linux"))]
    let _one_at_a_time = SPAWN.lock().unwrap_or_else(PoisonError::into_inner);
    cmd.process_group(0);
    cmd.spawn()
}

/// Makes writes to a child's stdin return `WouldBlock` instead of blocking when the pipe is full
/// (the other end is the child's own open file description, which is unaffected).
pub(crate) fn set_nonblocking(stdin: &ChildStdin) -> io::Result<()> {
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on a descriptor owned by `stdin`, which outlives the call.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What [`wait_io`] found ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The child's stdout has data, or is at end-of-file or broken (a read will not block).
    pub(crate) readable: bool,
    /// The child's stdin accepts more bytes, or is broken (a write will not block).
    pub(crate) writable: bool,
}

/// Waits up to `timeout` until `stdout` is readable or, when given, `stdin` is writable
/// (`poll(2)`). An interrupted wait returns nothing ready.
pub(crate) fn wait_io(
    stdout: &ChildStdout,
    stdin: Option<&ChildStdin>,
    timeout: std::time::Duration,
) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stdin.map_or(-1, |s| s.as_raw_fd()),
            events: libc::POLLOUT,
            revents: 0,
        },
    ];
    // Rounded up, so that a short wait does not become a busy loop; zero polls without waiting.
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a valid array of two pollfd; a negative fd is ignored by poll.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(Ready::default())
        } else {
            Err(e)
        };
    }
    let broken = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
    Ok(Ready {
        readable: fds[0].revents & (libc::POLLIN | broken) != 0,
        writable: fds[1].fd >= 0 && fds[1].revents & (libc::POLLOUT | broken) != 0,
    })
}

/// True when `path` is a file this process may execute (`access(X_OK)`, and not a directory).
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if !path.is_file() {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// A pipe whose both ends are close-on-exec: `(read, write)`.
fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    // std creates both ends close-on-exec (with pipe2 where the system has it).
    let (read, write) = io::pipe()?;
    Ok((OwnedFd::from(read), OwnedFd::from(write)))
}

/// In the child between fork and exec: makes `fd` available as [`REPLY_FD`], surviving exec.
/// Only async-signal-safe calls (dup2, fcntl).
fn install_reply_fd(fd: RawFd) -> io::Result<()> {
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

/// Worker side: takes ownership of the reply descriptor `fd` that the pool installed, marking it
/// close-on-exec so that processes the loss starts do not inherit it (or the parent would not see
/// end-of-file when this worker dies). Fails if `fd` is not open.
pub(crate) fn open_reply_fd(fd: RawFd) -> io::Result<File> {
    set_cloexec(fd)?;
    // SAFETY: the descriptor is open (checked above), was created by the pool for this process
    // alone, and nothing else in the process owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Marks `fd` close-on-exec; fails if `fd` is not open.
fn set_cloexec(fd: RawFd) -> io::Result<()> {
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
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris",
))]
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

/// Systems without `waitid(WNOWAIT)` cannot see that a child exited without reaping it; the pool
/// then treats a worker as alive until it reaps it, so stopping a dead worker waits out the grace
/// period before the SIGKILL and the reap (which still report how it ended).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris",
)))]
pub(crate) fn has_exited(_pid: u32) -> bool {
    false
}

/// SIGKILLs the process group led by `pid` (workers are group leaders). Callers make sure the
/// leader is not reaped yet, so the group id cannot have been reused.
pub(crate) fn kill_group(pid: u32) {
    // SAFETY: kill with a negative pid signals a process group; errors (ESRCH) are harmless.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

/// The conventional name of a signal.
fn signal_name(signal: i32) -> &'static str {
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

/// True when process `pid` exists and is not a zombie (Linux `/proc`, macOS `proc_pidinfo`, else
/// `kill(pid, 0)`, which on other systems counts a zombie as running). Unix only.
pub fn process_is_running(pid: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        return !matches!(state, Some("Z") | Some("X"));
    }
    #[cfg(target_os = "macos")]
    if let Some(zombie) = macos_is_zombie(pid) {
        return !zombie;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `pid` is a zombie, from its short BSD info (which any user may read, and which finds
/// zombies too when asked with `arg = 1`); `None` when it cannot be read (no such process).
#[cfg(target_os = "macos")]
fn macos_is_zombie(pid: u32) -> Option<bool> {
    let pid = libc::c_int::try_from(pid).ok()?;
    // SAFETY: proc_bsdshortinfo is plain data.
    let mut info: libc::proc_bsdshortinfo = unsafe { std::mem::zeroed() };
    let size = libc::c_int::try_from(std::mem::size_of::<libc::proc_bsdshortinfo>()).ok()?;
    // SAFETY: the buffer is a valid proc_bsdshortinfo of `size` bytes.
    let filled = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDT_SHORTBSDINFO,
            1,
            (&mut info as *mut libc::proc_bsdshortinfo).cast(),
            size,
        )
    };
    (filled == size).then_some(info.pbsi_status == libc::SZOMB)
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
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
        assert!(!process_is_running(pid));
        assert!(child.wait().unwrap().success());
        assert!(has_exited(pid));
    }
}
