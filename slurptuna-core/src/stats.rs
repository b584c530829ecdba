//! Streaming seed statistics with an exact merge.

use serde::{Deserialize, Serialize};

/// Mean, population standard deviation and standard error of per-seed losses, computed in one
/// pass (Welford) and merged exactly across chunks (Chan et al.), so the statistics of a trial do
/// not depend on how its seeds were split.
///
/// Infinite values are counted apart from the finite ones: the mean is `+inf` if any seed
/// gave `+inf` (and none `-inf`), as the mean of such a sample is.
///
/// ```
/// use slurptuna_core::SeedStats;
/// let all = SeedStats::from_values(&[1.0, 2.0, 3.0, 4.0]);
/// let mut a = SeedStats::from_values(&[1.0, 2.0]);
/// a.merge(&SeedStats::from_values(&[3.0, 4.0]));
/// assert_eq!(all.mean(), 2.5);
/// assert!((a.std() - all.std()).abs() < 1e-12);
/// assert!((all.std() - 1.25f64.sqrt()).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedStats {
    /// Number of finite values seen.
    pub n: u64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Sum of squared deviations from the mean (finite values).
    pub m2: f64,
    /// Number of `+inf` values.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pos_inf: u64,
    /// Number of `-inf` values.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub neg_inf: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

impl SeedStats {
    /// Statistics of `values`, folded in order.
    pub fn from_values(values: &[f64]) -> Self {
        let mut s = Self::default();
        for &v in values {
            s.push(v);
        }
        s
    }

    /// Adds one value. NaN must be rejected by the caller (it fails the trial).
    pub fn push(&mut self, x: f64) {
        if x == f64::INFINITY {
            self.pos_inf += 1;
            return;
        }
        if x == f64::NEG_INFINITY {
            self.neg_inf += 1;
            return;
        }
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Merges another partial result into this one (exact pooled mean and variance).
    pub fn merge(&mut self, other: &SeedStats) {
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            self.n = other.n;
            self.mean = other.mean;
            self.m2 = other.m2;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.n += other.n;
    }

    /// Total number of seeds, infinite ones included.
    pub fn count(&self) -> u64 {
        self.n + self.pos_inf + self.neg_inf
    }

    /// The mean over all seeds (NaN when empty or when both infinities occurred).
    pub fn mean(&self) -> f64 {
        match (self.pos_inf > 0, self.neg_inf > 0) {
            (true, true) => f64::NAN,
            (true, false) => f64::INFINITY,
            (false, true) => f64::NEG_INFINITY,
            (false, false) if self.n == 0 => f64::NAN,
            _ => self.mean,
        }
    }

    /// Population standard deviation (ddof = 0), as the original reports it.
    pub fn std(&self) -> f64 {
        if self.pos_inf + self.neg_inf > 0 {
            return f64::NAN;
        }
        if self.n == 0 {
            return f64::NAN;
        }
        (self.m2.max(0.0) / self.n as f64).sqrt()
    }

    /// Standard error of the mean: `std / sqrt(n)`.
    pub fn stderr(&self) -> f64 {
        self.std() / (self.count() as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_exact_for_uneven_chunks() {
        let v: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f64 * 0.37 + 1e6)
            .collect();
        let whole = SeedStats::from_values(&v);
        let mut merged = SeedStats::default();
        for c in v.chunks(77) {
            merged.merge(&SeedStats::from_values(c));
        }
        assert_eq!(merged.n, 1000);
        assert!((merged.mean() - whole.mean()).abs() < 1e-9);
        assert!((merged.std() - whole.std()).abs() < 1e-9);
        let naive_mean = v.iter().sum::<f64>() / 1000.0;
        let naive_var = v.iter().map(|x| (x - naive_mean).powi(2)).sum::<f64>() / 1000.0;
        assert!((whole.std() - naive_var.sqrt()).abs() < 1e-6);
        assert!((whole.stderr() - whole.std() / 1000f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn infinities() {
        let s = SeedStats::from_values(&[1.0, f64::INFINITY]);
        assert_eq!(s.mean(), f64::INFINITY);
        assert!(s.std().is_nan());
        assert_eq!(s.count(), 2);
        assert!(SeedStats::default().mean().is_nan());
    }
}
