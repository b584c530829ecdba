#![doc = include_str!("README.md")]

pub(crate) mod convert;
pub(crate) mod doc;
mod entries;
mod outcome;
mod params;
mod reader;
#[cfg(feature = "slurm")]
mod slurm_keys;

use std::path::{Path, PathBuf};
use std::time::Duration;

use slurptuna_core::{loss, validate_name, CoreError, LossDefinition};
use slurptuna_exec_local::{CommandLoss, CommandSpec, LocalError};

use crate::error::{Error, Result};
use crate::options::{EntriesOptions, RunOptions};
use crate::validate;

use convert::{Cx, Invalid, StudyOptions};
use doc::{resolve, Kind, Located, Origin, Source, Table, Value};
use reader::{unknown_key, Reader};

pub use outcome::StudyOutcome;

/// The tables of a study file.
const TABLES: &[&str] = &[
    "study", "params", "loss", "run", "entries", "slurm", "racing",
];
const STUDY_KEYS: &[&str] = &["name", "description", "seed_start"];
const LOSS_KEYS: &[&str] = &[
    "command",
    "cwd",
    "env",
    "batch_timeout_seconds",
    "startup_timeout_seconds",
    "batch_size",
];

/// A loaded, validated study file: the loss (an external command), its parameter space and the
/// options of `optimize_run`, or of `optimize_entries` with the entry ids.
///
/// [`StudyFile::load`] reads and checks everything (every error names the file, line, column
/// and key) and has no side effect; [`StudyFile::run`] runs the study. See the [module
/// documentation](self) for the keys.
///
/// ```no_run
/// use slurptuna::study::StudyFile;
///
/// let study = StudyFile::load("study.toml", &["run.n_trials=100".to_string()])?;
/// let outcome = study.run()?;
/// println!("{}", outcome.to_json());
/// # Ok::<(), slurptuna::Error>(())
/// ```
#[derive(Debug)]
pub struct StudyFile {
    path: PathBuf,
    base_dir: PathBuf,
    loss: LossDefinition,
    command: CommandSpec,
    plan: Plan,
    source: Source,
    /// Every key of the file (dotted) with where it was written, to point Rust errors at it.
    keys: Vec<(String, Origin)>,
}

/// What the study runs.
#[derive(Debug)]
enum Plan {
    Run(Box<RunOptions>),
    Entries {
        ids: Vec<String>,
        opts: Box<EntriesOptions>,
    },
}

