//! Study files (`slurptuna::study`, `slurptuna run`): the examples of `examples/studies/` recover
//! their truths and give bit-identical results to the Rust API with the same loss written in
//! Rust, in SINGLE mode (library and binary) and DISTRIBUTED mode (binary, on a local Slurm
//! cluster); errors name file, line, column and key and leave no run directory; `--set`,
//! `--json`; re-running resumes.
//!
//! The examples' losses are Python programs: without `python3` on PATH these tests print
//! `skipped: python3 not found` and pass, unless `CI=true` or `SLURPTUNA_TEST_PYTHON=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use slurptuna::{
    loss, optimize_entries, optimize_run, EntriesOptions, LossDefinition, RunOptions, StudyFile,
    StudyOutcome,
};

use crate::util::{assert_no_jobs_left, cluster, run_with_timeout, trial_sequence};

/// True when `python3` runs; panics when it must (`CI=true`, `SLURPTUNA_TEST_PYTHON=1`).
fn python() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    crate::util::present(
        found,
        "python3",
        "install python3 to run the study-file tests",
    )
}

/// A copy of `examples/studies/<name>` in a fresh temporary folder (so runs go there).
fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/studies")
        .join(name);
    let dir = tempfile::tempdir().expect("tempdir");
    let dst = dir.path().join(name);
    std::fs::create_dir_all(&dst).expect("mkdir");
    for entry in std::fs::read_dir(&src).expect("the example exists") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy");
        }
    }
    (dir, dst)
}

