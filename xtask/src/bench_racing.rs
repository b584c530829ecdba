//! `cargo xtask bench racing`: seed racing against racing off, on simulated losses whose true
//! expected loss is known, driven by the real race (`slurptuna_core::racing`) and the real TPE.
//!
//! - **Problems**: the nine families of the sampler benchmark ([`bench_sampler::problems`]), with
//!   ℓ(θ, s) = f(θ) + σ·ε(θ, s), ε hashed from (θ, s) and zero-mean for every θ, so a trial's true
//!   expected loss is f(θ) and its N-seed mean is computable. Noise types: independent;
//!   common random numbers √c·g(s) + √(1−c)·h(θ, s), c ∈ {0.5, 0.9, 0.99}; heteroscedastic
//!   (a θ-specific scale); Student t(3); rare catastrophes (+10 sd on a shared 0.5% of seeds, of a
//!   θ-specific size, centred); and the adversarial case, rare wins (−10 sd on a θ-specific 0.5%
//!   of seeds for half the θ, centred), which no race can see in time. σ is set so that the sd of
//!   the N-seed mean is `--level` percent (default 1) of f's spread over the best 10% of a
//!   noiseless 200-trial TPE run. Plus one real stochastic simulation: a Q-learning agent with
//!   choice stickiness, fitted by simulation to the summary statistics of one synthetic
//!   participant's 200 choices in a reversal-learning two-armed bandit (its true loss estimated
//!   on 20,000 fresh seeds; N = 1,000 only, as a seed costs microseconds).
//! - **Arms**, per study seed (the TPE's seed and the plan's key): racing off, `--trials`
//!   trials of N seeds; racing on (the defaults: α = 0.01, `min_seeds` = max(200, ⌈0.02·N⌉) in
//!   whole chunks), run until it has used the seed evaluations of the off arm (equal compute, at
//!   most `--max-trials` trials); its first `--trials` trials give equal trials. Trials run one
//!   after another, as `optimize_run` with `max_concurrent_trials = 1`: each trial after the first
//!   races against the incumbent, the threshold is the best COMPLETE value, pruned trials go to
//!   the TPE as PRUNED with their race. Chunks: 100 seeds (the default) at N = 1,000 and 1,000 at
//!   N = 100,000.
//! - **Shadow evaluation**: every pruned trial is also completed offline (hidden from the
//!   sampler). A raced trial whose N-seed mean is ≤ the threshold is *eligible*; an eligible
//!   trial that was pruned is a false elimination. Per cell: the rate with its one-sided
//!   Clopper–Pearson 95% upper bound, and how often the trial with the best N-seed mean of the
//!   first `--trials` trials was pruned.
//! - **Replay check** (N = 1,000): each new best that raced against the control it replaces is
//!   replayed 200 times in fresh orders, as the controller does; counted per study.
//! - **Cross-check**: one study is also run through `optimize_run` with racing on; its trial
//!   states must match this driver's trial for trial.
//!
//! Writes `bench/results/racing.md` and prints it. `--quick` is a smoke test (3 seeds, 40
//! trials, N = 1,000, four families). A debug build re-runs itself in release.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use slurptuna_core::racing::{clopper_pearson_upper, replay, Control, Race, RaceConfig, RacePlan};
use slurptuna_core::{
    search_param, AskContext, ChunkIndex, Direction, ParamSpace, Params, Sampler, SeedLayout,
    SeedList, SeedStats, TrialNumber, TrialRecord, TrialState,
};
use slurptuna_sampler::{PrunedRank, TpeConfig, TpeSampler};

use crate::bench_sampler::{problems, Problem};
use crate::util::{median, option_value, project_root};

/// Probability of a rare seed (catastrophe or win).
const P_RARE: f64 = 0.005;
/// Size of a rare effect, in units of the ordinary noise's sd.
const K_RARE: f64 = 10.0;
/// Races of a replay check (as the controller).
const REPLAY_RACES: u32 = 200;
/// Fresh seeds for the bandit's true loss.
const TRUTH_SEEDS: u64 = 20_000;
/// The first fresh seed (disjoint from every fit seed).
const TRUTH_SEED_START: u64 = 1 << 40;

struct Args {
    quick: bool,
    seeds: u64,
    trials: u64,
    /// The equal-compute arm's trial cap, one per `ns` (or one for all).
    max_trials: Vec<u64>,
    ns: Vec<u64>,
    level: f64,
    families: Option<Vec<String>>,
    allow_debug: bool,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        quick: false,
        seeds: 30,
        trials: 200,
        max_trials: vec![1500, 500],
        ns: vec![1000, 100_000],
        level: 1.0,
        families: None,
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
                a.max_trials = vec![200];
                a.ns = vec![1000];
                a.families = Some(
                    ["sphere10", "hartmann6", "mixed", "bandit"]
                        .map(String::from)
                        .to_vec(),
                );
            }
            "--seeds" => a.seeds = value("--seeds")?.parse().context("--seeds")?,
            "--trials" => a.trials = value("--trials")?.parse().context("--trials")?,
            "--max-trials" => {
                a.max_trials = value("--max-trials")?
                    .split(',')
                    .map(|s| s.trim().parse::<u64>().context("--max-trials"))
                    .collect::<Result<_>>()?
            }
            "--level" => a.level = value("--level")?.parse().context("--level")?,
            "--n" => {
                a.ns = value("--n")?
                    .split(',')
                    .map(|s| s.trim().parse::<u64>().context("--n"))
                    .collect::<Result<_>>()?
            }
            "--families" => {
                a.families = Some(
                    value("--families")?
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect(),
                )
            }
            "--allow-debug" => a.allow_debug = true,
            other => bail!(
                "unknown option {other:?}: use --quick, --seeds N, --trials N, \
                 --max-trials N[,N], --n N[,N], --level PERCENT, --families a,b"
            ),
        }
    }
    if a.max_trials.len() == 1 {
        a.max_trials = vec![a.max_trials[0]; a.ns.len()];
    }
    if a.max_trials.len() != a.ns.len() {
        bail!(
            "--max-trials gives {} caps for {} values of --n: give one cap, or one per --n value \
             in the same order",
            a.max_trials.len(),
            a.ns.len()
        );
    }
    if a.seeds == 0
        || a.trials == 0
        || a.max_trials.iter().any(|&m| m < a.trials)
        || a.ns.contains(&0)
    {
        bail!("--seeds, --trials and --n must be at least 1, and --max-trials at least --trials");
    }
    if !(a.level > 0.0 && a.level.is_finite()) {
        bail!("--level must be a positive percentage, got {}", a.level);
    }
    Ok(a)
}

