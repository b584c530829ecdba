//! The Parzen estimator of TPE: a mixture of product kernels (truncated normals for numeric
//! dimensions, smoothed one-hot rows for categorical ones) plus one wide prior kernel, following
//! Optuna 5.0's `_ParzenEstimator`.
//!
//! Cost: building is `O(D · m)` when the sorted order of each numeric dimension and the
//! truncation normalisers are handed in from an earlier ask (see [`crate::memo`]), else
//! `O(D · m log m)`. Every candidate-independent term (log-weights, `ln σ`, normalisers) is
//! precomputed per kernel, in dimension-major arrays (for large mixtures in ascending order of
//! the first continuous mean, so that the kernels near a candidate are contiguous). The
//! log-density of a candidate streams over the first dimensions of all kernels (or, for large
//! mixtures, only over the blocks of kernels near it along the first dimension), drops every
//! kernel whose term is provably negligible against a lower bound of the largest one, and
//! finishes the few survivors; no allocation happens per candidate or kernel.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::dims::{Dim, Dims, NumDim};
use crate::math::{log_gauss_mass, ndtr, ndtri, LN_SQRT_2PI};
use crate::tpe::Weights;

/// A kernel whose log-term is this far below the running maximum adds less than one part in
/// 1e15 per kernel to the mixture density: it is skipped.
pub(crate) const NEGLIGIBLE: f64 = 36.0;

/// Options of the estimator (a subset of [`crate::TpeConfig`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ParzenParams {
    pub(crate) prior_weight: f64,
    pub(crate) consider_magic_clip: bool,
    pub(crate) consider_endpoints: bool,
    pub(crate) weights: Weights,
}

/// Which space columns a model covers, grouped by kind (model order = declaration order
/// within each kind).
#[derive(Clone, Debug)]
pub(crate) struct Model<'d> {
    /// Width of a full row (number of space dimensions).
    pub(crate) width: usize,
    pub(crate) cont: Vec<(usize, &'d NumDim)>,
    pub(crate) disc: Vec<(usize, &'d NumDim)>,
    pub(crate) cat: Vec<(usize, usize)>,
}

impl<'d> Model<'d> {
    /// A model over the given columns of `dims` (fixed columns are ignored).
    pub(crate) fn new(dims: &'d Dims<'_>, cols: impl IntoIterator<Item = usize>) -> Self {
        let mut m = Model {
            width: dims.len(),
            cont: Vec::new(),
            disc: Vec::new(),
            cat: Vec::new(),
        };
        for col in cols {
            match &dims.dims[col] {
                Dim::Num(n) if n.discrete() => m.disc.push((col, n)),
                Dim::Num(n) => m.cont.push((col, n)),
                Dim::Cat(k) => m.cat.push((col, *k)),
                Dim::Fixed => {}
            }
        }
        m
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cont.is_empty() && self.disc.is_empty() && self.cat.is_empty()
    }
}

/// Observations: full rows of internal values (see [`Dims::encode`]), row-major.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    pub(crate) width: usize,
    pub(crate) data: Vec<f64>,
}

impl Table {
    #[inline]
    pub(crate) fn get(&self, row: usize, col: usize) -> f64 {
        self.data[row * self.width + col]
    }
}

/// Mixture weights of `m` observations in trial order (Optuna's `default_weights`).
pub(crate) fn observation_weights(weights: Weights, m: usize, out: &mut Vec<f64>) {
    out.clear();
    match weights {
        Weights::Uniform => out.resize(m, 1.0),
        Weights::Optuna if m < 25 => out.resize(m, 1.0),
        Weights::Optuna => {
            let num = m - 25;
            let start = 1.0 / m as f64;
            if num == 1 {
                out.push(start);
            } else if num > 1 {
                let step = (1.0 - start) / (num - 1) as f64;
                out.extend((0..num).map(|i| start + i as f64 * step));
                if let Some(last) = out.last_mut() {
                    *last = 1.0;
                }
            }
            out.resize(m, 1.0);
        }
    }
}

/// Sorts `order` to the positions `0..mus.len()` in ascending order of `(mus[i], i)`: ties
/// keep observation order, so every way of producing this order gives the same bandwidths.
pub(crate) fn sort_positions(mus: &[f64], order: &mut Vec<u32>) {
    // Sorted as integers: the bits of a float mapped so that integer order is `total_cmp`
    // order, then the position.
    let key = |x: f64| {
        let bits = x.to_bits();
        bits ^ ((((bits as i64) >> 63) as u64) >> 1) ^ (1 << 63)
    };
    let mut keys: Vec<u128> = mus
        .iter()
        .enumerate()
        .map(|(i, &x)| (u128::from(key(x)) << 32) | i as u128)
        .collect();
    keys.sort_unstable();
    order.clear();
    order.extend(keys.iter().map(|&k| k as u32));
}

/// Neighbour-gap bandwidths of Optuna 5 (both modes), then the magic clip. `order` lists the
/// positions of `mus` in ascending order of `(value, position)` (see [`sort_positions`]).
pub(crate) fn neighbour_sigmas(
    mus: &[f64],
    order: &[u32],
    lo: f64,
    hi: f64,
    p: &ParzenParams,
    out: &mut Vec<f64>,
) {
    let m = mus.len();
    out.clear();
    out.resize(m, 0.0);
    if m == 0 {
        return;
    }
    let range = hi - lo;
    let min_sigma = if p.consider_magic_clip {
        range / (m as f64 + 2.0).min(100.0)
    } else {
        1e-12
    };
    // Plain compares (the values are never NaN): cheaper than `f64::max`/`min`/`clamp`.
    let max = |a: f64, b: f64| if a > b { a } else { b };
    let clip = |sigma: f64| {
        let s = if sigma > min_sigma { sigma } else { min_sigma };
        if s < range {
            s
        } else {
            range
        }
    };
    let at = |i: usize| mus[order[i] as usize];
    if m == 1 {
        let x = at(0);
        out[order[0] as usize] = clip(max(x - lo, hi - x));
        return;
    }
    // Neighbours in [lo, sorted mus..., hi]; the ends use their inner gap unless the domain
    // edges count.
    let ends = !p.consider_endpoints;
    let (x0, x1) = (at(0), at(1));
    out[order[0] as usize] = clip(if ends { x1 - x0 } else { max(x0 - lo, x1 - x0) });
    let (mut prev, mut cur) = (x0, x1);
    for w in order[1..].windows(2) {
        let next = mus[w[1] as usize];
        out[w[0] as usize] = clip(max(cur - prev, next - cur));
        (prev, cur) = (cur, next);
    }
    out[order[m - 1] as usize] = clip(if ends {
        cur - prev
    } else {
        max(cur - prev, hi - cur)
    });
}

