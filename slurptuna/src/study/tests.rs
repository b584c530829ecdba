use super::*;

const README: &str = include_str!("README.md");

/// Every field of `RunOptions` and `EntriesOptions`, listed by an exhaustive pattern: a field
/// added to either struct does not compile here until it is added to the list, and then it must
/// be a study key and be documented.
#[test]
fn every_option_is_a_study_key_and_documented() {
    let RunOptions {
        n_trials: _,
        seeds: _,
        n_seeds: _,
        chunk_size: _,
        num_chunks: _,
        random_seed: _,
        direction: _,
        mode: _,
        scheduler: _,
        slurm_poll_seconds: _,
        slurm_timeout_minutes: _,
        cpus_per_task: _,
        mem_per_cpu: _,
        array_parallelism_limit: _,
        max_queued_tasks: _,
        worker_time_limit: _,
        slurm_qos: _,
        trial_retry_attempts: _,
        fail_on_chunk_error: _,
        run_root: _,
        loss_module: _,
        max_concurrent_trials: _,
        worker_parallelism: _,
        use_processes: _,
        forward_sys_argv_to_workers: _,
        sampler: _,
        keep_seed_values: _,
        keep_jobs_on_interrupt: _,
        progress: _,
        durability: _,
        sync_interval: _,
        entry_id: _,
        run_name: _,
        racing: _,
        validation_seeds: _,
        validate_top_k: _,
    } = RunOptions::default();
    let run_fields = [
        "n_trials",
        "seeds",
        "n_seeds",
        "chunk_size",
        "num_chunks",
        "random_seed",
        "direction",
        "mode",
        "scheduler",
        "slurm_poll_seconds",
        "slurm_timeout_minutes",
        "cpus_per_task",
        "mem_per_cpu",
        "array_parallelism_limit",
        "max_queued_tasks",
        "worker_time_limit",
        "slurm_qos",
        "trial_retry_attempts",
        "fail_on_chunk_error",
        "run_root",
        "loss_module",
        "max_concurrent_trials",
        "worker_parallelism",
        "use_processes",
        "forward_sys_argv_to_workers",
        "sampler",
        "keep_seed_values",
        "keep_jobs_on_interrupt",
        "progress",
        "durability",
        "sync_interval",
        "entry_id",
        "run_name",
        "racing",
        "validation_seeds",
        "validate_top_k",
    ];
    let EntriesOptions {
        run_name_prefix: _,
        max_concurrent_entries: _,
        ..
    } = EntriesOptions::default();
    let entries_only = ["run_name_prefix", "max_concurrent_entries"];
    let mut run_keys = RunOptions::KEYS.to_vec();
    run_keys.sort_unstable();
    let mut listed = run_fields.to_vec();
    listed.sort_unstable();
    assert_eq!(run_keys, listed, "RunOptions fields vs [run] keys");
    for key in run_fields
        .iter()
        .filter(|k| !["entry_id", "run_name"].contains(k))
        .chain(&entries_only)
    {
        assert!(
            EntriesOptions::KEYS.contains(key),
            "{key} is not an EntriesOptions key"
        );
    }
    assert_eq!(EntriesOptions::KEYS.len(), run_fields.len() - 2 + 2);
    for key in run_fields.iter().chain(&entries_only) {
        assert!(
            README.contains(&format!("| `{key}` |")),
            "[run] {key} is not documented in study/README.md"
        );
    }
    #[cfg(feature = "slurm")]
    for key in slurm_keys::KEYS {
        assert!(
            README.contains(&format!("`{key}`")),
            "[slurm] {key} is not documented in study/README.md"
        );
    }
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("tempdir"))
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
    fn load(&self, text: &str, sets: &[&str]) -> Result<StudyFile> {
        let p = self.write("study.toml", text);
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        StudyFile::load(p, &sets)
    }
    fn err(&self, text: &str, sets: &[&str]) -> String {
        let e = self.load(text, sets).expect_err("must fail");
        assert!(
            !self.0.path().join("runs").exists(),
            "an error left a run directory"
        );
        // The message after the path (which is absolute here).
        let s = e.to_string();
        match s.split_once("study.toml:") {
            Some((_, rest)) => rest.to_string(),
            None => s,
        }
    }
}

const MINIMAL: &str = r#"
[study]
name = "toy"
description = "a toy"

[params]
alpha = [0.0, 1.0]

[loss]
command = ["python3", "model.py"]
"#;