impl Args {
    /// The equal-compute arm's trial cap at `n` seeds.
    fn max_trials_at(&self, n: u64) -> u64 {
        self.ns
            .iter()
            .position(|&m| m == n)
            .map_or(self.trials, |i| self.max_trials[i])
    }
}

// ---------------------------------------------------------------------------------------------
// Noise

#[derive(Clone, Copy, Debug, PartialEq)]
enum Noise {
    Independent,
    Crn(f64),
    Hetero,
    T3,
    Catastrophes,
    RareWins,
}

impl Noise {
    const ALL: [Noise; 8] = [
        Noise::Independent,
        Noise::Crn(0.5),
        Noise::Crn(0.9),
        Noise::Crn(0.99),
        Noise::Hetero,
        Noise::T3,
        Noise::Catastrophes,
        Noise::RareWins,
    ];

    fn name(self) -> String {
        match self {
            Noise::Independent => "independent".into(),
            Noise::Crn(c) => format!("CRN c={c}"),
            Noise::Hetero => "heteroscedastic".into(),
            Noise::T3 => "t(3)".into(),
            Noise::Catastrophes => "rare catastrophes".into(),
            Noise::RareWins => "rare wins (adversarial)".into(),
        }
    }

    fn adversarial(self) -> bool {
        self == Noise::RareWins
    }

    /// The sd of ε over θ and s, before normalising to 1.
    fn raw_sd(self) -> f64 {
        let rare = K_RARE * K_RARE * P_RARE * (1.0 - P_RARE);
        match self {
            Noise::Independent | Noise::Crn(_) => 1.0,
            // scale(θ) = 0.25 + 1.5·u: E[scale²] = 1/16 + 3/8 + 3/4.
            Noise::Hetero => (1.0_f64 / 16.0 + 3.0 / 8.0 + 3.0 / 4.0).sqrt(),
            Noise::T3 => 3.0_f64.sqrt(),
            // size(θ) = 0.5 + u: E[size²] = 13/12.
            Noise::Catastrophes => (1.0 + rare * 13.0 / 12.0).sqrt(),
            // Rare wins on half the θ.
            Noise::RareWins => (1.0 + 0.5 * rare).sqrt(),
        }
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash2(a: u64, b: u64) -> u64 {
    splitmix(a ^ splitmix(b))
}

fn uniform(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal quantiles at the midpoints of 2^16 equal bins: a normal from 16 bits of a
/// hash with one table read (its tails end at ±4.17; the heavy-tailed noises add their own).
fn normal_table() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        use statrs::distribution::{ContinuousCDF, Normal};
        let n = Normal::standard();
        let bins = 1usize << 16;
        (0..bins)
            .map(|i| n.inverse_cdf((i as f64 + 0.5) / bins as f64))
            .collect()
    })
}

fn normal(table: &[f64], h: u64) -> f64 {
    table[(h >> 48) as usize]
}

/// One study's noise: the shared parts (g(s), the catastrophic seeds) depend on the study seed.
struct Env {
    noise: Noise,
    sigma: f64,
    key: u64,
    shared: Vec<f64>,
    catastrophic: Vec<bool>,
}

impl Env {
    fn new(noise: Noise, sigma: f64, study: u64, n: u64) -> Env {
        let table = normal_table();
        let key = splitmix(study ^ 0x6e6f_6973_6500_0000);
        let shared = match noise {
            Noise::Crn(_) => (0..n).map(|s| normal(table, hash2(key ^ 1, s))).collect(),
            _ => Vec::new(),
        };
        let catastrophic = match noise {
            Noise::Catastrophes => (0..n)
                .map(|s| uniform(hash2(key ^ 2, s)) < P_RARE)
                .collect(),
            _ => Vec::new(),
        };
        Env {
            noise,
            sigma,
            key,
            shared,
            catastrophic,
        }
    }

    /// ℓ(θ, s) for s in `seeds` (seed s = position s of the study's seed list), appended to `out`.
    fn fill(&self, theta: u64, f: f64, seeds: std::ops::Range<u64>, out: &mut Vec<f64>) {
        let t = normal_table();
        let th = hash2(self.key, theta);
        let u = uniform(splitmix(th ^ 0x75));
        let scale = self.sigma / self.noise.raw_sd();
        let h =
            |s: u64, k: u64| normal(t, splitmix(th ^ k ^ s.wrapping_mul(0xd1b5_4a32_d192_ed03)));
        match self.noise {
            Noise::Independent => out.extend(seeds.map(|s| f + scale * h(s, 0))),
            Noise::Crn(c) => {
                let (a, b) = (c.sqrt(), (1.0 - c).sqrt());
                out.extend(seeds.map(|s| f + scale * (a * self.shared[s as usize] + b * h(s, 0))))
            }
            Noise::Hetero => {
                let k = scale * (0.25 + 1.5 * u);
                out.extend(seeds.map(|s| f + k * h(s, 0)))
            }
            Noise::T3 => out.extend(seeds.map(|s| {
                let chi = (h(s, 1).powi(2) + h(s, 2).powi(2) + h(s, 3).powi(2)) / 3.0;
                f + scale * h(s, 0) / chi.sqrt().max(1e-3)
            })),
            Noise::Catastrophes => {
                let size = K_RARE * (0.5 + u);
                out.extend(seeds.map(|s| {
                    let hit = if self.catastrophic[s as usize] {
                        1.0
                    } else {
                        0.0
                    };
                    f + scale * (h(s, 0) + size * (hit - P_RARE))
                }))
            }
            Noise::RareWins => {
                let wins = u < 0.5;
                out.extend(seeds.map(|s| {
                    let win = wins
                        && uniform(splitmix(th ^ 7 ^ s.wrapping_mul(0xd1b5_4a32_d192_ed03)))
                            < P_RARE;
                    let w = if wins {
                        -K_RARE * (f64::from(u8::from(win)) - P_RARE)
                    } else {
                        0.0
                    };
                    f + scale * (h(s, 0) + w)
                }))
            }
        }
    }
}