/// A categorical dimension of the mixture.
#[derive(Clone, Debug)]
struct CatKernels {
    col: usize,
    n_choices: usize,
    /// Observed index per observation kernel (the prior kernel has none).
    obs: Vec<u32>,
    p_hit: f64,
    p_miss: f64,
    ln_hit: f64,
    ln_miss: f64,
    /// Probability of each choice under the prior kernel.
    #[cfg_attr(not(test), allow(dead_code))]
    p_prior: f64,
    ln_prior: f64,
}

/// A discrete numeric dimension (ints, stepped floats): bin masses.
#[derive(Clone, Debug)]
struct DiscKernels<'d> {
    col: usize,
    dim: &'d NumDim,
    mu: Vec<f64>,
    sigma: Vec<f64>,
    inv_sigma: Vec<f64>,
    /// `ln(Φ(b_k) − Φ(a_k))` over the whole (step-extended) domain.
    norm: Vec<f64>,
}

/// A fitted mixture `Σ_k w_k Π_j K_kj`.
#[derive(Clone, Debug)]
pub(crate) struct Estimator<'d> {
    n_kernels: usize,
    #[cfg_attr(not(test), allow(dead_code))]
    weights: Vec<f64>,
    cum_weights: Vec<f64>,
    cont: Vec<(usize, &'d NumDim)>,
    /// Dimension-major `[j * n_kernels + k]`, so that one dimension of all kernels is one
    /// contiguous run (the log-density streams over it).
    cont_mu: Vec<f64>,
    cont_sigma: Vec<f64>,
    /// `1 / (σ √2)`, so that a kernel's exponent is `−((z − μ)·s)²`.
    cont_scale: Vec<f64>,
    /// Per kernel: `ln w_k − Σ_cont (ln σ + ln √(2π) + ln mass)`.
    base: Vec<f64>,
    disc: Vec<DiscKernels<'d>>,
    cat: Vec<CatKernels>,
    width: usize,
    /// For large mixtures: the observation kernels in blocks along the first continuous
    /// dimension.
    blocks: Option<Blocks>,
    /// Storage position of each observation kernel (in observation order) when the kernels
    /// are stored in another order (ascending first continuous mean, for [`Blocks`]); empty
    /// when they are stored in observation order. Every per-kernel array (`cont_*`, `base`,
    /// `disc`, `cat`) uses the storage order; `weights` and `cum_weights` the observation
    /// order. The prior kernel is always last.
    slot: Vec<u32>,
}

/// Mixtures with at least this many observation kernels get [`Blocks`].
const BLOCKS_MIN: usize = 64;
/// Kernels per block.
const BLOCK: usize = 16;

/// Blocks of [`BLOCK`] consecutive observation kernels of an estimator whose kernels are
/// stored in ascending order of their first continuous mean, with per-block bounds: the
/// log-density skips every block whose best possible term after that dimension is negligible,
/// instead of visiting its kernels.
#[derive(Clone, Debug)]
struct Blocks {
    /// Per block: lowest and highest first mean, largest `base`, smallest first scale.
    lo: Vec<f64>,
    hi: Vec<f64>,
    base_max: Vec<f64>,
    scale_min: Vec<f64>,
}

impl Blocks {
    /// Bounds of the first `m` kernels of `base` and of the first dimension of `mu`/`scale`
    /// (kernels in storage order, ascending `mu`).
    fn new(base: &[f64], mu: &[f64], scale: &[f64], m: usize) -> Self {
        let nb = m.div_ceil(BLOCK);
        let (mut lo, mut hi) = (Vec::with_capacity(nb), Vec::with_capacity(nb));
        let (mut base_max, mut scale_min) = (Vec::with_capacity(nb), Vec::with_capacity(nb));
        for b in 0..nb {
            let r = b * BLOCK..((b + 1) * BLOCK).min(m);
            lo.push(mu[r.start]);
            hi.push(mu[r.end - 1]);
            base_max.push(
                base[r.clone()]
                    .iter()
                    .fold(f64::NEG_INFINITY, |x, &y| x.max(y)),
            );
            scale_min.push(scale[r].iter().fold(f64::INFINITY, |x, &y| x.min(y)));
        }
        Blocks {
            lo,
            hi,
            base_max,
            scale_min,
        }
    }
}

/// Reusable buffers for building estimators.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    order: Vec<u32>,
    weights: Vec<f64>,
    /// Partial log-terms of every kernel for one candidate.
    acc: Vec<f64>,
    /// Kernels still above the negligibility floor, and how many of `live` are in use.
    live: Vec<u32>,
    count: usize,
    /// Spare buffers for the arrays of the next estimator (see [`Estimator::recycle`]): a
    /// scratch kept from one ask to the next saves the allocator from handing large arrays
    /// back to the system and faulting them in again.
    pool: Vec<Vec<f64>>,
}

/// Spare buffers kept in a [`Scratch`] at most.
const POOL_MAX: usize = 16;

impl Scratch {
    /// An empty buffer with room for `capacity` values.
    fn take(&mut self, capacity: usize) -> Vec<f64> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.reserve(capacity);
        v
    }

    fn give(&mut self, v: Vec<f64>) {
        if self.pool.len() < POOL_MAX && v.capacity() > 0 {
            self.pool.push(v);
        }
    }
}

