//! Numerically stable normal-distribution helpers: `Φ`, `log Φ`, the log of a Gaussian mass on
//! an interval, `Φ⁻¹`, and the inverse CDF of a truncated standard normal.
//!
//! `erf`/`erfc` come from `libm` (accurate to an ulp; statrs' `erfc` is off by ~1e-11), `erfc_inv`
//! from `statrs`; everything else follows Optuna's `_truncnorm.py`
//! formulas (left-tail orientation, asymptotic series for `log Φ` far in the left tail).

use libm::{erf, erfc};
use statrs::function::erf::erfc_inv;

const SQRT_2: f64 = std::f64::consts::SQRT_2;
/// `ln √(2π)`.
pub(crate) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The standard normal CDF `Φ(x)`.
#[inline]
pub(crate) fn ndtr(x: f64) -> f64 {
    let z = x / SQRT_2;
    if z < -std::f64::consts::FRAC_1_SQRT_2 {
        0.5 * erfc(-z)
    } else if z < std::f64::consts::FRAC_1_SQRT_2 {
        0.5 + 0.5 * erf(z)
    } else {
        1.0 - 0.5 * erfc(z)
    }
}

/// `ln Φ(x)`, accurate in both tails.
pub(crate) fn log_ndtr(x: f64) -> f64 {
    if x > 6.0 {
        // ln(1 - ε) ≈ -ε for the tiny upper-tail mass ε = Φ(-x).
        return -ndtr(-x);
    }
    if x > -20.0 {
        return ndtr(x).ln();
    }
    // Asymptotic series: Φ(x) ≈ φ(x)/(-x) · (1 - 1/x² + 3/x⁴ - 15/x⁶ + ...).
    let log_lhs = -0.5 * x * x - (-x).ln() - LN_SQRT_2PI;
    let inv_x2 = 1.0 / (x * x);
    let (mut total, mut last) = (1.0_f64, 0.0_f64);
    let (mut numerator, mut denom, mut sign) = (1.0_f64, 1.0_f64, 1.0_f64);
    let mut i = 0u32;
    while (last - total).abs() > f64::EPSILON && i < 64 {
        i += 1;
        last = total;
        sign = -sign;
        denom *= inv_x2;
        numerator *= f64::from(2 * i - 1);
        total += sign * numerator * denom;
    }
    log_lhs + total.ln()
}

