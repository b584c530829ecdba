//! `cargo xtask bench sampler`: our samplers side by side with Optuna 5.0 and rustuna 0.2.
//!
//! 1. Creates a Python venv under `target/bench-venv` (`pip install optuna==5.0.0
//!    rustuna==0.2.0`) unless it already has them.
//! 2. Speed: time per trial with `n` finished trials in the history, for `n` in 100, 1000, 5000
//!    and `d` in 2, 10 (sphere on `[-5, 5]^d`, random history), for our TPE in-process and for
//!    Optuna's and rustuna's TPE through `bench/sampler/run_python.py` (same history sizes),
//!    in `--rounds` interleaved rounds (default 3): each cell is the median over the rounds.
//! 3. Quality: the best value after `--trials` trials (default 200) over `--seeds` seeds
//!    (default 20) on the problems of `run_python.py` (mirrored in [`problems`]), for Optuna's
//!    default TPE, Optuna's independent TPE, rustuna's TPE, Optuna's random sampler, our TPE with
//!    its defaults and our TPE in Optuna-parity mode. A one-sided Mann–Whitney U test at 0.05
//!    (normal approximation, tie-corrected) compares ours with Optuna's default TPE per problem.
//! 4. Prints one markdown report and writes it to `bench/results/sampler.md`.
//!
//! The Python samplers' quality results are cached under `target/bench-cache` (keyed by the
//! script's contents and arguments); speed is always measured afresh.
//!
//! `--quick` runs a small version (3 seeds, 40 trials, n up to 1000, one round) as a smoke test. A debug
//! build re-runs itself in release first (timings of a debug build mean nothing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slurptuna_core::{
    search_param, AskContext, Direction, ParamSpace, Params, Sampler, SearchParam, SeedStats,
    TrialNumber, TrialRecord, TrialState,
};
use slurptuna_sampler::{TpeConfig, TpeSampler};

use crate::util::{option_value, project_root, run_cmd};

const PYTHON_SAMPLERS: [(&str, &str); 4] = [
    ("optuna", "Optuna 5.0 TPE (default)"),
    ("optuna_independent", "Optuna 5.0 TPE (independent)"),
    ("rustuna", "rustuna 0.2 TPE"),
    ("random", "Optuna random"),
];
const OURS: &str = "slurptuna TPE (default)";
const OURS_PARITY: &str = "slurptuna TPE (Optuna parity)";
const ALPHA: f64 = 0.05;

struct Args {
    quick: bool,
    /// Interleaved rounds of the speed measurements (ours, Optuna, rustuna per round); each
    /// cell reports the median over the rounds.
    rounds: usize,
    seeds: u64,
    trials: u64,
    python: bool,
    speed: bool,
    quality: bool,
    allow_debug: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        quick: false,
        rounds: 3,
        seeds: 20,
        trials: 200,
        python: true,
        speed: true,
        quality: true,
        allow_debug: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| option_value(&mut it, name);
        match arg.as_str() {
            "--quick" => {
                a.quick = true;
                a.seeds = 3;
                a.trials = 40;
                a.rounds = 1;
            }
            "--rounds" => a.rounds = value("--rounds")?.parse().context("--rounds")?,
            "--seeds" => a.seeds = value("--seeds")?.parse().context("--seeds")?,
            "--trials" => a.trials = value("--trials")?.parse().context("--trials")?,
            "--no-python" => a.python = false,
            "--speed-only" => a.quality = false,
            "--quality-only" => a.speed = false,
            "--allow-debug" => a.allow_debug = true,
            other => bail!(
                "unknown option {other:?}: use --quick, --seeds N, --trials N, --rounds N, \
                 --no-python, --speed-only, --quality-only"
            ),
        }
    }
    if a.seeds == 0 || a.trials == 0 || a.rounds == 0 {
        bail!("--seeds, --trials and --rounds must be at least 1");
    }
    Ok(a)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    if cfg!(debug_assertions) && !a.allow_debug {
        return crate::util::rerun_bench_in_release("sampler", args);
    }
    let python = if a.python { Some(venv()?) } else { None };
    let mut report = String::new();
    let command = format!(
        "cargo xtask bench sampler{}",
        args.iter().fold(String::new(), |s, a| s + " " + a)
    );
    writeln!(report, "# Sampler benchmark\n")?;
    writeln!(
        report,
        "Command: `{command}` (release build; Python {})\n",
        if python.is_some() {
            "optuna 5.0.0, rustuna 0.2.0 in target/bench-venv"
        } else {
            "side skipped"
        }
    )?;
    if a.speed {
        speed_section(&a, python.as_deref(), &mut report)?;
        // The sampler inside the whole product: optimize_run end to end, same n, d = 10.
        let ns: &[u64] = if a.quick {
            &[100, 1000]
        } else {
            &[100, 1000, 5000]
        };
        let work = project_root().join("target").join("bench-product");
        std::fs::create_dir_all(&work)?;
        crate::bench_product::per_trial_section(&mut report, &work, ns, 1, python.as_deref())?;
    }
    if a.quality {
        quality_section(&a, python.as_deref(), &mut report)?;
    }
    println!("{report}");
    let out = project_root()
        .join("bench")
        .join("results")
        .join("sampler.md");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench sampler: wrote {}", out.display());
    Ok(())
}

