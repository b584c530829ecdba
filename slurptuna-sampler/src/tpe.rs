//! The Tree-structured Parzen Estimator sampler (Optuna 5.0's algorithm).

use std::sync::{Mutex, TryLockError};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use slurptuna_core::{AskContext, Direction, Params, Result, Sampler};

use crate::above::{AboveMixture, Members};
use crate::dims::{Dim, Dims};
use crate::error::SamplerError;
use crate::memo::{History, Reuse};
use crate::parzen::{Cands, Estimator, Model, ParzenParams, Scratch, Table};
use crate::random::{random_params, trial_rng};

/// How many observations form the "below" (good) group, as a function of the number `n` of
/// finished trials (complete and pruned; failed ones do not count).
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
    /// trials have completed or been pruned (failed trials do not count). Default 10.
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
    /// four best candidates so far (bandwidths halved per round) and keeps the best `l/g`.
    /// 0 reproduces Optuna. Default 5 (chosen with `cargo xtask bench sampler`: fewer
    /// rounds or candidates per round gave a smaller or less certain gain over Optuna).
    pub refine_rounds: usize,
    /// Candidates drawn per refinement round (≥ 1 when refining). Default 12.
    pub refine_candidates: usize,
    /// Where trials pruned by a seed race rank in the below group. Default
    /// [`PrunedRank::ByEstimate`]; [`TpeConfig::optuna`] uses Optuna's
    /// [`PrunedRank::AfterComplete`]. `cargo xtask bench racing` chose the default: once most
    /// trials are pruned, Optuna's order fills the below group with the study's past
    /// incumbents, and the reported best at equal trials was several times worse.
    pub pruned: PrunedRank,
}

/// Where pruned trials rank when the below group is chosen ([`TpeConfig::pruned`]).
///
/// Histories without pruned trials give the same proposals under either choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrunedRank {
    /// Optuna's order: complete trials by value first; pruned trials only fill the group when
    /// fewer than `gamma(n)` trials are complete, those that evaluated more seeds first, then
    /// by the race's estimate. Optuna's own TPE ranks an exported study this way.
    AfterComplete,
    /// Complete trials by value and pruned trials by the race's estimate μ̂ of their mean, in
    /// one ranking (ties in trial order). A pruned trial's μ̂ is worse than the best value when
    /// it was pruned, but often better than the older incumbents a study mostly keeps as its
    /// complete trials once most trials are pruned. The default.
    #[default]
    ByEstimate,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            refine_rounds: 5,
            refine_candidates: 12,
            pruned: PrunedRank::ByEstimate,
            ..TpeConfig::optuna()
        }
    }
}

impl TpeConfig {
    /// Exactly Optuna 5.0's `TPESampler()` for a single-objective study: 10 startup trials, 24
    /// candidates, `gamma = min(ceil(0.1·n), 25)`, ramped weights, prior weight 1, magic clip,
    /// no endpoints, multivariate, constant liar, no acquisition refinement, pruned trials after complete ones.
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
            pruned: PrunedRank::AfterComplete,
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

