//! The Tree-structured Parzen Estimator sampler (Optuna 5.0's algorithm).

use std::sync::{Mutex, TryLockError};

use rand::Rng;
use slurptuna_core::{AskContext, Direction, Params, Result, Sampler};

use crate::dims::{Dim, Dims};
use crate::error::SamplerError;
use crate::memo::{History, Reuse};
use crate::parzen::{Cands, Estimator, Model, ParzenParams, Scratch, Table};
use crate::random::{random_params, trial_rng};

/// How many observations form the "below" (good) group, as a function of the number `n` of
/// finished trials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gamma {
    /// `min(ceil(fraction · n), max)`. Optuna's default is `fraction = 0.1`, `max = 25`.
    Linear {
        /// Fraction of the trials in the below group.
        fraction: f64,
        /// Upper bound on the below group.
        max: usize,
    },
    /// `min(ceil(factor · √n), max)` (hyperopt's rule: `factor = 0.25`, `max = 25`).
    Sqrt {
        /// Multiplier of `√n`.
        factor: f64,
        /// Upper bound on the below group.
        max: usize,
    },
}

impl Default for Gamma {
    fn default() -> Self {
        Gamma::Linear {
            fraction: 0.1,
            max: 25,
        }
    }
}

impl Gamma {
    /// The size of the below group for `n` finished trials.
    pub fn below(&self, n: usize) -> usize {
        let raw = match *self {
            Gamma::Linear { fraction, max } => ((fraction * n as f64).ceil() as usize).min(max),
            Gamma::Sqrt { factor, max } => ((factor * (n as f64).sqrt()).ceil() as usize).min(max),
        };
        raw.min(n)
    }
}

/// Mixture weights of the observation kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Weights {
    /// Optuna's `default_weights`: the newest 25 observations weigh 1, older ones ramp
    /// linearly down to `1/n`.
    #[default]
    Optuna,
    /// Every observation weighs 1.
    Uniform,
}

/// How the first `n_startup_trials` trials are proposed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Startup {
    /// Independent uniform draws (Optuna's behaviour).
    #[default]
    Random,
    /// Scrambled Sobol points (see [`crate::QmcSampler`]): covers the space more evenly.
    Qmc,
}

/// Options of [`TpeSampler`]. `Default` gives Optuna 5.0's defaults for a single-objective study
/// (multivariate, constant liar) plus a local refinement of the acquisition
/// ([`TpeConfig::refine_rounds`]); [`TpeConfig::optuna`] switches that refinement off for exact
/// algorithmic parity.
#[derive(Clone, Debug, PartialEq)]
pub struct TpeConfig {
    /// Trials proposed by the startup sampler before TPE takes over: TPE starts once this many
    /// trials have completed (failed trials do not count). Default 10.
    pub n_startup_trials: usize,
    /// Candidates drawn from the below density `l(x)` per trial; the one maximising
    /// `l(x)/g(x)` is proposed. Default 24.
    pub n_ei_candidates: usize,
    /// Size of the below group. Default `min(ceil(0.1·n), 25)`.
    pub gamma: Gamma,
    /// Observation weights. Default Optuna's ramp.
    pub weights: Weights,
    /// Weight of the wide prior kernel before normalisation (≥ 0). Default 1.
    pub prior_weight: f64,
    /// Lower-bound each bandwidth by `range / min(100, m + 2)` (`m` observations). Default true.
    pub consider_magic_clip: bool,
    /// Let the domain edges count as neighbours of the extreme observations. Default false.
    pub consider_endpoints: bool,
    /// Model all parameters jointly (product kernels) instead of one at a time. Default true.
    pub multivariate: bool,
    /// Treat the parameters of trials still running as bad ("above") observations, so that
    /// concurrent trials spread out. Default true.
    pub constant_liar: bool,
    /// Startup sampler. Default random.
    pub startup: Startup,
    /// Rounds of local refinement of the acquisition: each round draws
    /// [`TpeConfig::refine_candidates`] more candidates from narrow kernels centred on the
    /// current best candidates (bandwidths halved per round) and keeps the best `l/g`. 0
    /// reproduces Optuna. Default 3.
    pub refine_rounds: usize,
    /// Candidates drawn per refinement round (≥ 1 when refining). Default 12.
    pub refine_candidates: usize,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            refine_rounds: 3,
            refine_candidates: 12,
            ..TpeConfig::optuna()
        }
    }
}