impl<'d> Estimator<'d> {
    /// Fits the estimator to `rows` of `table` (in trial order; weights ramp along it).
    /// `sorted[col]`, when given and not empty, lists the positions `0..rows.len()` in
    /// ascending order of `(value in col, position)` (as [`sort_positions`] would); otherwise
    /// each numeric column is sorted here. `mass[col][row]`, when given, remembers per table
    /// column and row a bandwidth and the log truncation mass of the kernel centred on that
    /// row's value with it (NaN: nothing yet); it is used when the bandwidth is the same and
    /// updated otherwise. Large mixtures store their kernels in ascending order of the first
    /// continuous mean (see [`Blocks`]); sampling still picks kernels by their weights in
    /// observation order.
    pub(crate) fn fit(
        model: &Model<'d>,
        table: &Table,
        rows: &[u32],
        p: &ParzenParams,
        s: &mut Scratch,
        sorted: Option<&[Vec<u32>]>,
        mut mass: Option<&mut [Vec<(f64, f64)>]>,
    ) -> Self {
        let presorted = |col: usize| sorted.and_then(|v| v.get(col)).filter(|o| !o.is_empty());
        let m = rows.len();
        let n_kernels = m + 1;
        let mut weights = s.take(n_kernels);
        if m == 0 {
            weights.push(1.0);
        } else {
            observation_weights(p.weights, m, &mut s.weights);
            weights.extend_from_slice(&s.weights);
            weights.push(p.prior_weight);
        }
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
        let mut cum_weights = s.take(weights.len());
        let mut c = 0.0;
        for w in &weights {
            c += w;
            cum_weights.push(c);
        }
        let mut base = s.take(n_kernels);
        base.extend(weights.iter().map(|w| w.ln()));

        let n_cont = model.cont.len();
        let mut cont_mu = s.take(n_kernels * n_cont);
        let mut cont_sigma = s.take(n_kernels * n_cont);
        let mut cont_scale = s.take(n_kernels * n_cont);
        // Π_j σ_kj, folded into the log only when it leaves [2^-500, 2^500] (one `ln` per
        // kernel instead of one per kernel and dimension).
        let mut sigma_prod = s.take(n_kernels);
        sigma_prod.resize(n_kernels, 1.0);
        let mut perm = None;
        // Log truncation mass of each kernel in the current dimension.
        let mut masses = s.take(n_kernels);
        for &(col, dim) in &model.cont {
            fit_numeric(dim, table, rows, col, p, s, presorted(col));
            if perm.is_none() && m >= BLOCKS_MIN {
                // The order fit_numeric used: given, or sorted into s.order.
                perm = Some(match presorted(col) {
                    Some(o) if o.len() == m => o.clone(),
                    _ => s.order.clone(),
                });
            }
            // Dimension-major `[j * n_kernels + k]`, in storage order.
            match &perm {
                Some(perm) => {
                    cont_mu.extend(perm.iter().map(|&k| s.mus[k as usize]));
                    cont_mu.push(s.mus[m]);
                    cont_sigma.extend(perm.iter().map(|&k| s.sigmas[k as usize]));
                    cont_sigma.push(s.sigmas[m]);
                }
                None => {
                    cont_mu.extend_from_slice(&s.mus);
                    cont_sigma.extend_from_slice(&s.sigmas);
                }
            }
            // Bandwidths are mostly equal (the magic clip): one division per distinct run.
            let (mut last, mut last_scale) = (f64::NAN, f64::NAN);
            for &sigma in &cont_sigma[cont_sigma.len() - n_kernels..] {
                if sigma != last {
                    (last, last_scale) = (sigma, std::f64::consts::FRAC_1_SQRT_2 * (1.0 / sigma));
                }
                cont_scale.push(last_scale);
            }
            let log_mass = |k: usize| {
                let (mu, inv) = (s.mus[k], 1.0 / s.sigmas[k]);
                central_log_mass((dim.lo - mu) * inv, (dim.hi - mu) * inv)
            };
            // Rows past the memo (running trials) and the prior are computed afresh.
            let memo: &mut [(f64, f64)] = match mass.as_deref_mut() {
                Some(mass) => mass.get_mut(col).map_or(&mut [][..], |v| v.as_mut_slice()),
                None => &mut [],
            };
            masses.clear();
            for (k, &sigma) in s.sigmas.iter().enumerate() {
                // `rows` has no entry for the prior (k = m).
                let slot = rows.get(k).and_then(|&r| memo.get_mut(r as usize));
                let log_mass = match slot {
                    Some(slot) => {
                        if slot.0 != sigma {
                            *slot = (sigma, log_mass(k));
                        }
                        slot.1
                    }
                    None => log_mass(k),
                };
                masses.push(log_mass);
            }
            let leaves = |p: f64, sigma: f64| !(1e-150..1e150).contains(&(p * sigma));
            let any_leaves = sigma_prod
                .iter()
                .zip(&s.sigmas)
                .fold(false, |any, (&p, &sigma)| any | leaves(p, sigma));
            if any_leaves {
                for ((b, prod), (&sigma, &log_mass)) in base
                    .iter_mut()
                    .zip(&mut sigma_prod)
                    .zip(s.sigmas.iter().zip(&masses))
                {
                    *b -= log_mass;
                    let next = *prod * sigma;
                    if (1e-150..1e150).contains(&next) {
                        *prod = next;
                    } else {
                        *b -= next.ln();
                        *prod = 1.0;
                    }
                }
            } else {
                // The usual case, in straight-line passes.
                for (b, &log_mass) in base.iter_mut().zip(&masses) {
                    *b -= log_mass;
                }
                for (prod, &sigma) in sigma_prod.iter_mut().zip(&s.sigmas) {
                    *prod *= sigma;
                }
            }
        }
        if n_cont > 0 {
            // Bandwidths are mostly equal (the magic clip), so are their products: one `ln`
            // per distinct run.
            let (mut last, mut ln_last) = (f64::NAN, f64::NAN);
            for (b, &prod) in base.iter_mut().zip(&sigma_prod) {
                if prod != last {
                    (last, ln_last) = (prod, prod.ln());
                }
                *b -= ln_last + LN_SQRT_2PI * n_cont as f64;
            }
        }

        let mut disc: Vec<DiscKernels<'d>> = model
            .disc
            .iter()
            .map(|&(col, dim)| {
                fit_numeric(dim, table, rows, col, p, s, presorted(col));
                let mu = s.mus.clone();
                let sigma = s.sigmas.clone();
                let inv_sigma: Vec<f64> = sigma.iter().map(|s| 1.0 / s).collect();
                let norm = mu
                    .iter()
                    .zip(&inv_sigma)
                    .map(|(&mu, &is)| central_log_mass((dim.lo - mu) * is, (dim.hi - mu) * is))
                    .collect();
                DiscKernels {
                    col,
                    dim,
                    mu,
                    sigma,
                    inv_sigma,
                    norm,
                }
            })
            .collect();

        let mut cat: Vec<CatKernels> = model
            .cat
            .iter()
            .map(|&(col, n_choices)| {
                let c = n_choices as f64;
                let obs: Vec<u32> = rows
                    .iter()
                    .map(|&r| table.get(r as usize, col) as u32)
                    .collect();
                let (p_hit, p_miss, p_prior) = if m == 0 {
                    (1.0 / c, 1.0 / c, 1.0 / c)
                } else {
                    let eps = p.prior_weight / n_kernels as f64;
                    let row = 1.0 + c * eps;
                    let prior = if eps > 0.0 { 1.0 / c } else { 0.0 };
                    ((1.0 + eps) / row, eps / row, prior)
                };
                CatKernels {
                    col,
                    n_choices,
                    obs,
                    p_hit,
                    p_miss,
                    ln_hit: p_hit.ln(),
                    ln_miss: p_miss.ln(),
                    p_prior,
                    ln_prior: p_prior.ln(),
                }
            })
            .collect();

        s.give(sigma_prod);
        s.give(masses);
        let mut slot = Vec::new();
        let blocks = perm.map(|perm| {
            // Storage order for the remaining per-kernel arrays.
            let gather = |v: &[f64]| -> Vec<f64> {
                perm.iter()
                    .map(|&k| v[k as usize])
                    .chain(v.get(m).copied())
                    .collect()
            };
            let mut stored = s.take(n_kernels);
            stored.extend(perm.iter().map(|&k| base[k as usize]));
            stored.push(base[m]);
            s.give(std::mem::replace(&mut base, stored));
            for d in &mut disc {
                d.mu = gather(&d.mu);
                d.sigma = gather(&d.sigma);
                d.inv_sigma = gather(&d.inv_sigma);
                d.norm = gather(&d.norm);
            }
            for c in &mut cat {
                c.obs = perm.iter().map(|&k| c.obs[k as usize]).collect();
            }
            slot = vec![0; m];
            for (q, &k) in perm.iter().enumerate() {
                slot[k as usize] = q as u32;
            }
            Blocks::new(&base, &cont_mu, &cont_scale, m)
        });
        Estimator {
            n_kernels,
            weights,
            cum_weights,
            cont: model.cont.clone(),
            cont_mu,
            cont_sigma,
            cont_scale,
            base,
            disc,
            cat,
            width: model.width,
            blocks,
            slot,
        }
    }

