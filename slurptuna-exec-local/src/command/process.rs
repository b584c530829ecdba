//! One running command: its pipes, its trial log, its stderr tail, and the conversation of one
//! batch (request out, one reply per seed back), all on the calling thread with `poll(2)`.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::protocol::{parse_line, Answer, Line};
use super::{CommandSpec, COMMAND_LOG_FILE as LOG_FILE};
use crate::os;

/// How many stderr lines, and how many bytes of them, are kept for failure messages.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 4096;
/// What arrives on stderr before the first batch names a log is kept (up to this much) and
/// written to the first trial's log.
const EARLY_LOG_BYTES: usize = 64 * 1024;
/// The longest line read from stderr at once (a longer one is split).
const MAX_STDERR_LINE: u64 = 64 * 1024;
/// A stdout line longer than this is a protocol failure (nothing would ever parse it).
const MAX_STDOUT_LINE: usize = 64 * 1024 * 1024;
/// How often a waiting batch looks at the cancel flag and whether the command still runs.
pub(super) const TICK: Duration = Duration::from_millis(50);
/// How long a command that closed its pipes gets to exit, and how long its stderr gets to drain,
/// before a failure message is built.
pub(super) const EXIT_WAIT: Duration = Duration::from_millis(500);
/// Polling interval while waiting for a process to exit.
pub(super) const POLL: Duration = Duration::from_millis(5);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The trial log a command's stray output goes to: `<trial_dir>/loss.log`, opened on demand.
#[derive(Debug, Default)]
struct TrialLog {
    /// Whether a batch has named the log yet (before that, lines are kept in `early`).
    named: bool,
    dir: Option<PathBuf>,
    file: Option<File>,
    /// Opening or writing the log of `dir` failed: its lines are dropped.
    broken: bool,
    early: Vec<u8>,
}

impl TrialLog {
    /// Sends what follows to the log of `dir` (none: dropped).
    fn set_dir(&mut self, dir: Option<&Path>) {
        if self.named && self.dir.as_deref() == dir {
            return;
        }
        self.named = true;
        self.dir = dir.map(Path::to_path_buf);
        self.file = None;
        self.broken = false;
        if !self.early.is_empty() {
            let early = mem::take(&mut self.early);
            self.write(&early);
        }
    }

    /// Appends whole lines; false when they were dropped (no log, or it cannot be written).
    fn write(&mut self, bytes: &[u8]) -> bool {
        if !self.named {
            if self.early.len() + bytes.len() <= EARLY_LOG_BYTES {
                self.early.extend_from_slice(bytes);
            }
            return true;
        }
        let Some(dir) = &self.dir else {
            return false;
        };
        if self.broken {
            return false;
        }
        if self.file.is_none() {
            let opened = std::fs::create_dir_all(dir).and_then(|()| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(LOG_FILE))
            });
            match opened {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::warn!(
                        "cannot write the command loss log {}: {e}; its lines are dropped",
                        dir.join(LOG_FILE).display()
                    );
                    self.broken = true;
                    return false;
                }
            }
        }
        let written = self.file.as_mut().map(|f| f.write_all(bytes));
        match written {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!(
                    "cannot write the command loss log {}: {e}; its lines are dropped",
                    dir.join(LOG_FILE).display()
                );
                self.broken = true;
                self.file = None;
                false
            }
            None => false,
        }
    }
}

/// The last lines a command wrote on stderr.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: &str) {
        let mut end = line.len().min(TAIL_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let line = &line[..end];
        while !self.lines.is_empty()
            && (self.lines.len() >= TAIL_LINES || self.bytes + line.len() > TAIL_BYTES)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
            }
        }
        self.bytes += line.len();
        self.lines.push_back(line.to_string());
    }
}

/// What the batch thread and the stderr thread of one command share.
#[derive(Debug, Default)]
struct Shared {
    log: Mutex<TrialLog>,
    tail: Mutex<Tail>,
    stderr_done: AtomicBool,
}

/// Reads the command's stderr line by line until it closes: into the tail, and into the trial
/// log prefixed `[stderr] ` (or, without a log, to the debug trace).
fn drain_stderr(pipe: ChildStderr, shared: Arc<Shared>, pid: u32) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_STDERR_LINE)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        lock(&shared.tail).push(line);
        let mut out = Vec::with_capacity(line.len() + 10);
        out.extend_from_slice(b"[stderr] ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        if !lock(&shared.log).write(&out) {
            tracing::debug!(pid, "command stderr: {line}");
        }
    }
    shared.stderr_done.store(true, Ordering::SeqCst);
}

/// Why a batch stopped before every seed was answered.
#[derive(Debug)]
pub(super) enum Stop {
    /// The cancel flag turned true.
    Cancelled,
    /// The command closed a pipe or exited (`what` says which was seen first).
    Exited { what: &'static str },
    /// The deadline passed; `output` tells whether the command wrote anything on stdout.
    TimedOut { output: bool },
    /// A seed was answered twice.
    Twice(u64),
    /// A seed the request did not ask for was answered.
    Unknown(u64),
    /// A reply arrived between batches.
    Late(u64),
    /// A reply that does not follow the protocol.
    Malformed(String),
    /// Waiting on or reading the pipes failed.
    Io(io::Error),
}

/// The state of one batch: which seeds are answered.
struct Batch<'a> {
    index: HashMap<u64, usize>,
    answers: Vec<Option<Answer>>,
    left: usize,
    stray: u64,
    output: bool,
    shared: &'a Shared,
}