impl TpeConfig {
    /// Exactly Optuna 5.0's `TPESampler()` for a single-objective study: 10 startup trials, 24
    /// candidates, `gamma = min(ceil(0.1·n), 25)`, ramped weights, prior weight 1, magic clip,
    /// no endpoints, multivariate, constant liar, no acquisition refinement.
    pub fn optuna() -> Self {
        TpeConfig {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            gamma: Gamma::default(),
            weights: Weights::Optuna,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            multivariate: true,
            constant_liar: true,
            startup: Startup::Random,
            refine_rounds: 0,
            refine_candidates: 24,
        }
    }

    /// Checks every field; the error names the field and the accepted values.
    pub fn validate(&self) -> std::result::Result<(), SamplerError> {
        if self.refine_rounds > 0 && self.refine_candidates == 0 {
            return Err(SamplerError::config(
                "refine_candidates",
                "must be at least 1 when refine_rounds > 0 (the default is 12)",
            ));
        }
        if self.n_ei_candidates == 0 {
            return Err(SamplerError::config(
                "n_ei_candidates",
                "must be at least 1 (optuna uses 24)",
            ));
        }
        if !(self.prior_weight >= 0.0 && self.prior_weight.is_finite()) {
            return Err(SamplerError::config(
                "prior_weight",
                format!(
                    "must be a finite number >= 0, got {} (optuna uses 1.0)",
                    self.prior_weight
                ),
            ));
        }
        match self.gamma {
            Gamma::Linear { fraction: f, .. } | Gamma::Sqrt { factor: f, .. }
                if !(f > 0.0 && f.is_finite()) =>
            {
                Err(SamplerError::config(
                    "gamma",
                    format!("the fraction or factor must be a finite number > 0, got {f}"),
                ))
            }
            Gamma::Linear { max: 0, .. } | Gamma::Sqrt { max: 0, .. } => Err(SamplerError::config(
                "gamma",
                "max must be at least 1 (optuna uses 25)",
            )),
            _ => Ok(()),
        }
    }

    fn parzen(&self) -> ParzenParams {
        ParzenParams {
            prior_weight: self.prior_weight,
            consider_magic_clip: self.consider_magic_clip,
            consider_endpoints: self.consider_endpoints,
            weights: self.weights,
        }
    }
}

/// Tree-structured Parzen Estimator, following Optuna 5.0's `TPESampler`.
///
/// Per trial: the completed trials (failed ones excluded) are split by value into the best
/// `gamma(n)` ("below") and the rest ("above", plus running trials under the constant liar);
/// a Parzen estimator is fitted to each, `n_ei_candidates` candidates are drawn from the below
/// density `l(x)` and the one maximising `l(x)/g(x)` is proposed. Values are negated when
/// maximising. A candidate identical to a running trial's parameters is never proposed when
/// another candidate exists.
///
/// ```
/// use slurptuna_core::{search_param, AskContext, Direction, ParamSpace, Sampler, TrialNumber};
/// use slurptuna_sampler::TpeSampler;
///
/// let space = ParamSpace::new([
///     ("lr", search_param().range(1e-4, 1e-1).dtype("log")),
///     ("layers", search_param().range(1, 8).dtype("int")),
/// ])
/// .unwrap();
/// let sampler = TpeSampler::new(7);
/// let ctx = AskContext {
///     space: &space,
///     direction: Direction::Minimize,
///     trial: TrialNumber(0),
///     history: &[],
///     running: &[],
/// };
/// let p = sampler.ask(&ctx).unwrap();
/// assert!(space.contains(&p));
/// assert_eq!(p, sampler.ask(&ctx).unwrap(), "same seed and history, same proposal");
/// ```
///
/// Cost: the sampler keeps the history of the previous ask in its internal form (converted
/// observations, per-parameter sorted orders) and extends it with the new trials, so a
/// proposal costs `O(n · d)` simple steps plus the density evaluations; the result is exactly
/// what a fresh sampler would propose. Concurrent asks on one sampler are safe (one of them
/// uses the memo, the others build their own).
pub struct TpeSampler {
    seed: u64,
    config: TpeConfig,
    memo: Mutex<History>,
}