    /// Hands the large arrays back to `s` for the next estimator.
    pub(crate) fn recycle(self, s: &mut Scratch) {
        for v in [
            self.weights,
            self.cum_weights,
            self.cont_mu,
            self.cont_sigma,
            self.cont_scale,
            self.base,
        ] {
            s.give(v);
        }
    }

    /// Storage position of kernel `k` (observation order; the prior is last).
    #[inline]
    fn slot(&self, k: usize) -> usize {
        self.slot.get(k).map_or(k, |&q| q as usize)
    }

    /// Normalised mixture weights (observations in order, then the prior).
    #[cfg(test)]
    pub(crate) fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Kernel means and bandwidths of space column `col` (transformed space), if numeric.
    #[cfg(test)]
    pub(crate) fn kernels_of(&self, col: usize) -> Option<(Vec<f64>, Vec<f64>)> {
        if let Some(j) = self.cont.iter().position(|&(c, _)| c == col) {
            let at = |v: &[f64]| -> Vec<f64> {
                (0..self.n_kernels)
                    .map(|k| v[j * self.n_kernels + self.slot(k)])
                    .collect()
            };
            return Some((at(&self.cont_mu), at(&self.cont_sigma)));
        }
        self.disc.iter().find(|d| d.col == col).map(|d| {
            let at =
                |v: &[f64]| -> Vec<f64> { (0..self.n_kernels).map(|k| v[self.slot(k)]).collect() };
            (at(&d.mu), at(&d.sigma))
        })
    }

    /// The probability of `choice` under kernel `k` for categorical column `col`.
    #[cfg(test)]
    pub(crate) fn category_prob(&self, col: usize, k: usize, choice: usize) -> Option<f64> {
        let c = self.cat.iter().find(|c| c.col == col)?;
        Some(if k >= c.obs.len() {
            c.p_prior
        } else if c.obs[self.slot(k)] as usize == choice {
            c.p_hit
        } else {
            c.p_miss
        })
    }

    /// Draws `count` candidates from the mixture into `out` (replacing its contents).
    pub(crate) fn sample<R: Rng>(&self, rng: &mut R, count: usize, out: &mut Cands) {
        out.reset(self, count);
        let nk = self.n_kernels;
        for i in 0..count {
            let u: f64 = rng.gen();
            let k = self
                .cum_weights
                .partition_point(|&c| c <= u * self.cum_weights[self.n_kernels - 1])
                .min(self.n_kernels - 1);
            let k = self.slot(k);
            for (j, c) in self.cat.iter().enumerate() {
                let u: f64 = rng.gen();
                let x = if k >= c.obs.len() {
                    ((u * c.n_choices as f64) as usize).min(c.n_choices - 1)
                } else {
                    let hit = c.obs[k] as usize;
                    let mut acc = 0.0;
                    let mut pick = c.n_choices - 1;
                    for choice in 0..c.n_choices {
                        acc += if choice == hit { c.p_hit } else { c.p_miss };
                        if u < acc {
                            pick = choice;
                            break;
                        }
                    }
                    pick
                };
                out.cat[j * count + i] = x as u32;
                out.raw[i * self.width + c.col] = x as f64;
            }
            for (j, &(col, dim)) in self.cont.iter().enumerate() {
                let (mu, sigma) = (self.cont_mu[j * nk + k], self.cont_sigma[j * nk + k]);
                let z = draw_trunc(rng, mu, sigma, dim.lo, dim.hi);
                let x = dim.snap(z);
                out.cont[j * count + i] = dim.t(x);
                out.raw[i * self.width + col] = x;
            }
            for (j, d) in self.disc.iter().enumerate() {
                let z = draw_trunc(rng, d.mu[k], d.sigma[k], d.dim.lo, d.dim.hi);
                let x = d.dim.snap(z);
                out.set_disc(j, i, d.dim, x);
                out.raw[i * self.width + d.col] = x;
            }
        }
    }

