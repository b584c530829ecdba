//! Sampling from the mixture: candidates drawn kernel by kernel, each numeric dimension from
//! its truncated normal and each categorical one from its smoothed row.

use rand::Rng;

use super::truncnorm::draw_trunc;
use super::{Cands, Estimator};

impl Estimator<'_> {
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
}
