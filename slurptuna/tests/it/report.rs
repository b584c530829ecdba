use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use slurptuna::report::importance::ped_anova;
use slurptuna::{
    loss, optimize_entries, optimize_run, search_param, Direction, Distribution, EntriesOptions,
    LossDefinition, OptimizeResult, ParamSpace, ParamValue, Params, RunOptions,
};

use crate::util::run_with_timeout;

/// The workspace's `target/` directory.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A bowl with a float, a log float, an int and a categorical; one param value fails.
fn lab_loss() -> LossDefinition {
    loss("report-bowl")
        .description("bowl <with> \"markup\" & a log lr")
        .param("x", (0.0, 1.0))
        .param("lr", search_param().range(1e-4, 1e-1).dtype("log"))
        .param("k", search_param().range(1, 6).dtype("int"))
        .param("c", search_param().allowed(["a", "b", "c"]))
        .build(|p, seed, _| {
            let (x, lr, k) = (p.f64("x")?, p.f64("lr")?, p.i64("k")? as f64);
            if x > 0.97 {
                return Err("x > 0.97 is <not allowed>".into());
            }
            let c = if p.str("c")? == "b" { 0.0 } else { 0.05 };
            Ok(((x - 0.3).powi(2)
                + 0.02 * (lr.log10() + 2.5).abs()
                + 0.01 * (k - 3.0).abs()
                + c
                + (seed % 7) as f64 * 1e-3)
                .into())
        })
        .expect("valid loss")
}

fn run_study(root: &Path) -> OptimizeResult {
    optimize_run(
        &lab_loss(),
        RunOptions {
            run_root: root.to_path_buf(),
            n_trials: 16,
            n_seeds: Some(8),
            keep_seed_values: true,
            progress: false,
            ..Default::default()
        },
    )
    .expect("study runs")
}

fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `<svg>...</svg>` elements of `html`.
fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<svg") {
        let Some(j) = rest[i..].find("</svg>") else {
            break;
        };
        out.push(&rest[i..i + j + 6]);
        rest = &rest[i + j + 6..];
    }
    out
}

fn assert_drawn(svg: &str) {
    assert!(
        svg.contains("<path")
            || svg.contains("<circle")
            || svg.contains("<rect")
            || svg.contains("<polyline"),
        "empty plot: {}",
        &svg[..svg.len().min(300)]
    );
}

const HEADINGS: [&str; 8] = [
    "Summary",
    "Optimisation history",
    "Slice plots",
    "Parameter importance",
    "Seed spread of the best trials",
    "Timeline",
    "Settings",
    "Failures",
];

#[test]
fn report_of_a_run_is_self_contained_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_study(dir.path());
    let out = dir.path().join("report.html");
    slurptuna::report::write_report(&r.run_dir, &out).expect("report written");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page references the network"
    );
    assert!(!html.contains("<script"), "no scripts");
    for h in HEADINGS {
        assert!(html.contains(&format!(">{h}</h2>")), "no section {h}");
    }
    // History, 4 slices, importance, seed spread, per-seed histogram, timeline.
    let plots = svgs(&html);
    assert_eq!(plots.len(), 9, "plots: {}", plots.len());
    for svg in &plots {
        assert_drawn(svg);
    }
    assert!(html.contains("(log scale)"), "the lr slice has a log axis");
    assert!(
        html.contains(&format!("<strong>{}</strong>", r.best_value)),
        "best value"
    );
    for (k, v) in r.best_params.iter() {
        assert!(
            html.contains(&format!("<td>{k}</td><td>{}</td>", param_text(v))),
            "best param {k}"
        );
    }
    assert!(html.contains("PED-ANOVA"), "the importance method is named");
    assert!(html.contains("Per-seed values of the best trial"));
    // User strings are escaped.
    assert!(html.contains("bowl &lt;with&gt; &quot;markup&quot; &amp; a log lr"));
    assert!(!html.contains("<with>"));
    if r.n_failed > 0 {
        assert!(
            html.contains("&lt;not allowed&gt;"),
            "failure reasons are listed, escaped"
        );
    }
    assert!(html.contains("@media print"));
}

