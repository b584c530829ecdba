//! Scrambled Sobol quasi-random sampling.

use std::sync::OnceLock;

use rand::Rng;
use slurptuna_core::{AskContext, Params, Result, Sampler};

use crate::dims::Dims;
use crate::random::trial_rng;

const BITS: usize = 32;

/// Joe & Kuo's direction numbers: `<polynomial> <m_1> ... <m_s>` per dimension from the second.
const TABLE: &str = include_str!("sobol_dirs.txt");

/// Unscrambled direction numbers `v[d][k]` (32-bit fractions), for every dimension in the table.
fn directions() -> &'static [[u32; BITS]] {
    static DIRS: OnceLock<Vec<[u32; BITS]>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let mut out = Vec::new();
        // First dimension: van der Corput, v_k = 2^(31-k).
        let mut first = [0u32; BITS];
        for (k, v) in first.iter_mut().enumerate() {
            *v = 1 << (BITS - 1 - k);
        }
        out.push(first);
        for line in TABLE.lines().filter(|l| !l.starts_with('#')) {
            let nums: Vec<u64> = line
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect();
            let Some((&poly, init)) = nums.split_first() else {
                continue;
            };
            let s = (64 - poly.leading_zeros() - 1) as usize;
            if init.len() != s {
                continue;
            }
            // m_k for k < s from the table, then the recurrence of Bratley & Fox.
            let mut m = [0u64; BITS];
            m[..s].copy_from_slice(init);
            for k in s..BITS {
                let mut new = m[k - s] ^ (m[k - s] << s);
                for i in 1..s {
                    if (poly >> (s - i)) & 1 == 1 {
                        new ^= m[k - i] << i;
                    }
                }
                m[k] = new;
            }
            let mut v = [0u32; BITS];
            for k in 0..BITS {
                v[k] = (m[k] << (BITS - 1 - k)) as u32;
            }
            out.push(v);
        }
        out
    })
}

/// The Sobol point `index` (Gray-code order, as scipy's `Sobol`) in `[0, 1)^d` for the first
/// `d` dimensions, given (scrambled) direction numbers.
fn sobol_point(dirs: &[[u32; BITS]], shift: &[u32], index: u64, out: &mut [f64]) {
    let gray = index ^ (index >> 1);
    for (j, o) in out.iter_mut().enumerate() {
        let mut x = shift.get(j).copied().unwrap_or(0);
        let mut g = gray;
        let mut k = 0;
        while g != 0 && k < BITS {
            if g & 1 == 1 {
                x ^= dirs[j][k];
            }
            g >>= 1;
            k += 1;
        }
        *o = f64::from(x) / 4_294_967_296.0;
    }
}

/// Scrambles direction numbers with a random lower-triangular binary matrix (linear matrix
/// scramble) and draws a random digital shift, as scipy's `Sobol(scramble=True)` does.
fn scrambled(seed: u64, d: usize) -> (Vec<[u32; BITS]>, Vec<u32>) {
    let base = directions();
    let mut rng = trial_rng(seed, u64::MAX);
    let mut dirs = Vec::with_capacity(d);
    let mut shift = Vec::with_capacity(d);
    for base_j in base.iter().take(d) {
        // Row r of L (bit r counted from the most significant) has bit r set and random
        // bits above it (more significant positions).
        let mut rows = [0u32; BITS];
        for (r, row) in rows.iter_mut().enumerate() {
            let diag = 1u32 << (BITS - 1 - r);
            let above = if r == 0 {
                0
            } else {
                rng.gen::<u32>() & !((diag << 1) - 1)
            };
            *row = diag | above;
        }
        let mut v = [0u32; BITS];
        for (k, &src) in base_j.iter().enumerate() {
            let mut y = 0u32;
            for (r, row) in rows.iter().enumerate() {
                if (row & src).count_ones() & 1 == 1 {
                    y |= 1 << (BITS - 1 - r);
                }
            }
            v[k] = y;
        }
        dirs.push(v);
        shift.push(rng.gen::<u32>());
    }
    (dirs, shift)
}

