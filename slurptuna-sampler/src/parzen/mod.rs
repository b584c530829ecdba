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
//!
//! The estimator's types live here; the rest is split by concern:
//! - [`fit`]: fitting — weights, neighbour bandwidths, the estimator's construction (and the
//!   localised mixture of the refinement);
//! - [`sample`]: drawing candidates from the mixture;
//! - [`evaluate`]: the log-density of candidates;
//! - [`truncnorm`]: the math of the truncated normal (masses, draws).

mod evaluate;
mod fit;
mod sample;
mod truncnorm;

pub(crate) use evaluate::disc_bound;
pub(crate) use fit::{categorical_probabilities, observation_weights};
pub(crate) use truncnorm::central_log_mass;

use crate::dims::{Dim, Dims, NumDim};
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
            serde_json::from_str(include_str!("../../tests/fixtures/parzen.json")).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            check_case(case);
        }
    }
}