#[test]
fn report_of_an_entries_run_has_a_section_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("report-entries")
        .description("target per entry")
        .param("alpha", (0.0, 1.0))
        .param("c", search_param().allowed(["u", "v"]))
        .build(|p, _, ctx| {
            let target = if ctx.entry_id() == Some("p<1>") {
                0.2
            } else {
                0.8
            };
            Ok(
                ((p.f64("alpha")? - target).abs() + if p.str("c")? == "u" { 0.0 } else { 0.1 })
                    .into(),
            )
        })
        .unwrap();
    let m = optimize_entries(
        &l,
        ["p<1>", "p2"],
        EntriesOptions {
            run_root: dir.path().to_path_buf(),
            n_trials: 10,
            n_seeds: Some(2),
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    let out = dir.path().join("entries.html");
    slurptuna::report::write_report(&m.run_dir, &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains(">Best parameters per entry</h2>"));
    assert!(html.contains(">Entry: p&lt;1&gt;</h2>") && html.contains(">Entry: p2</h2>"));
    assert!(!html.contains("p<1>"));
    for h in HEADINGS {
        assert_eq!(
            html.matches(&format!(">{h}</h3>")).count(),
            2,
            "section {h} per entry"
        );
    }
    for id in ["p<1>", "p2"] {
        let v = m.best_values_by_entry[id];
        let row_id = id.replace('<', "&lt;").replace('>', "&gt;");
        assert!(
            html.contains(&format!("<tr><td>{row_id}</td><td>{v}</td>")),
            "best value of {id} in the table"
        );
    }
    for svg in svgs(&html) {
        assert_drawn(svg);
    }
}

/// `/usr/bin/chromium` (Debian's), or another chromium on PATH.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

#[test]
fn report_renders_in_headless_chromium() {
    let chrome = chromium();
    if !crate::util::present(chrome.is_some(), "chromium", "apt-get install -y chromium") {
        return;
    }
    let Some(chrome) = chrome else { return };
    let dir = tempfile::tempdir().unwrap();
    let r = run_study(dir.path());
    let keep = target_dir().join("report-test");
    std::fs::create_dir_all(&keep).unwrap();
    let page = keep.join("report.html");
    slurptuna::report::write_report(&r.run_dir, &page).unwrap();
    let page = page.canonicalize().unwrap();
    let url = format!("file://{}", page.display());
    let shot = target_dir().join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let base = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut cmd = Command::new(&chrome);
    base(&mut cmd);
    cmd.arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,4000")
        .arg(&url);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(90));
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} is {size} bytes; chromium said:\n{}",
        shot.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(&chrome);
    base(&mut cmd);
    // The DOM is larger than a pipe's buffer: chromium writes it to a file, not a pipe that
    // nobody reads until it exits.
    let dom_file = keep.join("report-dom.html");
    cmd.arg("--dump-dom")
        .arg(&url)
        .stdout(std::fs::File::create(&dom_file).unwrap())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("start chromium");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium --dump-dom timed out after 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    for h in HEADINGS {
        assert!(dom.contains(h), "the DOM has no heading {h}");
    }
    assert!(
        dom.contains(&r.best_value.to_string()),
        "the DOM shows the best value"
    );
    assert!(svgs(&dom).len() >= 9, "the DOM has the plots");
    eprintln!("screenshot: {} ({size} bytes)", shot.display());
}

/// The data set of the PED-ANOVA reference: 60 trials of five parameters (a float, a log float,
/// an int, a stepped float, a categorical and a log int) on a fixed formula.
fn reference_trials() -> (ParamSpace, Vec<(Params, f64)>) {
    let space = ParamSpace::from_distributions(vec![
        (
            "x".into(),
            Distribution::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
        ),
        (
            "lr".into(),
            Distribution::Float {
                low: 1e-4,
                high: 1e-1,
                log: true,
                step: None,
            },
        ),
        (
            "k".into(),
            Distribution::Int {
                low: 1,
                high: 6,
                log: false,
                step: 1,
            },
        ),
        (
            "y".into(),
            Distribution::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: Some(0.05),
            },
        ),
        (
            "c".into(),
            Distribution::Categorical {
                choices: vec!["a".into(), "b".into(), "c".into()],
            },
        ),
        (
            "n".into(),
            Distribution::Int {
                low: 1,
                high: 64,
                log: true,
                step: 1,
            },
        ),
    ])
    .unwrap();
    let mut trials = Vec::new();
    for i in 0..60u64 {
        let f = |a: f64| (i as f64 * a).fract();
        let x = f(0.618_033_988_7);
        let lr = 10f64.powf(-4.0 + 3.0 * f(0.414_213_562));
        let k = 1 + (i * 7 % 6) as i64;
        let y = (f(0.732_050_807) * 20.0).round() / 20.0;
        let c = ["a", "b", "c"][((i * i + 1) % 3) as usize];
        let n = 2f64.powf(6.0 * f(0.236_067_977)).round() as i64;
        let value = (x - 0.3).powi(2)
            + 0.1 * (lr.log10() + 2.5).abs()
            + 0.01 * (k as f64 - 3.0).abs()
            + if c == "b" { 0.0 } else { 0.05 }
            + 0.001 * y
            + 0.0001 * n as f64;
        let mut p = Params::new();
        p.insert("x", x);
        p.insert("lr", lr);
        p.insert("k", k);
        p.insert("y", y);
        p.insert("c", c);
        p.insert("n", n);
        trials.push((p, value));
    }
    (space, trials)
}

fn rust_importances() -> Vec<(String, f64)> {
    let (space, trials) = reference_trials();
    let refs: Vec<(&Params, f64)> = trials.iter().map(|(p, v)| (p, *v)).collect();
    ped_anova(&space, &refs, Direction::Minimize)
}

/// Produced by `optuna.importance.get_param_importances(study,
/// evaluator=PedAnovaImportanceEvaluator())` with optuna 5.0.0 (Python venv under target/) on
/// `reference_trials()` added as a minimising study; `ped_anova_matches_live_optuna` recomputes
/// them (its script is `OPTUNA_SCRIPT`).
const OPTUNA_REFERENCE: [(&str, f64); 6] = [
    ("x", 0.5504793136510944),
    ("lr", 0.15114183641844442),
    ("c", 0.1445102457833345),
    ("n", 0.13176839518917363),
    ("y", 0.019080609076382107),
    ("k", 0.003019599881570892),
];