    /// A mixture for local refinement: one equally weighted kernel per row of `centres` (raw
    /// values), with this estimator's mean observation bandwidth times `shrink` per numeric
    /// dimension and its categorical smoothing. Only for sampling (its log-density is not
    /// normalised).
    pub(crate) fn localised(&self, centres: &[&[f64]], shrink: f64) -> Estimator<'d> {
        if centres.is_empty() {
            return self.clone();
        }
        let k = centres.len();
        let m_obs = self.n_kernels.saturating_sub(1).max(1);
        let mean_sigma = |sig: &dyn Fn(usize) -> f64| -> f64 {
            (0..m_obs).map(sig).sum::<f64>() / m_obs as f64 * shrink
        };
        let nc = self.cont.len();
        let mut cont_mu = Vec::with_capacity(k * nc);
        let mut cont_sigma = Vec::with_capacity(k * nc);
        let nk = self.n_kernels;
        for (j, &(col, dim)) in self.cont.iter().enumerate() {
            let sig = mean_sigma(&|kk| self.cont_sigma[j * nk + self.slot(kk)]);
            for row in centres {
                cont_mu.push(dim.t(row[col]));
                cont_sigma.push(sig);
            }
        }
        let disc = self
            .disc
            .iter()
            .map(|d| {
                let s = mean_sigma(&|kk| d.sigma[self.slot(kk)]);
                DiscKernels {
                    col: d.col,
                    dim: d.dim,
                    mu: centres.iter().map(|r| d.dim.t(r[d.col])).collect(),
                    sigma: vec![s; centres.len()],
                    inv_sigma: vec![1.0 / s; centres.len()],
                    norm: vec![0.0; centres.len()],
                }
            })
            .collect();
        let cat = self
            .cat
            .iter()
            .map(|c| CatKernels {
                obs: centres.iter().map(|r| r[c.col] as u32).collect(),
                ..c.clone()
            })
            .collect();
        let weights = vec![1.0 / k as f64; k];
        let cum_weights = (1..=k).map(|i| i as f64 / k as f64).collect();
        Estimator {
            n_kernels: k,
            weights,
            cum_weights,
            cont: self.cont.clone(),
            cont_scale: cont_sigma
                .iter()
                .map(|s| std::f64::consts::FRAC_1_SQRT_2 / s)
                .collect(),
            cont_mu,
            cont_sigma,
            base: vec![0.0; k],
            disc,
            cat,
            width: self.width,
            blocks: None,
            slot: Vec::new(),
        }
    }

    /// `ln p(x)` of every candidate in `cands`, written to `out`.
    ///
    /// Per candidate: the first (up to two) continuous dimensions of all kernels in one
    /// branch-free pass over contiguous arrays; the full terms of the kernel with the best
    /// partial term and of the prior kernel bound the largest term from below; kernels whose partial term (an upper
    /// bound of their full term) lies [`NEGLIGIBLE`] below that are dropped, and the survivors
    /// take the remaining dimensions one at a time, dropping out as they fall below.
    pub(crate) fn log_pdf(&self, cands: &Cands, out: &mut [f64], s: &mut Scratch) {
        for (i, out_i) in out.iter_mut().enumerate().take(cands.n) {
            let max = self.terms_at(cands, i, s);
            *out_i = self.sum_terms(s, max);
        }
    }

    /// The terms of the kernels within reach of candidate `i`, left in `s` for
    /// [`Estimator::sum_terms`]; returns the largest. Small mixtures (no [`Blocks`]) are
    /// evaluated in full; large ones skip the blocks and kernels that cannot matter.
    fn terms_at(&self, cands: &Cands, i: usize, s: &mut Scratch) -> f64 {
        let n = cands.n;
        let nk = self.n_kernels;
        let nc = self.cont.len();
        let first = nc.min(2);
        let Scratch { acc, live, .. } = s;
        let prior = nk - 1;
        if acc.len() < nk {
            acc.resize(nk, 0.0);
            live.resize(nk, 0);
        }
        let Some(b) = &self.blocks else {
            // Every term, in straight passes over contiguous arrays.
            let acc = &mut acc[..nk];
            acc.copy_from_slice(&self.base[..nk]);
            for j in 0..nc {
                let z = cands.cont[j * n + i];
                let mu = &self.cont_mu[j * nk..(j + 1) * nk];
                let sc = &self.cont_scale[j * nk..(j + 1) * nk];
                for ((a, &mu), &sc) in acc.iter_mut().zip(mu).zip(sc) {
                    let t = (z - mu) * sc;
                    *a -= t * t;
                }
            }
            let floor = if self.cat.is_empty() && self.disc.is_empty() {
                f64::NEG_INFINITY
            } else {
                let p = self.finish_term(cands, i, prior, nc, acc[prior], f64::NEG_INFINITY);
                p - NEGLIGIBLE - self.disc_bound()
            };
            let mut max = f64::NEG_INFINITY;
            for (k, (a, l)) in acc.iter_mut().zip(live.iter_mut()).enumerate() {
                if floor > f64::NEG_INFINITY {
                    *a = self.finish_term(cands, i, k, nc, *a, floor);
                }
                *l = k as u32;
                max = max.max(*a);
            }
            s.count = nk;
            return max;
        };
        let acc = &mut acc[..nk];
        let (mut best, mut best_a) = (prior, f64::NEG_INFINITY);
        // The prior kernel (last) is wide, so never far from any point: its full
        // term bounds the largest term from below.
        let mut a = self.base[prior];
        for j in 0..first {
            let t = (cands.cont[j * n + i] - self.cont_mu[j * nk + prior])
                * self.cont_scale[j * nk + prior];
            a -= t * t;
        }
        acc[prior] = a;
        let mut floor = self.finish_term(cands, i, prior, first, a, f64::NEG_INFINITY)
            - NEGLIGIBLE
            - self.disc_bound();
        live[0] = prior as u32;
        let mut count = 1;
        let m = nk - 1;
        let z0 = cands.cont[i];
        let z1 = if first == 2 { cands.cont[n + i] } else { 0.0 };
        for blk in 0..b.lo.len() {
            let gap = (b.lo[blk] - z0).max(z0 - b.hi[blk]).max(0.0) * b.scale_min[blk];
            if b.base_max[blk] - gap * gap < floor {
                continue;
            }
            let r = blk * BLOCK..((blk + 1) * BLOCK).min(m);
            let len = r.len();
            let mut part = [0.0f64; BLOCK];
            let (mu, sc, base) = (
                &self.cont_mu[r.clone()],
                &self.cont_scale[r.clone()],
                &self.base[r.clone()],
            );
            for (((p, &mu), &sc), &base) in part.iter_mut().zip(mu).zip(sc).zip(base) {
                let t = (z0 - mu) * sc;
                *p = base - t * t;
            }
            if first == 2 {
                let r1 = nk + r.start..nk + r.end;
                let (mu, sc) = (&self.cont_mu[r1.clone()], &self.cont_scale[r1]);
                for ((p, &mu), &sc) in part.iter_mut().zip(mu).zip(sc) {
                    let t = (z1 - mu) * sc;
                    *p -= t * t;
                }
            }
            for (k, &a) in r.zip(&part[..len]) {
                acc[k] = a;
                live[count] = k as u32;
                if a >= floor {
                    count += 1;
                    if a > best_a {
                        best_a = a;
                        best = k;
                    }
                }
            }
        }
        // The full term of the best partial one raises the bound.
        if best != prior {
            let a = self.finish_term(cands, i, best, first, best_a, f64::NEG_INFINITY);
            floor = floor.max(a - NEGLIGIBLE - self.disc_bound());
        }
        // Two dimensions per pass (a kernel dropped one dimension later ends below the
        // floor all the same: terms only decrease).
        let mut j = first;
        while j + 1 < nc {
            let (z, z2) = (cands.cont[j * n + i], cands.cont[(j + 1) * n + i]);
            let mu = &self.cont_mu[j * nk..(j + 2) * nk];
            let sc = &self.cont_scale[j * nk..(j + 2) * nk];
            let mut kept = 0;
            for r in 0..count {
                let k = live[r] as usize;
                let t = (z - mu[k]) * sc[k];
                let t2 = (z2 - mu[nk + k]) * sc[nk + k];
                let a = acc[k] - t * t - t2 * t2;
                acc[k] = a;
                live[kept] = k as u32;
                kept += usize::from(a >= floor);
            }
            count = kept;
            j += 2;
        }
        if j < nc {
            let z = cands.cont[j * n + i];
            let mu = &self.cont_mu[j * nk..(j + 1) * nk];
            let sc = &self.cont_scale[j * nk..(j + 1) * nk];
            let mut kept = 0;
            for r in 0..count {
                let k = live[r] as usize;
                let t = (z - mu[k]) * sc[k];
                let a = acc[k] - t * t;
                acc[k] = a;
                live[kept] = k as u32;
                kept += usize::from(a >= floor);
            }
            count = kept;
        }
        let mut max = f64::NEG_INFINITY;
        for &k in &live[..count] {
            let k = k as usize;
            let a = self.finish_term(cands, i, k, nc, acc[k], floor);
            acc[k] = a;
            max = max.max(a);
        }
        s.count = count;
        max
    }

    /// `ln p(x)` from the terms left by [`Estimator::terms_at`] and their largest, `max`.
    fn sum_terms(&self, s: &Scratch, max: f64) -> f64 {
        log_sum_exp(self.kept_terms(s), max)
    }

    /// The terms left by [`Estimator::terms_at`], in the order [`Estimator::sum_terms`]
    /// adds them.
    fn kept_terms<'s>(&self, s: &'s Scratch) -> impl Iterator<Item = f64> + 's {
        s.live[..s.count].iter().map(|&k| s.acc[k as usize])
    }

    /// See [`disc_bound`].
    fn disc_bound(&self) -> f64 {
        disc_bound(self.disc.len())
    }

    /// Kernel `k`'s full log-term at candidate `i`, given `partial` = its term over the
    /// continuous dimensions before `from`; the (costly) discrete bin masses are left out
    /// when the term is already below `floor`.
    #[inline]
    fn finish_term(
        &self,
        cands: &Cands,
        i: usize,
        k: usize,
        from: usize,
        partial: f64,
        floor: f64,
    ) -> f64 {
        let n = cands.n;
        let nk = self.n_kernels;
        let mut a = partial;
        for j in from..self.cont.len() {
            let t =
                (cands.cont[j * n + i] - self.cont_mu[j * nk + k]) * self.cont_scale[j * nk + k];
            a -= t * t;
        }
        for (j, c) in self.cat.iter().enumerate() {
            let x = cands.cat[j * n + i];
            a += match c.obs.get(k) {
                None => c.ln_prior,
                Some(&hit) if hit == x => c.ln_hit,
                Some(_) => c.ln_miss,
            };
        }
        if self.disc.is_empty() || a < floor || a == f64::NEG_INFINITY {
            return a;
        }
        for (j, d) in self.disc.iter().enumerate() {
            let (lo, hi) = (cands.disc_lo[j * n + i], cands.disc_hi[j * n + i]);
            let (mu, is) = (d.mu[k], d.inv_sigma[k]);
            a += log_gauss_mass((lo - mu) * is, (hi - mu) * is) - d.norm[k];
        }
        a
    }
}