impl Clone for TpeSampler {
    fn clone(&self) -> Self {
        Self::with_config(self.seed, self.config.clone())
    }
}

impl std::fmt::Debug for TpeSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpeSampler")
            .field("seed", &self.seed)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TpeSampler {
    /// A TPE sampler with [`TpeConfig::default`].
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, TpeConfig::default())
    }

    /// A TPE sampler with the given options (checked by [`TpeConfig::validate`] on every ask).
    pub fn with_config(seed: u64, config: TpeConfig) -> Self {
        TpeSampler {
            seed,
            config,
            memo: Mutex::new(History::default()),
        }
    }

    /// The options.
    pub fn config(&self) -> &TpeConfig {
        &self.config
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl Sampler for TpeSampler {
    fn name(&self) -> &'static str {
        "tpe"
    }

    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
        self.config.validate()?;
        let dims = Dims::new(ctx.space);
        let mut rng = trial_rng(self.seed, ctx.trial.0);
        let width = dims.len();

        let mut guard = match self.memo.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => {
                // An ask panicked while updating the memo: start it afresh.
                let mut guard = poisoned.into_inner();
                *guard = History::default();
                self.memo.clear_poison();
                Some(guard)
            }
            Err(TryLockError::WouldBlock) => None,
        };
        let mut own = History::default();
        let hist = guard.as_deref_mut().unwrap_or(&mut own);
        let n = hist.sync(ctx, &dims);
        let result = self.ask_with(ctx, &dims, hist, n, &mut rng);
        // Drop the rows of running trials appended for this ask.
        hist.table.data.truncate(n * width);
        result
    }
}

impl TpeSampler {
    /// The proposal, given the synchronised history `hist` holding `n` completed rows.
    fn ask_with<R: Rng>(
        &self,
        ctx: &AskContext<'_>,
        dims: &Dims<'_>,
        hist: &mut History,
        n: usize,
        rng: &mut R,
    ) -> Result<Params> {
        let width = dims.len();
        if n < self.config.n_startup_trials {
            return Ok(startup(dims, self.config.startup, self.seed, ctx, rng));
        }
        // Scores are "lower is better".
        let scores: Vec<f64> = match ctx.direction {
            Direction::Minimize => hist.values.clone(),
            Direction::Maximize => hist.values.iter().map(|v| -v).collect(),
        };

        // Split: the gamma(n) best (stable: ties keep trial order) are below.
        // Selecting by (score, trial order) equals a stable sort by score; O(n).
        let n_below = self.config.gamma.below(n);
        let mut order: Vec<u32> = (0..n as u32).collect();
        let by_score = |a: &u32, b: &u32| {
            scores[*a as usize]
                .total_cmp(&scores[*b as usize])
                .then(a.cmp(b))
        };
        if n_below > 0 && n_below < n {
            order.select_nth_unstable_by(n_below - 1, by_score);
        }
        let mut is_below = vec![false; n];
        for &i in &order[..n_below] {
            is_below[i as usize] = true;
        }
        let below: Vec<u32> = (0..n as u32).filter(|&i| is_below[i as usize]).collect();
        let mut above: Vec<u32> = (0..n as u32).filter(|&i| !is_below[i as usize]).collect();
        let table = &mut hist.table;
        let mut row = vec![0.0; width];
        if self.config.constant_liar {
            for p in ctx.running {
                if dims.encode(p, &mut row) {
                    table.data.extend_from_slice(&row);
                    above.push((table.data.len() / width - 1) as u32);
                }
            }
        }
        let above_sorted = above_orders(&hist.sorted, &hist.table, &is_below, n, above.len());

        let split = Split {
            dims,
            table: &hist.table,
            below: &below,
            above: &above,
            above_sorted: &above_sorted,
        };
        let raw = if self.config.multivariate {
            let cols: Vec<usize> = (0..width).collect();
            self.propose(&split, &cols, ctx, rng, true, &mut hist.reuse)
        } else {
            let mut raw = vec![0.0; width];
            for col in 0..width {
                if !matches!(dims.dims[col], Dim::Fixed) {
                    let one = self.propose(&split, &[col], ctx, rng, false, &mut hist.reuse);
                    raw[col] = one[col];
                }
            }
            raw
        };
        let mut params = dims.decode(&raw);
        if !self.config.multivariate && ctx.running.contains(&params) {
            // The per-parameter winners together equal a running trial: propose this one
            // from the joint model, which skips candidates equal to running trials.
            let cols: Vec<usize> = (0..width).collect();
            params = dims.decode(&self.propose(&split, &cols, ctx, rng, true, &mut hist.reuse));
        }
        Ok(params)
    }
}

