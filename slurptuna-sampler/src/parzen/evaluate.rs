//! Evaluating the mixture: the log-density of candidates, skipping the blocks and kernels
//! whose terms are provably negligible.

use super::{Cands, Estimator, Scratch, BLOCK, NEGLIGIBLE};
use crate::math::log_gauss_mass;

impl Estimator<'_> {
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
    /// [`Estimator::sum_terms`]; returns the largest. Small mixtures (no
    /// [`Blocks`](super::Blocks)) are evaluated in full; large ones skip the blocks and kernels
    /// that cannot matter.
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
