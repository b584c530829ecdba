use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use slurptuna::export::{export, npy_files, Format};
use slurptuna::{
    loss, optimize_entries, optimize_run, search_param, EntriesOptions, LossDefinition,
    OptimizeResult, ParamValue, Params, RunOptions, TrialState,
};

/// The Python packages of the venv the tests create.
const REQUIREMENTS: [&str; 2] = ["optuna==5.0.0", "numpy"];

/// The venv under `target/test-venv` (created once, shared by parallel tests and test
/// processes through a lock file), or `None` (a visible skip) when there is no python3.
/// Without python3, panics when `CI=true` or `SLURPTUNA_TEST_PYTHON=1`.
fn python() -> Option<PathBuf> {
    static VENV: std::sync::Mutex<Option<Option<PathBuf>>> = std::sync::Mutex::new(None);
    let mut cached = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*cached {
        return p.clone();
    }
    let p = make_venv();
    *cached = Some(p.clone());
    p
}

fn make_venv() -> Option<PathBuf> {
    let has_python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::util::present(
        has_python,
        "python3",
        "install python3 with venv support for the Optuna / numpy checks of the exports",
    ) {
        return None;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).expect("create target/");
    let venv = target.join("test-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".slurptuna-ready");
    let wanted = REQUIREMENTS.join(" ");
    let lock = std::fs::File::create(target.join("test-venv.lock")).expect("lock file");
    lock.lock().expect("lock the venv");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
        let t0 = std::time::Instant::now();
        let _ = std::fs::remove_dir_all(&venv);
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert!(
                out.status.success(),
                "{cmd:?} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS));
        std::fs::write(&ready, &wanted).expect("mark the venv ready");
        eprintln!("created {} in {:.1?}", venv.display(), t0.elapsed());
    }
    drop(lock);
    Some(python)
}

/// Runs `script` with the venv's python and `args`; returns its stdout parsed as JSON.
fn py_json(python: &Path, script: &str, args: &[&Path]) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Every kind of distribution; fails (at seed 5, the last chunk) when `k == 2`.
fn mixed(name: &str) -> LossDefinition {
    loss(name)
        .description("every distribution kind")
        .param("x", (0.0, 1.0))
        .param("lr", search_param().range(1e-4, 1e-1).dtype("log"))
        .param("y", search_param().range(0.0, 1.0).step(0.25))
        .param("k", search_param().range(1, 4).dtype("int"))
        .param("m", search_param().range(0, 20).dtype("int").step(5))
        .param("b", search_param().range(1, 64).dtype("int_log"))
        .param("c", search_param().allowed(["a", "b", "c"]))
        .param("flag", search_param().allowed([true, false]))
        .build(|p, seed, _| {
            if p.i64("k")? == 2 && seed == 5 {
                return Err("k = 2 breaks at seed 5".into());
            }
            Ok(mixed_value(p, seed).into())
        })
        .expect("valid loss")
}

fn mixed_value(p: &Params, seed: u64) -> f64 {
    let f = |n: &str| p.f64(n).unwrap_or(f64::NAN);
    let c = if p.str("c").unwrap_or_default() == "b" {
        0.0
    } else {
        0.1
    };
    (f("x") - 0.3).powi(2)
        + f("lr").ln().abs() * 1e-3
        + (f("y") - 0.5).abs()
        + 0.01 * p.i64("k").unwrap_or(0) as f64
        + 0.001 * p.i64("m").unwrap_or(0) as f64
        + 0.0001 * p.i64("b").unwrap_or(0) as f64
        + c
        + if p.bool("flag").unwrap_or(false) {
            0.02
        } else {
            0.0
        }
        + seed as f64 * 1e-3
}

fn run_mixed(root: &Path, n_trials: u64) -> OptimizeResult {
    optimize_run(
        &mixed("mixed"),
        RunOptions {
            run_root: root.to_path_buf(),
            n_trials,
            n_seeds: Some(6),
            chunk_size: Some(2),
            keep_seed_values: true,
            progress: false,
            ..Default::default()
        },
    )
    .expect("run")
}

/// Appends an `asked` record for a new trial (a trial in flight, as a live run has).
fn add_running_trial(run_dir: &Path, template: &Params) -> u64 {
    let journal = run_dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let next = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["trial"].as_u64())
        .max()
        .map_or(0, |n| n + 1);
    let params: Value = serde_json::from_str(&template.to_json()).unwrap();
    let line = serde_json::json!({"event": "asked", "trial": next, "params": params, "at": 1.7e9});
    std::fs::write(&journal, format!("{text}{line}\n")).unwrap();
    next
}