/// The venv's python, creating the venv and installing the pinned packages when needed.
pub(crate) fn venv() -> Result<PathBuf> {
    let dir = project_root().join("target").join("bench-venv");
    let py = dir.join("bin").join("python");
    let check = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import optuna, rustuna, importlib.metadata as m; \
                 assert optuna.__version__ == '5.0.0' and m.version('rustuna') == '0.2.0'",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if py.exists() && check(&py) {
        return Ok(py);
    }
    if !py.exists() {
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    }
    run_cmd(Command::new(dir.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "optuna==5.0.0",
        "rustuna==0.2.0",
    ]))?;
    if !check(&py) {
        bail!(
            "{} does not have optuna 5.0.0 and rustuna 0.2.0 after pip install: remove the venv \
             and retry",
            dir.display()
        );
    }
    Ok(py)
}

fn run_python(py: &Path, args: &[String]) -> Result<serde_json::Value> {
    let script = project_root()
        .join("bench")
        .join("sampler")
        .join("run_python.py");
    // Quality results of the Python samplers depend only on the script and its arguments:
    // they are cached under target/ (speed is always re-measured, for ratios from one run).
    let cached = if args.first().is_some_and(|m| m == "quality") {
        let text = std::fs::read(&script)
            .with_context(|| format!("could not read {}", script.display()))?;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.iter().chain(args.join(" ").as_bytes()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Some(
            project_root()
                .join("target")
                .join("bench-cache")
                .join(format!("sampler-{}-{h:016x}.json", args[1])),
        )
    } else {
        None
    };
    if let Some(path) = &cached {
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                eprintln!(
                    "$ run_python.py {} (cached: {})",
                    args.join(" "),
                    path.display()
                );
                return Ok(v);
            }
        }
    }
    eprintln!("$ run_python.py {}", args.join(" "));
    let out = Command::new(py)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("could not start {}", py.display()))?;
    if !out.status.success() {
        bail!(
            "run_python.py {} failed: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing the output of run_python.py")?;
    if let Some(path) = &cached {
        // A failed write only costs a re-run next time.
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, &out.stdout);
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Problems (mirror of bench/sampler/run_python.py)

const LOG_TARGETS: [f64; 5] = [-3.0, -1.5, 0.0, 0.5, 1.7];
const NOISE_SD: f64 = 3.0;
const NOISE_SEEDS: usize = 10;
const HART_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HART_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];
const HART_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

pub(crate) struct Problem {
    pub(crate) name: &'static str,
    pub(crate) space: ParamSpace,
    pub(crate) f: fn(&Params) -> f64,
    noisy: bool,
}

fn floats(prefix: &str, d: usize, low: f64, high: f64, log: bool) -> Vec<(String, SearchParam)> {
    (0..d)
        .map(|i| {
            let p = search_param().range(low, high);
            (format!("{prefix}{i}"), if log { p.dtype("log") } else { p })
        })
        .collect()
}

/// Values of the float parameters in declaration order (`x0`, `x1`, ...: name order = declaration
/// order below 10 parameters, and `x0..x9` sort as declared).
fn xs(p: &Params) -> Vec<f64> {
    p.iter().filter_map(|(_, v)| v.as_f64()).collect()
}