impl StudyFile {
    /// Reads the study file at `path`, applies the `--set` overrides (`"run.n_trials=100"`: the
    /// value is a TOML value, or else taken as a string), builds the loss and the options and
    /// checks them all: the parameter space and every option with the rules of the Rust API.
    ///
    /// Errors are [`Error::StudyFile`] (file, line, column, key), [`Error::StudyOverride`] (an
    /// override) or [`Error::StudyRead`]. Nothing is started or written: the loss command's own
    /// check (its program exists and starts) runs in [`StudyFile::run`], before any run
    /// directory exists.
    pub fn load(path: impl AsRef<Path>, overrides: &[String]) -> Result<StudyFile> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| Error::StudyRead {
            path: path.clone(),
            source,
        })?;
        let absolute = std::path::absolute(&path).map_err(|source| Error::StudyRead {
            path: path.clone(),
            source,
        })?;
        let base_dir = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let source = Source {
            path: path.clone(),
            text,
            overrides: overrides.to_vec(),
        };
        let parsed = (|| {
            let mut doc = doc::parse_document(&source.text)?;
            for (i, set) in overrides.iter().enumerate() {
                doc::apply_set(&mut doc, set, i)?;
            }
            Ok::<_, Located>(doc)
        })()
        .map_err(|e| source.error(e))?;
        let given_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let built = Builder {
            base_dir: &base_dir,
            given_dir: &given_dir,
        }
        .build(&parsed);
        let (loss, command, plan) = built.map_err(|e| source.error(e))?;
        let mut keys = Vec::new();
        collect_keys(&parsed, "", &mut keys);
        let study = StudyFile {
            path,
            base_dir,
            loss,
            command,
            plan,
            source,
            keys,
        };
        study.check()?;
        Ok(study)
    }

    /// The study file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The study file's folder (absolute): relative paths of the file are relative to it.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The loss: named after `[study] name`, evaluated by the `[loss]` command.
    pub fn loss(&self) -> &LossDefinition {
        &self.loss
    }

    /// How the loss command is run (`[loss]`, with paths resolved).
    pub fn command(&self) -> &CommandSpec {
        &self.command
    }

    /// The options of `optimize_run`, for a study without `[entries]`.
    pub fn run_options(&self) -> Option<&RunOptions> {
        match &self.plan {
            Plan::Run(o) => Some(o),
            Plan::Entries { .. } => None,
        }
    }

    /// The run directory the study runs in (and resumes): `run_root` joined with `run_name`,
    /// or with `run_name_prefix` for a study with `[entries]` (the folder of the entries' runs).
    pub fn run_dir(&self) -> PathBuf {
        match &self.plan {
            Plan::Run(o) => o.run_root.join(o.run_name.as_deref().unwrap_or_default()),
            Plan::Entries { opts, .. } => opts
                .run_root
                .join(opts.run_name_prefix.as_deref().unwrap_or_default()),
        }
    }

    /// The entry ids and the options of `optimize_entries`, for a study with `[entries]`.
    pub fn entries(&self) -> Option<(&[String], &EntriesOptions)> {
        match &self.plan {
            Plan::Run(_) => None,
            Plan::Entries { ids, opts } => Some((ids, opts)),
        }
    }

    /// Runs the study: [`crate::optimize_run`], or [`crate::optimize_entries`] with
    /// `[entries]`. Re-running the same study file resumes it (the run directory is named after
    /// the study unless `run_name` / `run_name_prefix` says otherwise).
    ///
    /// In a worker process (a Slurm task or a pool worker started by slurptuna) this call
    /// evaluates the assigned seeds and exits the process, as `optimize_run` does.
    ///
    /// An invalid option found while starting (the loss command's check that its program
    /// starts, an option refused by the scheduler) is [`Error::StudyFile`] at its key.
    pub fn run(&self) -> Result<StudyOutcome> {
        let outcome = match &self.plan {
            Plan::Run(opts) => {
                crate::optimize_run(&self.loss, (**opts).clone()).map(StudyOutcome::Run)
            }
            Plan::Entries { ids, opts } => {
                crate::optimize_entries(&self.loss, ids, (**opts).clone())
                    .map(|m| StudyOutcome::Entries(Box::new(m)))
            }
        };
        self.finish(outcome)
    }

    /// [`StudyFile::run`] as a future, for programs that already run a tokio runtime.
    pub async fn run_async(&self) -> Result<StudyOutcome> {
        let outcome = match &self.plan {
            Plan::Run(opts) => crate::optimize_run_async(&self.loss, (**opts).clone())
                .await
                .map(StudyOutcome::Run),
            Plan::Entries { ids, opts } => {
                crate::optimize_entries_async(&self.loss, ids, (**opts).clone())
                    .await
                    .map(|m| StudyOutcome::Entries(Box::new(m)))
            }
        };
        self.finish(outcome)
    }

    /// After a run: no command process is left idle in this process (the preflight's, in modes
    /// where the seeds ran elsewhere), and errors point at their keys.
    fn finish(&self, outcome: Result<StudyOutcome>) -> Result<StudyOutcome> {
        if let Some(batch) = self.loss.batch() {
            batch.release();
        }
        outcome.map_err(|e| self.locate(e))
    }

    /// The option checks of the Rust API (no side effects), errors pointed at their keys.
    fn check(&self) -> Result<()> {
        let (mode, forward) = match &self.plan {
            Plan::Run(o) => (o.mode, o.forward_sys_argv_to_workers),
            Plan::Entries { opts: o, .. } => (o.mode, o.forward_sys_argv_to_workers),
        };
        let checked = if mode == crate::ExecutionMode::Distributed && !forward {
            // The array tasks run `slurptuna run <this file> ...` again: they need the argv.
            Err(Error::option(
                "forward_sys_argv_to_workers",
                "must stay true for a study file in DISTRIBUTED mode: each array task runs this \
                 `slurptuna run` command again, with the same arguments, to find the study file",
            ))
        } else {
            match &self.plan {
                Plan::Run(opts) => validate::check(&self.loss, opts).map(drop),
                Plan::Entries { ids, opts } => self.check_entries(ids, opts),
            }
        };
        checked.map_err(|e| self.locate(e))
    }

    /// What `optimize_entries` checks before it writes anything.
    fn check_entries(&self, ids: &[String], opts: &EntriesOptions) -> Result<()> {
        let (_, probe) = validate::entries(ids, opts)?;
        validate::check(&self.loss, &probe).map(drop)
    }

    /// Points an error of the Rust API that names an option at that option's key.
    fn locate(&self, e: Error) -> Error {
        let (option, message): (&str, String) = match &e {
            Error::Core(CoreError::InvalidOption { option, reason }) => (option, reason.clone()),
            Error::Local(LocalError::InvalidOption { option, reason }) => {
                (option, reason.clone())
            }
            // The loss was checked when it was built: what is left is the command's preflight
            // (its program is missing, or exits at once).
            Error::Core(CoreError::InvalidLoss(reason)) => ("command", reason.clone()),
            Error::NoScheduler => (
                "mode",
                "DISTRIBUTED needs a scheduler, and this build has none (enable the slurptuna feature 'slurm')".to_string(),
            ),
            _ => return e,
        };
        let key = match option {
            "entry_ids" => ["entries.ids", "entries.csv"]
                .into_iter()
                .find(|k| self.origin_of(k).is_some())
                .unwrap_or("entries")
                .to_string(),
            "command" => "loss.command".to_string(),
            _ => ["run", "slurm", "loss", "study"]
                .iter()
                .map(|t| format!("{t}.{option}"))
                .find(|k| self.origin_of(k).is_some())
                .unwrap_or_else(|| format!("run.{option}")),
        };
        // A key the file does not set (its default is refused next to other settings): the
        // table, or the file's start.
        let origin = self
            .origin_of(&key)
            .or_else(|| key.split_once('.').and_then(|(t, _)| self.origin_of(t)))
            .cloned()
            .unwrap_or_else(Origin::start);
        self.source.error(Located::new(&origin, key, message))
    }

    fn origin_of(&self, key: &str) -> Option<&Origin> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, o)| o)
    }
}

