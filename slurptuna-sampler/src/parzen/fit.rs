//! Fitting the estimator: Optuna's mixture weights and neighbour-gap bandwidths, the
//! estimator's construction from observations (kernel arrays, truncation normalisers, blocks),
//! and the localised mixture of the local refinement.

use super::{
    central_log_mass, Blocks, CatKernels, DiscKernels, Estimator, Model, ParzenParams, Scratch,
    Table, BLOCK, BLOCKS_MIN,
};
use crate::dims::NumDim;
use crate::math::LN_SQRT_2PI;
use crate::tpe::Weights;

/// Mixture weights of `m` observations in trial order (Optuna's `default_weights`).
/// A categorical kernel's probabilities over `c` choices, fitted on `m` observations with
/// `n_kernels` kernels in all: `(its own choice, another choice, the prior kernel's)`. Without
/// observations every kernel is uniform.
pub(crate) fn categorical_probabilities(
    c: f64,
    m: usize,
    prior_weight: f64,
    n_kernels: usize,
) -> (f64, f64, f64) {
    if m == 0 {
        return (1.0 / c, 1.0 / c, 1.0 / c);
    }
    let eps = prior_weight / n_kernels as f64;
    let row = 1.0 + c * eps;
    let prior = if eps > 0.0 { 1.0 / c } else { 0.0 };
    ((1.0 + eps) / row, eps / row, prior)
}

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
                let (p_hit, p_miss, p_prior) =
                    categorical_probabilities(c, m, p.prior_weight, n_kernels);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dims::Dims;
    use crate::parzen::Cands;

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
}