const OPTUNA_SCRIPT: &str = r#"
import json, math, sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = JournalStorage(JournalFileBackend(sys.argv[1]))
out = {}
for name in optuna.get_all_study_names(storage):
    s = optuna.load_study(study_name=name, storage=storage)
    trials = s.get_trials(deepcopy=False)
    def dist(d):
        r = {"class": type(d).__name__}
        for k in ("low", "high", "log", "step"):
            if hasattr(d, k):
                r[k] = getattr(d, k)
        if hasattr(d, "choices"):
            r["choices"] = list(d.choices)
        return r
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    out[name] = {
        "direction": s.direction.name,
        "states": [t.state.name for t in trials],
        "numbers": [t.number for t in trials],
        "best_value": s.best_value if complete else None,
        "best_params": s.best_params if complete else None,
        "best_number": s.best_trial.number if complete else None,
        "distributions": {k: dist(v) for t in trials for k, v in t.distributions.items()},
        "param_types": {k: type(v).__name__ for t in complete[:1] for k, v in t.params.items()},
        "user_attrs": [t.user_attrs for t in trials],
        "study_user_attrs": s.user_attrs,
        "intermediate": [{str(k): v for k, v in t.intermediate_values.items()} for t in trials],
        "values": [t.value for t in trials],
        "durations_ok": all(t.datetime_start is not None and (t.state.name == "RUNNING" or t.datetime_complete >= t.datetime_start) for t in trials),
    }
print(json.dumps(out))
"#;

fn expected_param(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => Value::from(*b),
        ParamValue::Int(i) => Value::from(*i),
        ParamValue::Float(x) => Value::from(*x),
        ParamValue::Str(s) => Value::from(s.as_str()),
    }
}

fn state_name(s: &TrialState) -> &'static str {
    match s {
        TrialState::Complete { .. } => "COMPLETE",
        TrialState::Failed { .. } => "FAIL",
        TrialState::Running => "RUNNING",
        TrialState::Pruned { .. } => "PRUNED",
    }
}

#[test]
fn the_optuna_journal_opens_in_optuna_5_with_the_same_trials() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_mixed(dir.path(), 24);
    let running = add_running_trial(&r.run_dir, &r.best_params);
    let out = dir.path().join("mixed.log");
    export(&r.run_dir, Format::OptunaJournal, &out).expect("export");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n') && !text.contains("\n\n"));
    let Some(python) = python() else { return };
    let got = py_json(&python, OPTUNA_SCRIPT, &[&out]);
    let s = &got["mixed"];
    assert_eq!(got.as_object().unwrap().len(), 1, "{got}");
    assert_eq!(s["direction"], "MINIMIZE");

    let mut expected_states: Vec<&str> = r.trials.iter().map(|t| state_name(&t.state)).collect();
    expected_states.push("RUNNING");
    let states: Vec<&str> = s["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(states, expected_states);
    assert!(states.contains(&"FAIL"), "the run has a failed trial");
    assert_eq!(s["numbers"][running as usize], running);

    assert_eq!(s["best_value"].as_f64(), Some(r.best_value));
    assert_eq!(s["best_number"], r.best_trial.0);
    let best: BTreeMap<String, Value> = r
        .best_params
        .iter()
        .map(|(n, v)| (n.to_string(), expected_param(v)))
        .collect();
    assert_eq!(s["best_params"], serde_json::to_value(&best).unwrap());
    // Ints come back as int, categoricals as their choice.
    assert_eq!(s["param_types"]["k"], "int");
    assert_eq!(s["param_types"]["x"], "float");
    assert_eq!(s["param_types"]["c"], "str");
    assert_eq!(s["param_types"]["flag"], "bool");

    let d = &s["distributions"];
    assert_eq!(
        d["x"],
        serde_json::json!({"class": "FloatDistribution", "low": 0.0, "high": 1.0, "log": false, "step": null})
    );
    assert_eq!(
        d["lr"],
        serde_json::json!({"class": "FloatDistribution", "low": 1e-4, "high": 1e-1, "log": true, "step": null})
    );
    assert_eq!(
        d["y"],
        serde_json::json!({"class": "FloatDistribution", "low": 0.0, "high": 1.0, "log": false, "step": 0.25})
    );
    assert_eq!(
        d["k"],
        serde_json::json!({"class": "IntDistribution", "low": 1, "high": 4, "log": false, "step": 1})
    );
    assert_eq!(
        d["m"],
        serde_json::json!({"class": "IntDistribution", "low": 0, "high": 20, "log": false, "step": 5})
    );
    assert_eq!(
        d["b"],
        serde_json::json!({"class": "IntDistribution", "low": 1, "high": 64, "log": true, "step": 1})
    );
    assert_eq!(
        d["c"],
        serde_json::json!({"class": "CategoricalDistribution", "choices": ["a", "b", "c"]})
    );
    assert_eq!(
        d["flag"],
        serde_json::json!({"class": "CategoricalDistribution", "choices": [true, false]})
    );

    for (t, attrs) in r.trials.iter().zip(s["user_attrs"].as_array().unwrap()) {
        assert_eq!(attrs["slurptuna_trial"], t.number.0);
        match &t.state {
            TrialState::Complete { stats } => {
                assert_eq!(attrs["n_seeds"], 6);
                assert_eq!(attrs["stderr"].as_f64(), Some(stats.stderr()));
            }
            TrialState::Failed { reason } => assert_eq!(attrs["fail_reason"], reason.as_str()),
            TrialState::Running | TrialState::Pruned { .. } => unreachable!("racing is off"),
        }
    }
    assert_eq!(s["study_user_attrs"]["n_seeds"], 6);
    assert_eq!(s["durations_ok"], true);
}