// DISTRIBUTED mode needs a scheduler compiled in.
#[cfg(feature = "slurm")]
#[test]
fn every_kind_of_key_is_read() {
    use crate::options::{Durability, SamplerChoice};
    use crate::ExecutionMode;
    use std::time::Duration;
    let d = Dir::new();
    d.write("ids.csv", "participant_id,x\np1,1\np2,2\n");
    let text = r#"
[study]
name = "full"
description = "every key"
seed_start = 5

[params]
alpha = [0.0, 1.0]
lr    = { range = [1e-4, 1e-1], dtype = "log" }
n     = { range = [1, 8], dtype = "int" }
drop  = { range = [0.0, 0.5], step = 0.05 }
kind  = { allowed = ["a", "b"] }

[loss]
command = ["bin/model", "--fast"]
cwd = "work"
env = { MODEL_THREADS = 1, MODE = "fast" }
batch_timeout_seconds = 30
startup_timeout_seconds = 2.5
batch_size = 16

[run]
n_trials = 40
n_seeds = 100
chunk_size = 25
mode = "distributed"
direction = "maximize"
sampler = "qmc"
worker_time_limit = "01:30:00"
sync_interval = 0.25
durability = "always"
slurm_qos = false
mem_per_cpu = "4G"
run_root = "out"
max_concurrent_entries = 2

[entries]
csv = "ids.csv"
column = "participant_id"
"#;
    let s = d.load(text, &[]).expect("valid");
    let base = std::path::absolute(d.0.path()).expect("absolute");
    assert_eq!(s.loss().name(), "full");
    assert_eq!(s.loss().seed_start(), 5);
    let names: Vec<&str> = s.loss().space().iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["alpha", "lr", "n", "drop", "kind"], "file order");
    let c = s.command();
    assert_eq!(c.argv[0], base.join("bin/model").to_string_lossy());
    assert_eq!(c.argv[1], "--fast");
    assert_eq!(c.cwd.as_deref(), Some(base.join("work").as_path()));
    assert_eq!(c.env["MODEL_THREADS"], "1");
    assert_eq!(c.batch_timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.startup_timeout, Duration::from_millis(2500));
    assert_eq!(c.batch_size, Some(16));
    let (ids, o) = s.entries().expect("entries");
    assert_eq!(ids, ["p1", "p2"]);
    assert_eq!(o.n_trials, 40);
    assert_eq!(o.mode, ExecutionMode::Distributed);
    assert_eq!(o.direction, slurptuna_core::Direction::Maximize);
    assert!(matches!(o.sampler, SamplerChoice::Qmc));
    assert_eq!(o.worker_time_limit, Duration::from_secs(5400));
    assert_eq!(o.sync_interval, Duration::from_millis(250));
    assert_eq!(o.durability, Durability::Always);
    assert_eq!(o.slurm_qos, None);
    assert_eq!(o.run_root, base.join("out"));
    assert_eq!(o.max_concurrent_entries, Some(2));
    assert_eq!(
        o.run_name_prefix.as_deref(),
        Some("full"),
        "default: the study's name"
    );
}

#[test]
fn defaults_resume_and_resolve_against_the_study_folder() {
    let d = Dir::new();
    let s = d.load(MINIMAL, &[]).expect("valid");
    let o = s.run_options().expect("a single study");
    let base = std::path::absolute(d.0.path()).expect("absolute");
    assert_eq!(o.run_name.as_deref(), Some("toy"));
    assert_eq!(o.run_root, base.join("runs"));
    assert_eq!(o.n_trials, 10);
    assert_eq!(
        s.command().argv,
        ["python3", "model.py"],
        "a bare name is looked up on PATH"
    );
    assert_eq!(s.command().cwd.as_deref(), Some(base.as_path()));
}

// DISTRIBUTED mode needs a scheduler compiled in.
#[cfg(feature = "slurm")]
#[test]
fn overrides_set_and_add_keys() {
    use crate::ExecutionMode;
    use std::time::Duration;
    let d = Dir::new();
    let s = d
        .load(
            MINIMAL,
            &[
                "run.n_trials=100",
                "run.mode=distributed",
                "run.worker_time_limit=00:30:00",
                "run.mem_per_cpu=1024",
                "run.seeds=[3, 1, 2]",
                "params.beta={ range = [1, 4], dtype = \"int\" }",
            ],
        )
        .expect("valid");
    let o = s.run_options().expect("single study");
    assert_eq!(o.n_trials, 100);
    assert_eq!(o.mode, ExecutionMode::Distributed);
    assert_eq!(o.worker_time_limit, Duration::from_secs(1800));
    assert_eq!(o.mem_per_cpu, "1024");
    assert_eq!(o.seeds.as_deref(), Some(&[3, 1, 2][..]));
    assert_eq!(s.loss().space().len(), 2);
}