/// The observations split into below and above rows of one table.
struct Split<'a, 'd> {
    dims: &'a Dims<'d>,
    table: &'a Table,
    below: &'a [u32],
    above: &'a [u32],
    /// Per column, the positions in `above` sorted by `(value, position)` (see
    /// [`crate::parzen::sort_positions`]); empty for columns that are not numeric.
    above_sorted: &'a [Vec<u32>],
}

/// The sorted orders of the above group (completed rows not in `is_below`, then the running
/// rows `n..`) from the sorted orders of all completed rows: `O(n)` per column.
fn above_orders(
    sorted: &[Vec<u32>],
    table: &Table,
    is_below: &[bool],
    n: usize,
    m: usize,
) -> Vec<Vec<u32>> {
    // Position in `above` of each completed row that is not below (`u32::MAX` if below).
    let mut pos = vec![0u32; n];
    let mut next = 0u32;
    for (p, &b) in pos.iter_mut().zip(is_below) {
        *p = if b { u32::MAX } else { next };
        next += u32::from(!b);
    }
    let n_running = m - next as usize;
    let mut running: Vec<(f64, u32)> = Vec::with_capacity(n_running);
    sorted
        .iter()
        .enumerate()
        .map(|(col, order)| {
            if order.is_empty() {
                return Vec::new();
            }
            if n_running == 0 {
                // Branch-free compaction (one spare slot for the write after the last kept).
                let mut out = vec![0u32; m + 1];
                let mut count = 0;
                for &r in order {
                    let p = pos[r as usize];
                    out[count.min(m)] = p;
                    count += usize::from(p != u32::MAX);
                }
                out.truncate(count);
                return out;
            }
            let mut out = Vec::with_capacity(m);
            running.clear();
            running.extend((0..n_running).map(|r| (table.get(n + r, col), next + r as u32)));
            running.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut run = running.iter().peekable();
            for &r in order {
                let p = pos[r as usize];
                if p == u32::MAX {
                    continue;
                }
                let v = table.get(r as usize, col);
                // Running rows come after every completed row: on ties they go last.
                while let Some(&&(rv, rp)) = run.peek() {
                    if rv.total_cmp(&v).is_lt() {
                        out.push(rp);
                        run.next();
                    } else {
                        break;
                    }
                }
                out.push(p);
            }
            out.extend(run.map(|&(_, rp)| rp));
            out
        })
        .collect()
}