#[test]
fn an_entries_run_exports_one_optuna_study_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("per-entry")
        .description("target depends on the entry")
        .param("alpha", (0.0, 1.0))
        .build(|p, seed, ctx| {
            let target = if ctx.entry_id() == Some("p01") {
                0.2
            } else {
                0.8
            };
            Ok(((p.f64("alpha")? - target).abs() + seed as f64 * 1e-3).into())
        })
        .unwrap();
    let m = optimize_entries(
        &l,
        ["p01", "p 02"],
        EntriesOptions {
            run_root: dir.path().to_path_buf(),
            n_trials: 8,
            n_seeds: Some(3),
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    let out = dir.path().join("entries.log");
    export(&m.run_dir, Format::OptunaJournal, &out).expect("export");
    let Some(python) = python() else { return };
    let got = py_json(&python, OPTUNA_SCRIPT, &[&out]);
    let names: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(names, ["per-entry:p 02", "per-entry:p01"]);
    for id in ["p01", "p 02"] {
        let s = &got[format!("per-entry:{id}")];
        let r = &m.results_by_entry[id];
        assert_eq!(s["states"].as_array().unwrap().len(), r.trials.len());
        assert_eq!(s["best_value"].as_f64(), Some(r.best_value));
        assert_eq!(
            s["best_params"]["alpha"].as_f64(),
            r.best_params.f64("alpha").ok()
        );
        assert_eq!(s["study_user_attrs"]["entry_id"], id);
        assert!(s["user_attrs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["entry_id"] == id));
    }
}

const NUMPY_SCRIPT: &str = r#"
import json, sys
import numpy as np
v = np.load(sys.argv[1])
seeds = np.load(sys.argv[2])
trials = np.load(sys.argv[3])
print(json.dumps({
    "dtypes": [str(v.dtype), str(seeds.dtype), str(trials.dtype)],
    "shape": list(v.shape),
    "values": [[None if np.isnan(x) else float(x) for x in row] for row in v],
    "seeds": seeds.tolist(),
    "trials": trials.tolist(),
}))
"#;

#[test]
fn npy_holds_every_per_seed_value_with_nan_where_none() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_mixed(dir.path(), 16);
    let out = dir.path().join("seeds.npy");
    export(&r.run_dir, Format::Npy, &out).expect("export");
    let files = npy_files(&out, None);
    assert_eq!(files.seeds, dir.path().join("seeds.seeds.npy"));
    let Some(python) = python() else { return };
    let got = py_json(
        &python,
        NUMPY_SCRIPT,
        &[&files.values, &files.seeds, &files.trials],
    );
    assert_eq!(
        got["dtypes"],
        serde_json::json!(["float64", "uint64", "uint64"])
    );
    assert_eq!(got["shape"], serde_json::json!([r.trials.len(), 6]));
    assert_eq!(got["seeds"], serde_json::json!([0, 1, 2, 3, 4, 5]));
    let numbers: Vec<u64> = r.trials.iter().map(|t| t.number.0).collect();
    assert_eq!(got["trials"], serde_json::json!(numbers));
    let (mut failed, mut partial) = (0, 0);
    for (t, row) in r.trials.iter().zip(got["values"].as_array().unwrap()) {
        let row = row.as_array().unwrap();
        let expect = |seed: u64| Value::from(mixed_value(&t.params, seed));
        match &t.state {
            TrialState::Complete { .. } => {
                for seed in 0..6 {
                    assert_eq!(row[seed as usize], expect(seed), "trial {}", t.number);
                }
            }
            TrialState::Failed { .. } => {
                failed += 1;
                partial += usize::from(row[..4].iter().any(|v| !v.is_null()));
                // Seed 5 failed: its chunk (seeds 4, 5) has no values; the chunks before it
                // are the trial's per-seed values or NaN if they did not run.
                assert!(
                    row[4].is_null() && row[5].is_null(),
                    "trial {}: {row:?}",
                    t.number
                );
                for seed in 0..4 {
                    let v = &row[seed as usize];
                    assert!(v.is_null() || *v == expect(seed), "trial {}", t.number);
                }
            }
            TrialState::Running | TrialState::Pruned { .. } => unreachable!("racing is off"),
        }
    }
    assert!(failed > 0, "the run has a failed trial");
    // A trial that failed after some chunks keeps the values of those chunks.
    assert!(
        partial > 0,
        "no failed trial kept the values of its first chunks"
    );
}

#[test]
fn npy_of_a_run_without_kept_seed_values_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &mixed("plain"),
        RunOptions {
            run_root: dir.path().to_path_buf(),
            n_trials: 3,
            n_seeds: Some(2),
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    let out = dir.path().join("x.npy");
    let e = export(&r.run_dir, Format::Npy, &out).unwrap_err();
    assert!(e.to_string().contains("keep_seed_values"), "{e}");
    assert!(!out.exists());
}

/// A quote-aware CSV line split (the export quotes fields with commas, quotes or newlines).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

#[test]
fn csv_and_json_have_one_row_per_trial() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_mixed(dir.path(), 10);
    let csv = dir.path().join("t.csv");
    let json = dir.path().join("t.jsonl");
    export(&r.run_dir, Format::Csv, &csv).unwrap();
    export(&r.run_dir, Format::Json, &json).unwrap();

    let rows = csv_rows(&std::fs::read_to_string(&csv).unwrap());
    assert_eq!(
        rows[0],
        [
            "number",
            "state",
            "value",
            "stderr",
            "n_seeds",
            "start",
            "end",
            "reason",
            "params_x",
            "params_lr",
            "params_y",
            "params_k",
            "params_m",
            "params_b",
            "params_c",
            "params_flag"
        ]
    );
    assert_eq!(rows.len(), r.trials.len() + 1);
    let lines: Vec<Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), r.trials.len());
    for ((t, row), obj) in r.trials.iter().zip(&rows[1..]).zip(&lines) {
        assert_eq!(row[0], t.number.0.to_string());
        assert_eq!(obj["number"], t.number.0);
        assert_eq!(row[1], t.state.label());
        assert_eq!(obj["state"], t.state.label());
        assert!(row[5].ends_with("+00:00") && row[6].ends_with("+00:00"));
        assert_eq!(obj["start"].as_str(), Some(row[5].as_str()));
        assert_eq!(row[11], t.params.i64("k").unwrap().to_string());
        assert_eq!(row[14], t.params.str("c").unwrap());
        assert_eq!(obj["params"]["x"].as_f64(), t.params.f64("x").ok());
        assert_eq!(obj["params"]["flag"].as_bool(), t.params.bool("flag").ok());
        match &t.state {
            TrialState::Complete { stats } => {
                assert_eq!(row[2].parse::<f64>().unwrap(), stats.mean());
                assert_eq!(row[3].parse::<f64>().unwrap(), stats.stderr());
                assert_eq!(row[4], "6");
                assert_eq!(obj["value"].as_f64(), Some(stats.mean()));
                assert_eq!(obj["n_seeds"], 6);
                assert!(row[7].is_empty() && obj["reason"].is_null());
            }
            TrialState::Failed { reason } => {
                assert!(row[2].is_empty() && obj["value"].is_null());
                assert_eq!(&row[7], reason);
                assert_eq!(obj["reason"], reason.as_str());
            }
            TrialState::Running | TrialState::Pruned { .. } => unreachable!("racing is off"),
        }
    }
}