#[test]
fn errors_name_the_file_line_column_and_key() {
    let d = Dir::new();
    let with = |extra: &str| format!("{MINIMAL}{extra}");
    let cases: Vec<(String, &[&str], &str)> = vec![
        (
            with("\n[racing]\nalpha = 0.7\n"),
            &[],
            "13:9: [racing] alpha: must be in (0, 0.5), got 0.7 (the per-trial false-elimination level; default 0.01)",
        ),
        (
            with("\n[racing]\nalpah = 0.05\n"),
            &[],
            "13:1: [racing] alpah: unknown key (racing has alpha, min_seeds, margin)",
        ),
        (
            with("\n[run]\nn_trails = 3\n"),
            &[],
            "13:1: [run] n_trails: unknown key (did you mean n_trials?)",
        ),
        (
            with("\n[run]\nn_trials = \"many\"\n"),
            &[],
            "13:12: [run] n_trials: expected a whole number, got a string",
        ),
        (
            with("\n[run]\nn_trials = -3\n"),
            &[],
            "13:12: [run] n_trials: expected a whole number >= 0, got -3",
        ),
        (
            MINIMAL.replace("alpha = [0.0, 1.0]", "lr = { range = [0.1, 0.0001] }"),
            &[],
            "7:6: [params] lr: range low 0.1 is greater than high 0.0001",
        ),
        (
            MINIMAL.replace("alpha = [0.0, 1.0]", "lr = { range = [1, 2], dtype = \"complex\" }"),
            &[],
            "7:6: [params] lr: unknown dtype 'complex' for a range: use float, int, log or int_log",
        ),
        (
            MINIMAL.replace("alpha = [0.0, 1.0]", "lr = { rnage = [1, 2] }"),
            &[],
            "7:8: [params] lr.rnage: unknown key (did you mean range?)",
        ),
        (
            MINIMAL.replace("command = [\"python3\", \"model.py\"]", "cmd = [\"x\"]"),
            &[],
            "9:2: [loss] command: missing key",
        ),
        (
            MINIMAL.replace("name = \"toy\"\n", ""),
            &[],
            "2:2: [study] name: missing key",
        ),
        (
            MINIMAL.replace("name = \"toy\"", "name = \"a b\""),
            &[],
            "3:8: [study] name: loss name 'a b' contains ' '",
        ),
        (
            with("\n[rnu]\nn_trials = 3\n"),
            &[],
            "12:2: [rnu]: unknown key (did you mean run?)",
        ),
        (
            with("\n[run]\nmode = \"distributed\"\nmem_per_cpu = \"lots\"\n"),
            &[],
            "14:15: [run] mem_per_cpu: \"lots\" is not a memory size",
        ),
        (
            with("\n[run]\nchunk_size = 0\n"),
            &[],
            "13:14: [run] chunk_size: must be > 0",
        ),
        (
            with("\n[run]\nrun_name_prefix = \"x\"\n"),
            &[],
            "13:1: [run] run_name_prefix: only valid with [entries]: use run_name",
        ),
        (
            with("\n[entries]\nids = [\"p1\", \"p2\", \"p1\"]\n"),
            &[],
            "13:20: [entries] ids: duplicate id \"p1\"",
        ),
        (
            with("\n[entries]\nids = [\"p1\"]\n[run]\nrun_name = \"x\"\n"),
            &[],
            "15:1: [run] run_name: not valid with [entries]: use run_name_prefix",
        ),
        (
            with("\n[run]\nn_trials = 3\nn_trials = 4\n"),
            &[],
            "14:1: invalid TOML: duplicate key",
        ),
        (
            format!("n_trials = 3\n{MINIMAL}"),
            &[],
            "1:1: key n_trials is outside any table: it belongs in [run]",
        ),
        (
            MINIMAL.to_string(),
            &["run.n_trails=5"],
            "--set run.n_trails=5: [run] n_trails: unknown key (did you mean n_trials?)",
        ),
        (
            MINIMAL.to_string(),
            &["run.mode=parallel"],
            "--set run.mode=parallel: [run] mode: expected \"single\" or \"distributed\", got \"parallel\"",
        ),
        (
            MINIMAL.to_string(),
            &["n_trials=5"],
            "--set n_trials=5: name a key of a table, e.g. run.n_trials",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, sets, want) in cases {
        let got = d.err(&text, sets);
        if !got.starts_with(want) {
            wrong.push(format!("want {want:?}\n got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[cfg(feature = "slurm")]
#[test]
fn slurm_table_configures_the_scheduler() {
    let d = Dir::new();
    let text = format!(
        "{MINIMAL}\n[slurm]\nslurm_partition = \"cpu\"\nslurm_extra_args = [\"--nice=10\"]\nresult_check_interval = \"500ms\"\n"
    );
    let s = d.load(&text, &[]).expect("valid");
    let o = s.run_options().expect("single");
    let backend = o.scheduler.backend().expect("slurm");
    let settings = serde_json::Value::Object(backend.settings());
    assert_eq!(settings["slurm_partition"], "cpu", "{settings}");
    let e = d.err(
        &format!("{MINIMAL}\n[slurm]\nslurm_partition = \" \"\n"),
        &[],
    );
    assert!(
        e.starts_with("13:19: [slurm] slurm_partition: is blank"),
        "{e}"
    );
    let e = d.err(&format!("{MINIMAL}\n[slurm]\npartition = \"cpu\"\n"), &[]);
    assert!(
        e.starts_with("13:1: [slurm] partition: unknown key (did you mean slurm_partition?)"),
        "{e}"
    );
}

#[cfg(not(feature = "slurm"))]
#[test]
fn distributed_without_a_scheduler_points_at_mode() {
    let d = Dir::new();
    let e = d.err(&format!("{MINIMAL}\n[run]\nmode = \"distributed\"\n"), &[]);
    assert!(
        e.starts_with("13:8: [run] mode: DISTRIBUTED needs a scheduler"),
        "{e}"
    );
    let e = d.err(
        &format!("{MINIMAL}\n[slurm]\nslurm_partition = \"cpu\"\n"),
        &[],
    );
    assert!(
        e.starts_with("12:2: [slurm]: this build has no Slurm scheduler"),
        "{e}"
    );
}

#[test]
fn the_racing_table_turns_racing_on() {
    let d = Dir::new();
    let off = d.load(MINIMAL, &[]).expect("valid");
    assert_eq!(off.run_options().expect("single").racing, None);
    let s = d
        .load(
            &format!("{MINIMAL}\n[racing]\nalpha = 0.05\nmin_seeds = 300\n"),
            &[],
        )
        .expect("valid");
    let r = s.run_options().expect("single").racing.expect("racing on");
    assert_eq!((r.alpha, r.min_seeds, r.margin), (0.05, Some(300), 0.0));
    let s = d.load(MINIMAL, &["run.racing=true"]).expect("valid");
    assert_eq!(
        s.run_options().expect("single").racing,
        Some(crate::Racing::default())
    );
}

#[test]
fn validation_seeds_are_a_count_or_a_list_and_errors_point_at_the_key() {
    let d = Dir::new();
    let s = d
        .load(MINIMAL, &["run.validation_seeds=2000"])
        .expect("valid");
    let o = s.run_options().expect("single");
    assert_eq!(
        (o.validation_seeds.clone(), o.validate_top_k),
        (Some(crate::ValidationSeeds::Count(2000)), 5)
    );
    let s = d
        .load(
            &format!("{MINIMAL}\n[run]\nvalidation_seeds = [5000, 5001, 5002, 5003]\nvalidate_top_k = 2\n"),
            &[],
        )
        .expect("valid");
    let o = s.run_options().expect("single");
    assert_eq!(
        (o.validation_seeds.clone(), o.validate_top_k),
        (
            Some(crate::ValidationSeeds::List(vec![5000, 5001, 5002, 5003])),
            2
        )
    );
    let e = d
        .load(
            &format!("{MINIMAL}\n[run]\nvalidation_seeds = \"many\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "13:20: [run] validation_seeds: expected a number of seeds or an array of seeds"
        ),
        "{e}"
    );
    let e = d
        .load(
            &format!("{MINIMAL}\n[run]\nvalidation_seeds = [1, 2, 3, 4]\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("13:20: [run] validation_seeds: seed 1 is also a fit seed"),
        "{e}"
    );
}
