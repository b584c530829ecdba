//! `CliSlurm`: the real Slurm commands, with argv built and output parsed by pure functions.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use slurptuna_core::batch::{JobId, TaskRef};

use crate::client::{JobState, SlurmClient, SlurmTaskStatus, SubmitLimits, SubmitRequest};
use crate::error::SlurmError;

/// How long one Slurm command may take before it is killed and reported.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The [`SlurmClient`] that runs `sbatch`, `squeue`, `sacct`, `scancel` and `scontrol`.
///
/// Every command is spawned directly (no shell) with its arguments as separate strings; both
/// output pipes are drained together; a command that does not finish within two minutes is
/// killed. `sacct` is asked only when needed and remembered as unavailable once the cluster
/// says accounting is disabled.
#[derive(Debug, Default)]
pub struct CliSlurm {
    bin_dir: Option<PathBuf>,
    /// 0 = unknown, 1 = available, 2 = disabled.
    accounting: AtomicU8,
    /// `scontrol show config`, read once (the array size and the queue limits come from it).
    config: tokio::sync::OnceCell<String>,
}

impl CliSlurm {
    /// Uses the commands found on `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses the commands in `dir` (e.g. a test directory of stand-ins).
    pub fn with_bin_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dir: Some(dir.into()),
            ..Self::default()
        }
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    async fn run(&self, name: &'static str, args: &[OsString]) -> Result<Output, SlurmError> {
        let program = self.program(name);
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| SlurmError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| SlurmError::Spawn {
                program: program.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {COMMAND_TIMEOUT:?}"),
                ),
            })?
            .map_err(|source| SlurmError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let mut argv = vec![program.into_os_string()];
        argv.extend(args.iter().cloned());
        Ok(Output {
            argv,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

struct Output {
    argv: Vec<OsString>,
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn into_error(self) -> SlurmError {
        SlurmError::Failed {
            argv: self.argv,
            status: self.status,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

#[async_trait]
impl SlurmClient for CliSlurm {
    async fn submit(&self, req: &SubmitRequest) -> Result<JobId, SlurmError> {
        let out = self.run("sbatch", &sbatch_argv(req)).await?;
        if !out.status.success() {
            return Err(classify_sbatch_failure(req, out));
        }
        parse_sbatch(&out.stdout)
    }

    async fn queue(&self, jobs: &[JobId]) -> Result<Vec<SlurmTaskStatus>, SlurmError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run("squeue", &squeue_argv(jobs)).await?;
        if !out.status.success() {
            // A single unknown id makes squeue fail; several ids are filtered quietly.
            if out.stderr.contains("Invalid job id specified") {
                return Ok(Vec::new());
            }
            return Err(out.into_error());
        }
        parse_squeue(&out.stdout)
    }

    async fn accounting(&self, jobs: &[JobId]) -> Result<Option<Vec<SlurmTaskStatus>>, SlurmError> {
        if self.accounting.load(Ordering::Relaxed) == 2 {
            return Ok(None);
        }
        if jobs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let out = self.run("sacct", &sacct_argv(jobs)).await?;
        if !out.status.success() {
            if out.stderr.contains("accounting storage is disabled") {
                self.accounting.store(2, Ordering::Relaxed);
                return Ok(None);
            }
            return Err(out.into_error());
        }
        self.accounting.store(1, Ordering::Relaxed);
        parse_sacct(&out.stdout).map(Some)
    }

    async fn cancel(&self, targets: &[TaskRef]) -> Result<(), SlurmError> {
        if targets.is_empty() {
            return Ok(());
        }
        let out = self.run("scancel", &scancel_argv(targets)).await?;
        if !out.status.success() && !out.stderr.contains("Invalid job id") {
            return Err(out.into_error());
        }
        Ok(())
    }

    async fn find(&self, name: &str) -> Result<Vec<JobId>, SlurmError> {
        let out = self.run("squeue", &squeue_name_argv(name)).await?;
        if !out.status.success() {
            return Err(out.into_error());
        }
        parse_job_ids(&out.stdout)
    }

    async fn max_array_size(&self) -> Result<u64, SlurmError> {
        parse_max_array_size(self.show_config().await?)
    }

    async fn test_submit(&self, req: &SubmitRequest) -> Result<(), SlurmError> {
        let out = self.run("sbatch", &sbatch_test_argv(req)).await?;
        if out.status.success() {
            return Ok(());
        }
        match classify_sbatch_failure(req, out) {
            // A full queue says nothing about the options.
            SlurmError::SubmitLimit { .. } => Ok(()),
            e => Err(e),
        }
    }

    async fn submit_limits(
        &self,
        account: Option<String>,
        qos: Option<String>,
    ) -> Result<SubmitLimits, SlurmError> {
        let max_job_count = parse_config_value(self.show_config().await?, "MaxJobCount");
        let mut max_submit: Option<u64> = None;
        let mut take = |v: Option<u64>| {
            if let Some(v) = v {
                max_submit = Some(max_submit.map_or(v, |m| m.min(v)));
            }
        };
        if let Some(user) = current_user().await {
            let account = match account {
                Some(a) => Some(a),
                None => self
                    .sacctmgr(&["show", "user", &user, "format=DefaultAccount"])
                    .await
                    .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
                    .filter(|a| !a.is_empty()),
            };
            if let Some(account) = account {
                let user_filter = format!("user={user}");
                let account_filter = format!("account={account}");
                take(
                    self.sacctmgr(&[
                        "show",
                        "assoc",
                        "where",
                        &user_filter,
                        &account_filter,
                        "format=MaxSubmit,GrpSubmit",
                    ])
                    .await
                    .as_deref()
                    .and_then(parse_submit_limit),
                );
            }
        }
        if let Some(qos) = qos {
            let name = format!("name={qos}");
            take(
                self.sacctmgr(&[
                    "show",
                    "qos",
                    "where",
                    &name,
                    "format=MaxSubmitPU,GrpSubmit",
                ])
                .await
                .as_deref()
                .and_then(parse_submit_limit),
            );
        }
        Ok(SubmitLimits {
            max_job_count,
            max_submit,
        })
    }
}

impl CliSlurm {
    /// `scontrol show config`'s output, asked once (a failed call is asked again next time).
    async fn show_config(&self) -> Result<&str, SlurmError> {
        self.config
            .get_or_try_init(|| async {
                let args = [OsString::from("show"), OsString::from("config")];
                let out = self.run("scontrol", &args).await?;
                if !out.status.success() {
                    return Err(out.into_error());
                }
                Ok(out.stdout)
            })
            .await
            .map(String::as_str)
    }

    /// `sacctmgr -n -P <args>`'s output, or `None` when it cannot answer (no accounting).
    async fn sacctmgr(&self, args: &[&str]) -> Option<String> {
        let mut argv: Vec<OsString> = vec!["-n".into(), "-P".into()];
        argv.extend(args.iter().map(OsString::from));
        // A cluster without accounting makes sacctmgr fail or not exist: no limits to read.
        match self.run("sacctmgr", &argv).await {
            Ok(out) if out.status.success() => Some(out.stdout),
            _ => None,
        }
    }
}

/// The name of the user running this process (`USER`, `LOGNAME`, else `id -un`).
async fn current_user() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Some(u) = std::env::var(var).ok().filter(|u| !u.trim().is_empty()) {
            return Some(u);
        }
    }
    let out = tokio::process::Command::new("id")
        .arg("-un")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

fn classify_sbatch_failure(req: &SubmitRequest, out: Output) -> SlurmError {
    let err = out.stderr.trim();
    let limit_markers = [
        "QOSMaxSubmitJobPerUserLimit",
        "AssocMaxSubmitJobLimit",
        "MaxSubmitJobLimit",
        "Job violates accounting/QOS policy",
        "Resource temporarily unavailable",
        "Socket timed out",
    ];
    if limit_markers.iter().any(|m| err.contains(m)) {
        return SlurmError::SubmitLimit {
            stderr: err.to_string(),
        };
    }
    if let Some(qos) = &req.resources.qos {
        if err.to_ascii_lowercase().contains("invalid qos") {
            return SlurmError::InvalidQos {
                qos: qos.clone(),
                stderr: err.to_string(),
            };
        }
    }
    out.into_error()
}

fn flag(name: &str, value: impl AsRef<OsStr>) -> OsString {
    let mut s = OsString::from(name);
    s.push("=");
    s.push(value);
    s
}

/// Escapes `%` for Slurm's filename patterns (`%%` is a literal percent sign).
fn escape_pattern_dir(p: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        if b == b'%' {
            out.push(b'%');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// The argv of `sbatch` for `req` (without the program name): the array from
/// `req.submission`; `--cpus-per-task`, `--mem-per-cpu` (as Slurm writes sizes: `2G`, `1536M`,
/// `64K`), `--time` and `--qos` from `req.resources`; the account, partition, gres, constraint
/// and extra arguments from `req.options`.
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// use slurptuna_core::{DistributedOptions, TaskResources};
/// use slurptuna_exec_slurm::{sbatch_argv, ArraySubmission, SlurmOptions, SubmitRequest};
/// let req = SubmitRequest {
///     submission: ArraySubmission {
///         script: "/r/chunk_task.sh".into(),
///         script_args: vec!["/r/task.json".into(), "/bin/prog".into(), "$(x)".into()],
///         array: vec![0, 1, 2, 5],
///         array_limit: Some(2),
///         job_name: "slurptuna-toy-t3".into(),
///         chdir: "/work".into(),
///         output: "/r/logs/chunk_%A_%a.out".into(),
///         error: "/r/logs/chunk_%A_%a.err".into(),
///         env: vec![],
///     },
///     resources: TaskResources {
///         time_limit: Duration::from_secs(90),
///         ..DistributedOptions::seed_defaults().resources
///     },
///     options: Arc::new(SlurmOptions::default()),
/// };
/// let argv = sbatch_argv(&req);
/// assert_eq!(argv[1], "--array=0-2,5%2");
/// assert!(argv.contains(&"--mem-per-cpu=2G".into()));
/// assert!(argv.contains(&"--time=0-00:01:30".into()));
/// assert!(argv.contains(&"--qos=short".into()));
/// assert_eq!(argv.last().unwrap(), "$(x)");
/// ```
pub fn sbatch_argv(req: &SubmitRequest) -> Vec<OsString> {
    let (sub, res, opts) = (&req.submission, &req.resources, &*req.options);
    let mut a: Vec<OsString> = vec!["--parsable".into()];
    let mut spec = array_spec(&sub.array);
    if let Some(l) = sub.array_limit {
        spec.push_str(&format!("%{l}"));
    }
    a.push(flag("--array", spec));
    a.push(flag("--job-name", &sub.job_name));
    a.push(flag("--chdir", &sub.chdir));
    a.push(flag("--output", pattern(&sub.output)));
    a.push(flag("--error", pattern(&sub.error)));
    a.push(flag("--cpus-per-task", res.cpus_per_task.to_string()));
    // `MemorySize` displays in the largest exact unit with Slurm's suffixes (`2G`, `1536M`).
    a.push(flag("--mem-per-cpu", res.mem_per_cpu.to_string()));
    a.push(flag("--time", slurm_time(res.time_limit)));
    a.push(if opts.slurm_requeue {
        "--requeue".into()
    } else {
        "--no-requeue".into()
    });
    for (name, v) in [
        ("--qos", &res.qos),
        ("--account", &opts.slurm_account),
        ("--partition", &opts.slurm_partition),
        ("--gres", &opts.slurm_gres),
        ("--constraint", &opts.slurm_constraint),
    ] {
        if let Some(v) = v {
            a.push(flag(name, v));
        }
    }
    if !sub.env.is_empty() {
        let mut e = String::from("ALL");
        for (k, v) in &sub.env {
            e.push_str(&format!(",{k}={v}"));
        }
        a.push(flag("--export", e));
    }
    a.extend(opts.slurm_extra_args.iter().map(OsString::from));
    a.push(sub.script.clone().into_os_string());
    a.extend(sub.script_args.iter().cloned());
    a
}

/// The argv of `sbatch --test-only` for `req`: [`sbatch_argv`]'s options, without
/// `--parsable` and with `--wrap=true` instead of the batch script and its arguments (Slurm
/// checks the options and the limits, and submits nothing).
///
/// ```
/// # use std::sync::Arc;
/// use slurptuna_core::{DistributedOptions, TaskResources};
/// use slurptuna_exec_slurm::{sbatch_test_argv, ArraySubmission, SlurmOptions, SubmitRequest};
/// let req = SubmitRequest {
///     submission: ArraySubmission {
///         script: "/run/t/chunk_task.sh".into(),
///         script_args: vec!["task.json".into()],
///         array: vec![0],
///         array_limit: None,
///         job_name: "slurptuna-preflight".into(),
///         chdir: "/work".into(),
///         output: "/dev/null".into(),
///         error: "/dev/null".into(),
///         env: vec![],
///     },
///     resources: DistributedOptions::seed_defaults().resources,
///     options: Arc::new(SlurmOptions::default()),
/// };
/// let argv: Vec<String> = sbatch_test_argv(&req)
///     .into_iter()
///     .map(|a| a.to_string_lossy().into_owned())
///     .collect();
/// assert!(argv.contains(&"--qos=short".to_string()));
/// assert_eq!(&argv[argv.len() - 2..], ["--test-only", "--wrap=true"]);
/// assert!(!argv.iter().any(|a| a == "--parsable" || a.ends_with("chunk_task.sh")));
/// ```
pub fn sbatch_test_argv(req: &SubmitRequest) -> Vec<OsString> {
    let mut a = sbatch_argv(req);
    a.truncate(a.len() - 1 - req.submission.script_args.len());
    a.retain(|x| x != "--parsable");
    a.push("--test-only".into());
    a.push("--wrap=true".into());
    a
}

/// Escapes `%` in the directory part of a Slurm filename pattern, keeping the file name's own
/// `%A`/`%a` placeholders.
fn pattern(p: &Path) -> OsString {
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => {
            let mut s = escape_pattern_dir(dir);
            s.push("/");
            s.push(name);
            s
        }
        _ => p.as_os_str().to_owned(),
    }
}

/// Packs task ids into Slurm's array syntax: `[0,1,2,5,7,8,9]` → `0-2,5,7-9`.
///
/// ```
/// assert_eq!(slurptuna_exec_slurm::array_spec(&[9, 0, 1, 2, 5, 7, 8]), "0-2,5,7-9");
/// ```
pub fn array_spec(ids: &[u64]) -> String {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// `--time` value: `D-HH:MM:SS`, sub-second parts rounded up.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(slurptuna_exec_slurm::slurm_time(Duration::from_secs(2 * 86400 + 5)), "2-00:00:05");
/// assert_eq!(slurptuna_exec_slurm::slurm_time(Duration::from_millis(1500)), "0-00:00:02");
/// ```
pub fn slurm_time(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!(
        "{}-{:02}:{:02}:{:02}",
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn job_list(jobs: &[JobId]) -> String {
    jobs.iter()
        .map(JobId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The argv of `squeue` for the tasks of `jobs`: one line per array task, finished ones
/// included while Slurm remembers them.
pub fn squeue_argv(jobs: &[JobId]) -> Vec<OsString> {
    vec![
        "--noheader".into(),
        "--array".into(),
        "--states=all".into(),
        flag("--jobs", job_list(jobs)),
        "--format=%F|%K|%T|%r".into(),
    ]
}

/// The argv of `squeue` for the (array) job ids of the jobs named `name`.
pub fn squeue_name_argv(name: &str) -> Vec<OsString> {
    vec![
        "--noheader".into(),
        "--array".into(),
        "--states=all".into(),
        flag("--name", name),
        "--format=%F".into(),
    ]
}

/// The distinct job ids of `squeue --format=%F` output, ascending.
pub fn parse_job_ids(stdout: &str) -> Result<Vec<JobId>, SlurmError> {
    let mut ids = std::collections::BTreeSet::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let id = line
            .parse()
            .map_err(|_| parse_err("squeue", "expected a job id per line", stdout))?;
        ids.insert(JobId(id));
    }
    Ok(ids.into_iter().collect())
}

/// The argv of `sacct` for the allocations of `jobs`.
pub fn sacct_argv(jobs: &[JobId]) -> Vec<OsString> {
    vec![
        "--noheader".into(),
        "--parsable2".into(),
        "--allocations".into(),
        flag("--jobs", job_list(jobs)),
        "--format=JobID,State,ExitCode".into(),
    ]
}

/// The argv of `scancel` for `targets`.
pub fn scancel_argv(targets: &[TaskRef]) -> Vec<OsString> {
    targets.iter().map(|t| t.to_string().into()).collect()
}

fn parse_err(command: &'static str, reason: impl Into<String>, output: &str) -> SlurmError {
    SlurmError::Parse {
        command,
        reason: reason.into(),
        output: output.chars().take(500).collect(),
    }
}

/// Reads the job id from `sbatch --parsable` output: `123` or `123;cluster` (the last
/// non-empty line; warnings may come before it).
///
/// ```
/// use slurptuna_exec_slurm::{parse_sbatch, JobId};
/// assert_eq!(parse_sbatch("123\n").unwrap(), JobId(123));
/// assert_eq!(parse_sbatch("456;cluster-a\n").unwrap(), JobId(456));
/// assert!(parse_sbatch("Submitted batch job x").is_err());
/// ```
pub fn parse_sbatch(stdout: &str) -> Result<JobId, SlurmError> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| parse_err("sbatch", "no job id printed", stdout))?;
    let id = line.split(';').next().unwrap_or(line).trim();
    id.parse::<u64>()
        .map(JobId)
        .map_err(|_| parse_err("sbatch", "expected `<job id>[;<cluster>]`", stdout))
}

/// Expands a task field: `4`, `[4-6,9%2]`, `N/A` (→ `[None]`).
fn expand_tasks(field: &str) -> Option<Vec<Option<u64>>> {
    let f = field.trim();
    if f == "N/A" || f.is_empty() {
        return Some(vec![None]);
    }
    if let Ok(t) = f.parse::<u64>() {
        return Some(vec![Some(t)]);
    }
    let inner = f.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner.split('%').next()?;
    let mut out = Vec::new();
    for part in inner.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
                out.extend((a..=b).map(Some));
            }
            None => out.push(Some(part.parse::<u64>().ok()?)),
        }
    }
    Some(out)
}

/// Parses `squeue --format=%F|%K|%T|%r` output.
///
/// ```
/// use slurptuna_exec_slurm::{parse_squeue, JobState};
/// let s = parse_squeue("7|0|COMPLETED|None\n7|[1-2%1]|PENDING|JobArrayTaskLimit\n8|N/A|RUNNING|None\n").unwrap();
/// assert_eq!(s.len(), 4);
/// assert_eq!((s[2].task, &s[2].state), (Some(2), &JobState::Pending));
/// assert_eq!(s[3].task, None);
/// ```
pub fn parse_squeue(stdout: &str) -> Result<Vec<SlurmTaskStatus>, SlurmError> {
    let mut out = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 3 {
            return Err(parse_err(
                "squeue",
                "expected `job|task|state|reason` lines",
                stdout,
            ));
        }
        let job = f[0]
            .trim()
            .parse::<u64>()
            .map_err(|_| parse_err("squeue", format!("bad job id {:?}", f[0]), stdout))?;
        let tasks = expand_tasks(f[1]).ok_or_else(|| {
            parse_err("squeue", format!("bad array task field {:?}", f[1]), stdout)
        })?;
        let detail = f
            .get(3)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && *s != "None")
            .map(str::to_string);
        for task in tasks {
            out.push(SlurmTaskStatus {
                job: JobId(job),
                task,
                state: JobState::parse(f[2]),
                detail: detail.clone(),
            });
        }
    }
    Ok(out)
}

/// Parses `sacct --parsable2 --format=JobID,State,ExitCode` output (`123_4|FAILED|3:0`).
///
/// ```
/// use slurptuna_exec_slurm::{parse_sacct, JobState};
/// let s = parse_sacct("5_0|COMPLETED|0:0\n5_1|CANCELLED by 0|0:15\n6|TIMEOUT|0:0\n").unwrap();
/// assert_eq!((s[1].task, &s[1].state), (Some(1), &JobState::Cancelled));
/// assert_eq!(s[2].detail.as_deref(), Some("exit code 0:0"));
/// ```
pub fn parse_sacct(stdout: &str) -> Result<Vec<SlurmTaskStatus>, SlurmError> {
    let mut out = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 2 {
            return Err(parse_err(
                "sacct",
                "expected `jobid|state|exitcode` lines",
                stdout,
            ));
        }
        let (job, task) = match f[0].split_once('_') {
            Some((j, t)) => (j, t),
            None => (f[0], "N/A"),
        };
        // Steps (`123.batch`) are not asked for (--allocations) but skip them anyway.
        if job.contains('.') || task.contains('.') {
            continue;
        }
        let job = job
            .parse::<u64>()
            .map_err(|_| parse_err("sacct", format!("bad job id {:?}", f[0]), stdout))?;
        let tasks = expand_tasks(task)
            .ok_or_else(|| parse_err("sacct", format!("bad array task {:?}", f[0]), stdout))?;
        for task in tasks {
            out.push(SlurmTaskStatus {
                job: JobId(job),
                task,
                state: JobState::parse(f[1]),
                detail: f.get(2).map(|c| format!("exit code {}", c.trim())),
            });
        }
    }
    Ok(out)
}

/// Reads the whole-number setting `key` from `scontrol show config` (`None` when it is missing
/// or not a number).
///
/// ```
/// use slurptuna_exec_slurm::parse_config_value;
/// let out = "MaxArraySize            = 1001\nMaxJobCount             = 10000\nMinJobAge = 300 sec\n";
/// assert_eq!(parse_config_value(out, "MaxJobCount"), Some(10_000));
/// assert_eq!(parse_config_value(out, "MinJobAge"), Some(300));
/// assert_eq!(parse_config_value(out, "MaxJob"), None);
/// ```
pub fn parse_config_value(stdout: &str, key: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.split_whitespace().next()?.parse::<u64>().ok())?
    })
}

