//! The Parzen estimator of TPE: a mixture of product kernels (truncated normals for numeric
//! dimensions, smoothed one-hot rows for categorical ones) plus one wide prior kernel, following
//! Optuna 5.0's `_ParzenEstimator`.
//!
//! Cost: building is `O(D · m log m)` (one sort per numeric dimension); the log-density of `C`
//! candidates is `O(C · m · D)` with every candidate-independent term (log-weights, `ln σ`,
//! truncation normalisers) precomputed per kernel, and kernels whose contribution is below
//! double precision skipped before the discrete bin masses are computed.

use rand::Rng;

use crate::dims::{Dim, Dims, NumDim};
use crate::math::{log_gauss_mass, ndtr, ndtri, LN_SQRT_2PI};
use crate::tpe::Weights;

/// A kernel whose log-term is this far below the running maximum adds less than one part in
/// 1e15 per kernel to the mixture density: it is skipped.
const NEGLIGIBLE: f64 = 36.0;

/// Options of the estimator (a subset of [`crate::TpeConfig`]).
#[derive(Clone, Copy, Debug)]
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

/// Neighbour-gap bandwidths of Optuna 5 (both modes), then the magic clip.
pub(crate) fn neighbour_sigmas(
    mus: &[f64],
    lo: f64,
    hi: f64,
    p: &ParzenParams,
    out: &mut Vec<f64>,
    order: &mut Vec<u64>,
    counts: &mut Vec<u32>,
) {
    let m = mus.len();
    out.clear();
    out.resize(m, 0.0);
    if m == 0 {
        return;
    }
    // Sort plain u64 keys: the value's order bits with the observation index in the low
    // `bits` bits. Values closer than 2^-(52 - bits) relative may swap places, which changes
    // the gaps by that much: far below any bandwidth the clip allows.
    let bits = usize::BITS - (m.max(2) - 1).leading_zeros();
    let low_mask = (1u64 << bits) - 1;
    sort_keys(mus, lo, hi, low_mask, order, counts);
    let idx = |i: usize| (order[i] & low_mask) as usize;
    let at = |i: usize| -> f64 {
        // Position i in [lo, sorted mus..., hi].
        if i == 0 {
            lo
        } else if i > m {
            hi
        } else {
            mus[idx(i - 1)]
        }
    };
    for i in 0..m {
        let (left, mid, right) = (at(i), at(i + 1), at(i + 2));
        out[idx(i)] = (mid - left).max(right - mid);
    }
    if !p.consider_endpoints && m >= 2 {
        out[idx(0)] = at(2) - at(1);
        out[idx(m - 1)] = at(m) - at(m - 1);
    }
    let range = hi - lo;
    let min_sigma = if p.consider_magic_clip {
        range / (m as f64 + 2.0).min(100.0)
    } else {
        1e-12
    };
    for s in out.iter_mut() {
        *s = s.clamp(min_sigma, range);
    }
}

/// Fills `order` with the keys `(order bits of x) | index` of `mus`, ascending: a bucket pass
/// over `[lo, hi]` (one bucket per value on average), then a sort inside each bucket. Linear
/// for spread-out values, never worse than one full sort.
fn sort_keys(
    mus: &[f64],
    lo: f64,
    hi: f64,
    low_mask: u64,
    order: &mut Vec<u64>,
    counts: &mut Vec<u32>,
) {
    let m = mus.len();
    let key = |i: usize, x: f64| (order_key(x) & !low_mask) | i as u64;
    let scale = m as f64 / (hi - lo);
    if m < 32 || !(scale.is_finite() && scale > 0.0) {
        order.clear();
        order.extend(mus.iter().enumerate().map(|(i, &x)| key(i, x)));
        order.sort_unstable();
        return;
    }
    // Monotone in x: a larger value never lands in an earlier bucket. The bucket of value i is
    // parked in the low half of counts[m + 1 + i] to compute it once.
    let top = (m - 1) as f64;
    counts.clear();
    counts.resize(2 * m + 1, 0);
    let (hist, buckets) = counts.split_at_mut(m + 1);
    for (&x, slot) in mus.iter().zip(buckets.iter_mut()) {
        let b = ((x - lo) * scale).clamp(0.0, top) as u32;
        *slot = b;
        hist[b as usize + 1] += 1;
    }
    for b in 1..=m {
        hist[b] += hist[b - 1];
    }
    order.clear();
    order.resize(m, 0);
    for (i, (&x, &b)) in mus.iter().zip(buckets.iter()).enumerate() {
        let at = &mut hist[b as usize];
        if let Some(o) = order.get_mut(*at as usize) {
            *o = key(i, x);
        }
        *at += 1;
    }
    let counts = &*hist;
    // counts[b] is now the end of bucket b; bucket b starts at the end of bucket b - 1.
    let mut start = 0usize;
    for &end in &counts[..m] {
        let end = end as usize;
        if end - start > 1 {
            order[start..end].sort_unstable();
        }
        start = end;
    }
}