impl TpeSampler {
    /// Proposes raw values for `cols` (a full-width row; other columns are 0).
    fn propose<R: Rng>(
        &self,
        split: &Split<'_, '_>,
        cols: &[usize],
        ctx: &AskContext<'_>,
        rng: &mut R,
        avoid_running: bool,
        reuse: &mut Reuse,
    ) -> Vec<f64> {
        let Reuse { mass, scratch } = reuse;
        let model = Model::new(split.dims, cols.iter().copied());
        let width = split.dims.len();
        if model.is_empty() {
            return vec![0.0; width];
        }
        let p = self.config.parzen();
        let l = Estimator::fit(
            &model,
            split.table,
            split.below,
            &p,
            scratch,
            None,
            Some(&mut mass[..]),
        );
        let g = Estimator::fit(
            &model,
            split.table,
            split.above,
            &p,
            scratch,
            Some(split.above_sorted),
            Some(&mut mass[..]),
        );

        let c = self.config.n_ei_candidates;
        let mut cands = Cands::default();
        l.sample(rng, c, &mut cands);
        let mut best = Scored::default();
        best.score_batch(&l, &g, &cands, scratch);
        for round in 0..self.config.refine_rounds {
            let shrink = 0.5f64.powi(round as i32 + 1);
            let top = best.top(REFINE_CENTRES);
            let local = l.localised(&top, shrink);
            local.sample(rng, self.config.refine_candidates, &mut cands);
            best.score_batch(&l, &g, &cands, scratch);
        }
        let picked =
            best.pick(|row| !avoid_running || !ctx.running.contains(&split.dims.decode(row)));
        l.recycle(scratch);
        g.recycle(scratch);
        picked
    }
}

/// Number of best candidates a refinement round centres its kernels on.
const REFINE_CENTRES: usize = 4;

/// Candidates seen so far with their acquisition `ln l − ln g`.
#[derive(Default)]
struct Scored {
    rows: Vec<Vec<f64>>,
    acq: Vec<f64>,
}

impl Scored {
    fn score_batch(
        &mut self,
        l: &Estimator<'_>,
        g: &Estimator<'_>,
        cands: &Cands,
        s: &mut Scratch,
    ) {
        let mut ll = vec![0.0; cands.n];
        let mut lg = vec![0.0; cands.n];
        l.log_pdf(cands, &mut ll, s);
        g.log_pdf(cands, &mut lg, s);
        for i in 0..cands.n {
            let a = ll[i] - lg[i];
            self.rows.push(cands.row(i).to_vec());
            self.acq
                .push(if a.is_nan() { f64::NEG_INFINITY } else { a });
        }
    }

    /// The `k` best rows.
    fn top(&self, k: usize) -> Vec<&[f64]> {
        self.ranked()
            .into_iter()
            .take(k)
            .map(|i| self.rows[i].as_slice())
            .collect()
    }

    fn ranked(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.acq.len()).collect();
        // A total order (ties by index), so an unstable sort gives the stable result.
        idx.sort_unstable_by(|&a, &b| self.acq[b].total_cmp(&self.acq[a]).then(a.cmp(&b)));
        idx
    }

    /// The best row (first on ties) accepted by `ok`, else the best row.
    fn pick(&self, ok: impl Fn(&[f64]) -> bool) -> Vec<f64> {
        let idx = self.ranked();
        idx.iter()
            .find(|&&i| ok(&self.rows[i]))
            .or(idx.first())
            .map(|&i| self.rows[i].clone())
            .unwrap_or_default()
    }
}

/// Proposes a startup trial, avoiding the parameters of running trials when possible.
fn startup<R: Rng>(
    dims: &Dims<'_>,
    kind: Startup,
    seed: u64,
    ctx: &AskContext<'_>,
    rng: &mut R,
) -> Params {
    match kind {
        Startup::Qmc => {
            let p = crate::qmc::qmc_params(dims, seed, ctx.trial.0, rng);
            crate::qmc::avoid_running(p, dims, ctx, rng)
        }
        Startup::Random => {
            let p = random_params(dims, rng);
            crate::qmc::avoid_running(p, dims, ctx, rng)
        }
    }
}