fn sphere(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

pub(crate) fn problems() -> Result<Vec<Problem>> {
    use std::f64::consts::{E, PI};
    let mixed = vec![
        ("n".to_string(), search_param().range(1, 20).dtype("int")),
        (
            "c".to_string(),
            search_param().allowed(["a", "b", "c", "d"]),
        ),
        ("s".to_string(), search_param().range(0.0, 1.0).step(0.05)),
        (
            "lr".to_string(),
            search_param().range(1e-5, 1e-1).dtype("log"),
        ),
    ];
    Ok(vec![
        Problem {
            name: "sphere10",
            space: ParamSpace::new(floats("x", 10, -5.0, 5.0, false))?,
            f: |p| sphere(&xs(p)),
            noisy: false,
        },
        Problem {
            name: "rosenbrock10",
            space: ParamSpace::new(floats("x", 10, -5.0, 5.0, false))?,
            f: |p| {
                let x = xs(p);
                x.windows(2)
                    .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                    .sum()
            },
            noisy: false,
        },
        Problem {
            name: "ackley10",
            space: ParamSpace::new(floats("x", 10, -32.768, 32.768, false))?,
            f: |p| {
                let x = xs(p);
                let d = x.len() as f64;
                let s1 = sphere(&x) / d;
                let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
                -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + E
            },
            noisy: false,
        },
        Problem {
            name: "rastrigin10",
            space: ParamSpace::new(floats("x", 10, -5.12, 5.12, false))?,
            f: |p| {
                let x = xs(p);
                10.0 * x.len() as f64
                    + x.iter()
                        .map(|v| v * v - 10.0 * (2.0 * PI * v).cos())
                        .sum::<f64>()
            },
            noisy: false,
        },
        Problem {
            name: "hartmann6",
            space: ParamSpace::new(floats("x", 6, 0.0, 1.0, false))?,
            f: |p| {
                let x = xs(p);
                -(0..4)
                    .map(|i| {
                        let inner: f64 = (0..6)
                            .map(|j| HART_A[i][j] * (x[j] - 1e-4 * HART_P[i][j]).powi(2))
                            .sum();
                        HART_ALPHA[i] * (-inner).exp()
                    })
                    .sum::<f64>()
            },
            noisy: false,
        },
        Problem {
            name: "branin",
            space: ParamSpace::new([
                ("x0", search_param().range(-5.0, 10.0)),
                ("x1", search_param().range(0.0, 15.0)),
            ])?,
            f: |p| {
                let x = xs(p);
                let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
                (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2)
                    + 10.0 * (1.0 - t) * x[0].cos()
                    + 10.0
            },
            noisy: false,
        },
        Problem {
            name: "log5",
            space: ParamSpace::new(floats("p", 5, 1e-4, 1e2, true))?,
            f: |p| {
                xs(p)
                    .iter()
                    .zip(LOG_TARGETS)
                    .map(|(v, c)| (v.log10() - c).powi(2))
                    .sum()
            },
            noisy: false,
        },
        Problem {
            name: "mixed",
            space: ParamSpace::new(mixed)?,
            f: |p| {
                let n = p.i64("n").unwrap_or(0) as f64;
                let c = match p.str("c").unwrap_or("d") {
                    "a" => 1.0,
                    "b" => 0.0,
                    "c" => 0.5,
                    _ => 2.0,
                };
                let s = p.f64("s").unwrap_or(0.0);
                let lr = p.f64("lr").unwrap_or(1.0);
                (n - 13.0).powi(2) / 20.0
                    + c
                    + 4.0 * (s - 0.35).powi(2)
                    + (lr.log10() + 3.3).powi(2)
            },
            noisy: false,
        },
        Problem {
            name: "noisy_sphere5",
            space: ParamSpace::new(floats("x", 5, -5.0, 5.0, false))?,
            f: |p| sphere(&xs(p)),
            noisy: true,
        },
    ])
}

/// The mean of `NOISE_SEEDS` standard normals for (seed, trial), times `NOISE_SD`.
fn noise(seed: u64, trial: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(trial);
    let mut sum = 0.0;
    for _ in 0..NOISE_SEEDS {
        // Box–Muller.
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen();
        sum += (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    }
    NOISE_SD * sum / NOISE_SEEDS as f64
}

/// One optimisation run; returns the true value at the trial with the best observed value.
fn run_ours(problem: &Problem, sampler: &dyn Sampler, seed: u64, trials: u64) -> Result<f64> {
    let mut history: Vec<TrialRecord> = Vec::with_capacity(trials as usize);
    let mut best = (f64::INFINITY, f64::INFINITY);
    for t in 0..trials {
        let ctx = AskContext {
            space: &problem.space,
            direction: Direction::Minimize,
            trial: TrialNumber(t),
            history: &history,
            running: &[],
        };
        let params = sampler.ask(&ctx)?;
        let truth = (problem.f)(&params);
        let value = if problem.noisy {
            truth + noise(seed, t)
        } else {
            truth
        };
        if value < best.0 {
            best = (value, truth);
        }
        history.push(TrialRecord {
            number: TrialNumber(t),
            params,
            state: TrialState::Complete {
                stats: SeedStats::from_values(&[value]),
            },
        });
    }
    Ok(best.1)
}

// ---------------------------------------------------------------------------------------------
// Speed

fn speed_section(a: &Args, python: Option<&Path>, report: &mut String) -> Result<()> {
    let grid: Vec<(u64, usize)> = if a.quick {
        vec![(100, 2), (1000, 10)]
    } else {
        vec![
            (100, 2),
            (1000, 2),
            (5000, 2),
            (100, 10),
            (1000, 10),
            (5000, 10),
        ]
    };
    // Rounds alternate between the samplers, so that a slow spell of the machine does not
    // fall on one of them only; each cell is the median over the rounds.
    let mut ours_rounds: Vec<Vec<f64>> = Vec::new();
    let mut other_rounds: BTreeMap<&str, Vec<Vec<f64>>> = BTreeMap::new();
    for _ in 0..a.rounds {
        ours_rounds.push(
            grid.iter()
                .map(|&(n, d)| time_ours(n, d))
                .collect::<Result<_>>()?,
        );
        if let Some(py) = python {
            for kind in ["optuna", "rustuna"] {
                let repeats = if kind == "optuna" { 12 } else { 50 };
                let mut args = vec!["speed".to_string(), kind.to_string(), repeats.to_string()];
                args.extend(grid.iter().map(|(n, d)| format!("{n}x{d}")));
                let v = run_python(py, &args)?;
                let times = v["result"]
                    .as_array()
                    .context("speed result")?
                    .iter()
                    .map(|r| r["seconds_per_trial"].as_f64().unwrap_or(f64::NAN))
                    .collect();
                other_rounds.entry(kind).or_default().push(times);
            }
        }
    }
    let ours = median_per_cell(&ours_rounds);
    let others: BTreeMap<&str, Vec<f64>> = other_rounds
        .iter()
        .map(|(k, rounds)| (*k, median_per_cell(rounds)))
        .collect();
    writeln!(report, "## Speed: time per trial\n")?;
    writeln!(
        report,
        "Sphere on [-5, 5]^d; the history holds n completed trials at random points; one trial = \
         one ask (all d parameters) with that history, then its result is told (the history grows by \
         one per trial; ours is cut back to n trials after growing by 10%). Ours: mean over ask + tell in-process; Optuna/rustuna: mean over ask + \
         suggest + tell in Python (in-memory storage). Each cell is the median of {} interleaved rounds (ours, then Optuna, then rustuna in each round).\n",
        a.rounds
    )?;
    writeln!(
        report,
        "| n | d | ours | rustuna 0.2 | Optuna 5.0 | rustuna / ours | Optuna / ours |"
    )?;
    writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|")?;
    for (i, &(n, d)) in grid.iter().enumerate() {
        let r = others.get("rustuna").map(|v| v[i]);
        let o = others.get("optuna").map(|v| v[i]);
        let fmt = |x: Option<f64>| x.map_or("–".to_string(), fmt_time);
        let ratio =
            |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{:.1}×", x / ours[i]));
        writeln!(
            report,
            "| {n} | {d} | {} | {} | {} | {} | {} |",
            fmt_time(ours[i]),
            fmt(r),
            fmt(o),
            ratio(r),
            ratio(o)
        )?;
    }
    writeln!(report)?;
    Ok(())
}

/// Per cell, the median over the rounds (`rounds[r][cell]`).
fn median_per_cell(rounds: &[Vec<f64>]) -> Vec<f64> {
    let cells = rounds.first().map_or(0, Vec::len);
    (0..cells)
        .map(|c| {
            let mut v: Vec<f64> = rounds.iter().map(|r| r[c]).collect();
            v.sort_by(f64::total_cmp);
            let mid = v.len() / 2;
            if v.len() % 2 == 1 {
                v[mid]
            } else {
                0.5 * (v[mid - 1] + v[mid])
            }
        })
        .collect()
}

fn fmt_time(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Seconds per ask of our default TPE with `n` random sphere trials in the history. Also
/// prints an order-sensitive checksum of the proposals, equal between builds that propose
/// alike (a speed change must not change it).
fn time_ours(n: u64, d: usize) -> Result<f64> {
    let space = ParamSpace::new(floats("x", d, -5.0, 5.0, false))?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut history: Vec<TrialRecord> = (0..n)
        .map(|t| {
            let x: Vec<f64> = (0..d).map(|_| rng.gen_range(-5.0..5.0)).collect();
            let params: Params = x
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("x{i}"), *v))
                .collect();
            TrialRecord {
                number: TrialNumber(t),
                params,
                state: TrialState::Complete {
                    stats: SeedStats::from_values(&[sphere(&x)]),
                },
            }
        })
        .collect();
    let sampler = TpeSampler::new(0);
    let mut checksum = 0u64;
    // Like the Python side (ask + suggest + tell): every trial is told, so the history grows
    // by one per ask and nothing is reused beyond what a real study allows.
    let mut ask_tell = |t: u64| -> Result<()> {
        let ctx = AskContext {
            space: &space,
            direction: Direction::Minimize,
            trial: TrialNumber(history.len() as u64),
            history: &history,
            running: &[],
        };
        let params = std::hint::black_box(sampler.ask(&ctx)?);
        let x: Vec<f64> = (0..d)
            .map(|i| params.get(&format!("x{i}")).and_then(|v| v.as_f64()))
            .collect::<Option<_>>()
            .with_context(|| format!("ask {t}: missing parameter"))?;
        for v in &x {
            checksum = (checksum ^ v.to_bits()).wrapping_mul(0x0000_0100_0000_01b3);
        }
        history.push(TrialRecord {
            number: TrialNumber(history.len() as u64),
            params,
            state: TrialState::Complete {
                stats: SeedStats::from_values(&[sphere(&x)]),
            },
        });
        if history.len() as u64 >= n + (n / 10).max(1) {
            // Keep the history within 10% of n: start over from the first n trials.
            history.truncate(n as usize);
        }
        Ok(())
    };
    ask_tell(0)?; // warm-up
    let reps = (200_000 / n).clamp(20, 2000);
    let start = Instant::now();
    for t in 0..reps {
        ask_tell(t)?;
    }
    let per = start.elapsed().as_secs_f64() / reps as f64;
    eprintln!(
        "bench sampler: ours n={n} d={d}: {:.1} µs per trial, proposal checksum {checksum:016x}",
        per * 1e6
    );
    Ok(per)
}

// ---------------------------------------------------------------------------------------------
// Quality

fn quality_section(a: &Args, python: Option<&Path>, report: &mut String) -> Result<()> {
    let problems = problems()?;
    let seeds: Vec<u64> = (0..a.seeds).collect();
    // sampler label -> problem -> best values per seed
    let mut results: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for (label, config) in [
        (OURS, TpeConfig::default()),
        (OURS_PARITY, TpeConfig::optuna()),
    ] {
        let started = Instant::now();
        let per = results.entry(label).or_default();
        for p in &problems {
            let mut bests = Vec::new();
            for &seed in &seeds {
                let sampler = TpeSampler::with_config(seed, config.clone());
                bests.push(run_ours(p, &sampler, seed, a.trials)?);
            }
            per.insert(p.name.to_string(), bests);
        }
        eprintln!("bench sampler: {label}: {:.1?}", started.elapsed());
    }
    if let Some(py) = python {
        for (kind, label) in PYTHON_SAMPLERS {
            let started = Instant::now();
            let mut args = vec![
                "quality".to_string(),
                kind.to_string(),
                a.trials.to_string(),
            ];
            args.extend(seeds.iter().map(u64::to_string));
            args.push("--".to_string());
            args.extend(problems.iter().map(|p| p.name.to_string()));
            let v = run_python(py, &args)?;
            let per = results.entry(label).or_default();
            for p in &problems {
                let bests = v["result"][p.name]
                    .as_array()
                    .with_context(|| format!("{kind}: no result for {}", p.name))?
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect();
                per.insert(p.name.to_string(), bests);
            }
            eprintln!("bench sampler: {label}: {:.1?}", started.elapsed());
        }
    }

    writeln!(report, "## Quality: best value after {} trials\n", a.trials)?;
    writeln!(
        report,
        "Median [lower quartile, upper quartile] of the best value over {} seeds (0..{}); lower \
         is better. noisy_sphere5: each trial's value is the mean over {NOISE_SEEDS} seeds of \
         f(x) + N(0, {NOISE_SD}²); the score is the true f at the trial with the best observed \
         value. Verdict: one-sided Mann–Whitney U test (normal approximation with tie \
         correction) of ours (default) against Optuna 5.0 default TPE at {ALPHA}.\n",
        a.seeds,
        a.seeds - 1
    )?;
    let labels: Vec<&str> = [OURS, OURS_PARITY]
        .into_iter()
        .chain(PYTHON_SAMPLERS.iter().map(|(_, l)| *l))
        .filter(|l| results.contains_key(l))
        .collect();
    write!(report, "| problem |")?;
    for l in &labels {
        write!(report, " {l} |")?;
    }
    writeln!(report, " ours vs Optuna default |")?;
    writeln!(report, "|---|{}---|", "---:|".repeat(labels.len()))?;
    let (mut better, mut worse) = (0, 0);
    for p in &problems {
        write!(report, "| {} |", p.name)?;
        for l in &labels {
            let v = &results[l][p.name];
            let (q1, med, q3) = quartiles(v);
            write!(report, " {} [{}, {}] |", num(med), num(q1), num(q3))?;
        }
        let verdict = match results.get("Optuna 5.0 TPE (default)") {
            Some(opt) => {
                let (p_less, p_greater) = mann_whitney(&results[OURS][p.name], &opt[p.name]);
                if p_less < ALPHA {
                    better += 1;
                    format!("**better** (p = {p_less:.3})")
                } else if p_greater < ALPHA {
                    worse += 1;
                    format!("worse (p = {p_greater:.3})")
                } else {
                    format!("not worse (p_worse = {p_greater:.2})")
                }
            }
            None => "–".to_string(),
        };
        writeln!(report, " {verdict} |")?;
    }
    writeln!(report)?;
    if results.contains_key("Optuna 5.0 TPE (default)") {
        writeln!(
            report,
            "Summary: ours is strictly better than Optuna 5.0 default TPE on {better} of {} \
             problems and worse on {worse}.\n",
            problems.len()
        )?;
    }
    Ok(())
}

fn num(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e4) {
        format!("{x:.2e}")
    } else {
        format!("{x:.3}")
    }
}