fn assert_close(got: &[(String, f64)], want: &[(String, f64)]) {
    assert_eq!(got.len(), want.len());
    for (name, w) in want {
        let g = got
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no importance for {name}: {got:?}"))
            .1;
        assert!(
            (g - w).abs() <= 1e-9 + 1e-7 * w.abs(),
            "importance of {name}: {g} here, {w} in optuna\nhere: {got:?}\noptuna: {want:?}"
        );
    }
}

#[test]
fn ped_anova_matches_pinned_optuna_values() {
    let want: Vec<(String, f64)> = OPTUNA_REFERENCE
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    let got = rust_importances();
    assert!((got.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-12);
    assert_close(&got, &want);
}

const OPTUNA_SCRIPT: &str = r#"
import json, sys
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
optuna.logging.set_verbosity(optuna.logging.ERROR)
data = json.load(open(sys.argv[1]))
def dist(d):
    if d["kind"] == "float":
        return FloatDistribution(d["low"], d["high"], log=d["log"], step=d["step"])
    if d["kind"] == "int":
        return IntDistribution(d["low"], d["high"], log=d["log"], step=d["step"])
    return CategoricalDistribution(d["choices"])
dists = {name: dist(d) for name, d in data["space"]}
study = optuna.create_study(direction="minimize")
for t in data["trials"]:
    study.add_trial(optuna.trial.create_trial(params=t["params"], distributions=dists, value=t["value"]))
imp = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
print(json.dumps({"version": optuna.__version__, "importances": imp}))
"#;

/// A Python with optuna: `SLURPTUNA_OPTUNA_PYTHON`, or a venv under target/ (`test-venv` is the
/// one CI makes and the export tests create).
fn optuna_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLURPTUNA_OPTUNA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    ["test-venv", "bench-venv", "optuna-venv", "export-venv"]
        .iter()
        .map(|v| target_dir().join(v).join("bin/python"))
        .find(|p| {
            p.is_file()
                && Command::new(p)
                    .args(["-c", "import optuna"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn ped_anova_matches_live_optuna() {
    let python = optuna_python();
    if !crate::util::present(
        python.is_some(),
        "a python venv with optuna",
        "create target/test-venv with `pip install optuna==5.0.0 numpy` (.ci/run does) or set SLURPTUNA_OPTUNA_PYTHON",
    ) {
        return;
    }
    let Some(python) = python else { return };
    let (space, trials) = reference_trials();
    let data = serde_json::json!({
        "space": space.iter().map(|(n, d)| (n.to_string(), serde_json::to_value(d).unwrap())).collect::<Vec<_>>(),
        "trials": trials.iter().map(|(p, v)| serde_json::json!({"params": p, "value": v})).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("trials.json");
    let script = dir.path().join("ped_anova.py");
    std::fs::write(&input, data.to_string()).unwrap();
    std::fs::write(&script, OPTUNA_SCRIPT).unwrap();
    let mut cmd = Command::new(&python);
    cmd.arg(&script).arg(&input);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<(String, f64)> = res["importances"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    eprintln!("optuna {}: {want:?}", res["version"]);
    let got = rust_importances();
    assert_close(&got, &want);
    // The pinned values are these.
    let pinned: Vec<(String, f64)> = OPTUNA_REFERENCE
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    assert_close(&want, &pinned);
}

#[test]
fn pruned_trials_are_drawn_and_listed_and_not_counted_as_failures() {
    let dir = tempfile::tempdir().unwrap();
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
    let r = optimize_run(
        &l,
        RunOptions {
            run_root: dir.path().to_path_buf(),
            n_trials: 20,
            n_seeds: Some(1000),
            chunk_size: Some(100),
            racing: Some(slurptuna::Racing::default()),
            sampler: slurptuna::SamplerChoice::Random,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.n_pruned >= 3, "{} pruned", r.n_pruned);
    assert_eq!(r.n_failed, 0);
    let out = dir.path().join("report.html");
    slurptuna::report::write_report(&r.run_dir, &out).expect("report written");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains(&format!(
            "{} complete, {} pruned, 0 failed, 0 running",
            r.n_complete, r.n_pruned
        )),
        "the summary counts pruned trials apart from failures"
    );
    assert!(html.contains(&format!("{} saved by pruning", r.seeds_saved)));
    assert!(html.contains("pruned (estimate)"), "the history draws them");
    assert!(html.contains("<h4>Pruned trials</h4>"));
    assert!(html.contains("No trial failed."));
    // One table row per pruned trial, with its seeds.
    for t in r.trials.iter().filter(|t| t.pruned().is_some()) {
        let race = t.pruned().unwrap();
        assert!(
            html.contains(&format!("<td>{}</td><td>{}</td>", t.number.0, race.seeds)),
            "trial {} is not listed",
            t.number
        );
    }
}