impl<'a> Batch<'a> {
    fn new(seeds: &[u64], shared: &'a Shared) -> Self {
        Batch {
            index: seeds.iter().enumerate().map(|(i, &s)| (s, i)).collect(),
            answers: (0..seeds.len()).map(|_| None).collect(),
            left: seeds.len(),
            stray: 0,
            output: false,
            shared,
        }
    }

    /// Takes one line of stdout (without its newline).
    fn take(&mut self, raw: &[u8], between_batches: bool) -> Result<(), Stop> {
        self.output = true;
        match parse_line(raw) {
            Line::Reply { seed, .. } if between_batches => Err(Stop::Late(seed)),
            Line::Reply { seed, answer } => {
                let Some(&i) = self.index.get(&seed) else {
                    return Err(Stop::Unknown(seed));
                };
                if self.answers[i].is_some() {
                    return Err(Stop::Twice(seed));
                }
                self.answers[i] = Some(answer);
                self.left -= 1;
                Ok(())
            }
            Line::Stray => {
                self.stray += 1;
                let mut line = Vec::with_capacity(raw.len() + 1);
                line.extend_from_slice(raw);
                line.push(b'\n');
                lock(&self.shared.log).write(&line);
                Ok(())
            }
            Line::Malformed(m) => Err(Stop::Malformed(m)),
        }
    }
}

/// One command process, owned by one batch at a time or idle in its loss's pool. Dropping it
/// kills its process group and reaps it: a process is only kept by handing it back.
#[derive(Debug)]
pub(super) struct CommandProcess {
    pid: u32,
    child: Child,
    /// `Some` once reaped (with the status, if it could be read).
    reaped: Option<Option<ExitStatus>>,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Stdout bytes after the last complete line.
    pending: Vec<u8>,
    shared: Arc<Shared>,
    /// Batches answered completely.
    pub(super) batches: u64,
    /// The loss's generation when this process started (see `CommandLoss::release`).
    pub(super) generation: u64,
}

impl CommandProcess {
    /// Starts `program` with the spec's arguments, directory and environment, in its own
    /// process group, with piped stdio and a thread draining its stderr.
    pub(super) fn spawn(
        program: &Path,
        spec: &CommandSpec,
        generation: u64,
    ) -> io::Result<CommandProcess> {
        let mut cmd = Command::new(program);
        cmd.args(&spec.argv[1..])
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        // Python buffers a piped stdout: without this, replies printed without flush=True would
        // only arrive when the buffer fills, i.e. never within a batch.
        if !spec.env.contains_key("PYTHONUNBUFFERED")
            && std::env::var_os("PYTHONUNBUFFERED").is_none()
        {
            cmd.env("PYTHONUNBUFFERED", "1");
        }
        let mut child = os::spawn_in_group(&mut cmd)?;
        let pid = child.id();
        let (stdin, stderr) = (child.stdin.take(), child.stderr.take());
        let Some(stdout) = child.stdout.take() else {
            os::kill_group(pid);
            let _ = child.wait();
            return Err(io::Error::other("the command's stdout could not be piped"));
        };
        // From here on, dropping `proc` kills and reaps the process.
        let proc = CommandProcess {
            pid,
            child,
            reaped: None,
            stdin,
            stdout,
            pending: Vec::new(),
            shared: Arc::new(Shared::default()),
            batches: 0,
            generation,
        };
        if let Some(stdin) = &proc.stdin {
            os::set_nonblocking(stdin)?;
        }
        if let Some(pipe) = stderr {
            let shared = proc.shared.clone();
            std::thread::Builder::new()
                .name(format!("slurptuna-command-stderr-{pid}"))
                .spawn(move || drain_stderr(pipe, shared, pid))?;
        } else {
            proc.shared.stderr_done.store(true, Ordering::SeqCst);
        }
        Ok(proc)
    }

    /// The process id (also its process group id).
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// True once the process has exited (it is not reaped by this check).
    pub(super) fn has_exited(&self) -> bool {
        self.reaped.is_some() || os::has_exited(self.pid)
    }

