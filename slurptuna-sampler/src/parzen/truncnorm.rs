//! The truncated normal distribution: log masses of a kernel inside its domain, and draws
//! from `N(μ, σ²)` truncated to an interval.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::math::{log_gauss_mass, ndtr, ndtri};

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
pub(super) fn draw_trunc<R: Rng>(rng: &mut R, mu: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
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