/// The most `n_disc` discrete dimensions can add to a kernel's term: a bin mass is ≤ 1 and a
/// normaliser ≥ ln(Φ(1) − ½) (kernel centres lie inside the domain, σ ≤ range).
pub(crate) fn disc_bound(n_disc: usize) -> f64 {
    -(0.341_344_746_068_542_9_f64.ln()) * n_disc as f64
}

/// `max + ln Σ exp(t − max)` over the `terms` within [`NEGLIGIBLE`] of their largest, `max`.
fn log_sum_exp(terms: impl Iterator<Item = f64>, max: f64) -> f64 {
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let mut sum = 0.0;
    for a in terms {
        if a > max - NEGLIGIBLE {
            sum += (a - max).exp();
        }
    }
    max + sum.ln()
}

/// Fills `s.mus`/`s.sigmas` with the kernels of one numeric column (observations, then prior).
fn fit_numeric(
    dim: &NumDim,
    table: &Table,
    rows: &[u32],
    col: usize,
    p: &ParzenParams,
    s: &mut Scratch,
    sorted: Option<&Vec<u32>>,
) {
    s.mus.clear();
    let column = table.data.get(col..).unwrap_or_default();
    s.mus.extend(rows.iter().map(|&r| {
        column
            .get(r as usize * table.width)
            .copied()
            .unwrap_or(f64::NAN)
    }));
    let order = match sorted {
        Some(order) if order.len() == rows.len() => order.as_slice(),
        _ => {
            sort_positions(&s.mus, &mut s.order);
            s.order.as_slice()
        }
    };
    neighbour_sigmas(&s.mus, order, dim.lo, dim.hi, p, &mut s.sigmas);
    s.mus.push(0.5 * (dim.lo + dim.hi));
    s.sigmas.push(dim.hi - dim.lo);
}

/// Beyond this many standard deviations, a tail's mass (`Φ(−8.5) < 1e-17`) does not change a
/// normaliser in double precision.
const TAIL: f64 = 8.5;

/// `ln(Φ(b) − Φ(a))` for `a ≤ 0 ≤ b` (a kernel centred inside its domain), skipping tails
/// that cannot change the result in double precision.
#[inline]
pub(crate) fn central_log_mass(a: f64, b: f64) -> f64 {
    if a <= 0.0 && b >= 0.0 {
        if a <= -TAIL && b >= TAIL {
            return 0.0;
        }
        let left = if a > -TAIL { ndtr(a) } else { 0.0 };
        let right = if b < TAIL { ndtr(-b) } else { 0.0 };
        (-left - right).ln_1p()
    } else {
        log_gauss_mass(a, b)
    }
}

/// Standard-normal draws tried before [`draw_trunc`] falls back to the inverse CDF.
const REJECT_TRIES: usize = 32;

/// One draw from `N(μ, σ²)` truncated to `[lo, hi]`: by rejection of plain normal draws
/// (a kernel centred in its domain with `σ ≤ range` keeps at least `Φ(1) − ½ ≈ 34%` of its
/// mass inside, so a few tries suffice), then, after [`REJECT_TRIES`] misses, by inverse CDF.
/// Both paths draw from the exact truncated distribution.
#[inline]
fn draw_trunc<R: Rng>(rng: &mut R, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    for _ in 0..REJECT_TRIES {
        let x: f64 = rng.sample(StandardNormal);
        let z = mu + sigma * x;
        if z >= lo && z <= hi {
            return z;
        }
    }
    Trunc::new(mu, sigma, lo, hi).draw(rng.gen())
}

/// The draw-independent part of a truncated-normal draw by inverse CDF, computed once per
/// kernel and dimension.
#[derive(Clone, Copy, Debug)]
struct Trunc {
    mu: f64,
    sigma: f64,
    lo: f64,
    hi: f64,
    /// Standardised bounds.
    a: f64,
    b: f64,
    /// `Φ(a)`, `Φ(b) − Φ(a)`, `Φ(−b)` on the usual path (`a ≤ 0 ≤ b`, not both tails
    /// negligible).
    pa: f64,
    mass: f64,
    qb: f64,
}

impl Trunc {
    fn new(mu: f64, sigma: f64, lo: f64, hi: f64) -> Self {
        let a = (lo - mu) / sigma;
        let b = (hi - mu) / sigma;
        let (mut pa, mut mass, mut qb) = (0.0, 1.0, 0.0);
        if !(a <= -TAIL && b >= TAIL) && a <= 0.0 && b >= 0.0 {
            let pb = ndtr(b);
            pa = ndtr(a);
            mass = pb - pa;
            qb = ndtr(-b);
        }
        Trunc {
            mu,
            sigma,
            lo,
            hi,
            a,
            b,
            pa,
            mass,
            qb,
        }
    }

