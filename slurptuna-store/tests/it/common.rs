use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slurptuna_core::{
    ChunkIndex, ChunkKey, ChunkResult, Direction, ParamSpace, Params, RunMeta, SearchParam,
    SeedStats, TrialEvent, TrialNumber,
};

/// Environment variable naming the role of a re-executed test binary.
pub(crate) const ROLE_ENV: &str = "SLURPTUNA_STORE_IT_ROLE";
/// Environment variable carrying the role's argument (a directory).
pub(crate) const ARG_ENV: &str = "SLURPTUNA_STORE_IT_ARG";
/// Upper bound on any child's life, so nothing lingers if a parent test dies.
pub(crate) const CHILD_MAX_LIFE: Duration = Duration::from_secs(60);

/// `(role, arg)` when this process is a child started by `spawn_role`.
pub(crate) fn child_role() -> Option<(String, String)> {
    Some((std::env::var(ROLE_ENV).ok()?, std::env::var(ARG_ENV).ok()?))
}

/// A child process that is killed and reaped when dropped; its stdout lines arrive on `lines`.
pub(crate) struct ChildGuard {
    pub(crate) child: Child,
    pub(crate) lines: Receiver<String>,
}

impl ChildGuard {
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }
    /// Waits for a stdout line starting with `prefix`.
    pub(crate) fn expect_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("child {} gave no '{prefix}' line: {e}", self.child.id()),
            }
        }
    }
    /// Every remaining stdout line starting with `prefix` (until the child closes stdout).
    pub(crate) fn collect_lines(&self, prefix: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => out.push(l),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return out,
                Err(e) => panic!("child {} did not finish: {e}", self.child.id()),
            }
        }
    }
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "child {} timed out",
                self.child.id()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Re-runs this test binary for the single test `test` (its full path) with `role` and `arg`.
pub(crate) fn spawn_role(test: &str, role: &str, arg: &Path) -> ChildGuard {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_ENV, role)
        .env(ARG_ENV, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    ChildGuard { child, lines }
}

/// Waits (in a child) until `dir/go` exists, so racing children start together.
pub(crate) fn wait_for_go(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("go").exists() {
        assert!(Instant::now() < deadline, "no go signal");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A small deterministic PRNG (xorshift) for kill points; the seed is printed by callers.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_time() -> (Self, u64) {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        (Rng(seed), seed)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub(crate) fn meta(loss: &str) -> RunMeta {
    let space = ParamSpace::new([
        ("x", SearchParam::from((0.0, 1.0))),
        ("y", SearchParam::from((-1.0, 1.0))),
    ])
    .unwrap();
    RunMeta {
        format_version: slurptuna_core::RUN_FORMAT_VERSION,
        loss_name: loss.to_string(),
        description: "a test loss".into(),
        run_name: String::new(),
        run_dir: String::new(),
        mode: "single".into(),
        backend: "threads".into(),
        n_trials: 10,
        entry_id: None,
        started_at_utc: "2024-01-01T00:00:00.000000+00:00".into(),
        seed_start: 0,
        seed_end: 99,
        n_seeds: 100,
        chunk_size: 10,
        num_chunks: 10,
        max_concurrent_trials: 1,
        worker_parallelism: 1,
        direction: Direction::Minimize,
        random_seed: 123,
        sampler: "tpe".into(),
        space,
        seeds_fingerprint: "0123456789abcdef".into(),
        resumes: Vec::new(),
        completed_at_utc: None,
        duration_seconds: None,
        best_value: None,
        best_params: None,
        settings: [
            (
                "array_parallelism_limit".to_string(),
                serde_json::Value::Null,
            ),
            ("slurm_qos".to_string(), serde_json::json!("short")),
            (
                "worker_time_limit_seconds".to_string(),
                serde_json::json!(7200),
            ),
        ]
        .into_iter()
        .collect(),
    }
}

pub(crate) fn params(t: u64) -> Params {
    [
        ("x", (t as f64 * 0.37) % 1.0),
        ("y", -0.5 + t as f64 * 1e-3),
    ]
    .into_iter()
    .collect()
}

/// Deterministic per-seed values of trial `t`, chunk `c`.
pub(crate) fn values(t: u64, c: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((t * 31 + c * 7 + i as u64) % 97) as f64 / 97.0)
        .collect()
}

/// The events of one trial: asked, `chunks` chunks (with values), completed.
pub(crate) fn trial_events(t: u64, chunks: u64, keep_values: bool) -> Vec<TrialEvent> {
    let trial = TrialNumber(t);
    let mut ev = vec![TrialEvent::Asked {
        trial,
        params: params(t),
        control: None,
    }];
    let mut total = SeedStats::default();
    for c in 0..chunks {
        let v = values(t, c, 10);
        let stats = SeedStats::from_values(&v);
        total.merge(&stats);
        ev.push(TrialEvent::ChunkDone {
            trial,
            chunk: ChunkIndex(c),
            key: ChunkKey::new(format!("key-{t}-{c}")),
            result: ChunkResult {
                stats,
                values: keep_values.then_some(v),
            },
        });
    }
    ev.push(TrialEvent::Completed {
        trial,
        stats: total,
    });
    ev
}

/// `journal` bytes without the records' write times (`"at":<seconds>`): a record appended again
/// equals the original but for when it was written.
pub(crate) fn without_times(journal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(journal.len());
    let mut i = 0;
    while i < journal.len() {
        if journal[i..].starts_with(b",\"at\":") {
            i += 6;
            while i < journal.len()
                && matches!(journal[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+')
            {
                i += 1;
            }
            continue;
        }
        out.push(journal[i]);
        i += 1;
    }
    out
}