    pub(crate) fn parzen(&self) -> ParzenParams {
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
/// Per trial: the `n` finished trials (complete and pruned; failed ones excluded) are split
/// into the best `gamma(n)` ("below") and the rest ("above", plus running trials under the
/// constant liar). By default ([`PrunedRank::ByEstimate`]) the below group ranks complete
/// trials by value and pruned trials by the race's estimate of their mean
/// ([`slurptuna_core::RaceOutcome`]'s `estimate`) together; with [`PrunedRank::AfterComplete`]
/// (Optuna's order, [`TpeConfig::optuna`]) it takes complete trials by value first and, only if
/// fewer than `gamma(n)` trials are complete, fills up with pruned trials, those that evaluated
/// more seeds first, then by estimate (Optuna's last step and last intermediate value). A Parzen estimator is fitted to each group, `n_ei_candidates`
/// candidates are drawn from the below density `l(x)` and the one maximising `l(x)/g(x)` is
/// proposed. Values (and pruned trials' estimates) are negated when maximising. A candidate
/// identical to a running trial's parameters is never proposed when another candidate exists.
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
/// Cost: between asks the sampler keeps the history in its internal form (converted
/// observations, per-parameter sorted orders, the best trials) and, for the joint model, the
/// "above" mixture in a k-d tree that is updated in place: a new trial changes the bandwidths
/// of its neighbours only. Candidates are scored by exact branch and bound (a candidate
/// whose bound cannot reach the best ones is not evaluated in full; see `Scored`), so a
/// proposal costs `O(n)` simple steps plus a few density evaluations that visit only the
/// kernels near the candidate. The result is bit for bit what a fresh sampler would propose.
/// Concurrent asks on one sampler are safe (one of them uses the memo, the others build
/// their own).
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
    /// The proposal, given the synchronised history `hist` holding `n` finished rows.
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
        // Split: the gamma(n) best (by `config.pruned`, ties in trial order) are below, the
        // rest above.
        let n_below = self.config.gamma.below(n);
        let below = hist.below_rows(
            ctx.direction == Direction::Maximize,
            n_below,
            self.config.pruned,
        );
        let table = &mut hist.table;
        let mut row = vec![0.0; width];
        let mut n_running = 0;
        if self.config.constant_liar {
            for p in ctx.running {
                if dims.encode(p, &mut row) {
                    table.data.extend_from_slice(&row);
                    n_running += 1;
                }
            }
        }
        let p = self.config.parzen();
        let History {
            table,
            sorted,
            reuse,
            epoch,
            ..
        } = hist;
        let Reuse {
            mass,
            scratch,
            above: tree,
        } = reuse;
        // The joint model's above mixture, kept between asks.
        let mut joint = |rng: &mut R, mass: &mut Vec<Vec<(f64, f64)>>, scratch: &mut Scratch| {
            let model = Model::new(dims, 0..width);
            let rows = Members {
                table,
                sorted,
                epoch: *epoch,
                n_done: n,
                below: &below,
                n_running,
            };
            tree.update(&model, &rows, &p);
            let raw = self.propose(
                dims,
                &model,
                table,
                &below,
                &mut Above::Kept(tree),
                ctx,
                rng,
                true,
                mass,
                scratch,
            );
            tree.undo_running(table, &p);
            raw
        };
        if self.config.multivariate {
            return Ok(dims.decode(&joint(rng, mass, scratch)));
        }
        let mut is_below = vec![false; n];
        for &r in &below {
            is_below[r as usize] = true;
        }
        // The above rows in trial order: finished ones not below, then the running ones.
        let above: Vec<u32> = (0..n as u32)
            .filter(|&r| !is_below[r as usize])
            .chain(n as u32..(n + n_running) as u32)
            .collect();
        let above_sorted = above_orders(sorted, table, &is_below, n, above.len());
        let mut raw = vec![0.0; width];
        for col in 0..width {
            if matches!(dims.dims[col], Dim::Fixed) {
                continue;
            }
            let model = Model::new(dims, [col]);
            let g = Estimator::fit(
                &model,
                table,
                &above,
                &p,
                scratch,
                Some(&above_sorted),
                Some(&mut mass[..]),
            );
            let one = self.propose(
                dims,
                &model,
                table,
                &below,
                &mut Above::Fitted(&g),
                ctx,
                rng,
                false,
                mass,
                scratch,
            );
            g.recycle(scratch);
            raw[col] = one[col];
        }
        let params = dims.decode(&raw);
        if ctx.running.contains(&params) {
            // The per-parameter winners together equal a running trial: propose this one
            // from the joint model, which skips candidates equal to running trials.
            return Ok(dims.decode(&joint(rng, mass, scratch)));
        }
        Ok(params)
    }
}

/// The sorted orders of the above group (finished rows not in `is_below`, then the running
/// rows `n..`) from the sorted orders of all finished rows: `O(n)` per column.
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

