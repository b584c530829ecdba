//! The "above" (bad-trial) mixture of multivariate TPE, kept between asks and updated in place.
//!
//! From one ask to the next the above group changes by a few rows (the new trial, a row leaving
//! or entering the below group, the rows of running trials), so instead of refitting the whole
//! mixture per ask this structure keeps, per numeric dimension, the members in sorted order,
//! every kernel's bandwidth and log truncation mass, and the kernels themselves in the leaves of
//! a k-d tree over their continuous means. Inserting or removing a row recomputes the
//! bandwidths of its neighbours only, and the bounds of the leaves it touched and of their
//! ancestors. Optuna ramps the mixture weights along the trial order, so they change with
//! every trial: a kernel's weight is computed only when its term is needed, and the bounds
//! use the largest weight. The log-density visits only the tree nodes whose best possible
//! term is not negligible.
//!
//! The result does not depend on the tree's shape or on what was asked before: a kernel takes
//! part exactly when its term is within [`NEGLIGIBLE`] of the largest, each term is computed by
//! the same operations in the same order whatever leaf holds it, and the terms are summed in
//! exact fixed-point arithmetic, which is order-independent. A sampler with a fresh memo
//! proposes bit for bit what a long-lived one does.
//!
//! The k-d tree itself (leaves, splits, bounds) is in [`kdtree`]; this module keeps the
//! members, their bandwidths and shapes, the weights and the log-density.

mod kdtree;

use std::cell::Cell;
use std::f64::consts::FRAC_1_SQRT_2;

use self::kdtree::{KdTree, Kernels, Node, LEAF};
use crate::dims::NumDim;
use crate::math::{log_gauss_mass, LN_SQRT_2PI};
use crate::parzen::{
    central_log_mass, disc_bound, observation_weights, Cands, Model, ParzenParams, Table,
    NEGLIGIBLE,
};

/// The prior kernel's constants.
#[derive(Clone, Debug, Default)]
struct Prior {
    /// Per numeric dimension (continuous, then discrete): mean and `1/σ`.
    mu: Vec<f64>,
    inv: Vec<f64>,
    /// Per numeric dimension: log truncation mass.
    lmass: Vec<f64>,
    /// `−Σ_cont (ln σ + ln mass) − n_cont · ln √(2π)`.
    shape: f64,
    /// `shape` plus the prior's log weight in this ask.
    base: f64,
}

/// The rows an [`AboveMixture`] is brought to: the completed rows `0..n_done` of `table` not
/// in `below` (sorted), then the rows `n_done..n_done + n_running` of running trials.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Members<'a> {
    pub(crate) table: &'a Table,
    /// Per column, the completed rows of each numeric column in `(value, row)` order.
    pub(crate) sorted: &'a [Vec<u32>],
    /// Changes whenever completed rows were dropped or changed.
    pub(crate) epoch: u64,
    pub(crate) n_done: usize,
    pub(crate) below: &'a [u32],
    pub(crate) n_running: usize,
}

/// The above mixture of one model (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct AboveMixture {
    /// What the state was built for: the history epoch, model columns and options.
    epoch: u64,
    cols: Vec<usize>,
    params: Option<ParzenParams>,
    cont: Vec<(usize, NumDim)>,
    disc: Vec<(usize, NumDim)>,
    cat: Vec<(usize, usize)>,
    /// Completed rows covered, and the below rows (sorted) the membership reflects.
    n_done: usize,
    below: Vec<u32>,
    /// Running rows currently members (`n_done..n_done + n_running`).
    n_running: usize,
    /// Per row: member of the mixture.
    member: Vec<bool>,
    m: usize,
    /// `min_sigma` the bandwidths were computed with.
    clip: f64,
    /// Per numeric dimension (continuous, then discrete): members in `(value, row)` order.
    sorted: Vec<Vec<u32>>,
    /// Per numeric dimension and row: bandwidth and log truncation mass, and the value the
    /// mass was computed at (kept across rebuilds of the same model: a row whose value and
    /// bandwidth did not change keeps its mass).
    sigma: Vec<Vec<f64>>,
    lmass: Vec<Vec<f64>>,
    mu_at: Vec<Vec<f64>>,
    /// Per row: `−Σ_cont (ln σ + ln mass) − n_cont · ln √(2π)`.
    shape: Vec<f64>,
    /// Rows whose bandwidths changed since their shape was computed.
    changed: Vec<u32>,
    is_changed: Vec<bool>,
    /// The member kernels, in the leaves of a k-d tree over their continuous means.
    tree: KdTree,
    prior: Prior,
    /// Per categorical dimension: `ln` of the hit, miss and prior probabilities.
    cat_ln: Vec<(f64, f64, f64)>,
    /// Mixture weights by position in trial order (before normalisation), their
    /// normaliser, and the log of the largest normalised weight.
    lnw: Vec<f64>,
    /// Per position, its normalised log weight once computed in this ask (NaN before).
    ln_weight: Vec<Cell<f64>>,
    total: f64,
    ln_wmax: f64,
    /// Scratch: traversal stack, terms, candidate.
    stack: Vec<u32>,
    terms: Vec<f64>,
    z: Vec<f64>,
}