/// A stable identity of a parameter vector.
fn theta_key(p: &Params) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in format!("{p:?}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

// ---------------------------------------------------------------------------------------------
// The bandit model

/// Trials of a session; reward probabilities swap at the midpoint.
const BANDIT_CHOICES: usize = 200;
const BANDIT_STATS: usize = 10;

/// Summary statistics of one simulated session of a Q-learner with learning rate `alpha`,
/// inverse temperature `beta` and stickiness `kappa`: P(choosing the better arm) in 8 bins of 25
/// choices, P(stay | win), P(stay | loss).
fn bandit_session(alpha: f64, beta: f64, kappa: f64, seed: u64) -> [f64; BANDIT_STATS] {
    let mut state = splitmix(seed ^ 0x6261_6e64_6974);
    let mut next = || {
        state = splitmix(state);
        uniform(state)
    };
    let mut q = [0.5_f64, 0.5];
    let mut last: Option<usize> = None;
    let mut out = [0.0; BANDIT_STATS];
    let (mut stay_win, mut wins, mut stay_loss, mut losses) = (0.0, 0.0, 0.0, 0.0);
    let mut last_reward = false;
    for t in 0..BANDIT_CHOICES {
        let better = usize::from(t >= BANDIT_CHOICES / 2);
        let stick = |a: usize| if last == Some(a) { kappa } else { 0.0 };
        let d = beta * (q[1] - q[0]) + stick(1) - stick(0);
        let p1 = 1.0 / (1.0 + (-d).exp());
        let a = usize::from(next() < p1);
        let p_reward = if a == better { 0.8 } else { 0.2 };
        let r = next() < p_reward;
        if let Some(l) = last {
            let stay = if a == l { 1.0 } else { 0.0 };
            if last_reward {
                stay_win += stay;
                wins += 1.0;
            } else {
                stay_loss += stay;
                losses += 1.0;
            }
        }
        q[a] += alpha * (f64::from(u8::from(r)) - q[a]);
        out[t / 25] += f64::from(u8::from(a == better)) / 25.0;
        last = Some(a);
        last_reward = r;
    }
    out[8] = if wins > 0.0 { stay_win / wins } else { 0.5 };
    out[9] = if losses > 0.0 {
        stay_loss / losses
    } else {
        0.5
    };
    out
}

struct Bandit {
    observed: [f64; BANDIT_STATS],
}

impl Bandit {
    /// One synthetic participant: alpha 0.3, beta 4, kappa 0.5.
    fn new() -> Bandit {
        Bandit {
            observed: bandit_session(0.3, 4.0, 0.5, 0x0b5e_7ed0),
        }
    }

    fn space() -> Result<ParamSpace> {
        Ok(ParamSpace::new([
            ("alpha", search_param().range(0.01, 1.0)),
            ("beta", search_param().range(0.1, 20.0).dtype("log")),
            ("kappa", search_param().range(-2.0, 2.0)),
        ])?)
    }

    fn loss(&self, p: &Params, seed: u64) -> f64 {
        let get = |n: &str| p.f64(n).unwrap_or(f64::NAN);
        let sim = bandit_session(get("alpha"), get("beta"), get("kappa"), seed);
        sim.iter()
            .zip(&self.observed)
            .map(|(a, b)| (a - b).powi(2))
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Families and cells

enum Kind {
    Synthetic {
        problem: Problem,
        f_star: f64,
        spread: f64,
    },
    Bandit(Bandit),
}

struct Family {
    name: &'static str,
    space: ParamSpace,
    kind: Kind,
}

/// The known global minima of the sampler benchmark's problems.
fn f_star(name: &str) -> f64 {
    match name {
        "hartmann6" => -3.322_368,
        "branin" => 0.397_887,
        _ => 0.0,
    }
}

/// f's spread over the best 10% of a noiseless 200-trial TPE run (study seed 12345).
fn spread(problem: &Problem) -> Result<f64> {
    let sampler = TpeSampler::new(12_345);
    let mut history = Vec::new();
    let mut fs = Vec::new();
    for t in 0..200 {
        let params = ask(&sampler, &problem.space, t, &history)?;
        let f = (problem.f)(&params);
        fs.push(f);
        history.push(TrialRecord {
            number: TrialNumber(t),
            params,
            state: TrialState::Complete {
                stats: SeedStats::from_values(&[f]),
            },
        });
    }
    fs.sort_by(f64::total_cmp);
    let s = fs[19] - fs[0];
    Ok(if s > 0.0 { s } else { 1.0 })
}

fn families(only: Option<&[String]>) -> Result<Vec<Family>> {
    let mut out = Vec::new();
    let wanted = |n: &str| only.is_none_or(|o| o.iter().any(|w| w == n));
    for problem in problems()? {
        if !wanted(problem.name) {
            continue;
        }
        let spread = spread(&problem)?;
        out.push(Family {
            name: problem.name,
            space: problem.space.clone(),
            kind: Kind::Synthetic {
                f_star: f_star(problem.name),
                spread,
                problem,
            },
        });
    }
    if wanted("bandit") {
        out.push(Family {
            name: "bandit",
            space: Bandit::space()?,
            kind: Kind::Bandit(Bandit::new()),
        });
    }
    if out.is_empty() {
        bail!("--families matched none of the families");
    }
    Ok(out)
}

/// The loss of one study: per-seed values and the true expected loss (regret scale).
struct StudyLoss<'a> {
    family: &'a Family,
    env: Option<Env>,
}

impl StudyLoss<'_> {
    fn values(&self, p: &Params, n: u64, out: &mut Vec<f64>) {
        out.clear();
        match (&self.family.kind, &self.env) {
            (Kind::Synthetic { problem, .. }, Some(env)) => {
                env.fill(theta_key(p), (problem.f)(p), 0..n, out)
            }
            (Kind::Bandit(b), _) => out.extend((0..n).map(|s| b.loss(p, s))),
            (Kind::Synthetic { .. }, None) => {}
        }
    }

    /// The true expected loss minus the best possible (synthetic: f(θ) − f*); for the bandit,
    /// the mean over fresh seeds.
    fn regret(&self, p: &Params) -> f64 {
        match &self.family.kind {
            Kind::Synthetic {
                problem, f_star, ..
            } => (problem.f)(p) - f_star,
            Kind::Bandit(b) => {
                let sum: f64 = (TRUTH_SEED_START..TRUTH_SEED_START + TRUTH_SEEDS)
                    .map(|s| b.loss(p, s))
                    .sum();
                sum / TRUTH_SEEDS as f64
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Cell {
    family: usize,
    noise: Option<Noise>,
    n: u64,
}

impl Cell {
    fn chunk(&self) -> u64 {
        if self.n >= 100_000 {
            1000
        } else {
            slurptuna_core::DEFAULT_CHUNK_SIZE.min(self.n)
        }
    }
}

fn ask(
    sampler: &dyn Sampler,
    space: &ParamSpace,
    t: u64,
    history: &[TrialRecord],
) -> Result<Params> {
    Ok(sampler.ask(&AskContext {
        space,
        direction: Direction::Minimize,
        trial: TrialNumber(t),
        history,
        running: &[],
    })?)
}

// ---------------------------------------------------------------------------------------------
// One arm of one study

struct TrialOut {
    params: Params,
    /// The N-seed mean (the shadow value of a pruned trial).
    full_mean: f64,
    pruned: bool,
    seeds_used: u64,
    /// The threshold of a raced trial.
    threshold: Option<f64>,
}

struct ArmRun {
    trials: Vec<TrialOut>,
    replay_warned: bool,
}

struct Arm {
    racing: bool,
    /// Where the TPE ranks pruned trials.
    rank: PrunedRank,
    /// Stop after this many trials...
    max_trials: u64,
    /// ... or once this many seed evaluations are used.
    budget: u64,
    replay: bool,
}

fn run_arm(
    loss: &StudyLoss<'_>,
    cell: &Cell,
    study: u64,
    arm: &Arm,
) -> Result<(ArmRun, Vec<TrialRecord>)> {
    let n = cell.n;
    let layout = SeedLayout::new(SeedList::Range { start: 0, count: n }, cell.chunk())?;
    let config = RaceConfig::for_seeds(n, cell.chunk());
    let sampler = TpeSampler::with_config(
        study,
        TpeConfig {
            pruned: arm.rank,
            ..TpeConfig::default()
        },
    );
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut out = ArmRun {
        trials: Vec::new(),
        replay_warned: false,
    };
    let mut incumbent: Option<Control> = None;
    let mut used = 0_u64;
    let mut x = Vec::with_capacity(n as usize);
    for t in 0..arm.max_trials {
        if used >= arm.budget {
            break;
        }
        let params = ask(&sampler, &loss.family.space, t, &history)?;
        loss.values(&params, n, &mut x);
        let full_mean = x.iter().sum::<f64>() / n as f64;
        let control = incumbent
            .as_ref()
            .filter(|_| arm.racing && config.active(n, true));
        let mut outcome = None;
        if let Some(c) = control {
            let plan = RacePlan::new(&config, &layout, c, (study, None, TrialNumber(t)))?;
            let mut race = Race::new(config, &plan, c, cell.chunk(), Direction::Minimize)?;
            for (j, positions) in plan.order().chunks(cell.chunk() as usize).enumerate() {
                race.add(
                    ChunkIndex(j as u64),
                    positions.iter().map(|&i| x[i]).collect(),
                )?;
                if let Some(o) = race.advance(c.mean)? {
                    outcome = Some(o);
                    break;
                }
            }
        }
        let threshold = control.map(|c| c.mean);
        let record = match outcome {
            Some(race) => {
                used += race.seeds;
                out.trials.push(TrialOut {
                    params: params.clone(),
                    full_mean,
                    pruned: true,
                    seeds_used: race.seeds,
                    threshold,
                });
                TrialState::Pruned {
                    race: Box::new(race),
                }
            }
            None => {
                used += n;
                out.trials.push(TrialOut {
                    params: params.clone(),
                    full_mean,
                    pruned: false,
                    seeds_used: n,
                    threshold,
                });
                let stats = SeedStats::from_values(&x);
                let better = incumbent.as_ref().is_none_or(|c| stats.mean() < c.mean);
                if better {
                    let new = Control {
                        trial: TrialNumber(t),
                        mean: stats.mean(),
                        values: x.as_slice().into(),
                    };
                    if let (true, Some(old)) = (arm.replay && control.is_some(), &incumbent) {
                        let r = replay(
                            config,
                            &layout,
                            &x,
                            old,
                            Direction::Minimize,
                            REPLAY_RACES,
                            (study, None, TrialNumber(t)),
                        )?;
                        out.replay_warned |= r.warns();
                    }
                    incumbent = Some(new);
                }
                TrialState::Complete { stats }
            }
        };
        history.push(TrialRecord {
            number: TrialNumber(t),
            params,
            state: record,
        });
    }
    Ok((out, history))
}

/// The racing arms: where the TPE ranks pruned trials. The first is the sampler's default and
/// runs on every cell; the second (Optuna's order, the design note's first choice) runs at
/// N ≤ 10,000 only, as the comparison that chose the default.
const RANKS: [(PrunedRank, &str); 2] = [
    (
        PrunedRank::ByEstimate,
        "pruned trials ranked with complete ones by their estimate (the default)",
    ),
    (
        PrunedRank::AfterComplete,
        "pruned trials after complete ones (Optuna's order)",
    ),
];

/// What one racing arm of one study contributes to its cell.
#[derive(Clone, Debug, Default)]
struct OnOut {
    /// Seed evaluations in the first `trials` trials.
    seeds: u64,
    pruned_at_trials: u64,
    regret_trials: f64,
    regret_compute: f64,
    trials_at_compute: u64,
    /// Seed evaluations of the equal-compute arm over the off arm's.
    compute_share: f64,
    eligible: u32,
    false_elims: u32,
    best_pruned: bool,
    replay_warned: bool,
    /// The study's realised false-elimination rate exceeds α.
    rate_exceeds: bool,
}

/// What one study contributes to its cell.
#[derive(Clone, Debug, Default)]
struct StudyOut {
    /// Seed evaluations of racing off.
    seeds_off: u64,
    regret_off: f64,
    /// One per [`RANKS`].
    on: Vec<OnOut>,
    seconds: f64,
}

/// The reported best of the first `k` trials: the best COMPLETE N-seed mean.
fn reported(run: &ArmRun, k: usize) -> Option<&TrialOut> {
    run.trials
        .iter()
        .take(k)
        .filter(|t| !t.pruned)
        .min_by(|a, b| a.full_mean.total_cmp(&b.full_mean))
}

fn run_study(family: &Family, cell: &Cell, study: u64, a: &Args) -> Result<StudyOut> {
    let started = Instant::now();
    let env = match (&family.kind, cell.noise) {
        (Kind::Synthetic { spread, .. }, Some(noise)) => {
            let sigma = a.level / 100.0 * spread * (cell.n as f64).sqrt();
            Some(Env::new(noise, sigma, study, cell.n))
        }
        _ => None,
    };
    let loss = StudyLoss { family, env };
    let k = a.trials as usize;
    let budget = a.trials * cell.n;
    let regret = |t: Option<&TrialOut>| t.map_or(f64::INFINITY, |t| loss.regret(&t.params));
    let (off, _) = run_arm(
        &loss,
        cell,
        study,
        &Arm {
            racing: false,
            rank: PrunedRank::AfterComplete,
            max_trials: a.trials,
            budget,
            replay: false,
        },
    )?;
    let alpha = slurptuna_core::racing::DEFAULT_ALPHA;
    let mut on_outs = Vec::new();
    for (i, (rank, _)) in RANKS.into_iter().enumerate() {
        if i > 0 && cell.n > 10_000 {
            break;
        }
        let (on, _) = run_arm(
            &loss,
            cell,
            study,
            &Arm {
                racing: true,
                rank,
                max_trials: a.max_trials_at(cell.n),
                budget,
                replay: cell.n <= 10_000,
            },
        )?;
        let first = &on.trials[..k.min(on.trials.len())];
        let best_shadow = first
            .iter()
            .min_by(|x, y| x.full_mean.total_cmp(&y.full_mean));
        let (mut eligible, mut false_elims) = (0, 0);
        for t in &on.trials {
            if t.threshold.is_some_and(|b| t.full_mean <= b) {
                eligible += 1;
                false_elims += u32::from(t.pruned);
            }
        }
        on_outs.push(OnOut {
            seeds: first.iter().map(|t| t.seeds_used).sum(),
            pruned_at_trials: first.iter().filter(|t| t.pruned).count() as u64,
            regret_trials: regret(reported(&on, k)),
            regret_compute: regret(reported(&on, on.trials.len())),
            trials_at_compute: on.trials.len() as u64,
            compute_share: on.trials.iter().map(|t| t.seeds_used).sum::<u64>() as f64
                / budget as f64,
            eligible,
            false_elims,
            best_pruned: best_shadow.is_some_and(|t| t.pruned),
            replay_warned: on.replay_warned,
            rate_exceeds: eligible > 0 && f64::from(false_elims) > alpha * f64::from(eligible),
        });
    }
    Ok(StudyOut {
        seeds_off: off.trials.iter().map(|t| t.seeds_used).sum(),
        regret_off: regret(reported(&off, k)),
        on: on_outs,
        seconds: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// Cells

struct CellOut {
    cell: Cell,
    studies: Vec<StudyOut>,
}

impl CellOut {
    fn ons(&self, arm: usize) -> impl Iterator<Item = &OnOut> {
        self.studies.iter().filter_map(move |s| s.on.get(arm))
    }

    fn saving(&self, arm: usize) -> f64 {
        let off: u64 = self.studies.iter().map(|s| s.seeds_off).sum();
        let on: u64 = self.ons(arm).map(|o| o.seeds).sum();
        1.0 - on as f64 / off as f64
    }

    /// The share of studies where the racing arm's reported best has the lower regret (ties ½).
    fn p_beats(&self, arm: usize, on: impl Fn(&OnOut) -> f64) -> f64 {
        let score: f64 = self
            .studies
            .iter()
            .filter_map(|s| s.on.get(arm).map(|o| (on(o), s.regret_off)))
            .map(|(a, b)| {
                if a < b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                }
            })
            .sum();
        score / self.studies.len() as f64
    }

    fn false_elims(&self, arm: usize) -> (u32, u32) {
        self.ons(arm)
            .fold((0, 0), |(k, n), o| (k + o.false_elims, n + o.eligible))
    }

    fn fe_upper(&self, arm: usize) -> f64 {
        let (k, n) = self.false_elims(arm);
        clopper_pearson_upper(k, n, 0.05)
    }

    fn best_pruned(&self, arm: usize) -> u32 {
        self.ons(arm).filter(|o| o.best_pruned).count() as u32
    }

    fn adversarial(&self) -> bool {
        self.cell.noise.is_some_and(Noise::adversarial)
    }

    fn is_crn(&self) -> bool {
        matches!(self.cell.noise, Some(Noise::Crn(_)))
    }

    fn median_off(&self) -> f64 {
        let v: Vec<f64> = self.studies.iter().map(|s| s.regret_off).collect();
        median(&v)
    }

    fn median_on(&self, arm: usize, f: impl Fn(&OnOut) -> f64) -> f64 {
        let v: Vec<f64> = self.ons(arm).map(f).collect();
        median(&v)
    }
}

/// The fewest eligible trials with which a cell without false eliminations can show a
/// Clopper–Pearson 95% upper bound ≤ α (299 at α = 0.01).
fn fe_min_eligible(alpha: f64) -> u32 {
    (1..100_000)
        .find(|&n| clopper_pearson_upper(0, n, 0.05) <= alpha)
        .unwrap_or(100_000)
}

/// Runs `--seeds` studies per cell; then tops up every cell with fewer eligible trials (racing
/// on, the default ranking) than [`fe_min_eligible`] with further study seeds, enough by its
/// rate so far, up to four times `--seeds` in all. The top-up depends only on how many trials
/// were eligible, never on how many were falsely eliminated, so the bound stays honest.
fn run_cells(fams: &[Family], cells: &[Cell], a: &Args) -> Result<Vec<CellOut>> {
    let jobs: Vec<(usize, u64)> = (0..cells.len())
        .flat_map(|c| (0..a.seeds).map(move |s| (c, s)))
        .collect();
    let mut results = run_jobs(fams, cells, a, &jobs)?;
    if !a.quick {
        let need = fe_min_eligible(slurptuna_core::racing::DEFAULT_ALPHA);
        let mut more = Vec::new();
        for c in 0..cells.len() {
            let eligible: u32 = (0..a.seeds)
                .filter_map(|s| results.get(&(c, s))?.on.first())
                .map(|o| o.eligible)
                .sum();
            if eligible >= need {
                continue;
            }
            let wanted = if eligible == 0 {
                4 * a.seeds
            } else {
                (a.seeds * u64::from(need)).div_ceil(u64::from(eligible))
            };
            more.extend((a.seeds..wanted.min(4 * a.seeds)).map(|s| (c, s)));
        }
        if !more.is_empty() {
            eprintln!(
                "bench racing: {} more studies for cells with fewer than {need} eligible trials",
                more.len()
            );
            results.extend(run_jobs(fams, cells, a, &more)?);
        }
    }
    let mut out: Vec<CellOut> = cells
        .iter()
        .map(|cell| CellOut {
            cell: cell.clone(),
            studies: Vec::new(),
        })
        .collect();
    for ((c, _), study) in results {
        out[c].studies.push(study);
    }
    Ok(out)
}

/// Runs the (cell, study seed) jobs on every core.
fn run_jobs(
    fams: &[Family],
    cells: &[Cell],
    a: &Args,
    jobs: &[(usize, u64)],
) -> Result<BTreeMap<(usize, u64), StudyOut>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<(usize, u64), StudyOut>> = Mutex::new(BTreeMap::new());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, s)) = jobs.get(i) else { break };
                let cell = &cells[c];
                match run_study(&fams[cell.family], cell, s, a) {
                    Ok(out) => {
                        if let Ok(mut r) = results.lock() {
                            r.insert((c, s), out);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e.context(format!(
                                "{} {:?} N={} seed {s}",
                                fams[cell.family].name, cell.noise, cell.n
                            )));
                        }
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(200) || d == jobs.len() {
                    eprintln!(
                        "bench racing: {d}/{} studies ({:.0} s)",
                        jobs.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()))
}

// ---------------------------------------------------------------------------------------------
// The cross-check against optimize_run

/// Runs sphere10 with CRN c = 0.9, N = 1,000 through `optimize_run` with racing on and compares
/// its trial states with this driver's. Returns (agreeing trials, trials).
fn cross_check(fams: &[Family], trials: u64) -> Result<(usize, usize)> {
    let Some((fi, family)) = fams.iter().enumerate().find(|(_, f)| f.name == "sphere10") else {
        return Ok((0, 0));
    };
    let Kind::Synthetic { spread, .. } = &family.kind else {
        return Ok((0, 0));
    };
    let cell = Cell {
        family: fi,
        noise: Some(Noise::Crn(0.9)),
        n: 1000,
    };
    let study = 7;
    let sigma = 0.01 * spread * (cell.n as f64).sqrt();
    let loss = StudyLoss {
        family,
        env: Some(Env::new(Noise::Crn(0.9), sigma, study, cell.n)),
    };
    let (_, ours) = run_arm(
        &loss,
        &cell,
        study,
        &Arm {
            racing: true,
            rank: TpeConfig::default().pruned,
            max_trials: trials,
            budget: u64::MAX,
            replay: false,
        },
    )?;
    let env = Arc::new(Env::new(Noise::Crn(0.9), sigma, study, cell.n));
    let mut builder = slurptuna::loss("racing_cross_check")
        .description("sphere10 with common-random-numbers noise, as the racing benchmark");
    for i in 0..10 {
        builder = builder.param(format!("x{i}"), search_param().range(-5.0, 5.0));
    }
    let model = builder.build(move |p, seed, _ctx| {
        let x: Vec<f64> = p.iter().filter_map(|(_, v)| v.as_f64()).collect();
        let f: f64 = x.iter().map(|v| v * v).sum();
        let mut out = Vec::with_capacity(1);
        env.fill(theta_key(p), f, seed..seed + 1, &mut out);
        Ok(out[0].into())
    })?;
    let root = project_root().join("target").join("bench-racing");
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let result = slurptuna::optimize_run(
        &model,
        slurptuna::RunOptions {
            n_trials: trials,
            n_seeds: Some(cell.n),
            chunk_size: Some(cell.chunk()),
            random_seed: study,
            run_root: root,
            progress: false,
            racing: Some(slurptuna::Racing::default()),
            ..slurptuna::RunOptions::default()
        },
    )?;
    let label = |s: &TrialState| match s {
        TrialState::Pruned { race } => format!("PRUNED at {}", race.seeds),
        other => other.label().to_string(),
    };
    let agree = ours
        .iter()
        .zip(&result.trials)
        .filter(|(a, b)| a.params == b.params && label(&a.state) == label(&b.state))
        .count();
    Ok((agree, ours.len().max(result.trials.len())))
}

// ---------------------------------------------------------------------------------------------
// The report

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let a = parse_args(args)?;
    if cfg!(debug_assertions) && !a.allow_debug {
        return crate::util::rerun_bench_in_release("racing", args);
    }
    let started = Instant::now();
    let fams = families(a.families.as_deref())?;
    let mut cells = Vec::new();
    for &n in &a.ns {
        for (fi, f) in fams.iter().enumerate() {
            match f.kind {
                Kind::Synthetic { .. } => cells.extend(Noise::ALL.iter().map(|&noise| Cell {
                    family: fi,
                    noise: Some(noise),
                    n,
                })),
                Kind::Bandit(_) if n <= 10_000 => cells.push(Cell {
                    family: fi,
                    noise: None,
                    n,
                }),
                Kind::Bandit(_) => {}
            }
        }
    }
    let outs = run_cells(&fams, &cells, &a)?;
    let check = cross_check(&fams, a.trials.min(60))?;
    let report = render(
        &a,
        &fams,
        &outs,
        check,
        started.elapsed().as_secs_f64(),
        args,
    )?;
    println!("{report}");
    let out = project_root()
        .join("bench")
        .join("results")
        .join(if a.quick {
            "racing-quick.md"
        } else {
            "racing.md"
        });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench racing: wrote {}", out.display());
    Ok(())
}

struct Bar {
    text: String,
    pass: bool,
}

fn render(
    a: &Args,
    fams: &[Family],
    outs: &[CellOut],
    check: (usize, usize),
    seconds: f64,
    args: &[String],
) -> Result<String> {
    let mut r = String::new();
    let command = format!(
        "cargo xtask bench racing{}",
        args.iter().fold(String::new(), |s, a| s + " " + a)
    );
    writeln!(r, "# Seed racing benchmark\n")?;
    writeln!(
        r,
        "Command: `{command}` (release build, {:.0} s on {} threads). {} study seeds per cell \
         (TPE seed = plan key = study seed 0..{}), racing off: {} trials of N seeds; racing on \
         (α = 0.01, `min_seeds` = max(200, ⌈0.02·N⌉) in whole chunks, margin 0): the same TPE, \
         run until it has used the off arm's seed evaluations (equal compute) or reached its \
         trial cap ({}); its first {} trials are the equal-trials arm. Cells with fewer than {} \
         eligible trials after {} studies (the fewest with which zero false eliminations bound \
         the rate by α) get further study seeds, enough at their rate, up to {}. Chunks of 100 seeds at \
         N = 1,000 and 1,000 at N = 100,000. The sd of the N-seed mean is {}% of f's spread over \
         the best 10% of a noiseless TPE run. Regret is the reported best's *true* expected loss \
         minus the optimum (bandit: its mean loss on {} fresh seeds). Every pruned trial is \
         completed offline (shadow evaluation, hidden from the sampler).\n",
        seconds,
        std::thread::available_parallelism().map_or(2, |n| n.get()),
        a.seeds,
        a.seeds - 1,
        a.trials,
        a.ns
            .iter()
            .zip(&a.max_trials)
            .map(|(n, m)| format!("{m} trials at N = {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        a.trials,
        fe_min_eligible(slurptuna_core::racing::DEFAULT_ALPHA),
        a.seeds,
        4 * a.seeds,
        a.level,
        TRUTH_SEEDS,
    )?;
    writeln!(
        r,
        "Columns: *saving* = 1 − seed evaluations on / off at equal trials (all studies of the \
         cell); *pruned* = pruned trials per study at equal trials (median); *P(beat)* = share \
         of studies where racing's reported best has the lower true regret (ties ½), at equal \
         trials and at equal compute; *trials* = median trials at equal compute; *compute* = \
         median share of the off arm's seed evaluations the equal-compute arm used (below \
         100% where it stopped at its trial cap: racing with less compute than off); \
         *studies* = study seeds of the cell; *regret* = \
         median over studies; *false elim.* = eligible trials (raced, N-seed mean ≤ the \
         threshold) that were pruned, over the whole racing run, with the one-sided \
         Clopper–Pearson 95% upper bound; *best pruned* = studies in which the trial with the \
         best N-seed mean of the first {} trials was pruned.\n",
        a.trials
    )?;
    let ns: Vec<u64> = {
        let mut v: Vec<u64> = outs.iter().map(|o| o.cell.n).collect();
        v.dedup();
        v
    };
    let name = |o: &CellOut| {
        format!(
            "{} / {} / N={}",
            fams[o.cell.family].name,
            o.cell.noise.map_or("native".to_string(), Noise::name),
            o.cell.n
        )
    };
    let mut verdicts = Vec::new();
    for (arm, (_, arm_name)) in RANKS.iter().enumerate() {
        writeln!(r, "## Racing on, TPE with {arm_name}\n")?;
        for n in &ns {
            if !outs
                .iter()
                .any(|o| o.cell.n == *n && o.ons(arm).next().is_some())
            {
                continue;
            }
            writeln!(r, "### N = {n}\n")?;
            writeln!(
                r,
                "| family | noise | saving | pruned | P(beat) trials | P(beat) compute | trials | \
                 compute | studies | regret off | regret on (trials) | regret on (compute) | false elim. | CP95 | best pruned |"
            )?;
            writeln!(
                r,
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            )?;
            for o in outs
                .iter()
                .filter(|o| o.cell.n == *n && o.ons(arm).next().is_some())
            {
                let (k, e) = o.false_elims(arm);
                writeln!(
                    r,
                    "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {k}/{e} | {} | {}/{} |",
                    fams[o.cell.family].name,
                    o.cell.noise.map_or("native (CRN by seed)".to_string(), Noise::name),
                    pct(o.saving(arm)),
                    o.median_on(arm, |s| s.pruned_at_trials as f64),
                    o.p_beats(arm, |s| s.regret_trials),
                    o.p_beats(arm, |s| s.regret_compute),
                    o.median_on(arm, |s| s.trials_at_compute as f64),
                    pct(o.median_on(arm, |s| s.compute_share)),
                    o.studies.len(),
                    num(o.median_off()),
                    num(o.median_on(arm, |s| s.regret_trials)),
                    num(o.median_on(arm, |s| s.regret_compute)),
                    pct(o.fe_upper(arm)),
                    o.best_pruned(arm),
                    o.studies.len(),
                )?;
            }
            writeln!(r)?;
        }
        let ran: Vec<&CellOut> = outs
            .iter()
            .filter(|o| o.ons(arm).next().is_some())
            .collect();
        let bars = bar(arm, &ran, check, &name);
        let all = bars.iter().all(|b| b.pass);
        writeln!(r, "### The default-on bar, TPE with {arm_name}\n")?;
        for b in &bars {
            writeln!(
                r,
                "- **{}** {}",
                if b.pass { "PASS" } else { "FAIL" },
                b.text
            )?;
        }
        writeln!(r)?;
        verdicts.push((arm_name, all));
    }
    writeln!(r, "## Verdict\n")?;
    for (arm_name, all) in &verdicts {
        writeln!(
            r,
            "- TPE with {arm_name}: {}",
            if *all {
                "**every item holds**"
            } else {
                "**not every item holds**"
            }
        )?;
    }
    writeln!(
        r,
        "\n{}\n",
        if verdicts.first().is_some_and(|v| v.1) {
            "Every item holds with the default sampler: racing can be on by default."
        } else {
            "Racing stays opt-in (`racing` / `[racing]`)."
        }
    )?;
    writeln!(
        r,
        "Not measured here: DISTRIBUTED makespan (the race runs chunk by chunk in plan order; \
         see the real-Slurm tests), ablations and other pruners of the design note. Replay \
         checks run at N = 1,000 only (200 races of up to 100,000 seeds per new best are \
         too slow for 2,000 studies)."
    )?;
    let secs: f64 = outs
        .iter()
        .flat_map(|o| &o.studies)
        .map(|s| s.seconds)
        .sum();
    writeln!(r, "\nCPU time in studies: {secs:.0} s.")?;
    Ok(r)
}

/// The default-on bar of the design note for racing arm `arm`.
fn bar(
    arm: usize,
    outs: &[&CellOut],
    check: (usize, usize),
    name: &dyn Fn(&CellOut) -> String,
) -> Vec<Bar> {
    let alpha = slurptuna_core::racing::DEFAULT_ALPHA;
    let plain: Vec<&CellOut> = outs.iter().copied().filter(|o| !o.adversarial()).collect();
    let mut bars = Vec::new();
    let fe_fail: Vec<String> = plain
        .iter()
        .filter(|o| o.fe_upper(arm) > alpha)
        .map(|o| {
            let (k, e) = o.false_elims(arm);
            format!("{} ({k}/{e}, CP95 {})", name(o), pct(o.fe_upper(arm)))
        })
        .collect();
    let (k_all, e_all) = plain.iter().fold((0, 0), |(k, e), o| {
        let (a, b) = o.false_elims(arm);
        (k + a, e + b)
    });
    bars.push(Bar {
        text: format!(
            "per-trial false elimination CP95 ≤ α = {alpha} on every non-adversarial cell: {} of \
             {} cells hold (pooled: {k_all}/{e_all}, CP95 {}){}",
            plain.len() - fe_fail.len(),
            plain.len(),
            pct(clopper_pearson_upper(k_all, e_all, 0.05)),
            list_failures(&fe_fail)
        ),
        pass: fe_fail.is_empty(),
    });
    let lost: u32 = plain.iter().map(|o| o.best_pruned(arm)).sum();
    let studies: u32 = plain.iter().map(|o| o.studies.len() as u32).sum();
    let lost_upper = clopper_pearson_upper(lost, studies, 0.05);
    bars.push(Bar {
        text: format!(
            "losing the best (the trial with the best N-seed mean pruned), pooled over the \
             non-adversarial cells (30 studies per cell cannot bound a rate below 9.5% alone): \
             {lost}/{studies}, CP95 {} ≤ α",
            pct(lost_upper)
        ),
        pass: lost_upper <= alpha,
    });
    let savings: Vec<f64> = outs.iter().map(|o| o.saving(arm)).collect();
    let med_saving = median(&savings);
    bars.push(Bar {
        text: format!("median saving at equal trials ≥ 30%: {}", pct(med_saving)),
        pass: med_saving >= 0.30,
    });
    let crn: Vec<f64> = outs
        .iter()
        .filter(|o| o.is_crn())
        .map(|o| o.saving(arm))
        .collect();
    let crn_min = crn.iter().copied().fold(f64::INFINITY, f64::min);
    let crn_med = median(&crn);
    bars.push(Bar {
        text: format!(
            "saving ≥ 60% on every CRN cell: median {}, lowest {}",
            pct(crn_med),
            pct(crn_min)
        ),
        pass: crn_min >= 0.60,
    });
    let worst = outs
        .iter()
        .map(|o| o.saving(arm))
        .fold(f64::INFINITY, f64::min);
    bars.push(Bar {
        text: format!(
            "no cell costing more than +2% at equal trials: the least saving is {} (trials run \
             one at a time, so a race never evaluates more seeds than the trial has)",
            pct(worst)
        ),
        pass: worst >= -0.02,
    });
    let beats = |o: &CellOut| o.p_beats(arm, |s| s.regret_compute);
    let beats_compute = outs.iter().filter(|o| beats(o) >= 0.6).count();
    bars.push(Bar {
        text: format!(
            "racing at equal compute beats racing off (P(beat) ≥ 0.6) on at least half the \
             cells: {beats_compute} of {} (median share of off's seed evaluations used: {})",
            outs.len(),
            {
                let mut by_n = BTreeMap::<u64, Vec<f64>>::new();
                for o in outs {
                    by_n.entry(o.cell.n)
                        .or_default()
                        .push(o.median_on(arm, |s| s.compute_share));
                }
                by_n.iter()
                    .map(|(n, v)| format!("{} at N = {n}", pct(median(v))))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        pass: 2 * beats_compute >= outs.len(),
    });
    let low: Vec<String> = outs
        .iter()
        .filter(|o| beats(o) < 0.45 || o.p_beats(arm, |s| s.regret_trials) < 0.45)
        .map(|o| {
            format!(
                "{} ({:.2} / {:.2})",
                name(o),
                o.p_beats(arm, |s| s.regret_trials),
                beats(o)
            )
        })
        .collect();
    bars.push(Bar {
        text: format!(
            "P(beat) ≥ 0.45 on every cell at both equal trials and equal compute: {} of {} \
             cells hold{}",
            outs.len() - low.len(),
            outs.len(),
            list_failures(&low)
        ),
        pass: low.is_empty(),
    });
    let adv: Vec<&OnOut> = outs
        .iter()
        .filter(|o| o.adversarial() && o.cell.n <= 10_000)
        .flat_map(|o| o.ons(arm))
        .filter(|s| s.rate_exceeds)
        .collect();
    let warned = adv.iter().filter(|s| s.replay_warned).count();
    bars.push(Bar {
        text: format!(
            "the replay check warns in ≥ 90% of adversarial studies whose realised rate exceeds \
             α (N = 1,000): {warned} of {}",
            adv.len()
        ),
        pass: adv.is_empty() || warned * 10 >= adv.len() * 9,
    });
    bars.push(Bar {
        text: format!(
            "this driver makes the decisions of `optimize_run` (sphere10, CRN c = 0.9, \
             N = 1,000, study seed 7, the sampler's default ranking): {} of {} trials have the \
             same parameters and state",
            check.0, check.1
        ),
        pass: check.0 == check.1 && check.1 > 0,
    });
    bars
}

fn list_failures(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!("; failing: {}", v.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::ParamValue;

    #[test]
    fn every_noise_is_centred_with_unit_sd() {
        for noise in Noise::ALL {
            let env = Env::new(noise, 1.0, 3, 50_000);
            let mut all = Vec::new();
            for theta in 0..20 {
                let mut v = Vec::new();
                env.fill(theta, 0.0, 0..50_000, &mut v);
                all.extend(v);
            }
            let s = SeedStats::from_values(&all);
            assert!(s.mean().abs() < 0.02, "{noise:?}: mean {}", s.mean());
            assert!((s.std() - 1.0).abs() < 0.15, "{noise:?}: sd {}", s.std());
        }
    }

    #[test]
    fn the_bandit_fit_is_best_near_the_generating_parameters() {
        let b = Bandit::new();
        let space = Bandit::space().unwrap();
        let at = |a: f64, be: f64, k: f64| {
            let p = Params::from_iter([
                ("alpha".to_string(), ParamValue::from(a)),
                ("beta".to_string(), ParamValue::from(be)),
                ("kappa".to_string(), ParamValue::from(k)),
            ]);
            assert!(space.contains(&p));
            (0..4000).map(|s| b.loss(&p, s)).sum::<f64>() / 4000.0
        };
        assert!(at(0.3, 4.0, 0.5) < at(0.9, 0.3, -1.5));
        assert!(at(0.3, 4.0, 0.5) < at(0.02, 15.0, 1.5));
    }
}