/// A total-order key for finite floats.
#[inline]
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
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
    /// Kernel-major `[k * n_cont + j]`.
    cont_mu: Vec<f64>,
    cont_sigma: Vec<f64>,
    /// `1 / (σ √2)`, so that a kernel's exponent is `−((z − μ)·s)²`.
    cont_scale: Vec<f64>,
    /// Per kernel: `ln w_k − Σ_cont (ln σ + ln √(2π) + ln mass)`.
    base: Vec<f64>,
    disc: Vec<DiscKernels<'d>>,
    cat: Vec<CatKernels>,
    width: usize,
}

/// Reusable buffers for building estimators.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    order: Vec<u64>,
    counts: Vec<u32>,
    weights: Vec<f64>,
    acc: Vec<f64>,
}

impl<'d> Estimator<'d> {
    /// Fits the estimator to `rows` of `table` (in trial order; weights ramp along it).
    pub(crate) fn fit(
        model: &Model<'d>,
        table: &Table,
        rows: &[u32],
        p: &ParzenParams,
        s: &mut Scratch,
    ) -> Self {
        let m = rows.len();
        let n_kernels = m + 1;
        let mut weights = Vec::with_capacity(n_kernels);
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
        let mut cum_weights = Vec::with_capacity(weights.len());
        let mut c = 0.0;
        for w in &weights {
            c += w;
            cum_weights.push(c);
        }
        let mut base: Vec<f64> = weights.iter().map(|w| w.ln()).collect();

        let n_cont = model.cont.len();
        let mut cont_mu = vec![0.0; n_kernels * n_cont];
        let mut cont_sigma = vec![0.0; n_kernels * n_cont];
        let mut cont_scale = vec![0.0; n_kernels * n_cont];
        // Π_j σ_kj, folded into the log only when it leaves [2^-500, 2^500] (one `ln` per
        // kernel instead of one per kernel and dimension).
        let mut sigma_prod = vec![1.0f64; n_kernels];
        for (j, &(col, dim)) in model.cont.iter().enumerate() {
            fit_numeric(dim, table, rows, col, p, s);
            for k in 0..n_kernels {
                let (mu, sigma) = (s.mus[k], s.sigmas[k]);
                let inv = 1.0 / sigma;
                cont_mu[k * n_cont + j] = mu;
                cont_sigma[k * n_cont + j] = sigma;
                cont_scale[k * n_cont + j] = std::f64::consts::FRAC_1_SQRT_2 * inv;
                base[k] -= central_log_mass((dim.lo - mu) * inv, (dim.hi - mu) * inv);
                let prod = sigma_prod[k] * sigma;
                if (1e-150..1e150).contains(&prod) {
                    sigma_prod[k] = prod;
                } else {
                    base[k] -= prod.ln();
                    sigma_prod[k] = 1.0;
                }
            }
        }
        if n_cont > 0 {
            for (b, prod) in base.iter_mut().zip(&sigma_prod) {
                *b -= prod.ln() + LN_SQRT_2PI * n_cont as f64;
            }
        }

        let disc = model
            .disc
            .iter()
            .map(|&(col, dim)| {
                fit_numeric(dim, table, rows, col, p, s);
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

        let cat = model
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
        }
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
            let n = self.cont.len();
            let mu = (0..self.n_kernels).map(|k| self.cont_mu[k * n + j]);
            let sigma = (0..self.n_kernels).map(|k| self.cont_sigma[k * n + j]);
            return Some((mu.collect(), sigma.collect()));
        }
        self.disc
            .iter()
            .find(|d| d.col == col)
            .map(|d| (d.mu.clone(), d.sigma.clone()))
    }