/// The smallest number in `sacctmgr -n -P` output of limit columns (`5|`, `|100`); `None`
/// when no column holds a limit.
///
/// ```
/// use slurptuna_exec_slurm::parse_submit_limit;
/// assert_eq!(parse_submit_limit("5|\n"), Some(5));
/// assert_eq!(parse_submit_limit("40|12\n|7\n"), Some(7));
/// assert_eq!(parse_submit_limit("|\n"), None);
/// ```
pub fn parse_submit_limit(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .flat_map(|l| l.split('|'))
        .filter_map(|f| f.trim().parse::<u64>().ok())
        .min()
}

/// Reads `MaxArraySize` from `scontrol show config`.
pub fn parse_max_array_size(stdout: &str) -> Result<u64, SlurmError> {
    parse_config_value(stdout, "MaxArraySize")
        .ok_or_else(|| parse_err("scontrol", "no MaxArraySize line", stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use slurptuna_core::batch::ArraySubmission;
    use slurptuna_core::{DistributedOptions, MemorySize, TaskResources};

    use crate::options::SlurmOptions;

    fn submission() -> ArraySubmission {
        ArraySubmission {
            script: "/runs/r%1/trials/trial_00003/chunk_task.sh".into(),
            script_args: vec![
                "/runs/r%1/trials/trial_00003/task.json".into(),
                "/bin/prog".into(),
                "a b".into(),
                "$(touch pwned)".into(),
            ],
            array: vec![3, 0, 1, 2, 7],
            array_limit: None,
            job_name: "slurptuna-toy-t3".into(),
            chdir: "/home/u/proj".into(),
            output: "/runs/r%1/trials/trial_00003/logs/chunk_%A_%a.out".into(),
            error: "/runs/r%1/trials/trial_00003/logs/chunk_%A_%a.err".into(),
            env: vec![],
        }
    }

    fn resources() -> TaskResources {
        TaskResources {
            cpus_per_task: 4,
            mem_per_cpu: "500M".parse().unwrap(),
            time_limit: Duration::from_secs(3 * 3600 + 61),
            qos: None,
        }
    }

    fn req() -> SubmitRequest {
        SubmitRequest {
            submission: submission(),
            resources: resources(),
            options: Arc::new(SlurmOptions::default()),
        }
    }

    fn with_qos(qos: &str) -> SubmitRequest {
        SubmitRequest {
            resources: TaskResources {
                qos: Some(qos.into()),
                ..resources()
            },
            ..req()
        }
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn sbatch_argv_minimal() {
        assert_eq!(
            strs(&sbatch_argv(&req())),
            vec![
                "--parsable",
                "--array=0-3,7",
                "--job-name=slurptuna-toy-t3",
                "--chdir=/home/u/proj",
                "--output=/runs/r%%1/trials/trial_00003/logs/chunk_%A_%a.out",
                "--error=/runs/r%%1/trials/trial_00003/logs/chunk_%A_%a.err",
                "--cpus-per-task=4",
                "--mem-per-cpu=500M",
                "--time=0-03:01:01",
                "--requeue",
                "/runs/r%1/trials/trial_00003/chunk_task.sh",
                "/runs/r%1/trials/trial_00003/task.json",
                "/bin/prog",
                "a b",
                "$(touch pwned)",
            ]
        );
    }

    #[test]
    fn sbatch_argv_all_options() {
        let r = SubmitRequest {
            submission: ArraySubmission {
                array_limit: Some(4),
                env: vec![("SLURPTUNA_CHUNK_OFFSET".into(), "1000".into())],
                ..submission()
            },
            resources: TaskResources {
                qos: Some("short".into()),
                ..resources()
            },
            options: Arc::new(SlurmOptions {
                slurm_account: Some("lab".into()),
                slurm_partition: Some("gpu".into()),
                slurm_gres: Some("gpu:1".into()),
                slurm_constraint: Some("a100".into()),
                slurm_extra_args: vec!["--exclusive".into(), "--nice=5".into()],
                ..Default::default()
            }),
        };
        let a = strs(&sbatch_argv(&r));
        assert_eq!(a[1], "--array=0-3,7%4");
        assert_eq!(a[9], "--requeue");
        let opts: Vec<&str> = a[10..18].iter().map(String::as_str).collect();
        assert_eq!(
            opts,
            vec![
                "--qos=short",
                "--account=lab",
                "--partition=gpu",
                "--gres=gpu:1",
                "--constraint=a100",
                "--export=ALL,SLURPTUNA_CHUNK_OFFSET=1000",
                "--exclusive",
                "--nice=5",
            ]
        );
        assert_eq!(a[18], "/runs/r%1/trials/trial_00003/chunk_task.sh");
    }

    /// The value of `--name=` in `argv`, if the flag is there.
    fn value_of(argv: &[String], name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        let values: Vec<&String> = argv.iter().filter(|a| a.starts_with(&prefix)).collect();
        assert!(values.len() <= 1, "{name} given twice: {argv:?}");
        values.first().map(|a| a[prefix.len()..].to_string())
    }

    #[test]
    fn sbatch_argv_renders_the_resources() {
        let with =
            |resources: TaskResources| strs(&sbatch_argv(&SubmitRequest { resources, ..req() }));
        // The seed's defaults: 1 CPU, 2G per CPU, 2 hours, QoS short.
        let seed = DistributedOptions::seed_defaults().resources;
        let a = with(seed.clone());
        assert_eq!(value_of(&a, "--cpus-per-task").as_deref(), Some("1"));
        assert_eq!(value_of(&a, "--mem-per-cpu").as_deref(), Some("2G"));
        assert_eq!(value_of(&a, "--time").as_deref(), Some("0-02:00:00"));
        assert_eq!(value_of(&a, "--qos").as_deref(), Some("short"));
        assert!(a.contains(&"--requeue".to_string()), "{a:?}");
        let no = strs(&sbatch_argv(&SubmitRequest {
            options: Arc::new(SlurmOptions {
                slurm_requeue: false,
                ..Default::default()
            }),
            ..req()
        }));
        assert!(no.contains(&"--no-requeue".to_string()) && !no.contains(&"--requeue".to_string()));
        // Memory in the largest exact unit Slurm knows.
        for (mem, want) in [
            (MemorySize::from_megabytes(1536), "1536M"),
            (MemorySize::from_megabytes(1024 * 1024), "1T"),
            ("64K".parse().unwrap(), "64K"),
            ("1024".parse().unwrap(), "1G"),
        ] {
            let a = with(TaskResources {
                mem_per_cpu: mem,
                ..seed.clone()
            });
            assert_eq!(value_of(&a, "--mem-per-cpu").as_deref(), Some(want));
        }
        let a = with(TaskResources {
            cpus_per_task: 16,
            time_limit: Duration::from_millis(90_500),
            qos: None,
            ..seed.clone()
        });
        assert_eq!(value_of(&a, "--cpus-per-task").as_deref(), Some("16"));
        assert_eq!(value_of(&a, "--time").as_deref(), Some("0-00:01:31"));
        assert_eq!(value_of(&a, "--qos"), None, "no --qos when None: {a:?}");
        assert!(!a.iter().any(|x| x.starts_with("--qos")), "{a:?}");
    }

    #[test]
    fn other_argvs() {
        assert_eq!(
            strs(&squeue_argv(&[JobId(5), JobId(9)])),
            vec![
                "--noheader",
                "--array",
                "--states=all",
                "--jobs=5,9",
                "--format=%F|%K|%T|%r"
            ]
        );
        assert_eq!(
            strs(&sacct_argv(&[JobId(5)])),
            vec![
                "--noheader",
                "--parsable2",
                "--allocations",
                "--jobs=5",
                "--format=JobID,State,ExitCode"
            ]
        );
        let t = [
            TaskRef {
                job: JobId(5),
                task: None,
            },
            TaskRef {
                job: JobId(6),
                task: Some(2),
            },
        ];
        assert_eq!(strs(&scancel_argv(&t)), vec!["5", "6_2"]);
    }

    #[test]
    fn array_specs_and_times() {
        assert_eq!(array_spec(&[0, 1, 2, 5, 7, 8, 9]), "0-2,5,7-9");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(array_spec(&[2, 2, 1]), "1-2");
        assert_eq!(slurm_time(Duration::from_secs(1)), "0-00:00:01");
        assert_eq!(slurm_time(Duration::from_secs(7200)), "0-02:00:00");
    }

    #[test]
    fn parses_sbatch_output() {
        assert_eq!(parse_sbatch("sbatch: warning: x\n77\n").unwrap(), JobId(77));
        assert_eq!(parse_sbatch("  12;c1  ").unwrap(), JobId(12));
        for bad in ["", "\n", "abc", "12;", ";c"] {
            if bad == "12;" {
                assert_eq!(parse_sbatch(bad).unwrap(), JobId(12));
                continue;
            }
            assert!(parse_sbatch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_squeue_output() {
        let out = "1|2|COMPLETED|None\n1|3|FAILED|NonZeroExitCode\n1|4|PENDING|JobArrayTaskLimit\n\n2|N/A|CANCELLED|None\n";
        let s = parse_squeue(out).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].state, JobState::Failed);
        assert_eq!(s[1].detail.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(
            s[3],
            SlurmTaskStatus {
                job: JobId(2),
                task: None,
                state: JobState::Cancelled,
                detail: None
            }
        );
        assert!(parse_squeue("garbage").is_err());
        assert!(parse_squeue("x|1|RUNNING").is_err());
        assert!(parse_squeue("1|[a-b]|RUNNING").is_err());
        assert_eq!(parse_squeue("").unwrap(), vec![]);
    }

    #[test]
    fn finds_jobs_by_name() {
        let argv = squeue_name_argv("st-loss-t3-00ff");
        assert!(argv.contains(&OsString::from("--name=st-loss-t3-00ff")));
        assert!(argv.contains(&OsString::from("--format=%F")));
        // One line per task or pending range, all of the same array.
        assert_eq!(
            parse_job_ids("301\n301\n\n17\n").unwrap(),
            vec![JobId(17), JobId(301)]
        );
        assert_eq!(parse_job_ids("").unwrap(), vec![]);
        assert!(parse_job_ids("301_[0-3]").is_err());
    }

    #[test]
    fn parses_sacct_and_config() {
        let s = parse_sacct("9_[3-4]|PENDING|0:0\n9_1|OUT_OF_MEMORY|0:125\n9.batch|FAILED|1:0\n")
            .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].state, JobState::OutOfMemory);
        assert_eq!(
            parse_max_array_size("Foo = 1\nMaxArraySize            = 1001\n").unwrap(),
            1001
        );
        assert!(parse_max_array_size("Foo = 1").is_err());
    }

    #[test]
    fn states() {
        assert_eq!(JobState::parse("CANCELLED by 0"), JobState::Cancelled);
        assert_eq!(JobState::parse("CANCELLED+"), JobState::Cancelled);
        for s in [
            "FAILED",
            "TIMEOUT",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "CANCELLED",
            "PREEMPTED",
            "BOOT_FAIL",
            "DEADLINE",
            "REVOKED",
        ] {
            assert!(JobState::parse(s).is_failure(), "{s}");
            assert!(!JobState::parse(s).is_active(), "{s}");
        }
        for s in [
            "PENDING",
            "RUNNING",
            "COMPLETING",
            "CONFIGURING",
            "REQUEUED",
            "SUSPENDED",
            "STAGE_OUT",
        ] {
            assert!(JobState::parse(s).is_active(), "{s}");
        }
        assert!(!JobState::Completed.is_active() && !JobState::Completed.is_failure());
        assert_eq!(JobState::parse("STAGE_OUT").to_string(), "STAGE_OUT");
    }

    /// Stand-in commands in a temp dir, so the spawning and error paths run for real.
    fn fake_bin(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn runs_commands_and_classifies_failures() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("argv.log");
        fake_bin(
            d.path(),
            "sbatch",
            &format!(
                "for a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\ncase \"$*\" in\n*--qos=bogus*) echo 'sbatch: error: Batch job submission failed: Invalid qos specification' >&2; exit 1;;\n*--qos=busy*) echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2; exit 1;;\n*--qos=broken*) echo 'boom' >&2; exit 7;;\nesac\necho '42;cl'",
                log.display()
            ),
        );
        fake_bin(d.path(), "squeue", "[ \"$4\" = --jobs=404 ] && { echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1; }\necho '42|0|RUNNING|None'");
        fake_bin(
            d.path(),
            "sacct",
            "echo 'Slurm accounting storage is disabled' >&2; exit 1",
        );
        fake_bin(d.path(), "scancel", "exit 0");
        fake_bin(d.path(), "scontrol", "echo 'MaxArraySize = 77'");
        let c = CliSlurm::with_bin_dir(d.path());
        assert_eq!(c.submit(&req()).await.unwrap(), JobId(42));
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("$(touch pwned)\n"), "{logged}");
        assert!(!d.path().join("pwned").exists());
        let bogus = with_qos("bogus");
        assert!(matches!(
            c.submit(&bogus).await,
            Err(SlurmError::InvalidQos { .. })
        ));
        let busy = with_qos("busy");
        assert!(matches!(
            c.submit(&busy).await,
            Err(SlurmError::SubmitLimit { .. })
        ));
        let broken = with_qos("broken");
        let e = c.submit(&broken).await.unwrap_err().to_string();
        assert!(
            e.contains("exit status 7") && e.contains("boom") && e.contains("sbatch"),
            "{e}"
        );
        assert_eq!(c.queue(&[JobId(42)]).await.unwrap().len(), 1);
        assert_eq!(c.queue(&[JobId(404)]).await.unwrap(), vec![]);
        assert_eq!(c.accounting(&[JobId(42)]).await.unwrap(), None);
        c.cancel(&[TaskRef {
            job: JobId(42),
            task: Some(1),
        }])
        .await
        .unwrap();
        assert_eq!(c.max_array_size().await.unwrap(), 77);
        let missing = CliSlurm::with_bin_dir(d.path().join("nowhere"));
        let e = missing.queue(&[JobId(1)]).await.unwrap_err();
        assert!(matches!(e, SlurmError::Spawn { .. }), "{e}");
    }
}