/// The parameters of Sobol point `index` for a sampler seeded with `seed`; dimensions beyond
/// the direction-number table are drawn uniformly from `rng`.
pub(crate) fn qmc_params<R: Rng>(dims: &Dims<'_>, seed: u64, index: u64, rng: &mut R) -> Params {
    let d = dims.len();
    let (dirs, shift) = scrambled(seed, d);
    let mut u = vec![0.0; d];
    let covered = dirs.len();
    sobol_point(&dirs, &shift, index, &mut u[..covered]);
    for x in &mut u[covered..] {
        *x = rng.gen();
    }
    let raw: Vec<f64> = u
        .iter()
        .enumerate()
        .map(|(i, &x)| dims.unit_to_raw(i, x))
        .collect();
    dims.decode(&raw)
}

/// Replaces a proposal equal to a running trial's parameters (possible once a small grid is
/// snapped) by uniform draws, a bounded number of times.
pub(crate) fn avoid_running<R: Rng>(
    mut p: Params,
    dims: &Dims<'_>,
    ctx: &AskContext<'_>,
    rng: &mut R,
) -> Params {
    for _ in 0..32 {
        if !ctx.running.contains(&p) {
            break;
        }
        p = crate::random::random_params(dims, rng);
    }
    p
}

/// Quasi-Monte Carlo sampling with a scrambled Sobol sequence (Joe–Kuo direction numbers,
/// linear matrix scramble plus digital shift, seeded).
///
/// Trial `t` gets point `t` of the sequence, mapped to each parameter's (log-)range, grid or
/// choices like [`crate::RandomSampler`] does, so the first `2^k` trials cover the space more
/// evenly than independent draws. Spaces wider than 1,024 parameters take uniform draws for
/// the extra ones. A point equal to a running trial's parameters (small grids) is replaced by
/// a uniform draw.
///
/// ```
/// use slurptuna_core::{search_param, AskContext, Direction, ParamSpace, Sampler, TrialNumber};
/// use slurptuna_sampler::QmcSampler;
///
/// let space = ParamSpace::new([("x", search_param().range(0.0, 1.0))]).unwrap();
/// let sampler = QmcSampler::new(5);
/// let mut xs: Vec<f64> = (0..8)
///     .map(|t| {
///         let ctx = AskContext {
///             space: &space,
///             direction: Direction::Minimize,
///             trial: TrialNumber(t),
///             history: &[],
///             running: &[],
///         };
///         sampler.ask(&ctx).unwrap().f64("x").unwrap()
///     })
///     .collect();
/// xs.sort_by(f64::total_cmp);
/// // One point in each eighth of [0, 1).
/// for (i, x) in xs.iter().enumerate() {
///     assert_eq!((x * 8.0) as usize, i);
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct QmcSampler {
    seed: u64,
}

impl QmcSampler {
    /// A scrambled Sobol sampler; the scramble depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        QmcSampler { seed }
    }
}

impl Sampler for QmcSampler {
    fn name(&self) -> &'static str {
        "qmc"
    }

    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
        let dims = Dims::new(ctx.space);
        let mut rng = trial_rng(self.seed, ctx.trial.0);
        Ok(avoid_running(
            qmc_params(&dims, self.seed, ctx.trial.0, &mut rng),
            &dims,
            ctx,
            &mut rng,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscrambled_points_match_scipy() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/sobol.json")).unwrap();
        let d = fixture["d"].as_u64().unwrap() as usize;
        let dirs = &directions()[..d];
        let mut out = vec![0.0; d];
        for (i, want) in fixture["points"].as_array().unwrap().iter().enumerate() {
            sobol_point(dirs, &[], i as u64, &mut out);
            for (j, w) in want.as_array().unwrap().iter().enumerate() {
                assert_eq!(out[j], w.as_f64().unwrap(), "point {i} dim {j}");
            }
        }
        assert_eq!(directions().len(), 1024);
    }

    #[test]
    fn scrambled_points_stay_stratified() {
        let (dirs, shift) = scrambled(11, 3);
        let mut out = [0.0; 3];
        for j in 0..3 {
            let mut cells = [false; 16];
            for i in 0..16 {
                sobol_point(&dirs, &shift, i, &mut out);
                cells[(out[j] * 16.0) as usize] = true;
            }
            assert!(cells.iter().all(|&c| c), "dim {j}: {cells:?}");
        }
        let (other, _) = scrambled(12, 3);
        assert_ne!(dirs, other, "the scramble depends on the seed");
    }
}