/// Sets that keep a test bounded and quiet: every batch of the command has a time limit.
fn quiet(extra: &[&str]) -> Vec<String> {
    ["run.progress=false", "loss.batch_timeout_seconds=60"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// Runs `slurptuna <args>` in `cwd` (killed after `timeout`).
fn slurptuna(cwd: &Path, args: &[String], timeout: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slurptuna"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    run_with_timeout(&mut cmd, timeout)
}

/// `slurptuna run <study> --json <sets>`: its one JSON object, or a panic with its output.
fn run_json(cwd: &Path, study: &Path, sets: &[String], timeout: Duration) -> serde_json::Value {
    let mut args = vec![
        "run".to_string(),
        study.display().to_string(),
        "--json".into(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    let out = slurptuna(cwd, &args, timeout);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "slurptuna {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object: {stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Pids of the loss commands (`model.py`) still running in `dir`: none may be left behind.
fn commands_left(dir: &Path) -> Vec<String> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(Result::ok)
        .filter(|p| {
            let cwd = std::fs::read_link(p.path().join("cwd")).ok();
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            cwd.is_some_and(|c| c.starts_with(&dir))
                && String::from_utf8_lossy(&cmdline).contains("model.py")
        })
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect()
}

fn assert_no_commands_left(dir: &Path) {
    let start = Instant::now();
    loop {
        let left = commands_left(dir);
        if left.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(10) {
            for pid in &left {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
            panic!("loss commands left running: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The toy loss of `examples/studies/toy/model.py`, in Rust: the same arithmetic.
fn toy_loss() -> LossDefinition {
    loss("toy")
        .description("Recover two parameters")
        .param("alpha", (0.0, 1.0))
        .param("beta", (0.0, 1.0))
        .build(|p, seed, _| {
            let base = (p.f64("alpha")? - 0.3).abs() + (p.f64("beta")? - 0.7).abs();
            Ok((base + (seed % 17) as f64 * 1e-4).into())
        })
        .expect("valid loss")
}

/// `participant_truth.csv`: id → (alpha, beta), in file order.
fn truths(csv: &Path) -> Vec<(String, (f64, f64))> {
    std::fs::read_to_string(csv)
        .expect("csv")
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[0].to_string(),
                (c[1].parse().expect("alpha"), c[2].parse().expect("beta")),
            )
        })
        .collect()
}

/// The loss of `examples/studies/participants/model.py`, in Rust.
fn participants_loss(truth: BTreeMap<String, (f64, f64)>) -> LossDefinition {
    loss("participants")
        .description("Fit one alpha/beta set per participant loaded from CSV")
        .param("alpha", (0.0, 1.0))
        .param("beta", (0.0, 1.0))
        .build(move |p, seed, ctx| {
            let id = ctx.entry_id().ok_or("no entry id")?;
            let &(a, b) = truth.get(id).ok_or("unknown participant")?;
            let base = (p.f64("alpha")? - a).abs() + (p.f64("beta")? - b).abs();
            Ok((base + (seed % 23) as f64 * 1e-4).into())
        })
        .expect("valid loss")
}

/// Bit-identical best parameters and value, from a result and from `--json`.
fn assert_same_best(json: &serde_json::Value, value: f64, params: &slurptuna::Params) {
    assert_eq!(
        json["best_value"].as_f64().map(f64::to_bits),
        Some(value.to_bits()),
        "best value: {json}"
    );
    for (name, _) in params.iter() {
        assert_eq!(
            json["best_params"][name].as_f64().map(f64::to_bits),
            params.f64(name).ok().map(f64::to_bits),
            "best {name}: {json}"
        );
    }
}

fn assert_near(params: &slurptuna::Params, alpha: f64, beta: f64, what: &str) {
    let (a, b) = (params.f64("alpha").unwrap(), params.f64("beta").unwrap());
    let err = (a - alpha).abs().max((b - beta).abs());
    assert!(
        err <= 0.05,
        "{what}: found alpha {a}, beta {b}; truth {alpha}, {beta} (off by {err})"
    );
}

fn toy_options(root: &Path) -> RunOptions {
    // examples/studies/toy/study.toml, written as the Rust API's options.
    RunOptions {
        n_trials: 80,
        n_seeds: Some(200),
        chunk_size: Some(50),
        worker_parallelism: 2,
        random_seed: 123,
        run_root: root.to_path_buf(),
        progress: false,
        ..RunOptions::default()
    }
}

#[test]
fn toy_study_recovers_the_truth_and_equals_the_rust_api() {
    if !python() {
        return;
    }
    let (dir, toy) = example("toy");
    let study = toy.join("study.toml");
    let rust = optimize_run(&toy_loss(), toy_options(&dir.path().join("rust"))).expect("rust");
    assert_near(&rust.best_params, 0.3, 0.7, "Rust API");

    let lib = StudyFile::load(&study, &quiet(&[])).expect("loads");
    let StudyOutcome::Run(r) = lib.run().expect("runs") else {
        panic!("a single study");
    };
    assert_eq!(
        r.run_dir,
        toy.join("runs/toy"),
        "run_root is next to the study file"
    );
    assert_eq!(
        trial_sequence(&r),
        trial_sequence(&rust),
        "every trial identical"
    );
    assert_eq!(r.best_value.to_bits(), rust.best_value.to_bits());
    assert_eq!(r.best_params, rust.best_params);
    assert_no_commands_left(&toy);

    // The binary, from another working directory, in a new run.
    let json = run_json(
        dir.path(),
        &study,
        &quiet(&["run.run_name=\"bin\""]),
        Duration::from_secs(120),
    );
    assert_same_best(&json, rust.best_value, &rust.best_params);
    assert_eq!(json["study"], "toy");
    assert_eq!(json["mode"], "single");
    assert_eq!(json["n_complete"], 80);
    assert_eq!(json["n_failed"], 0);
    assert_eq!(json["best_trial"], rust.best_trial.0);
    assert_eq!(json["run_dir"], toy.join("runs/bin").display().to_string());
    assert_no_commands_left(&toy);
}

#[test]
fn participants_study_fits_each_csv_row_and_equals_the_rust_api() {
    if !python() {
        return;
    }
    let (dir, folder) = example("participants");
    let study = folder.join("study.toml");
    let truth = truths(&folder.join("participant_truth.csv"));
    let ids: Vec<String> = truth.iter().map(|(id, _)| id.clone()).collect();
    let rust = optimize_entries(
        &participants_loss(truth.iter().cloned().collect()),
        &ids,
        EntriesOptions {
            n_trials: 60,
            n_seeds: Some(80),
            chunk_size: Some(20),
            max_concurrent_entries: Some(2),
            run_root: dir.path().join("rust"),
            progress: false,
            ..EntriesOptions::default()
        },
    )
    .expect("rust");

    let lib = StudyFile::load(&study, &quiet(&[])).expect("loads");
    assert_eq!(lib.entries().expect("entries").0, ids.as_slice());
    let StudyOutcome::Entries(m) = lib.run().expect("runs") else {
        panic!("entries");
    };
    assert_eq!(m.run_dir, folder.join("runs/participants"));
    for (id, (alpha, beta)) in &truth {
        let (got, want) = (&m.results_by_entry[id], &rust.results_by_entry[id]);
        assert_eq!(trial_sequence(got), trial_sequence(want), "{id}");
        assert_eq!(got.best_value.to_bits(), want.best_value.to_bits(), "{id}");
        assert_near(&got.best_params, *alpha, *beta, id);
    }
    assert_no_commands_left(&folder);

    let json = run_json(
        dir.path(),
        &study,
        &quiet(&["run.run_name_prefix=bin"]),
        Duration::from_secs(180),
    );
    assert_eq!(json["study"], "participants");
    assert_eq!(
        json["run_dir"],
        folder.join("runs/bin").display().to_string()
    );
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), ids.len());
    for (e, id) in entries.iter().zip(&ids) {
        assert_eq!(e["entry_id"], id.as_str(), "input order");
        let want = &rust.results_by_entry[id];
        assert_same_best(e, want.best_value, &want.best_params);
        assert_eq!(e["n_complete"], 60);
        assert_eq!(
            e["run_dir"],
            folder.join("runs/bin").join(id).display().to_string()
        );
    }
    assert_no_commands_left(&folder);
}

/// A study file with one mistake; the error as the binary prints it and as the library
/// returns it.
fn broken(study_text: &str) -> (String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("study.toml");
    std::fs::write(&path, study_text).expect("write");
    std::fs::write(dir.path().join("model.py"), MODEL_ZERO).expect("write");
    let lib = match StudyFile::load(&path, &[]).and_then(|s| s.run()) {
        Ok(_) => panic!("must fail:\n{study_text}"),
        Err(e) => e.to_string(),
    };
    let out = slurptuna(
        dir.path(),
        &["run".into(), "study.toml".into()],
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "must fail:\n{study_text}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let cli = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        !dir.path().join("runs").exists(),
        "an error left a run directory:\n{study_text}"
    );
    (lib, cli, dir)
}

/// A loss command answering 0 for every seed (so that a study that should have failed ends
/// quickly instead).
const MODEL_ZERO: &str = "import json, sys
for line in sys.stdin:
    for seed in json.loads(line)[\"seeds\"]:
        print(json.dumps({\"seed\": seed, \"value\": 0.0}), flush=True)
";

const TOY: &str = r#"[study]
name = "broken"
description = "one mistake each"

[params]
alpha = [0.0, 1.0]
lr = { range = [1e-4, 1e-1], dtype = "log" }

[loss]
command = ["python3", "model.py"]

[run]
n_trials = 2
n_seeds = 2
"#;

#[test]
fn errors_name_file_line_column_and_key_and_write_nothing() {
    if !python() {
        return;
    }
    let cases = [
        (
            TOY.replace("n_trials = 2", "n_trails = 2"),
            "study.toml:13:1: [run] n_trails: unknown key (did you mean n_trials?)",
        ),
        (
            TOY.replace("n_seeds = 2", "n_seeds = \"2\""),
            "study.toml:14:11: [run] n_seeds: expected a whole number, got a string",
        ),
        (
            TOY.replace("[1e-4, 1e-1]", "[0.1, 0.0001]"),
            "study.toml:7:6: [params] lr: range low 0.1 is greater than high 0.0001",
        ),
        (
            TOY.replace("\"log\"", "\"logarithmic\""),
            "study.toml:7:6: [params] lr: unknown dtype 'logarithmic' for a range",
        ),
        (
            TOY.replace(
                "command = [\"python3\", \"model.py\"]",
                "comand = [\"python3\"]",
            ),
            "study.toml:9:2: [loss] command: missing key",
        ),
        (
            TOY.replace("[\"python3\", \"model.py\"]", "[\"./no-such-model\"]"),
            "study.toml:10:11: [loss] command: ",
        ),
        (
            TOY.replace("name = \"broken\"\n", ""),
            "study.toml:1:2: [study] name: missing key",
        ),
        (
            TOY.replace("n_seeds = 2", "n_seeds = 2\nworker_time_limit = \"soon\""),
            "study.toml:15:21: [run] worker_time_limit: expected seconds (a number) or a duration",
        ),
        (
            TOY.replace("n_seeds = 2", "n_seeds = 2\nsync_interval = 120"),
            "study.toml:15:17: [run] sync_interval: must be between 1 ms and 60 s",
        ),
    ];
    for (text, want) in cases {
        let (lib, cli, dir) = broken(&text);
        let lib_tail = lib
            .replace(&dir.path().display().to_string(), "")
            .replace("/study.toml", "study.toml");
        assert!(lib_tail.starts_with(want), "library: {lib}\nwant: {want}");
        assert!(
            cli.starts_with(&format!("slurptuna: {want}")),
            "binary: {cli}\nwant: {want}"
        );
    }
}

#[test]
fn entries_csv_errors_name_the_csv_line() {
    if !python() {
        return;
    }
    let study =
        |column: &str| format!("{TOY}\n[entries]\ncsv = \"ids.csv\"\ncolumn = \"{column}\"\n");
    let cases = [
        ("participant_id,a\np1,1\np2,2\np1,3\n", "participant_id", "ids.csv:4:1: [entries] csv: duplicate id \"p1\" (first on line 2)"),
        ("id,a\np1,1\n", "participant_id", "ids.csv:1:1: [entries] column: no column \"participant_id\" in the header (columns: id, a)"),
        ("", "participant_id", "ids.csv:1:1: [entries] csv: the file is empty"),
    ];
    for (csv, column, want) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ids.csv"), csv).expect("write");
        std::fs::write(dir.path().join("study.toml"), study(column)).expect("write");
        let out = slurptuna(
            dir.path(),
            &["run".into(), "study.toml".into()],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.starts_with(&format!("slurptuna: {want}")),
            "{stderr}\nwant: {want}"
        );
        assert!(!dir.path().join("runs").exists());
    }
}

#[test]
fn set_overrides_keys_and_json_is_one_object() {
    if !python() {
        return;
    }
    let (dir, toy) = example("toy");
    let study = toy.join("study.toml");
    let json = run_json(
        &toy,
        Path::new("study.toml"),
        &quiet(&[
            "run.n_trials=3",
            "run.n_seeds=4",
            "run.sampler=random",
            "run.run_name=set",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(json["n_trials"], 3);
    assert_eq!(json["n_complete"], 3);
    assert_eq!(json["run_dir"], toy.join("runs/set").display().to_string());
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(toy.join("runs/set/meta.json")).expect("meta"),
    )
    .expect("json");
    assert_eq!(meta["n_seeds"], 4);
    assert_eq!(meta["sampler"], "random");

    // An unknown key or a wrong value given with --set names the --set.
    for (set, want) in [
        (
            "run.n_trails=3",
            "slurptuna: --set run.n_trails=3: [run] n_trails: unknown key (did you mean n_trials?)",
        ),
        (
            "run.mode=parallel",
            "slurptuna: --set run.mode=parallel: [run] mode: expected \"single\" or \"distributed\", got \"parallel\"",
        ),
        (
            "rnu.n_trials=3",
            "slurptuna: --set rnu.n_trials=3: [rnu]: unknown key (did you mean run?)",
        ),
    ] {
        let out = slurptuna(
            dir.path(),
            &[
                "run".into(),
                study.display().to_string(),
                "--set".into(),
                set.into(),
                "--set".into(),
                "run.run_name=bad".into(),
            ],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.starts_with(want), "{stderr}\nwant: {want}");
        assert!(!toy.join("runs/bad").exists());
    }
    assert_no_commands_left(&toy);
}

#[test]
fn rerunning_the_same_study_resumes() {
    if !python() {
        return;
    }
    let (dir, toy) = example("toy");
    let study = toy.join("study.toml");
    let sets = quiet(&["run.n_trials=4", "run.n_seeds=6"]);
    let first = run_json(dir.path(), &study, &sets, Duration::from_secs(60));
    assert_eq!(first["n_complete"], 4);
    let journal = toy.join("runs/toy/journal.jsonl");
    let events = std::fs::read_to_string(&journal).expect("journal");

    // The same command again: nothing left to do, nothing evaluated.
    let again = run_json(dir.path(), &study, &sets, Duration::from_secs(60));
    assert_eq!(again, first);
    assert_eq!(
        std::fs::read_to_string(&journal).expect("journal"),
        events,
        "no new trial"
    );

    // A higher target continues the same run, and equals a run of 6 from the start.
    let more = quiet(&["run.n_trials=6", "run.n_seeds=6"]);
    let continued = run_json(dir.path(), &study, &more, Duration::from_secs(60));
    assert_eq!(continued["n_complete"], 6);
    assert_eq!(continued["run_dir"], first["run_dir"]);
    let fresh = StudyFile::load(
        &study,
        &quiet(&["run.n_trials=6", "run.n_seeds=6", "run.run_name=fresh"]),
    )
    .expect("loads")
    .run()
    .expect("runs");
    assert_eq!(fresh.to_json()["best_params"], continued["best_params"]);
    assert_eq!(fresh.to_json()["best_value"], continued["best_value"]);
    assert_no_commands_left(&toy);
}

// ---------------------------------------------------------------------------------------------
// DISTRIBUTED mode: each Slurm task runs `slurptuna run` itself.

/// Small DISTRIBUTED settings: 2 chunks of 4 seeds per trial, quick polls.
const SMALL_DISTRIBUTED: &[&str] = &[
    "run.mode=distributed",
    "run.n_seeds=8",
    "run.chunk_size=4",
    "run.worker_parallelism=1",
    "run.slurm_poll_seconds=0.3",
    "slurm.slurm_rpc_per_second=20",
    "run.mem_per_cpu=\"200M\"",
    "run.worker_time_limit=120",
];

fn run_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn toy_study_distributed_equals_the_rust_api_in_single_mode() {
    if !python() || !cluster() {
        return;
    }
    let (dir, toy) = example("toy");
    let mut sets = SMALL_DISTRIBUTED.to_vec();
    sets.push("run.n_trials=3");
    let json = run_json(
        &toy,
        Path::new("study.toml"),
        &quiet(&sets),
        Duration::from_secs(300),
    );
    let rust = optimize_run(
        &toy_loss(),
        RunOptions {
            n_trials: 3,
            n_seeds: Some(8),
            chunk_size: Some(4),
            ..toy_options(&dir.path().join("rust"))
        },
    )
    .expect("rust");
    assert_same_best(&json, rust.best_value, &rust.best_params);
    assert_eq!(json["mode"], "distributed");
    assert_eq!(json["n_complete"], 3);
    // The workers created no run directory of their own, and each trial's chunks are there.
    assert_eq!(run_dirs(&toy.join("runs")), ["toy"]);
    let chunks = toy.join("runs/toy/trials/trial_00000/chunks");
    assert!(chunks.is_dir(), "{}", chunks.display());
    assert_no_jobs_left(&toy);
    assert_no_commands_left(&toy);
}

#[test]
fn participants_study_distributed_equals_the_rust_api_in_single_mode() {
    if !python() || !cluster() {
        return;
    }
    let (dir, folder) = example("participants");
    let truth = truths(&folder.join("participant_truth.csv"));
    let ids: Vec<String> = truth.iter().map(|(id, _)| id.clone()).collect();
    let mut sets = SMALL_DISTRIBUTED.to_vec();
    sets.push("run.n_trials=2");
    let json = run_json(
        &folder,
        Path::new("study.toml"),
        &quiet(&sets),
        Duration::from_secs(400),
    );
    let rust = optimize_entries(
        &participants_loss(truth.iter().cloned().collect()),
        &ids,
        EntriesOptions {
            n_trials: 2,
            n_seeds: Some(8),
            chunk_size: Some(4),
            run_root: dir.path().join("rust"),
            progress: false,
            ..EntriesOptions::default()
        },
    )
    .expect("rust");
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 4, "{json}");
    for (e, id) in entries.iter().zip(&ids) {
        assert_eq!(e["entry_id"], id.as_str());
        let want = &rust.results_by_entry[id];
        assert_same_best(e, want.best_value, &want.best_params);
    }
    assert_eq!(run_dirs(&folder.join("runs")), ["participants"]);
    assert_no_jobs_left(&folder);
    assert_no_commands_left(&folder);
}

/// A loss command that misbehaves by parameter region: crashes, hangs, prints garbage between
/// replies, answers a seed twice, returns NaN — and is correct elsewhere.
const UNRULY_MODEL: &str = r#"import json, sys, time
for line in sys.stdin:
    r = json.loads(line)
    x = r["params"]["x"]
    if x < 0.15:
        sys.stderr.write("model: giving up on x=%r\n" % x)
        sys.exit(3)
    if x < 0.3:
        time.sleep(3600)
    for s in r["seeds"]:
        if x < 0.45:
            print("debug: a stray print before seed", s)
        if 0.45 <= x < 0.55 and s == r["seeds"][0]:
            print(json.dumps({"seed": s, "value": 1.0}))
        v = float("nan") if 0.55 <= x < 0.7 else (x - 0.9) ** 2 + s * 1e-3
        print(json.dumps({"seed": s, "value": v}))
    sys.stdout.flush()
"#;

#[test]
fn a_misbehaving_command_fails_only_its_trials_and_the_study_goes_on() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let study_dir = dir.path().join("unruly");
    std::fs::create_dir_all(&study_dir).expect("mkdir");
    std::fs::write(study_dir.join("model.py"), UNRULY_MODEL).expect("model");
    let study = study_dir.join("study.toml");
    std::fs::write(
        &study,
        r#"[study]
name = "unruly"
description = "a command that crashes, hangs, chatters, repeats itself and returns NaN"

[params]
x = [0.0, 1.0]

[loss]
command = ["python3", "model.py"]
batch_timeout_seconds = 2
startup_timeout_seconds = 1

[run]
n_trials = 30
n_seeds = 4
sampler = "random"
progress = false
"#,
    )
    .expect("study");
    let file = StudyFile::load(&study, &[]).expect("loads");
    let started = Instant::now();
    let outcome = file.run().expect("some trials complete");
    assert!(started.elapsed() < Duration::from_secs(120));
    let StudyOutcome::Run(r) = outcome else {
        panic!("a study without [entries] is one run")
    };
    assert_eq!(r.trials.len(), 30);
    let mut kinds = BTreeMap::<&str, usize>::new();
    for t in &r.trials {
        let x = t.params.f64("x").expect("x");
        match &t.state {
            slurptuna::TrialState::Complete { stats } => {
                assert!(x >= 0.3 && !(0.45..0.7).contains(&x), "x={x} completed");
                let want = (0..4)
                    .map(|s| (x - 0.9f64).powi(2) + s as f64 * 1e-3)
                    .sum::<f64>()
                    / 4.0;
                assert!(
                    (stats.mean() - want).abs() < 1e-12,
                    "x={x}: {} vs {want}",
                    stats.mean()
                );
                *kinds.entry("complete").or_default() += 1;
            }
            slurptuna::TrialState::Failed { reason } => {
                let kind = if x < 0.15 {
                    assert!(
                        reason.contains("exit code 3") && reason.contains("giving up"),
                        "{reason}"
                    );
                    "crash"
                } else if x < 0.3 {
                    assert!(
                        reason.contains("2 s")
                            || reason.contains("timeout")
                            || reason.contains("timed out"),
                        "{reason}"
                    );
                    "hang"
                } else if (0.45..0.55).contains(&x) {
                    assert!(reason.contains("twice"), "{reason}");
                    "twice"
                } else if (0.55..0.7).contains(&x) {
                    assert!(reason.contains("NaN"), "{reason}");
                    "nan"
                } else {
                    panic!("x={x} failed: {reason}");
                };
                *kinds.entry(kind).or_default() += 1;
            }
            slurptuna::TrialState::Running | slurptuna::TrialState::Pruned { .. } => {
                panic!("unfinished or pruned trial (racing is off)")
            }
        }
    }
    assert!(
        kinds.get("complete").copied().unwrap_or(0) >= 3,
        "{kinds:?}"
    );
    for kind in ["crash", "hang", "twice", "nan"] {
        assert!(
            kinds.contains_key(kind),
            "no trial hit the {kind} region: {kinds:?}"
        );
    }
    // The stray prints are in the trials' logs, not in any result.
    let logged = r
        .trials
        .iter()
        .filter(|t| (0.3..0.45).contains(&t.params.f64("x").unwrap_or(0.0)))
        .filter_map(|t| {
            std::fs::read_to_string(
                r.run_dir
                    .join("trials")
                    .join(format!("trial_{:05}", t.number.0))
                    .join("loss.log"),
            )
            .ok()
        })
        .filter(|log| log.contains("debug: a stray print"))
        .count();
    let chatty = r
        .trials
        .iter()
        .filter(|t| (0.3..0.45).contains(&t.params.f64("x").unwrap_or(0.0)))
        .count();
    assert_eq!(
        logged, chatty,
        "every chatty trial keeps its stray lines in loss.log"
    );
    assert_no_commands_left(&study_dir);
}

#[test]
fn the_awk_loss_of_the_readme_recovers_its_truth() {
    let (_dir, study_dir) = example("shell");
    let file = StudyFile::load(
        study_dir.join("study.toml"),
        &[
            "run.progress=false".to_string(),
            "loss.batch_timeout_seconds=60".to_string(),
        ],
    )
    .expect("loads");
    let StudyOutcome::Run(r) = file.run().expect("runs") else {
        panic!("a study without [entries] is one run")
    };
    assert_eq!(r.n_complete, 30);
    let alpha = r.best_params.f64("alpha").expect("alpha");
    assert!((alpha - 0.3).abs() < 0.1, "alpha = {alpha}");
    // The values are the awk formula's, for the seeds of the study (0..20).
    let want = (0..20)
        .map(|s| (alpha - 0.3).powi(2) + s as f64 * 1e-4)
        .sum::<f64>()
        / 20.0;
    assert!(
        (r.best_value - want).abs() < 1e-12,
        "{} vs {want}",
        r.best_value
    );
}