/// `ln(Φ(b) − Φ(a))` for `a ≤ b`, computed in the tail where it is accurate.
pub(crate) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else {
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// `ln(e^p − e^q)` for `p ≥ q`.
#[inline]
fn log_diff(log_p: f64, log_q: f64) -> f64 {
    log_p + (-(log_q - log_p).exp()).ln_1p()
}

/// `ln(e^p + e^q)`.
#[inline]
fn log_add_exp(p: f64, q: f64) -> f64 {
    let m = p.max(q);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((p - m).exp() + (q - m).exp()).ln()
}

/// The standard normal quantile `Φ⁻¹(p)` for `p ∈ [0, 1]`.
#[inline]
pub(crate) fn ndtri(p: f64) -> f64 {
    if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else {
        -SQRT_2 * erfc_inv(2.0 * p)
    }
}

/// Solves `ln Φ(x) = y` for `x` (`y ≤ 0`).
fn ndtri_exp(y: f64) -> f64 {
    if y >= 0.0 {
        return f64::INFINITY;
    }
    if y > -700.0 {
        let p = y.exp();
        if p < 0.5 {
            return ndtri(p);
        }
        // Upper half: work with the complement ln(1 − e^y) for precision.
        return -ndtri(-y.exp_m1());
    }
    // Far left tail: start from the asymptote and polish with Newton on ln Φ.
    let t = -2.0 * y;
    let mut x = -(t - t.ln() - std::f64::consts::TAU.ln()).max(0.0).sqrt();
    for _ in 0..100 {
        let f = log_ndtr(x) - y;
        // d/dx ln Φ(x) = φ(x)/Φ(x) = exp(ln φ(x) − ln Φ(x)).
        let dlog = (-0.5 * x * x - LN_SQRT_2PI - log_ndtr(x)).exp();
        let step = f / dlog;
        x -= step;
        if step.abs() <= 1e-12 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

/// Inverse CDF at `q ∈ [0, 1]` of a standard normal truncated to `[a, b]` (`a < b`).
///
/// The usual TPE case `a ≤ 0 ≤ b` (kernel centre inside the domain) takes a fast path in
/// probability space; other intervals go through log space like Optuna's `ppf`.
pub(crate) fn trunc_norm_ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return a;
    }
    if q >= 1.0 {
        return b;
    }
    if a <= 0.0 && b >= 0.0 {
        let (pa, pb) = (ndtr(a), ndtr(b));
        let mass = pb - pa;
        let p = pa + q * mass;
        let x = if p < 0.5 {
            ndtri(p)
        } else {
            // Upper tail: 1 − p = Φ(−b) + (1 − q)·mass, kept precise.
            -ndtri(ndtr(-b) + (1.0 - q) * mass)
        };
        return x.clamp(a, b);
    }
    let log_mass = log_gauss_mass(a, b);
    let x = if a < 0.0 {
        ndtri_exp(log_add_exp(log_ndtr(a), q.ln() + log_mass))
    } else {
        -ndtri_exp(log_add_exp(log_ndtr(-b), (-q).ln_1p() + log_mass))
    };
    x.clamp(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn ndtr_and_quantile_round_trip() {
        assert!(close(ndtr(1.959_963_984_540_054), 0.975, 1e-14));
        assert!(close(ndtri(0.975), 1.959_963_984_540_054, 1e-13));
        // Reference values from scipy.special.ndtri.
        assert!(close(ndtri(1e-300), -37.047_096_299_361_2, 1e-12));
        assert!(close(ndtri(1e-20), -9.262_340_089_798_409, 1e-13));
        for &x in &[-30.0, -8.0, -1.0, 0.0, 0.3, 2.0, 7.5] {
            let p = ndtr(x);
            if p > 0.0 && p < 1.0 - 1e-9 {
                assert!(close(ndtri(p), x, 1e-10) || (x == 0.0 && ndtri(p).abs() < 1e-15));
            }
        }
    }

    #[test]
    fn log_ndtr_is_continuous_at_the_series_switch() {
        let left = log_ndtr(-20.0 - 1e-9);
        let right = log_ndtr(-20.0 + 1e-9);
        assert!(close(left, right, 1e-9), "{left} vs {right}");
        // Reference values from scipy.special.log_ndtr.
        assert!(close(log_ndtr(-40.0), -804.608_442_013_753_9, 1e-14));
        assert!(close(log_ndtr(-25.0), -316.639_408_008_020_27, 1e-14));
        assert!(close(log_ndtr(8.0), -6.220_960_574_271_742e-16, 1e-12));
    }

    #[test]
    fn log_gauss_mass_matches_direct_formula_where_accurate() {
        for &(a, b) in &[
            (-1.0, 1.0),
            (-3.0, -2.0),
            (0.5, 2.5),
            (-0.1, 40.0),
            (3.0, 3.5),
        ] {
            let direct = (ndtr(b) - ndtr(a)).ln();
            assert!(close(log_gauss_mass(a, b), direct, 1e-10), "{a} {b}");
        }
        // Far tails stay finite where the direct formula gives ln 0.
        assert!(log_gauss_mass(-45.0, -44.0).is_finite());
        assert!(log_gauss_mass(44.0, 45.0).is_finite());
        assert!(close(
            log_gauss_mass(-45.0, -44.0),
            log_gauss_mass(44.0, 45.0),
            1e-12
        ));
    }

    #[test]
    fn truncated_ppf_inverts_the_truncated_cdf() {
        for &(a, b) in &[
            (-1.0, 2.0),
            (-0.0, 3.0),
            (-50.0, 0.5),
            (1.0, 4.0),
            (-9.0, -8.5),
        ] {
            for &q in &[1e-12, 0.001, 0.25, 0.5, 0.9, 0.999_999] {
                let x = trunc_norm_ppf(q, a, b);
                assert!(x >= a && x <= b);
                let back = ((log_gauss_mass(a, x) - log_gauss_mass(a, b)).exp()).min(1.0);
                assert!(
                    (back - q).abs() < 1e-8 * q.max(1e-4),
                    "a={a} b={b} q={q} x={x}"
                );
            }
        }
        assert_eq!(trunc_norm_ppf(0.0, -1.0, 1.0), -1.0);
        assert_eq!(trunc_norm_ppf(1.0, -1.0, 1.0), 1.0);
    }
}