/// The above density of a proposal.
enum Above<'a, 'd> {
    /// Fitted for this proposal.
    Fitted(&'a Estimator<'d>),
    /// The joint model's mixture kept between asks: candidates that cannot reach the top are
    /// recognised from a bound and not evaluated in full (see [`Scored`]).
    Kept(&'a mut AboveMixture),
}

impl TpeSampler {
    /// Proposes raw values for the columns of `model` (a full-width row; other columns are
    /// 0): the below mixture is fitted to `below`, `g` gives the above log-density.
    #[allow(clippy::too_many_arguments)]
    fn propose<R: Rng>(
        &self,
        dims: &Dims<'_>,
        model: &Model<'_>,
        table: &Table,
        below: &[u32],
        g: &mut Above<'_, '_>,
        ctx: &AskContext<'_>,
        rng: &mut R,
        avoid_running: bool,
        mass: &mut [Vec<(f64, f64)>],
        scratch: &mut Scratch,
    ) -> Vec<f64> {
        if model.is_empty() {
            return vec![0.0; dims.len()];
        }
        let p = self.config.parzen();
        let l = Estimator::fit(model, table, below, &p, scratch, None, Some(mass));
        let c = self.config.n_ei_candidates;
        let mut cands = Cands::default();
        // Only the best `keep` candidates need exact values: the refinement centres and the
        // proposal.
        let keep = if self.config.refine_rounds > 0 {
            REFINE_CENTRES
        } else {
            1
        };
        let mut best = Scored::new(keep, dims.len());
        // The many draws of the candidates come from a fast generator seeded from the trial's
        // stream (still a pure function of the seed and the trial number).
        let mut draws = Xoshiro256PlusPlus::from_seed(rng.gen());
        let rng = &mut draws;
        l.sample(rng, c, &mut cands);
        best.score(&l, g, table, &cands, scratch);
        for round in 0..self.config.refine_rounds {
            let shrink = 0.5f64.powi(round as i32 + 1);
            let top = best.top(REFINE_CENTRES);
            let local = l.localised(&top, shrink);
            if round + 1 == self.config.refine_rounds {
                // After the last round only the best candidate matters.
                best.keep = 1;
            }
            local.sample(rng, self.config.refine_candidates, &mut cands);
            best.score(&l, g, table, &cands, scratch);
        }
        let ok = |row: &[f64]| {
            !avoid_running || ctx.running.is_empty() || !ctx.running.contains(&dims.decode(row))
        };
        if !best.settled(ok) {
            // Every exact candidate that could win is taken by a running trial: evaluate the
            // bounded ones exactly.
            let rows = best.bounded_rows();
            let cands = Cands::from_rows(&l, &rows);
            let mut exact = Scored::new(usize::MAX, dims.len());
            exact.score(&l, g, table, &cands, scratch);
            best.replace_bounded(&exact.acq);
        }
        let picked = best.pick(ok);
        l.recycle(scratch);
        picked
    }
}

/// Number of best candidates a refinement round centres its kernels on.
const REFINE_CENTRES: usize = 4;

/// Candidates seen so far with their acquisition `ln l − ln g`.
///
/// Exact branch and bound: `ln g(x)` is at least the prior kernel's term, so `ln l(x)` minus
/// that term bounds the acquisition from above. A candidate whose bound is below the
/// `keep`-th best exact acquisition so far can be neither a refinement centre nor the
/// proposal; it keeps its bound instead of an exact value. The top `keep` and the proposal
/// are therefore the ones a full evaluation gives.
struct Scored {
    keep: usize,
    /// Raw rows of the candidates, `width` values each.
    width: usize,
    rows: Vec<f64>,
    acq: Vec<f64>,
    /// Whether `acq` is exact (else an upper bound).
    exact: Vec<bool>,
    /// The best `keep` exact candidates, best first.
    top: Vec<usize>,
}

impl Scored {
    fn new(keep: usize, width: usize) -> Self {
        Scored {
            keep,
            width,
            rows: Vec::new(),
            acq: Vec::new(),
            exact: Vec::new(),
            top: Vec::new(),
        }
    }

    /// Scores a batch of candidates.
    fn score(
        &mut self,
        l: &Estimator<'_>,
        g: &mut Above<'_, '_>,
        table: &Table,
        cands: &Cands,
        s: &mut Scratch,
    ) {
        match g {
            Above::Fitted(g) => {
                let mut ll = vec![0.0; cands.n];
                let mut lg = vec![0.0; cands.n];
                l.log_pdf(cands, &mut ll, s);
                g.log_pdf(cands, &mut lg, s);
                for (i, (&ll, &lg)) in ll.iter().zip(&lg).enumerate() {
                    self.push(cands.row(i), ll - lg, true);
                }
            }
            Above::Kept(g) => {
                // ln g ≥ the prior kernel's term, so `ln l − prior term` bounds the
                // acquisition. Candidates are evaluated in descending order of that bound,
                // so the threshold rises as fast as it can; once a bound falls below it,
                // so do all the rest.
                let mut ll = vec![0.0; cands.n];
                l.log_pdf(cands, &mut ll, s);
                let prior: Vec<f64> = (0..cands.n).map(|i| g.prior_term(cands, i)).collect();
                let mut value: Vec<(f64, bool)> =
                    (0..cands.n).map(|i| (ll[i] - prior[i], false)).collect();
                let mut order: Vec<usize> = (0..cands.n).collect();
                order.sort_by(|&a, &b| value[b].0.total_cmp(&value[a].0).then(a.cmp(&b)));
                let mut top: Vec<f64> = self.top.iter().map(|&i| self.acq[i]).collect();
                for i in order {
                    let threshold = if top.len() >= self.keep {
                        top[self.keep - 1]
                    } else {
                        f64::NEG_INFINITY
                    };
                    if value[i].0 < threshold {
                        break;
                    }
                    // Stop as soon as one term puts the acquisition below the threshold.
                    value[i] = match g.log_pdf_at(table, cands, i, prior[i], ll[i] - threshold) {
                        Ok(lg) => {
                            let a = ll[i] - lg;
                            let a = if a.is_nan() { f64::NEG_INFINITY } else { a };
                            insert_top(&mut top, a, self.keep);
                            (a, true)
                        }
                        Err(term) => (ll[i] - term, false),
                    };
                }
                for (i, (a, exact)) in value.into_iter().enumerate() {
                    self.push(cands.row(i), a, exact);
                }
            }
        }
    }

