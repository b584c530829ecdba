//! Parameter importance by PED-ANOVA (Watanabe et al., IJCAI 2023), as Optuna 5's
//! `PedAnovaImportanceEvaluator` computes it with its defaults (`target_quantile = 0.1`,
//! `region_quantile = 1.0`, `evaluate_on_local = True`, 50 grid steps, prior weight 1) and
//! `get_param_importances(normalize=True)`.
//!
//! For each parameter, a Parzen estimator (Scott's-rule bandwidth, on a grid of at most 50
//! points; log parameters on a log grid; categoricals by counts) is fitted to the top 10 % of
//! the complete trials and to all of them; the importance is `quantile² ×` the Pearson
//! divergence between the two, and the importances are normalised to sum to 1.

use slurptuna_core::{Direction, Distribution, ParamSpace, ParamValue, Params};

/// Share of the best trials the importance is about (Optuna's `target_quantile`).
pub const TARGET_QUANTILE: f64 = 0.1;
/// Grid points per numerical parameter (Optuna's `_n_steps`).
const N_STEPS: usize = 50;
/// Weight of the prior kernel (Optuna's `_prior_weight`).
const PRIOR_WEIGHT: f64 = 1.0;
/// Added to each density so that ratios stay finite (as Optuna does).
const EPS: f64 = 1e-12;

/// The PED-ANOVA importance of each parameter of `space` over the complete trials `trials`
/// (`(params, value)`; non-finite values are left out), normalised to sum to 1, most important
/// first (ties in the space's order). Parameters with a single possible value get 0. With fewer
/// than two usable trials every parameter gets the same share (as in Optuna).
pub fn ped_anova(
    space: &ParamSpace,
    trials: &[(&Params, f64)],
    direction: Direction,
) -> Vec<(String, f64)> {
    let trials: Vec<(&Params, f64)> = trials
        .iter()
        .filter(|(p, v)| v.is_finite() && space.iter().all(|(name, _)| p.get(name).is_some()))
        .copied()
        .collect();
    let mut raw: Vec<(String, f64)> = space.iter().map(|(n, _)| (n.to_string(), 0.0)).collect();
    if trials.len() > 1 {
        let top = top_quantile(&trials, TARGET_QUANTILE, direction);
        if !top.is_empty() {
            let quantile = top.len() as f64 / trials.len() as f64;
            for ((name, dist), slot) in space.iter().zip(raw.iter_mut()) {
                if dist.is_single() {
                    continue;
                }
                let all: Vec<&ParamValue> =
                    trials.iter().filter_map(|(p, _)| p.get(name)).collect();
                let best: Vec<&ParamValue> = top.iter().filter_map(|(p, _)| p.get(name)).collect();
                slot.1 = quantile * quantile * pearson_divergence(dist, &best, &all);
            }
        }
    }
    let sum: f64 = raw.iter().map(|(_, v)| v).sum();
    let n = raw.len() as f64;
    for (_, v) in raw.iter_mut() {
        *v = if sum == 0.0 { 1.0 / n } else { *v / sum };
    }
    // Stable: ties keep the space's order.
    raw.sort_by(|a, b| b.1.total_cmp(&a.1));
    raw
}