    #[inline]
    fn draw(&self, u: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        let x = if a <= -TAIL && b >= TAIL {
            // The truncation removes less than 1e-17 of the mass: a plain normal draw.
            if u < 0.5 {
                ndtri(u)
            } else {
                -ndtri(1.0 - u)
            }
        } else if a <= 0.0 && b >= 0.0 {
            // Inline fast path of `trunc_norm_ppf` (the usual case).
            let p = self.pa + u * self.mass;
            if p < 0.5 {
                ndtri(p)
            } else {
                -ndtri(self.qb + (1.0 - u) * self.mass)
            }
        } else {
            crate::math::trunc_norm_ppf(u, a, b)
        };
        (self.mu + self.sigma * x.clamp(a, b)).clamp(self.lo, self.hi)
    }
}

/// A batch of candidates in the layout the log-density wants (dimension-major per kind), plus
/// their full raw rows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cands {
    pub(crate) n: usize,
    width: usize,
    /// Transformed values of continuous dimensions, `[j * n + i]`.
    pub(crate) cont: Vec<f64>,
    /// Bin edges (transformed) of discrete dimensions, `[j * n + i]`.
    pub(crate) disc_lo: Vec<f64>,
    pub(crate) disc_hi: Vec<f64>,
    /// Choice indices of categorical dimensions, `[j * n + i]`.
    pub(crate) cat: Vec<u32>,
    /// Raw (snapped) values, full rows `[i * width + col]`.
    pub(crate) raw: Vec<f64>,
}

impl Cands {
    fn reset(&mut self, e: &Estimator<'_>, n: usize) {
        self.n = n;
        self.width = e.width;
        self.cont.clear();
        self.cont.resize(e.cont.len() * n, 0.0);
        self.disc_lo.clear();
        self.disc_lo.resize(e.disc.len() * n, 0.0);
        self.disc_hi.clear();
        self.disc_hi.resize(e.disc.len() * n, 0.0);
        self.cat.clear();
        self.cat.resize(e.cat.len() * n, 0);
        self.raw.clear();
        self.raw.resize(e.width * n, 0.0);
    }

    #[inline]
    fn set_disc(&mut self, j: usize, i: usize, dim: &NumDim, x: f64) {
        let (lo, hi) = dim.bin(x);
        self.disc_lo[j * self.n + i] = lo;
        self.disc_hi[j * self.n + i] = hi;
    }

    /// Candidates from given raw rows (values on the grid, categorical indices).
    pub(crate) fn from_rows(e: &Estimator<'_>, rows: &[Vec<f64>]) -> Self {
        let mut c = Cands::default();
        let n = rows.len();
        c.reset(e, n);
        for (i, row) in rows.iter().enumerate() {
            c.raw[i * e.width..(i + 1) * e.width].copy_from_slice(&row[..e.width]);
            for (j, &(col, dim)) in e.cont.iter().enumerate() {
                c.cont[j * n + i] = dim.t(row[col]);
            }
            for (j, d) in e.disc.iter().enumerate() {
                c.set_disc(j, i, d.dim, row[d.col]);
            }
            for (j, k) in e.cat.iter().enumerate() {
                c.cat[j * n + i] = row[k.col] as u32;
            }
        }
        c
    }

    /// The raw row of candidate `i`.
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.raw[i * self.width..(i + 1) * self.width]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ParzenParams {
        ParzenParams {
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            weights: Weights::Optuna,
        }
    }

    #[test]
    fn default_weights_ramp_like_optuna() {
        let mut w = Vec::new();
        observation_weights(Weights::Optuna, 3, &mut w);
        assert_eq!(w, vec![1.0; 3]);
        observation_weights(Weights::Optuna, 26, &mut w);
        assert_eq!(w[0], 1.0 / 26.0);
        assert_eq!(&w[1..], &[1.0; 25]);
        observation_weights(Weights::Optuna, 30, &mut w);
        assert_eq!(w.len(), 30);
        assert_eq!(w[0], 1.0 / 30.0);
        assert_eq!(w[4], 1.0);
        assert!((w[2] - (1.0 / 30.0 + 2.0 * (1.0 - 1.0 / 30.0) / 4.0)).abs() < 1e-15);
    }

    #[test]
    fn sigmas_follow_the_neighbour_rule() {
        let (mut out, mut order) = (Vec::new(), Vec::new());
        let p = params();
        sort_positions(&[0.3], &mut order);
        neighbour_sigmas(&[0.3], &order, 0.0, 1.0, &p, &mut out);
        assert_eq!(out, vec![0.7]);
        let mus = [0.9, 0.1, 0.2, 0.5];
        sort_positions(&mus, &mut order);
        assert_eq!(order, vec![1, 2, 3, 0]);
        neighbour_sigmas(&mus, &order, 0.0, 1.0, &p, &mut out);
        // sorted 0.1 0.2 0.5 0.9: ends use their inner neighbour, inner the larger gap,
        // then clip to [1/6, 1].
        for (a, b) in out.iter().zip([0.4, 1.0 / 6.0, 0.3, 0.4]) {
            assert!((a - b).abs() < 1e-15, "{out:?}");
        }
    }

    #[test]
    fn ties_are_ordered_by_position() {
        let mut order = Vec::new();
        sort_positions(&[0.5, -1.0, 0.5, -1.0, 0.5], &mut order);
        assert_eq!(order, vec![1, 3, 0, 2, 4]);
        // The integer keys order like `total_cmp`, signs, zeros and infinities included.
        let mus = [
            3.0,
            -0.0,
            f64::INFINITY,
            0.0,
            -2.5,
            1e-300,
            f64::NEG_INFINITY,
            -1e-300,
            -2.5,
            7.25,
        ];
        sort_positions(&mus, &mut order);
        let mut expect: Vec<u32> = (0..mus.len() as u32).collect();
        expect.sort_by(|&a, &b| mus[a as usize].total_cmp(&mus[b as usize]).then(a.cmp(&b)));
        assert_eq!(order, expect);
    }