#[cfg(feature = "cli")]
#[test]
fn the_export_command_writes_the_file_and_names_the_formats_on_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_mixed(dir.path(), 4);
    let out = dir.path().join("cli.log");
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_slurptuna"))
            .arg("export")
            .arg(&r.run_dir)
            .args(["--format", format, "-o"])
            .arg(&out)
            .output()
            .expect("run slurptuna")
    };
    let ok = run("optuna-journal");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let first = std::fs::read_to_string(&out).unwrap();
    let line0: Value = serde_json::from_str(first.lines().next().unwrap_or_default()).unwrap();
    assert_eq!(line0["op_code"], 0, "{first}");
    assert_eq!(line0["study_name"], "mixed");
    let bad = run("optuna");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("optuna-journal, csv, json or npy"), "{err}");
}

/// A study where seed racing prunes: a bowl plus seed noise, 1,000 seeds in chunks of 100.
fn run_raced(root: &Path) -> OptimizeResult {
    let l = loss("raced")
        .description("noisy bowl, raced")
        .param("x", (0.0, 1.0))
        .build(|p, seed, _| {
            let x = p.f64("x")?;
            let h = (seed ^ x.to_bits().rotate_left(17))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29)
                .wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let u = (h >> 11) as f64 / (1u64 << 53) as f64;
            Ok(((x - 0.3).powi(2) + 0.2 * (u - 0.5)).into())
        })
        .unwrap();
    optimize_run(
        &l,
        RunOptions {
            run_root: root.to_path_buf(),
            n_trials: 20,
            n_seeds: Some(1000),
            chunk_size: Some(100),
            racing: Some(slurptuna::Racing::default()),
            sampler: slurptuna::SamplerChoice::Random,
            progress: false,
            ..Default::default()
        },
    )
    .expect("run")
}