    fn push(&mut self, row: &[f64], a: f64, exact: bool) {
        let a = if a.is_nan() { f64::NEG_INFINITY } else { a };
        self.rows.extend_from_slice(row);
        self.acq.push(a);
        self.exact.push(exact);
        if exact {
            let i = self.acq.len() - 1;
            let at = self.top.partition_point(|&b| self.before(b, i));
            if at < self.keep {
                self.top.insert(at, i);
                self.top.truncate(self.keep);
            }
        }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * self.width..(i + 1) * self.width]
    }

    /// Whether candidate `a` ranks before `b`: higher acquisition, then earlier.
    fn before(&self, a: usize, b: usize) -> bool {
        self.acq[b].total_cmp(&self.acq[a]).then(a.cmp(&b)).is_lt()
    }

    /// The indices of the `k` best candidates, best first.
    fn best(&self, k: usize) -> Vec<usize> {
        let mut best: Vec<usize> = Vec::with_capacity(k + 1);
        for i in 0..self.acq.len() {
            let at = best.partition_point(|&b| self.before(b, i));
            if at < k {
                best.insert(at, i);
                best.truncate(k);
            }
        }
        best
    }

    /// The `k ≤ keep` best rows (all exact: a bounded candidate ranks below them).
    fn top(&self, k: usize) -> Vec<&[f64]> {
        self.top.iter().take(k).map(|&i| self.row(i)).collect()
    }

    /// All candidates, best first.
    fn ranked(&self) -> Vec<usize> {
        self.best(self.acq.len())
    }

    /// The first candidate in rank order accepted by `ok` among those `admit`ted.
    fn first(&self, admit: impl Fn(usize) -> bool, ok: impl Fn(&[f64]) -> bool) -> Option<usize> {
        // Usually the best one is accepted: rank everything only when it is not.
        let best = (0..self.acq.len()).filter(|&i| admit(i)).reduce(|a, b| {
            if self.before(b, a) {
                b
            } else {
                a
            }
        })?;
        if ok(self.row(best)) {
            return Some(best);
        }
        self.ranked()
            .into_iter()
            .find(|&i| admit(i) && ok(self.row(i)))
    }

    /// Whether the best exact row accepted by `ok` beats every bounded row, so that
    /// [`Scored::pick`] gives what a full evaluation would.
    fn settled(&self, ok: impl Fn(&[f64]) -> bool) -> bool {
        if self.exact.iter().all(|&e| e) {
            return true;
        }
        let bounded = (0..self.acq.len())
            .filter(|&i| !self.exact[i])
            .map(|i| self.acq[i])
            .fold(f64::NEG_INFINITY, f64::max);
        self.first(|i| self.exact[i], ok)
            .is_some_and(|i| self.acq[i] > bounded)
    }

    /// The rows with a bound instead of an exact value.
    fn bounded_rows(&self) -> Vec<Vec<f64>> {
        (0..self.acq.len())
            .filter(|&i| !self.exact[i])
            .map(|i| self.row(i).to_vec())
            .collect()
    }

    /// Replaces the bounds, in order, by exact values.
    fn replace_bounded(&mut self, exact: &[f64]) {
        let mut values = exact.iter();
        for (a, e) in self.acq.iter_mut().zip(&mut self.exact) {
            if !*e {
                if let Some(&v) = values.next() {
                    *a = v;
                }
                *e = true;
            }
        }
    }

    /// The best row (first on ties) accepted by `ok`, else the best row.
    fn pick(&self, ok: impl Fn(&[f64]) -> bool) -> Vec<f64> {
        self.first(|_| true, ok)
            .or_else(|| self.first(|_| true, |_| true))
            .map(|i| self.row(i).to_vec())
            .unwrap_or_default()
    }
}

/// Inserts `a` into the descending list `top` of at most `keep` values.
fn insert_top(top: &mut Vec<f64>, a: f64, keep: usize) {
    let at = top.partition_point(|&x| x >= a);
    if at < keep {
        top.insert(at, a);
        top.truncate(keep);
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