fn quartiles(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        // Linear interpolation (numpy's default).
        let pos = p * (s.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos.fract());
        if i + 1 < s.len() {
            s[i] + frac * (s[i + 1] - s[i])
        } else {
            s[i]
        }
    };
    (q(0.25), q(0.5), q(0.75))
}

/// One-sided p-values `(P[x tends lower], P[x tends higher])` of the Mann–Whitney U test,
/// normal approximation with tie correction and continuity correction.
fn mann_whitney(x: &[f64], y: &[f64]) -> (f64, f64) {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let mut all: Vec<(f64, usize)> = x
        .iter()
        .map(|&v| (v, 0))
        .chain(y.iter().map(|&v| (v, 1)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let mut ranks = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for rank in &mut ranks[i..=j] {
            *rank = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all
        .iter()
        .zip(&ranks)
        .filter(|((_, g), _)| *g == 0)
        .map(|(_, r)| r)
        .sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return (1.0, 1.0);
    }
    let sd = var.sqrt();
    // Small U = x ranks low = x tends lower.
    let z_less = (u1 - mean + 0.5) / sd;
    let z_greater = (u1 - mean - 0.5) / sd;
    (normal_cdf(z_less), 1.0 - normal_cdf(z_greater))
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mann_whitney_detects_shifts() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let y: Vec<f64> = (0..20).map(|v| f64::from(v) + 10.0).collect();
        let (less, greater) = mann_whitney(&x, &y);
        assert!(less < 0.01 && greater > 0.99, "{less} {greater}");
        let (less, greater) = mann_whitney(&x, &x);
        assert!(less > 0.4 && greater > 0.4);
    }

    #[test]
    fn speed_cells_take_the_median_round() {
        let rounds = vec![vec![3.0, 10.0], vec![1.0, 30.0], vec![2.0, 20.0]];
        assert_eq!(median_per_cell(&rounds), vec![2.0, 20.0]);
        assert_eq!(median_per_cell(&rounds[..2]), vec![2.0, 20.0]);
        assert!(median_per_cell(&[]).is_empty());
    }

    #[test]
    fn quartiles_interpolate() {
        assert_eq!(quartiles(&[4.0, 1.0, 3.0, 2.0, 5.0]), (2.0, 3.0, 4.0));
    }
}