/// Every key of `table` (dotted, under `prefix`) with its origin: tables and their keys.
fn collect_keys(table: &Table, prefix: &str, out: &mut Vec<(String, Origin)>) {
    for (key, value) in &table.entries {
        let dotted = if prefix.is_empty() {
            key.name.clone()
        } else {
            format!("{prefix}.{}", key.name)
        };
        // A key points at its value (the key itself for a table).
        let origin = match &value.kind {
            Kind::Table(_) => key.origin.clone(),
            _ => value.origin.clone(),
        };
        out.push((dotted.clone(), origin));
        if let Kind::Table(t) = &value.kind {
            if prefix.is_empty() {
                collect_keys(t, &dotted, out);
            }
        }
    }
}

/// Turns the document into the loss and the options.
struct Builder<'a> {
    /// The study file's folder, absolute: relative paths are resolved against it.
    base_dir: &'a Path,
    /// The study file's folder as given (for paths in messages).
    given_dir: &'a Path,
}

impl Builder<'_> {
    fn build(&self, doc: &Table) -> Result<(LossDefinition, CommandSpec, Plan), Located> {
        let top = Reader::new(doc, "");
        for (key, value) in &doc.entries {
            if TABLES.contains(&key.name.as_str()) {
                continue;
            }
            if matches!(value.kind, Kind::Table(_)) {
                return Err(unknown_key(&key.origin, &key.name, &key.name, TABLES));
            }
            // `n_trials = 5` above every table header.
            let home = [
                ("study", STUDY_KEYS),
                ("loss", LOSS_KEYS),
                ("run", RunOptions::KEYS),
                ("run", EntriesOptions::KEYS),
            ]
            .into_iter()
            .find(|(_, keys)| keys.contains(&key.name.as_str()))
            .map_or_else(String::new, |(t, _)| format!(": it belongs in [{t}]"));
            return Err(Located::new(
                &key.origin,
                "",
                format!(
                    "key {} is outside any table{home} (keys go in [study], [params], [loss], [run], [entries], [slurm] or [racing])",
                    key.name
                ),
            ));
        }
        let table = |name: &str| -> Result<Option<(&Origin, &Table)>, Located> {
            top.table(name).map_err(|mut e| {
                e.key = name.to_string();
                e
            })
        };

        // [study]
        let Some((study_origin, study)) = table("study")? else {
            return Err(Located::new(
                &Origin::start(),
                "study",
                "missing table [study] with name and description",
            ));
        };
        let r = Reader::new(study, "study");
        let Some((name_value, name)) = r.string("name")? else {
            return Err(Located::new(
                study_origin,
                "study.name",
                "missing key: the study's name (it names the run directory)",
            ));
        };
        validate_name(name)
            .map_err(|e| Located::new(&name_value.origin, "study.name", core_reason(e)))?;
        let Some((description_value, description)) = r.string("description")? else {
            return Err(Located::new(
                study_origin,
                "study.description",
                "missing key: a human-readable description of the study",
            ));
        };
        if description.trim().is_empty() {
            return Err(Located::new(
                &description_value.origin,
                "study.description",
                "must not be empty",
            ));
        }
        let seed_start = match r.get("seed_start") {
            Some(v) => self.convert::<u64>(v, "study.seed_start")?,
            None => 0,
        };
        r.finish(STUDY_KEYS)?;

        // [params]
        let Some((params_origin, params_table)) = table("params")? else {
            return Err(Located::new(
                &Origin::start(),
                "params",
                "missing table [params]: the parameters to search, e.g. alpha = [0.0, 1.0]",
            ));
        };
        let params = params::read_params(params_table, params_origin)?;

        // [loss]
        let Some((loss_origin, loss_table)) = table("loss")? else {
            return Err(Located::new(
                &Origin::start(),
                "loss",
                "missing table [loss] with command = [\"program\", \"arg\", ...]",
            ));
        };
        let command = self.command(loss_table, loss_origin)?;
        let batch = CommandLoss::new(command.clone()).map_err(|e| {
            let key = match &e {
                LocalError::InvalidOption { option, .. } => format!("loss.{option}"),
                _ => "loss.command".to_string(),
            };
            Located::new(loss_origin, key, local_reason(e))
        })?;
        let mut builder = loss(name).description(description).seed_start(seed_start);
        for (param, spec) in params {
            builder = builder.param(param, spec);
        }
        let loss_def = builder.build_batch(batch).map_err(|e| match e {
            CoreError::InvalidParam { name, reason } => {
                Located::new(params_origin, format!("params.{name}"), reason)
            }
            CoreError::InvalidSpace(reason) => Located::new(params_origin, "params", reason),
            other => Located::new(study_origin, "study", other.to_string()),
        })?;

        // [entries], [run], [slurm]
        let entries = match table("entries")? {
            Some((origin, t)) => Some(entries::read_entries(
                t,
                origin,
                self.base_dir,
                self.given_dir,
            )?),
            None => None,
        };
        let run = table("run")?;
        let slurm = table("slurm")?;
        let racing = match table("racing")? {
            Some((_, t)) => Some(
                convert::racing_from_table(t, &self.cx()).map_err(|(key, e)| invalid(e, &key))?,
            ),
            None => None,
        };
        let plan = match entries {
            None => {
                let mut opts = RunOptions::default();
                if let Some((_, t)) = run {
                    self.set_options(&mut opts, t, EntriesOptions::KEYS, |k| match k {
                        "run_name_prefix" => "only valid with [entries]: use run_name".to_string(),
                        _ => "only valid with [entries] (one study per entry)".to_string(),
                    })?;
                }
                opts.scheduler = self.scheduler(slurm, opts.scheduler)?;
                opts.run_root = self.default_path(opts.run_root);
                opts.run_name.get_or_insert_with(|| name.to_string());
                if racing.is_some() {
                    opts.racing = racing;
                }
                Plan::Run(Box::new(opts))
            }
            Some(ids) => {
                let mut opts = EntriesOptions::default();
                if let Some((_, t)) = run {
                    self.set_options(&mut opts, t, RunOptions::KEYS, |k| match k {
                        "run_name" => "not valid with [entries]: use run_name_prefix (the folder of the entries' runs)".to_string(),
                        "entry_id" => "not valid with [entries]: each study gets its entry's id".to_string(),
                        _ => "not valid with [entries]".to_string(),
                    })?;
                }
                opts.scheduler = self.scheduler(slurm, opts.scheduler)?;
                opts.run_root = self.default_path(opts.run_root);
                opts.run_name_prefix.get_or_insert_with(|| name.to_string());
                if racing.is_some() {
                    opts.racing = racing;
                }
                Plan::Entries {
                    ids,
                    opts: Box::new(opts),
                }
            }
        };
        Ok((loss_def, command, plan))
    }

    /// A relative default path (`run_root = "runs"`) made relative to the study file's folder.
    fn default_path(&self, path: PathBuf) -> PathBuf {
        if path.as_os_str().is_empty() {
            path
        } else {
            resolve(self.base_dir, &path)
        }
    }

    fn convert<T: convert::FromStudyValue>(&self, v: &Value, key: &str) -> Result<T, Located> {
        T::from_study(v, &self.cx()).map_err(|e| invalid(e, key))
    }

    fn cx(&self) -> Cx<'_> {
        Cx {
            base_dir: self.base_dir,
        }
    }

    /// Sets every key of `[run]` on `opts`; a key of the other options struct (`other_keys`)
    /// gets the message `other(key)`, any other unknown key "unknown key (did you mean ...)".
    fn set_options<O: StudyOptions>(
        &self,
        opts: &mut O,
        run: &Table,
        other_keys: &[&str],
        other: impl Fn(&str) -> String,
    ) -> Result<(), Located> {
        let cx = self.cx();
        for (key, value) in &run.entries {
            let dotted = format!("run.{}", key.name);
            match opts.set_key(&key.name, value, &cx) {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(invalid(e, &dotted)),
                None if other_keys.contains(&key.name.as_str()) => {
                    return Err(Located::new(&key.origin, dotted, other(&key.name)))
                }
                None => return Err(unknown_key(&key.origin, &dotted, &key.name, O::KEYS)),
            }
        }
        Ok(())
    }

    /// The scheduler: `[run] scheduler` (or the build's default), configured by `[slurm]`.
    #[cfg_attr(not(feature = "slurm"), allow(clippy::unused_self))]
    fn scheduler(
        &self,
        slurm: Option<(&Origin, &Table)>,
        chosen: crate::Scheduler,
    ) -> Result<crate::Scheduler, Located> {
        let Some((origin, table)) = slurm else {
            return Ok(chosen);
        };
        #[cfg(feature = "slurm")]
        {
            if chosen.name() != Some("slurm") {
                return Err(Located::new(
                    origin,
                    "slurm",
                    format!(
                        "[slurm] configures the Slurm scheduler, but [run] scheduler is {:?}",
                        chosen.name().unwrap_or("none")
                    ),
                ));
            }
            let opts = slurm_keys::read(table, &self.cx())?;
            Ok(opts.into())
        }
        #[cfg(not(feature = "slurm"))]
        {
            let _ = (table, chosen);
            Err(Located::new(
                origin,
                "slurm",
                "this build has no Slurm scheduler: build slurptuna with its cargo feature 'slurm'",
            ))
        }
    }

    /// `[loss]` as a command spec, paths resolved against the study file's folder.
    fn command(&self, t: &Table, origin: &Origin) -> Result<CommandSpec, Located> {
        let r = Reader::new(t, "loss");
        let Some(v) = r.get("command") else {
            return Err(Located::new(
                origin,
                "loss.command",
                "missing key: the command that evaluates the loss, e.g. command = [\"python3\", \"model.py\"]",
            ));
        };
        let argv: Vec<String> = self.convert(v, "loss.command")?;
        let Some(program) = argv.first() else {
            return Err(Located::new(
                &v.origin,
                "loss.command",
                "must not be empty: give the program and its arguments, e.g. [\"python3\", \"model.py\"]",
            ));
        };
        if program.is_empty() {
            return Err(Located::new(
                &v.origin,
                "loss.command",
                "the program name is empty",
            ));
        }
        let mut argv = argv.clone();
        // A relative program path (`./model`, `bin/model`) is relative to the study file's
        // folder; a bare name is looked up on PATH.
        if program.contains('/') {
            argv[0] = resolve(self.base_dir, Path::new(program))
                .to_string_lossy()
                .into_owned();
        }
        let cwd = match r.get("cwd") {
            Some(v) => self.convert::<PathBuf>(v, "loss.cwd")?,
            None => self.base_dir.to_path_buf(),
        };
        let mut spec = CommandSpec::new(argv);
        spec.cwd = Some(cwd);
        if let Some((_, env)) = r.table("env")? {
            for (key, value) in &env.entries {
                let k = format!("loss.env.{}", key.name);
                if key.name.is_empty() || key.name.contains('=') || key.name.contains('\0') {
                    return Err(Located::new(
                        &key.origin,
                        k,
                        "not a valid environment variable name",
                    ));
                }
                let text = match &value.kind {
                    Kind::Str(s) => s.clone(),
                    Kind::Int(n) => n.to_string(),
                    Kind::Bool(b) => b.to_string(),
                    other => {
                        return Err(Located::new(
                            &value.origin,
                            k,
                            format!("expected a string, got {}", other.type_name()),
                        ))
                    }
                };
                spec.env.insert(key.name.clone(), text);
            }
        }
        if let Some(v) = r.get("batch_timeout_seconds") {
            spec.batch_timeout = Some(self.seconds(v, "loss.batch_timeout_seconds")?);
        }
        if let Some(v) = r.get("startup_timeout_seconds") {
            spec.startup_timeout = self.seconds(v, "loss.startup_timeout_seconds")?;
        }
        if let Some(v) = r.get("batch_size") {
            let n: usize = self.convert(v, "loss.batch_size")?;
            if n == 0 {
                return Err(Located::new(&v.origin, "loss.batch_size", "must be >= 1"));
            }
            spec.batch_size = Some(n);
        }
        r.finish(LOSS_KEYS)?;
        Ok(spec)
    }

    /// A number of seconds > 0.
    fn seconds(&self, v: &Value, key: &str) -> Result<Duration, Located> {
        let x: f64 = self.convert(v, key)?;
        match Duration::try_from_secs_f64(x) {
            Ok(d) if x > 0.0 && !d.is_zero() => Ok(d),
            _ => Err(Located::new(
                &v.origin,
                key,
                format!("must be a number of seconds > 0, got {x}"),
            )),
        }
    }
}

fn invalid(e: Invalid, key: &str) -> Located {
    Located::new(&e.origin, key, e.message)
}

/// The reason of a core error, without the "option 'x':" / "parameter 'x':" its display adds.
fn core_reason(e: CoreError) -> String {
    match e {
        CoreError::InvalidOption { reason, .. } | CoreError::InvalidParam { reason, .. } => reason,
        CoreError::InvalidLoss(reason) | CoreError::InvalidSpace(reason) => reason,
        other => other.to_string(),
    }
}

fn local_reason(e: LocalError) -> String {
    match e {
        LocalError::InvalidOption { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