/// `a` if less than `b`, else `b` (plain compare: values are never NaN).
#[inline]
fn min(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// `a` if greater than `b`, else `b` (plain compare: values are never NaN).
#[inline]
fn max(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

impl AboveMixture {
    /// Brings the mixture to `rows` (see [`Members`]) of `model` and refreshes it for an ask.
    pub(crate) fn update(&mut self, model: &Model<'_>, rows: &Members<'_>, p: &ParzenParams) {
        let Members {
            table,
            epoch,
            n_done,
            below,
            n_running,
            ..
        } = *rows;
        let cols: Vec<usize> = model
            .cont
            .iter()
            .map(|c| c.0)
            .chain(model.disc.iter().map(|c| c.0))
            .chain(model.cat.iter().map(|c| c.0))
            .collect();
        let m_final = n_done - below.len() + n_running;
        let same = epoch == self.epoch
            && self.params.as_ref() == Some(p)
            && cols == self.cols
            && n_done >= self.n_done
            && self.n_running == 0;
        // Membership changes, cheaper than a rebuild when few.
        let gone: Vec<u32> = below
            .iter()
            .copied()
            .filter(|&r| (r as usize) < self.n_done && self.member[r as usize])
            .collect();
        let back: Vec<u32> = self
            .below
            .iter()
            .copied()
            .filter(|r| below.binary_search(r).is_err())
            .collect();
        let fresh = n_done.saturating_sub(self.n_done) + n_running;
        let ops = gone.len() + back.len() + fresh;
        if !same || ops > 16 + m_final / 8 {
            self.build(model, rows, p, cols);
        } else {
            self.grow(table.data.len() / table.width.max(1));
            let clip = self.min_sigma_for(m_final, p);
            let clip_changed = self.clip != clip;
            self.clip = clip;
            for r in gone {
                self.remove(table, r, p);
            }
            for r in back {
                self.insert(table, r, p);
            }
            for r in self.n_done..n_done + n_running {
                if r >= n_done || below.binary_search(&(r as u32)).is_err() {
                    self.insert(table, r as u32, p);
                }
            }
            self.n_done = n_done;
            self.n_running = n_running;
            self.below.clear();
            self.below.extend_from_slice(below);
            if clip_changed {
                self.all_sigmas(table, p);
            }
            self.finish_changes();
        }
        self.refresh(p);
    }

    /// Removes the running rows (still present in `table`) added by the last update.
    pub(crate) fn undo_running(&mut self, table: &Table, p: &ParzenParams) {
        if self.n_running == 0 {
            return;
        }
        let m_final = self.m - self.n_running;
        let clip = self.min_sigma_for(m_final, p);
        let clip_changed = self.clip != clip;
        self.clip = clip;
        for r in (self.n_done..self.n_done + self.n_running).rev() {
            if self.member.get(r).copied().unwrap_or(false) {
                self.remove(table, r as u32, p);
            }
        }
        self.n_running = 0;
        if clip_changed {
            self.all_sigmas(table, p);
        }
        self.finish_changes();
    }

    /// The magic clip for `m` kernels, as the divisor of each dimension's range.
    fn min_sigma_for(&self, m: usize, p: &ParzenParams) -> f64 {
        if p.consider_magic_clip {
            (m as f64 + 2.0).min(100.0)
        } else {
            f64::INFINITY
        }
    }

    fn n_num(&self) -> usize {
        self.cont.len() + self.disc.len()
    }

    fn num_dim(&self, j: usize) -> (usize, &NumDim) {
        if j < self.cont.len() {
            (self.cont[j].0, &self.cont[j].1)
        } else {
            let (c, ref d) = self.disc[j - self.cont.len()];
            (c, d)
        }
    }

    /// Room for `rows` table rows in the per-row arrays.
    fn grow(&mut self, rows: usize) {
        if self.member.len() < rows {
            self.member.resize(rows, false);
            self.shape.resize(rows, 0.0);
            self.tree.grow(rows);
            self.is_changed.resize(rows, false);
            for v in self.sigma.iter_mut().chain(&mut self.mu_at) {
                v.resize(rows, f64::NAN);
            }
            for v in &mut self.lmass {
                v.resize(rows, 0.0);
            }
        }
    }

    /// Rebuilds everything for the given members.
    fn build(&mut self, model: &Model<'_>, rows: &Members<'_>, p: &ParzenParams, cols: Vec<usize>) {
        let Members {
            table,
            sorted,
            epoch,
            n_done,
            below,
            n_running,
        } = *rows;
        self.epoch = epoch;
        self.params = Some(*p);
        self.cols = cols;
        let cont: Vec<(usize, NumDim)> = model.cont.iter().map(|&(c, d)| (c, d.clone())).collect();
        let disc: Vec<(usize, NumDim)> = model.disc.iter().map(|&(c, d)| (c, d.clone())).collect();
        let same_dims = cont == self.cont && disc == self.disc;
        self.cont = cont;
        self.disc = disc;
        self.cat = model.cat.clone();
        self.n_done = n_done;
        self.n_running = n_running;
        self.below.clear();
        self.below.extend_from_slice(below);
        let rows = n_done + n_running;
        let nn = self.n_num();
        self.member.clear();
        self.member.resize(rows, true);
        for &r in below {
            self.member[r as usize] = false;
        }
        self.m = rows - below.len();
        self.shape.clear();
        self.shape.resize(rows, 0.0);
        self.is_changed.clear();
        self.is_changed.resize(rows, false);
        self.changed.clear();
        if !same_dims {
            self.sigma.clear();
            self.lmass.clear();
            self.mu_at.clear();
        }
        self.sigma.resize(nn, Vec::new());
        self.lmass.resize(nn, Vec::new());
        self.mu_at.resize(nn, Vec::new());
        self.sorted.resize(nn, Vec::new());
        for j in 0..nn {
            self.sigma[j].resize(rows, f64::NAN);
            self.lmass[j].resize(rows, 0.0);
            self.mu_at[j].resize(rows, f64::NAN);
            let col = self.num_dim(j).0;
            let mut order = std::mem::take(&mut self.sorted[j]);
            order.clear();
            let member = &self.member;
            match sorted.get(col).filter(|o| o.len() == n_done) {
                Some(all) => order.extend(all.iter().copied().filter(|&r| member[r as usize])),
                None => {
                    order.extend((0..n_done as u32).filter(|&r| member[r as usize]));
                    order.sort_unstable_by(|&a, &b| key_cmp(table, col, a, b));
                }
            }
            if n_running > 0 {
                // Running rows after the completed ones, merged by (value, row).
                order.extend(n_done as u32..rows as u32);
                order.sort_by(|&a, &b| key_cmp(table, col, a, b));
            }
            self.sorted[j] = order;
        }
        self.clip = self.min_sigma_for(self.m, p);
        self.all_sigmas(table, p);
        // Every member's shape, then the tree.
        let members: Vec<u32> = (0..rows as u32)
            .filter(|&r| self.member[r as usize])
            .collect();
        for &r in &members {
            self.shape[r as usize] = self.shape_of(r as usize);
            self.is_changed[r as usize] = false;
        }
        self.changed.clear();
        let kernels = Kernels {
            table,
            cont: &self.cont,
            sigma: &self.sigma,
            shape: &self.shape,
        };
        self.tree.build(&kernels, rows, members);
        // The prior kernel.
        let mut prior = Prior::default();
        let mut prod = 1.0;
        let mut lsum = 0.0;
        for j in 0..nn {
            let (_, d) = self.num_dim(j);
            let (mu, sigma) = (0.5 * (d.lo + d.hi), d.hi - d.lo);
            let inv = 1.0 / sigma;
            let lm = central_log_mass((d.lo - mu) * inv, (d.hi - mu) * inv);
            prior.mu.push(mu);
            prior.inv.push(inv);
            prior.lmass.push(lm);
            if j < self.cont.len() {
                prod *= sigma;
                lsum += lm;
            }
        }
        prior.shape = -(prod.ln() + lsum) - LN_SQRT_2PI * self.cont.len() as f64;
        self.prior = prior;
    }

    /// Recomputes every member's bandwidths (the clip changed, or a rebuild).
    fn all_sigmas(&mut self, table: &Table, p: &ParzenParams) {
        for j in 0..self.n_num() {
            let order = std::mem::take(&mut self.sorted[j]);
            for q in 0..order.len() {
                self.set_sigma(table, &order, j, q, p);
            }
            self.sorted[j] = order;
        }
    }

    /// Recomputes the bandwidth of the kernel at sorted position `q` of dimension `j`.
    fn set_sigma(&mut self, table: &Table, order: &[u32], j: usize, q: usize, p: &ParzenParams) {
        let (col, dim) = self.num_dim(j);
        let (lo, hi) = (dim.lo, dim.hi);
        let m = order.len();
        let at = |i: usize| table.get(order[i] as usize, col);
        let range = hi - lo;
        let min_sigma = if p.consider_magic_clip {
            range / self.clip
        } else {
            1e-12
        };
        let clip = |sigma: f64| {
            let s = if sigma > min_sigma { sigma } else { min_sigma };
            if s < range {
                s
            } else {
                range
            }
        };
        let ends = !p.consider_endpoints;
        let x = at(q);
        let raw = if m == 1 {
            max(x - lo, hi - x)
        } else if q == 0 {
            let x1 = at(1);
            if ends {
                x1 - x
            } else {
                max(x - lo, x1 - x)
            }
        } else if q == m - 1 {
            let prev = at(q - 1);
            if ends {
                x - prev
            } else {
                max(x - prev, hi - x)
            }
        } else {
            max(x - at(q - 1), at(q + 1) - x)
        };
        let sigma = clip(raw);
        let r = order[q] as usize;
        if self.sigma[j][r] != sigma || self.mu_at[j][r] != x {
            self.sigma[j][r] = sigma;
            self.mu_at[j][r] = x;
            let inv = 1.0 / sigma;
            self.lmass[j][r] = central_log_mass((lo - x) * inv, (hi - x) * inv);
            self.mark(r);
        }
    }

    fn mark(&mut self, r: usize) {
        if !self.is_changed[r] {
            self.is_changed[r] = true;
            self.changed.push(r as u32);
        }
    }

    /// `−Σ_cont (ln σ + ln mass) − n_cont · ln √(2π)` of row `r`: the same operations in the
    /// same order for every row, however its bandwidths were reached.
    fn shape_of(&self, r: usize) -> f64 {
        let nc = self.cont.len();
        let mut prod = 1.0;
        let mut logs = 0.0;
        let mut lsum = 0.0;
        for j in 0..nc {
            let next = prod * self.sigma[j][r];
            if (1e-150..1e150).contains(&next) {
                prod = next;
            } else {
                logs += next.ln();
                prod = 1.0;
            }
            lsum += self.lmass[j][r];
        }
        -(logs + prod.ln() + lsum) - LN_SQRT_2PI * nc as f64
    }

    /// Recomputes the shapes and leaf scales of the rows whose bandwidths changed.
    fn finish_changes(&mut self) {
        let changed = std::mem::take(&mut self.changed);
        for &r in &changed {
            let r = r as usize;
            self.is_changed[r] = false;
            if !self.member[r] {
                continue;
            }
            self.shape[r] = self.shape_of(r);
            self.tree.update(r, &self.sigma, self.shape[r]);
        }
        self.changed = changed;
        self.changed.clear();
    }

    /// Adds row `r` (bandwidths with clip divisor `clip`).
    fn insert(&mut self, table: &Table, r: u32, p: &ParzenParams) {
        let ri = r as usize;
        self.member[ri] = true;
        self.m += 1;
        for j in 0..self.n_num() {
            let col = self.num_dim(j).0;
            let mut order = std::mem::take(&mut self.sorted[j]);
            let q = order.partition_point(|&x| key_cmp(table, col, x, r).is_lt());
            order.insert(q, r);
            self.sigma[j][ri] = f64::NAN;
            for k in q.saturating_sub(1)..(q + 2).min(order.len()) {
                self.set_sigma(table, &order, j, k, p);
            }
            self.sorted[j] = order;
        }
        self.mark(ri);
        let kernels = Kernels {
            table,
            cont: &self.cont,
            sigma: &self.sigma,
            shape: &self.shape,
        };
        self.tree.insert(&kernels, r);
    }

    /// Removes row `r`.
    fn remove(&mut self, table: &Table, r: u32, p: &ParzenParams) {
        let ri = r as usize;
        self.tree.remove(r);
        self.member[ri] = false;
        self.m -= 1;
        for j in 0..self.n_num() {
            let col = self.num_dim(j).0;
            let mut order = std::mem::take(&mut self.sorted[j]);
            let q = order.partition_point(|&x| key_cmp(table, col, x, r).is_lt());
            if order.get(q) == Some(&r) {
                order.remove(q);
            }
            for k in q.saturating_sub(1)..(q + 1).min(order.len()) {
                self.set_sigma(table, &order, j, k, p);
            }
            self.sorted[j] = order;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Per ask

    /// Weights and bounds for this ask.
    fn refresh(&mut self, p: &ParzenParams) {
        let m = self.m;
        // Optuna's weights ramp along the trial order, so they change with every new trial:
        // a kernel's log weight is computed only when its term is needed (see
        // `log_weight`); bounds use the largest weight.
        let mut w = std::mem::take(&mut self.lnw);
        if m == 0 {
            self.prior.base = self.prior.shape;
            self.total = 1.0;
        } else {
            observation_weights(p.weights, m, &mut w);
            self.total = w.iter().sum::<f64>() + p.prior_weight;
            self.prior.base = (p.prior_weight / self.total).ln() + self.prior.shape;
        }
        self.ln_wmax = (1.0 / self.total).ln();
        self.ln_weight.clear();
        self.ln_weight.resize_with(w.len(), || Cell::new(f64::NAN));
        self.lnw = w;
        // Categorical smoothing for this number of kernels.
        let n_kernels = m + 1;
        self.cat_ln = self
            .cat
            .iter()
            .map(|&(_, n_choices)| {
                let c = n_choices as f64;
                let (hit, miss, prior) =
                    crate::parzen::categorical_probabilities(c, m, p.prior_weight, n_kernels);
                (hit.ln(), miss.ln(), prior.ln())
            })
            .collect();
        self.tree.refresh();
    }

    /// The normalised log weight of member row `r`: Optuna's ramp at its position in trial
    /// order (completed members, then running rows), as [`observation_weights`] gives it.
    /// Computed once per position and ask (many candidates meet the same kernels).
    fn log_weight(&self, r: u32) -> f64 {
        let pos = r as usize - self.below.partition_point(|&b| b < r);
        let w = self.lnw.get(pos).copied().unwrap_or(1.0);
        match self.ln_weight.get(pos) {
            Some(cached) if !cached.get().is_nan() => cached.get(),
            Some(cached) => {
                cached.set((w / self.total).ln());
                cached.get()
            }
            None => (w / self.total).ln(),
        }
    }

    /// See [`disc_bound`].
    fn disc_bound(&self) -> f64 {
        disc_bound(self.disc.len())
    }

    /// Row `r`'s categorical and discrete terms at candidate `i`.
    #[inline]
    fn finish(
        &self,
        table: &Table,
        cands: &Cands,
        i: usize,
        r: usize,
        partial: f64,
        floor: f64,
    ) -> f64 {
        let n = cands.n;
        let mut a = partial;
        for (j, &(col, _)) in self.cat.iter().enumerate() {
            let x = cands.cat[j * n + i];
            let (hit, miss, _) = self.cat_ln[j];
            a += if table.get(r, col) as u32 == x {
                hit
            } else {
                miss
            };
        }
        if self.disc.is_empty() || a + self.disc_bound() < floor {
            return a;
        }
        let nc = self.cont.len();
        for (j, (col, _)) in self.disc.iter().enumerate() {
            let (lo, hi) = (cands.disc_lo[j * n + i], cands.disc_hi[j * n + i]);
            let (mu, is) = (table.get(r, *col), 1.0 / self.sigma[nc + j][r]);
            a += log_gauss_mass((lo - mu) * is, (hi - mu) * is) - self.lmass[nc + j][r];
        }
        a
    }

    /// The prior kernel's full term at candidate `i`: a lower bound of `ln g(x)`.
    pub(crate) fn prior_term(&self, cands: &Cands, i: usize) -> f64 {
        let n = cands.n;
        let nc = self.cont.len();
        let pr = &self.prior;
        let mut a = pr.base;
        for j in 0..nc {
            let t = (cands.cont[j * n + i] - pr.mu[j]) * (FRAC_1_SQRT_2 * pr.inv[j]);
            a -= t * t;
        }
        for (j, _) in self.cat.iter().enumerate() {
            a += self.cat_ln[j].2;
        }
        for j in 0..self.disc.len() {
            let (lo, hi) = (cands.disc_lo[j * n + i], cands.disc_hi[j * n + i]);
            let (mu, is) = (pr.mu[nc + j], pr.inv[nc + j]);
            a += log_gauss_mass((lo - mu) * is, (hi - mu) * is) - pr.lmass[nc + j];
        }
        a
    }

    /// `ln g(x)` of every candidate (see the module documentation).
    #[cfg(test)]
    pub(crate) fn log_pdf(&mut self, table: &Table, cands: &Cands, out: &mut [f64]) {
        for (i, out_i) in out.iter_mut().enumerate().take(cands.n) {
            let prior = self.prior_term(cands, i);
            *out_i = self
                .log_pdf_at(table, cands, i, prior, f64::INFINITY)
                .unwrap_or(f64::NAN);
        }
    }

    /// `ln g(x)` of candidate `i`, given its [`AboveMixture::prior_term`]; or, as soon as a
    /// single term shows that `ln g(x)` exceeds `give_up`, `Err` with that term (a lower bound
    /// of `ln g(x)`).
    pub(crate) fn log_pdf_at(
        &mut self,
        table: &Table,
        cands: &Cands,
        i: usize,
        prior: f64,
        give_up: f64,
    ) -> Result<f64, f64> {
        let n = cands.n;
        let nc = self.cont.len();
        let db = self.disc_bound();
        let mut stack = std::mem::take(&mut self.stack);
        let mut terms = std::mem::take(&mut self.terms);
        let mut z = std::mem::take(&mut self.z);
        z.clear();
        z.extend((0..nc).map(|j| cands.cont[j * n + i]));
        let result = {
            let mut best = prior;
            let mut floor = prior - NEGLIGIBLE - db;
            terms.clear();
            stack.clear();
            if self.m > 0 && !self.tree.is_empty() {
                stack.push(0);
            }
            'walk: while let Some(node) = stack.pop() {
                let node = node as usize;
                // Upper bound of every term below this node.
                let ub = self.ln_wmax + self.tree.max_shape(node) - self.tree.distance(node, &z);
                if ub < floor {
                    continue;
                }
                match self.tree.node(node) {
                    Node::Inner {
                        dim,
                        value,
                        left,
                        right,
                        ..
                    } => {
                        // Nearer child last, so it is visited first.
                        if z.get(dim as usize).is_some_and(|&zj| zj < value) {
                            stack.push(right);
                            stack.push(left);
                        } else {
                            stack.push(left);
                            stack.push(right);
                        }
                    }
                    Node::Leaf(leaf) => {
                        let l = self.tree.leaf(leaf);
                        // Whole groups of four slots (free slots have shape −∞ and stay below
                        // every floor).
                        let len = (l.rows.len() + 3) & !3;
                        let mut acc = [f64::NEG_INFINITY; LEAF];
                        let acc = &mut acc[..len];
                        acc.copy_from_slice(&l.shape[..len]);
                        let mut skip = false;
                        for (j, &zj) in z.iter().enumerate() {
                            let mu = &l.mu[j * LEAF..j * LEAF + len];
                            let sc = &l.scale[j * LEAF..j * LEAF + len];
                            for ((a, &mu), &sc) in acc.iter_mut().zip(mu).zip(sc) {
                                let t = (zj - mu) * sc;
                                *a -= t * t;
                            }
                            if j % 2 == 1 && j + 1 < nc {
                                let cut = floor - self.ln_wmax;
                                if !acc.iter().fold(false, |any, &x| any | (x >= cut)) {
                                    skip = true;
                                    break;
                                }
                            }
                        }
                        if skip {
                            continue;
                        }
                        for (&partial, &r) in acc.iter().zip(&l.rows) {
                            if partial + self.ln_wmax < floor {
                                continue;
                            }
                            let a = self.finish(
                                table,
                                cands,
                                i,
                                r as usize,
                                partial + self.log_weight(r),
                                floor,
                            );
                            if a + db < floor {
                                continue;
                            }
                            terms.push(a);
                            if a > best {
                                best = a;
                                floor = max(floor, a - NEGLIGIBLE - db);
                                if best > give_up {
                                    break 'walk;
                                }
                            }
                        }
                    }
                }
            }
            terms.push(prior);
            if best > give_up {
                Err(best)
            } else if best == f64::NEG_INFINITY {
                Ok(f64::NEG_INFINITY)
            } else {
                Ok(best + exact_sum_exp(&terms, best).ln())
            }
        };
        self.stack = stack;
        self.terms = terms;
        self.z = z;
        result
    }
}

/// `(value in col, row)` order of two rows.
#[inline]
fn key_cmp(table: &Table, col: usize, a: u32, b: u32) -> std::cmp::Ordering {
    table
        .get(a as usize, col)
        .total_cmp(&table.get(b as usize, col))
        .then(a.cmp(&b))
}

/// `Σ exp(t − max)` over the terms within [`NEGLIGIBLE`] of `max`, in exact fixed-point
/// arithmetic (each term to 2⁻¹⁰⁰), so the result does not depend on the order of the terms.
fn exact_sum_exp(terms: &[f64], max: f64) -> f64 {
    const TWO_36: f64 = 68_719_476_736.0;
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    let mut acc: u128 = 0;
    for &t in terms {
        if t > max - NEGLIGIBLE {
            // e ∈ (e^-36, 1]: e·2^36 = hi + frac exactly, frac·2^64 truncated.
            let x = (t - max).exp() * TWO_36;
            let hi = x as u64;
            let lo = ((x - hi as f64) * TWO_64) as u64;
            acc += (u128::from(hi) << 64) | u128::from(lo);
        }
    }
    ((acc >> 64) as f64 + (acc as u64) as f64 / TWO_64) / TWO_36
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use slurptuna_core::{search_param, ParamSpace};

    use super::*;
    use crate::dims::Dims;
    use crate::parzen::{Estimator, Scratch};
    use crate::random::random_params;
    use crate::tpe::TpeConfig;

    fn params() -> ParzenParams {
        TpeConfig::optuna().parzen()
    }

    fn space() -> ParamSpace {
        ParamSpace::new([
            ("x", search_param().range(-3.0, 2.0)),
            ("lr", search_param().range(1e-5, 1e-1).dtype("log")),
            ("y", search_param().range(0.0, 1.0)),
            ("n", search_param().range(1, 9).dtype("int")),
            ("drop", search_param().range(0.0, 0.5).step(0.05)),
            ("act", search_param().allowed(["relu", "tanh", "gelu"])),
        ])
        .unwrap()
    }

    /// `rows` random observations (internal values) of `dims`, some on the same values.
    fn table(dims: &Dims<'_>, rows: usize, rng: &mut ChaCha8Rng) -> Table {
        let width = dims.len();
        let mut t = Table {
            width,
            data: Vec::new(),
        };
        let mut row = vec![0.0; width];
        for r in 0..rows {
            if r > 3 && r % 9 == 0 {
                // A repeated observation: ties in every column.
                let copy = t.data[(r - 3) * width..(r - 2) * width].to_vec();
                t.data.extend_from_slice(&copy);
                continue;
            }
            assert!(dims.encode(&random_params(dims, rng), &mut row));
            t.data.extend_from_slice(&row);
        }
        t
    }

    /// Per column, the rows `0..n` in `(value, row)` order.
    fn sorted(t: &Table, n: usize) -> Vec<Vec<u32>> {
        (0..t.width)
            .map(|col| {
                let mut o: Vec<u32> = (0..n as u32).collect();
                o.sort_by(|&a, &b| key_cmp(t, col, a, b));
                o
            })
            .collect()
    }

    /// Candidates from the below-style estimator of some rows, plus random points.
    fn candidates(dims: &Dims<'_>, model: &Model<'_>, t: &Table, rng: &mut ChaCha8Rng) -> Cands {
        let mut s = Scratch::default();
        let rows: Vec<u32> = (0..(t.data.len() / t.width).min(12) as u32).collect();
        let e = Estimator::fit(model, t, &rows, &params(), &mut s, None, None);
        let mut cands = Cands::default();
        e.sample(rng, 48, &mut cands);
        let mut all: Vec<Vec<f64>> = (0..cands.n).map(|i| cands.row(i).to_vec()).collect();
        let width = dims.len();
        let mut row = vec![0.0; width];
        for _ in 0..16 {
            let p = random_params(dims, rng);
            assert!(dims.encode(&p, &mut row));
            // Raw values: undo the log transform of numeric columns.
            let raw: Vec<f64> = (0..width)
                .map(|c| match &dims.dims[c] {
                    crate::dims::Dim::Num(n) if n.log => row[c].exp(),
                    _ => row[c],
                })
                .collect();
            all.push(raw);
        }
        Cands::from_rows(&e, &all)
    }

    fn log_pdf(mix: &mut AboveMixture, t: &Table, cands: &Cands) -> Vec<f64> {
        let mut out = vec![0.0; cands.n];
        mix.log_pdf(t, cands, &mut out);
        out
    }

    #[test]
    fn equals_the_refitted_estimator() {
        let s = space();
        let dims = Dims::new(&s);
        let model = Model::new(&dims, 0..dims.len());
        let p = params();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (n, n_running) in [(0, 0), (1, 0), (2, 1), (6, 2), (40, 0), (300, 3)] {
            let t = table(&dims, n + n_running, &mut rng);
            let below: Vec<u32> = (0..n as u32).filter(|r| r % 5 == 1).collect();
            let above: Vec<u32> = (0..(n + n_running) as u32)
                .filter(|r| below.binary_search(r).is_err())
                .collect();
            let mut mix = AboveMixture::default();
            let sorted = sorted(&t, n);
            let rows = Members {
                table: &t,
                sorted: &sorted,
                epoch: 1,
                n_done: n,
                below: &below,
                n_running,
            };
            mix.update(&model, &rows, &p);
            let mut sc = Scratch::default();
            let e = Estimator::fit(&model, &t, &above, &p, &mut sc, None, None);
            let cands = candidates(&dims, &model, &t, &mut rng);
            let ours = log_pdf(&mut mix, &t, &cands);
            let mut theirs = vec![0.0; cands.n];
            e.log_pdf(&cands, &mut theirs, &mut sc);
            for (a, b) in ours.iter().zip(&theirs) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "n = {n}, running = {n_running}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn updated_in_place_equals_built_afresh() {
        let s = space();
        let dims = Dims::new(&s);
        let model = Model::new(&dims, 0..dims.len());
        let p = params();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let full = table(&dims, 420, &mut rng);
        let values: Vec<f64> = (0..420).map(|_| rng.gen::<f64>()).collect();
        let mut kept = AboveMixture::default();
        let mut epoch = 0;
        let mut n: usize = 0;
        while n < 400 {
            // Grow by a few rows, now and then start over from a shorter history.
            if rng.gen_bool(0.03) {
                epoch += 1;
                n = n.saturating_sub(rng.gen_range(1..40));
            } else {
                n += rng.gen_range(1..4);
            }
            let n_running = rng.gen_range(0..3);
            let mut t = Table {
                width: full.width,
                data: full.data[..(n + n_running) * full.width].to_vec(),
            };
            if n_running > 0 && rng.gen_bool(0.5) {
                // A running trial on an already observed value.
                let w = t.width;
                let copy = t.data[..w].to_vec();
                t.data[n * w..(n + 1) * w].copy_from_slice(&copy);
            }
            let k = (n / 10).clamp(1, 25).min(n);
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by(|&a, &b| values[a as usize].total_cmp(&values[b as usize]));
            let mut below = order[..k].to_vec();
            below.sort_unstable();
            let sorted = sorted(&t, n);
            let rows = Members {
                table: &t,
                sorted: &sorted,
                epoch,
                n_done: n,
                below: &below,
                n_running,
            };
            kept.update(&model, &rows, &p);
            let mut fresh = AboveMixture::default();
            fresh.update(&model, &rows, &p);
            let cands = candidates(&dims, &model, &t, &mut rng);
            let a = log_pdf(&mut kept, &t, &cands);
            let b = log_pdf(&mut fresh, &t, &cands);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "n = {n}, running = {n_running}");
            kept.undo_running(&t, &p);
        }
    }

    #[test]
    fn exact_sum_ignores_order() {
        let terms = [-3.0, 0.0, -35.9, -1e-9, -20.0, -7.25, -36.5];
        let mut rev = terms;
        rev.reverse();
        let a = exact_sum_exp(&terms, 0.0);
        assert_eq!(a.to_bits(), exact_sum_exp(&rev, 0.0).to_bits());
        let plain: f64 = terms.iter().filter(|&&t| t > -36.0).map(|t| t.exp()).sum();
        assert!((a - plain).abs() < 1e-15 * plain);
    }
}