#[test]
fn pruned_trials_are_optuna_pruned_trials_with_their_looks_as_intermediate_values() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_raced(dir.path());
    assert!(r.n_pruned >= 3, "{} pruned", r.n_pruned);
    let out = dir.path().join("raced.log");
    export(&r.run_dir, Format::OptunaJournal, &out).expect("export");
    // The JSON rows carry the race of every pruned trial.
    let rows = dir.path().join("raced.jsonl");
    export(&r.run_dir, Format::Json, &rows).expect("export");
    let text = std::fs::read_to_string(&rows).unwrap();
    for (t, line) in r.trials.iter().zip(text.lines()) {
        let row: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["state"], state_name(&t.state));
        match t.pruned() {
            Some(race) => {
                assert_eq!(row["race"]["seeds"], race.seeds);
                assert_eq!(row["race"]["bound"].as_f64(), Some(race.bound));
                assert_eq!(row["n_seeds"], race.stats.count());
            }
            None => assert!(row.get("race").is_none(), "{row}"),
        }
    }
    let Some(python) = python() else { return };
    let got = py_json(&python, OPTUNA_SCRIPT, &[&out]);
    let s = &got["raced"];
    let states: Vec<&str> = s["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = r.trials.iter().map(|t| state_name(&t.state)).collect();
    assert_eq!(states, expected);
    assert_eq!(
        states.iter().filter(|s| **s == "PRUNED").count() as u64,
        r.n_pruned
    );
    assert_eq!(s["best_value"].as_f64(), Some(r.best_value));
    assert_eq!(s["best_number"], r.best_trial.0);
    for (i, t) in r.trials.iter().enumerate() {
        let Some(race) = t.pruned() else {
            assert_eq!(s["intermediate"][i], serde_json::json!({}));
            continue;
        };
        let expected: serde_json::Map<String, Value> = race
            .looks
            .iter()
            .map(|(n, e)| (n.to_string(), Value::from(*e)))
            .collect();
        assert!(!expected.is_empty(), "a pruned trial looked at least once");
        assert_eq!(s["intermediate"][i], Value::Object(expected), "trial {i}");
        // Optuna's value of a pruned trial: its last intermediate value.
        assert_eq!(s["values"][i].as_f64(), race.looks.last().map(|l| l.1));
        assert_eq!(s["user_attrs"][i]["race"]["seeds"], race.seeds);
        assert_eq!(s["user_attrs"][i]["race"]["control"], race.control.0);
    }
}