    /// The probability of `choice` under kernel `k` for categorical column `col`.
    #[cfg(test)]
    pub(crate) fn category_prob(&self, col: usize, k: usize, choice: usize) -> Option<f64> {
        let c = self.cat.iter().find(|c| c.col == col)?;
        Some(if k >= c.obs.len() {
            c.p_prior
        } else if c.obs[k] as usize == choice {
            c.p_hit
        } else {
            c.p_miss
        })
    }

    /// Draws `count` candidates from the mixture into `out` (replacing its contents).
    pub(crate) fn sample<R: Rng>(&self, rng: &mut R, count: usize, out: &mut Cands) {
        out.reset(self, count);
        let nc = self.cont.len();
        for i in 0..count {
            let u: f64 = rng.gen();
            let k = self
                .cum_weights
                .partition_point(|&c| c <= u * self.cum_weights[self.n_kernels - 1])
                .min(self.n_kernels - 1);
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
                let (mu, sigma) = (self.cont_mu[k * nc + j], self.cont_sigma[k * nc + j]);
                let z = draw_trunc(rng.gen(), mu, sigma, dim.lo, dim.hi);
                let x = dim.snap(z);
                out.cont[j * count + i] = dim.t(x);
                out.raw[i * self.width + col] = x;
            }
            for (j, d) in self.disc.iter().enumerate() {
                let z = draw_trunc(rng.gen(), d.mu[k], d.sigma[k], d.dim.lo, d.dim.hi);
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
        let sig: Vec<f64> = (0..nc)
            .map(|j| mean_sigma(&|kk| self.cont_sigma[kk * nc + j]))
            .collect();
        for row in centres {
            for (j, &(col, dim)) in self.cont.iter().enumerate() {
                cont_mu.push(dim.t(row[col]));
                cont_sigma.push(sig[j]);
            }
        }
        let disc = self
            .disc
            .iter()
            .map(|d| {
                let s = mean_sigma(&|kk| d.sigma[kk]);
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
        }
    }

    /// `ln p(x)` of every candidate in `cands`, written to `out`.
    pub(crate) fn log_pdf(&self, cands: &Cands, out: &mut [f64], s: &mut Scratch) {
        let n = cands.n;
        let nc = self.cont.len();
        // A bin mass is ≤ 1 and a normaliser ≥ ln(Φ(1) − ½) (kernel centres lie inside the
        // domain, σ ≤ range), so each discrete dimension adds at most this much.
        let disc_bound = -(0.341_344_746_068_542_9_f64.ln()) * self.disc.len() as f64;
        let z = &mut s.acc;
        for (i, out_i) in out.iter_mut().enumerate().take(n) {
            z.clear();
            z.extend((0..nc).map(|j| cands.cont[j * n + i]));
            let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0f64);
            // The prior kernel (last) first: it is never far from any point, so the running
            // maximum starts high and distant kernels are abandoned after a dimension or two.
            'kernels: for k in (0..self.n_kernels).rev() {
                let floor = max - NEGLIGIBLE - disc_bound;
                let mut a = self.base[k];
                for (j, c) in self.cat.iter().enumerate() {
                    let x = cands.cat[j * n + i];
                    a += match c.obs.get(k) {
                        None => c.ln_prior,
                        Some(&hit) if hit == x => c.ln_hit,
                        Some(_) => c.ln_miss,
                    };
                }
                let mu = &self.cont_mu[k * nc..(k + 1) * nc];
                let sc = &self.cont_scale[k * nc..(k + 1) * nc];
                for ((&zz, &m), &s) in z.iter().zip(mu).zip(sc) {
                    let t = (zz - m) * s;
                    a -= t * t;
                    if a < floor {
                        continue 'kernels;
                    }
                }
                if a < floor {
                    continue;
                }
                for (j, d) in self.disc.iter().enumerate() {
                    let (lo, hi) = (cands.disc_lo[j * n + i], cands.disc_hi[j * n + i]);
                    let (mu, is) = (d.mu[k], d.inv_sigma[k]);
                    a += log_gauss_mass((lo - mu) * is, (hi - mu) * is) - d.norm[k];
                }
                if a > max {
                    sum = sum * (max - a).exp() + 1.0;
                    max = a;
                } else if a > max - NEGLIGIBLE {
                    sum += (a - max).exp();
                }
            }
            *out_i = if max == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                max + sum.ln()
            };
        }
    }
}