    #[test]
    fn reused_orders_masses_and_blocks_change_nothing() {
        use rand::{Rng, SeedableRng};
        use slurptuna_core::{search_param, ParamSpace};
        let space = ParamSpace::new([
            ("a", search_param().range(-5.0, 5.0)),
            ("b", search_param().range(1e-3, 1.0).dtype("log")),
            ("c", search_param().range(0.0, 1.0)),
            ("k", search_param().range(0, 9).dtype("int")),
        ])
        .unwrap();
        let dims = Dims::new(&space);
        let width = dims.len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let m = 300;
        let mut table = Table {
            width,
            data: Vec::new(),
        };
        for _ in 0..m {
            // Clustered near the edges too, so that truncation matters for some kernels.
            table
                .data
                .push(rng.gen_range(-5.0f64..5.0).clamp(-4.9, 4.9));
            table.data.push(rng.gen_range(1e-3f64..1.0).ln());
            table.data.push(rng.gen_range(0.0..1.0f64).powi(3));
            table.data.push(rng.gen_range(0..10) as f64);
        }
        let rows: Vec<u32> = (0..m as u32).filter(|r| r % 7 != 3).collect();
        let model = Model::new(&dims, 0..width);
        let p = params();
        let mut s = Scratch::default();
        let plain = Estimator::fit(&model, &table, &rows, &p, &mut s, None, None);
        assert!(plain.blocks.is_some(), "a large mixture gets blocks");
        let sorted: Vec<Vec<u32>> = (0..width)
            .map(|col| {
                let mus: Vec<f64> = rows.iter().map(|&r| table.get(r as usize, col)).collect();
                let mut order = Vec::new();
                sort_positions(&mus, &mut order);
                order
            })
            .collect();
        let mut mass = vec![vec![(f64::NAN, 0.0); m]; width];
        for _ in 0..2 {
            // First fills the masses, then reuses them.
            let reused = Estimator::fit(
                &model,
                &table,
                &rows,
                &p,
                &mut s,
                Some(&sorted),
                Some(&mut mass),
            );
            assert_eq!(reused.base, plain.base);
            assert_eq!(reused.cont_sigma, plain.cont_sigma);
        }
        let mut cands = Cands::default();
        plain.sample(&mut rng, 64, &mut cands);
        let mut unblocked = plain.clone();
        unblocked.blocks = None;
        let (mut a, mut b) = (vec![0.0; 64], vec![0.0; 64]);
        plain.log_pdf(&cands, &mut a, &mut s);
        unblocked.log_pdf(&cands, &mut b, &mut s);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
        }
    }

    /// One fixture case computed by Optuna 5.0's `_ParzenEstimator`
    /// (`bench/sampler/parzen_fixtures.py`).
    fn check_case(case: &serde_json::Value) {
        use slurptuna_core::{Distribution, ParamSpace, ParamValue};
        let label = case["label"].as_str().unwrap();
        let f = |v: &serde_json::Value| v.as_f64().unwrap();
        let space: Vec<(String, Distribution)> = case["space"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_string();
                let log = p["log"].as_bool().unwrap_or(false);
                let d = match p["kind"].as_str().unwrap() {
                    "cat" => Distribution::Categorical {
                        choices: (0..p["choices"].as_u64().unwrap())
                            .map(|i| ParamValue::Str(format!("c{i}")))
                            .collect(),
                    },
                    "int" => Distribution::Int {
                        low: p["low"].as_i64().unwrap(),
                        high: p["high"].as_i64().unwrap(),
                        log,
                        step: p["step"].as_i64().unwrap(),
                    },
                    _ => Distribution::Float {
                        low: f(&p["low"]),
                        high: f(&p["high"]),
                        log,
                        step: p["step"].as_f64(),
                    },
                };
                (name, d)
            })
            .collect();
        let space = ParamSpace::from_distributions(space).unwrap();
        let dims = Dims::new(&space);
        let width = dims.len();
        let to_internal = |row: &[f64]| -> Vec<f64> {
            row.iter()
                .zip(&dims.dims)
                .map(|(&x, d)| match d {
                    Dim::Num(n) => n.t(x),
                    _ => x,
                })
                .collect()
        };
        let rows: Vec<Vec<f64>> = case["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(f).collect())
            .collect();
        let mut table = Table {
            width,
            data: Vec::new(),
        };
        for r in &rows {
            table.data.extend(to_internal(r));
        }
        let p = ParzenParams {
            prior_weight: f(&case["prior_weight"]),
            consider_magic_clip: case["consider_magic_clip"].as_bool().unwrap(),
            consider_endpoints: case["consider_endpoints"].as_bool().unwrap(),
            weights: Weights::Optuna,
        };
        let model = Model::new(&dims, 0..width);
        let idx: Vec<u32> = (0..rows.len() as u32).collect();
        let mut scratch = Scratch::default();
        let e = Estimator::fit(&model, &table, &idx, &p, &mut scratch, None, None);

        let close = |a: f64, b: f64, what: &str| {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{label}: {what}: got {a}, optuna {b}"
            );
        };
        let want_w: Vec<f64> = case["weights"].as_array().unwrap().iter().map(f).collect();
        assert_eq!(e.weights().len(), want_w.len(), "{label}: kernel count");
        for (a, b) in e.weights().iter().zip(&want_w) {
            close(*a, *b, "weight");
        }
        for (col, (name, _)) in space.iter().enumerate() {
            let k = &case["kernels"][name];
            if let Some(probs) = k["probs"].as_array() {
                for (kernel, row) in probs.iter().enumerate() {
                    for (choice, want) in row.as_array().unwrap().iter().enumerate() {
                        let got = e.category_prob(col, kernel, choice).unwrap();
                        close(got, f(want), &format!("{name} kernel {kernel} p({choice})"));
                    }
                }
            } else {
                let (mu, sigma) = e.kernels_of(col).unwrap();
                let want_mu: Vec<f64> = k["mu"].as_array().unwrap().iter().map(f).collect();
                let want_sigma: Vec<f64> = k["sigma"].as_array().unwrap().iter().map(f).collect();
                assert_eq!(mu.len(), want_mu.len(), "{label}: {name} kernels");
                for i in 0..mu.len() {
                    close(mu[i], want_mu[i], &format!("{name} mu[{i}]"));
                    // Tied means share their bandwidths in an order numpy's unstable argsort
                    // decides: compare the bandwidths of each group of tied means as sets.
                    let tied = |s: &[f64]| {
                        let mut g: Vec<f64> = (0..mu.len())
                            .filter(|&j| want_mu[j] == want_mu[i])
                            .map(|j| s[j])
                            .collect();
                        g.sort_by(f64::total_cmp);
                        g
                    };
                    for (a, b) in tied(&sigma).iter().zip(&tied(&want_sigma)) {
                        close(*a, *b, &format!("{name} sigma[{i}]"));
                    }
                }
            }
        }
        let points: Vec<Vec<f64>> = case["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(f).collect())
            .collect();
        let cands = Cands::from_rows(&e, &points);
        let mut got = vec![0.0; points.len()];
        e.log_pdf(&cands, &mut got, &mut scratch);
        for (i, want) in case["log_pdf"].as_array().unwrap().iter().enumerate() {
            close(got[i], f(want), &format!("log_pdf at {:?}", points[i]));
        }
    }

    #[test]
    fn parzen_estimator_matches_optuna_reference_values() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/parzen.json")).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            check_case(case);
        }
    }
}