    /// Waits up to `limit` for the process to exit; true if it did.
    pub(super) fn wait_exit(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.has_exited() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Closing stdin asks the command to exit.
    pub(super) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// SIGKILLs the process group (the command's own children included) and reaps the leader;
    /// returns how it ended. Idempotent. The group is signalled before the reap, while the
    /// leader's pid still reserves the group id.
    pub(super) fn kill(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.reaped {
            return status;
        }
        os::kill_group(self.pid);
        let status = self.child.wait().ok();
        self.reaped = Some(status);
        self.stdin = None;
        status
    }

    /// `"; its last stderr lines:\n..."`, or empty; waits briefly for the stderr pipe to close
    /// (call it after the process was killed).
    pub(super) fn stderr_tail(&self) -> String {
        let deadline = Instant::now() + EXIT_WAIT;
        while !self.shared.stderr_done.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let tail = lock(&self.shared.tail);
        if tail.lines.is_empty() {
            String::new()
        } else {
            let v: Vec<&str> = tail.lines.iter().map(String::as_str).collect();
            format!("; its last stderr lines:\n{}", v.join("\n"))
        }
    }

    /// Sends the request `line` for `seeds` and reads one answer per seed, in `seeds` order.
    /// Stray stdout lines go to the log of `trial_dir`; their count is returned either way.
    pub(super) fn run(
        &mut self,
        line: &[u8],
        seeds: &[u64],
        trial_dir: Option<&Path>,
        deadline: Option<Instant>,
        cancel: &AtomicBool,
    ) -> (Result<Vec<Answer>, Stop>, u64) {
        let shared = self.shared.clone();
        lock(&shared.log).set_dir(trial_dir);
        let mut batch = Batch::new(seeds, &shared);
        let outcome = self.converse(line, &mut batch, deadline, cancel);
        let stray = batch.stray;
        let outcome = outcome.map(|()| batch.answers.into_iter().flatten().collect());
        (outcome, stray)
    }

    fn converse(
        &mut self,
        line: &[u8],
        batch: &mut Batch<'_>,
        deadline: Option<Instant>,
        cancel: &AtomicBool,
    ) -> Result<(), Stop> {
        // Whatever the command wrote since its last batch: log lines, or replies that came late.
        let ready = os::wait_io(&self.stdout, None, Duration::ZERO).map_err(Stop::Io)?;
        if ready.readable {
            self.read_lines(batch, true)?;
        }
        self.take_lines(batch, true)?;
        let mut written = 0;
        self.write_some(line, &mut written)?;
        let mut exit_checked = Instant::now();
        loop {
            if batch.left == 0 {
                return Ok(());
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Stop::Cancelled);
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if now >= d => {
                    return Err(Stop::TimedOut {
                        output: batch.output,
                    })
                }
                Some(d) => TICK.min(d - now),
                None => TICK,
            };
            let stdin = if written < line.len() {
                self.stdin.as_ref()
            } else {
                None
            };
            let ready = os::wait_io(&self.stdout, stdin, wait).map_err(Stop::Io)?;
            if ready.writable {
                self.write_some(line, &mut written)?;
            }
            if ready.readable {
                self.read_lines(batch, false)?;
            }
            if exit_checked.elapsed() >= TICK {
                exit_checked = Instant::now();
                if batch.left > 0 && self.has_exited() {
                    // What it wrote before it died still counts (and may complete the batch).
                    while os::wait_io(&self.stdout, None, Duration::ZERO)
                        .map_err(Stop::Io)?
                        .readable
                    {
                        if self.read_lines(batch, false)? == 0 || batch.left == 0 {
                            break;
                        }
                    }
                    if batch.left > 0 {
                        return Err(Stop::Exited { what: "exited" });
                    }
                }
            }
        }
    }

    /// Writes as much of `line[*written..]` as the pipe takes now.
    fn write_some(&mut self, line: &[u8], written: &mut usize) -> Result<(), Stop> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Stop::Exited {
                what: "closed its stdin",
            });
        };
        while *written < line.len() {
            match stdin.write(&line[*written..]) {
                Ok(0) => {
                    return Err(Stop::Exited {
                        what: "closed its stdin",
                    })
                }
                Ok(k) => *written += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    return Err(Stop::Exited {
                        what: "closed its stdin",
                    })
                }
            }
        }
        Ok(())
    }

    /// Reads what stdout has (one `read`), then takes every complete line; returns the bytes
    /// read (0: end of file, which is an [`Stop::Exited`]).
    fn read_lines(&mut self, batch: &mut Batch<'_>, between: bool) -> Result<usize, Stop> {
        let mut buf = [0u8; 16 * 1024];
        let n = loop {
            match self.stdout.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Io(e)),
            }
        };
        if n == 0 {
            return Err(Stop::Exited {
                what: "closed its stdout",
            });
        }
        self.pending.extend_from_slice(&buf[..n]);
        self.take_lines(batch, between)?;
        if self.pending.len() > MAX_STDOUT_LINE {
            return Err(Stop::Malformed(format!(
                "it wrote more than {} MiB on stdout without a newline",
                MAX_STDOUT_LINE >> 20
            )));
        }
        Ok(n)
    }

    /// Takes the complete lines of `pending`.
    fn take_lines(&mut self, batch: &mut Batch<'_>, between: bool) -> Result<(), Stop> {
        let mut start = 0;
        let mut result = Ok(());
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + nl];
            start += nl + 1;
            if let Err(e) = batch.take(line, between) {
                result = Err(e);
                break;
            }
        }
        self.pending.drain(..start);
        result
    }
}

impl Drop for CommandProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