/// The trials at least as good as the `quantile` cut-off (ties included), as Optuna's
/// `_QuantileFilter`.
fn top_quantile<'a>(
    trials: &[(&'a Params, f64)],
    quantile: f64,
    direction: Direction,
) -> Vec<(&'a Params, f64)> {
    let sign = match direction {
        Direction::Minimize => 1.0,
        Direction::Maximize => -1.0,
    };
    let mut losses: Vec<f64> = trials.iter().map(|(_, v)| sign * v).collect();
    let k = ((quantile * losses.len() as f64).ceil() as usize).saturating_sub(1);
    losses.sort_by(f64::total_cmp);
    let cutoff = losses[k.min(losses.len() - 1)];
    trials
        .iter()
        .filter(|(_, v)| sign * v <= cutoff)
        .copied()
        .collect()
}

/// `Σ_grid p_all (p_top / p_all − 1)²`.
fn pearson_divergence(dist: &Distribution, top: &[&ParamValue], all: &[&ParamValue]) -> f64 {
    let top_counts = grid_counts(dist, top);
    let all_counts = grid_counts(dist, all);
    let categorical = matches!(dist, Distribution::Categorical { .. });
    let p_top = parzen_pdf(&top_counts, categorical);
    let p_all = parzen_pdf(&all_counts, categorical);
    p_top
        .iter()
        .zip(&p_all)
        .map(|(t, a)| {
            let (t, a) = (t + EPS, a + EPS);
            a * (t / a - 1.0).powi(2)
        })
        .sum()
}

/// Counts of the values on the parameter's grid (Optuna's `_count_*_param_in_grid`).
fn grid_counts(dist: &Distribution, values: &[&ParamValue]) -> Vec<u64> {
    let (low, high, log, n_steps) = match dist {
        Distribution::Categorical { choices } => {
            let mut counts = vec![0u64; choices.len()];
            for v in values {
                if let Some(i) = choices.iter().position(|c| c == *v) {
                    counts[i] += 1;
                }
            }
            return counts;
        }
        Distribution::Int {
            low,
            high,
            log: true,
            ..
        } => {
            let size = (((high - low + 1) as f64).ln() / 2f64.ln()).ceil() as usize + 1;
            (*low as f64, *high as f64, true, size.min(N_STEPS))
        }
        Distribution::Int {
            low, high, step, ..
        } => {
            let size = (((high - low) as f64) / (*step as f64)).round_ties_even() as usize + 1;
            (*low as f64, *high as f64, false, size.min(N_STEPS))
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            let size = match step {
                Some(s) => ((high - low) / s).round_ties_even() as usize + 1,
                None => N_STEPS,
            };
            (*low, *high, *log, size.min(N_STEPS))
        }
    };
    let tr = |x: f64| if log { x.ln() } else { x };
    let (lo, hi) = (tr(low), tr(high));
    let n_steps = n_steps.max(2);
    let step_size = (hi - lo) / (n_steps - 1) as f64;
    let mut counts = vec![0u64; n_steps];
    for v in values {
        let Some(x) = v.as_f64() else { continue };
        // Midpoint ties go to the lower grid point, as in Optuna.
        let i = ((tr(x) - lo) / step_size - 0.5).ceil();
        let i = if i.is_nan() {
            0.0
        } else {
            i.clamp(0.0, (n_steps - 1) as f64)
        };
        counts[i as usize] += 1;
    }
    counts
}

/// The Parzen estimator's probability of each grid point (Optuna's `ScottParzenEstimator`
/// built by `build_parzen_estimator_on_grid`).
fn parzen_pdf(counts: &[u64], categorical: bool) -> Vec<f64> {
    let size = counts.len();
    let obs: Vec<usize> = (0..size).filter(|&i| counts[i] > 0).collect();
    let w: Vec<f64> = obs.iter().map(|&i| counts[i] as f64).collect();
    if obs.is_empty() {
        return vec![1.0 / size as f64; size];
    }
    let total_w: f64 = w.iter().sum::<f64>() + PRIOR_WEIGHT;
    let mix: Vec<f64> = w
        .iter()
        .chain(std::iter::once(&PRIOR_WEIGHT))
        .map(|x| x / total_w)
        .collect();
    if categorical {
        let n_kernels = (obs.len() + 1) as f64;
        let base = PRIOR_WEIGHT / n_kernels;
        let row_sum = base * size as f64 + 1.0;
        return (0..size)
            .map(|j| {
                let kernels: f64 = obs
                    .iter()
                    .zip(&mix)
                    .map(|(&o, m)| m * (base + if o == j { 1.0 } else { 0.0 }) / row_sum)
                    .sum();
                kernels + mix[obs.len()] / size as f64
            })
            .collect();
    }
    // Scott's rule on the grid indices, weighted by counts.
    let wsum: u64 = obs.iter().map(|&i| counts[i]).sum();
    let wsum_f = wsum as f64;
    let x: Vec<f64> = obs.iter().map(|&i| i as f64).collect();
    let mean = x.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>() / wsum_f;
    let var = x
        .iter()
        .zip(&w)
        .map(|(x, w)| (x - mean).powi(2) * w)
        .sum::<f64>()
        / (wsum_f - 1.0).max(1.0);
    let mut cum = Vec::with_capacity(obs.len());
    let mut acc = 0u64;
    for &i in &obs {
        acc += counts[i];
        cum.push(acc);
    }
    let q1 = cum.partition_point(|&c| c < wsum / 4);
    let q3 = cum.partition_point(|&c| c <= wsum * 3 / 4);
    let iqr = x[q3.min(x.len() - 1)] - x[q1.min(x.len() - 1)];
    let sigma = 1.059 * (iqr / 1.34).min(var.sqrt()) * wsum_f.powf(-0.2);
    let sigma = sigma.max(0.5 / 1.64);
    let (low, high) = (0.0, (size - 1) as f64);
    let kernels: Vec<(f64, f64, f64)> = x
        .iter()
        .map(|&mu| (mu, sigma))
        .chain(std::iter::once(((low + high) / 2.0, high - low + 1.0)))
        .zip(&mix)
        .map(|((mu, s), m)| {
            (
                mu,
                s,
                m / gauss_mass((low - 0.5 - mu) / s, (high + 0.5 - mu) / s),
            )
        })
        .collect();
    (0..size)
        .map(|g| {
            let g = g as f64;
            kernels
                .iter()
                .map(|&(mu, s, m)| m * gauss_mass((g - 0.5 - mu) / s, (g + 0.5 - mu) / s))
                .sum()
        })
        .collect()
}

/// `Φ(b) − Φ(a)` for `a ≤ b`, computed in the tail that keeps precision.
fn gauss_mass(a: f64, b: f64) -> f64 {
    let r = std::f64::consts::FRAC_1_SQRT_2;
    if a >= 0.0 {
        0.5 * (erfc(a * r) - erfc(b * r))
    } else if b <= 0.0 {
        0.5 * (erfc(-b * r) - erfc(-a * r))
    } else {
        1.0 - 0.5 * erfc(-a * r) - 0.5 * erfc(b * r)
    }
}

/// The complementary error function, to about 1e-15 relative: a positive-term series for
/// `|x| < 3`, a continued fraction beyond.
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let inv_sqrt_pi = 1.0 / std::f64::consts::PI.sqrt();
    if x < 3.0 {
        // erf(x) = 2/√π e^{−x²} Σ 2ⁿ x^{2n+1} / (2n+1)!!
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= 2.0 * x2 / (2 * n + 1) as f64;
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        1.0 - 2.0 * inv_sqrt_pi * (-x2).exp() * sum
    } else {
        // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
        let mut t = x;
        for k in (1..=80).rev() {
            t = x + (k as f64 / 2.0) / t;
        }
        inv_sqrt_pi * (-x * x).exp() / t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        // Values from the closed forms' tables (Abramowitz & Stegun 7.1).
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_034_8e-12),
            (-1.0, 1.842_700_792_949_715),
        ] {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1e-12,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }
}