/// Fills `s.mus`/`s.sigmas` with the kernels of one numeric column (observations, then prior).
fn fit_numeric(
    dim: &NumDim,
    table: &Table,
    rows: &[u32],
    col: usize,
    p: &ParzenParams,
    s: &mut Scratch,
) {
    s.mus.clear();
    s.mus
        .extend(rows.iter().map(|&r| table.get(r as usize, col)));
    neighbour_sigmas(
        &s.mus,
        dim.lo,
        dim.hi,
        p,
        &mut s.sigmas,
        &mut s.order,
        &mut s.counts,
    );
    s.mus.push(0.5 * (dim.lo + dim.hi));
    s.sigmas.push(dim.hi - dim.lo);
}

/// `ln(Φ(b) − Φ(a))` for `a ≤ 0 ≤ b` (a kernel centred inside its domain), skipping tails
/// that cannot change the result in double precision.
#[inline]
fn central_log_mass(a: f64, b: f64) -> f64 {
    if a <= 0.0 && b >= 0.0 {
        if a <= -8.5 && b >= 8.5 {
            return 0.0;
        }
        let left = if a > -8.5 { ndtr(a) } else { 0.0 };
        let right = if b < 8.5 { ndtr(-b) } else { 0.0 };
        (-left - right).ln_1p()
    } else {
        log_gauss_mass(a, b)
    }
}

/// One draw from `N(μ, σ²)` truncated to `[lo, hi]` by inverse CDF.
#[inline]
fn draw_trunc(u: f64, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    let a = (lo - mu) / sigma;
    let b = (hi - mu) / sigma;
    let x = if a <= 0.0 && b >= 0.0 {
        // Inline fast path of `trunc_norm_ppf` (the usual case).
        let (pa, pb) = (ndtr(a), ndtr(b));
        let mass = pb - pa;
        let p = pa + u * mass;
        if p < 0.5 {
            ndtri(p)
        } else {
            -ndtri(ndtr(-b) + (1.0 - u) * mass)
        }
    } else {
        crate::math::trunc_norm_ppf(u, a, b)
    };
    (mu + sigma * x.clamp(a, b)).clamp(lo, hi)
}

/// A batch of candidates in the layout the log-density wants (dimension-major per kind), plus
/// their full raw rows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cands {
    pub(crate) n: usize,
    width: usize,
    /// Transformed values of continuous dimensions, `[j * n + i]`.
    cont: Vec<f64>,
    /// Bin edges (transformed) of discrete dimensions, `[j * n + i]`.
    disc_lo: Vec<f64>,
    disc_hi: Vec<f64>,
    /// Choice indices of categorical dimensions, `[j * n + i]`.
    cat: Vec<u32>,
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
    #[cfg(test)]
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
        let (mut out, mut order, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        let p = params();
        neighbour_sigmas(&[0.3], 0.0, 1.0, &p, &mut out, &mut order, &mut counts);
        assert_eq!(out, vec![0.7]);
        let mus = [0.9, 0.1, 0.2, 0.5];
        neighbour_sigmas(&mus, 0.0, 1.0, &p, &mut out, &mut order, &mut counts);
        // sorted 0.1 0.2 0.5 0.9: ends use their inner neighbour, inner the larger gap,
        // then clip to [1/6, 1].
        for (a, b) in out.iter().zip([0.4, 1.0 / 6.0, 0.3, 0.4]) {
            assert!((a - b).abs() < 1e-15, "{out:?}");
        }
    }

    #[test]
    fn bucket_sort_equals_a_full_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut order, mut counts) = (Vec::new(), Vec::new());
        for m in [1usize, 5, 31, 32, 100, 1000] {
            // Spread, clustered and duplicated values.
            let mus: Vec<f64> = (0..m)
                .map(|i| match i % 3 {
                    0 => rng.gen_range(-5.0..5.0),
                    1 => 0.3 + rng.gen_range(0.0..1e-6),
                    _ => -5.0,
                })
                .collect();
            let mask = 0xfff;
            sort_keys(&mus, -5.0, 5.0, mask, &mut order, &mut counts);
            let mut want: Vec<u64> = mus
                .iter()
                .enumerate()
                .map(|(i, &x)| (order_key(x) & !mask) | i as u64)
                .collect();
            want.sort_unstable();
            assert_eq!(order, want, "m = {m}");
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
        let e = Estimator::fit(&model, &table, &idx, &p, &mut scratch);

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
