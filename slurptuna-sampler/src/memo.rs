//! The history in the sampler's internal form, kept between asks.
//!
//! A study's history only grows (finished trials are appended; a trial's record never changes
//! once finished), so the observation table and the per-column sorted orders of the previous
//! ask are extended instead of rebuilt: each ask converts only the new records and inserts
//! them into the sorted orders. The memo is identified by the space and, per record, the trial
//! number and the outcome (the value of a complete trial; the seeds and estimate of a pruned
//! one); on any difference it falls back to the longest matching prefix, so a
//! proposal never depends on what was asked before (the result is bit-identical to a fresh
//! build). It holds one history, the size of the history itself, and the estimators' buffers
//! (reused instead of reallocated per ask).

use std::cmp::Ordering;

use slurptuna_core::{AskContext, ParamSpace, TrialRecord, TrialState};

use crate::above::AboveMixture;
use crate::dims::{Dim, Dims};
use crate::parzen::{Scratch, Table};
use crate::tpe::PrunedRank;

/// What a history record contributes, as fingerprinted by the memo (floats by their bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fingerprint {
    /// No row: running, failed, or complete with a NaN value (Optuna fails such a trial).
    Nothing,
    /// A complete trial's value.
    Value(u64),
    /// A pruned trial's seeds evaluated and estimate.
    Pruned(u64, u64),
}

/// The outcome of a finished trial that is a row of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Complete, with its value (never NaN).
    Complete(f64),
    /// Pruned by a seed race after `seeds` seeds, with the estimate of its mean at the prune
    /// (its last intermediate value, in Optuna's terms).
    Pruned {
        /// Seeds evaluated (the race's last look).
        seeds: u64,
        /// The estimate μ̂ of the mean at the prune (may be NaN or infinite).
        estimate: f64,
    },
}

/// Finished trials (complete and pruned) as rows of internal values, with their sorted orders.
#[derive(Debug, Default)]
pub(crate) struct History {
    space: Option<ParamSpace>,
    /// Per history record: (trial number, what it contributes).
    keys: Vec<(u64, Fingerprint)>,
    /// `rows_before[i]`: table rows coming from the records before record `i`
    /// (`keys.len() + 1` entries).
    rows_before: Vec<u32>,
    /// Rows of the finished (complete or pruned), encodable records in history order (plus,
    /// during an ask, the rows of running trials after them).
    pub(crate) table: Table,
    /// Outcome per finished row.
    pub(crate) outcomes: Vec<Outcome>,
    /// The pruned rows, ascending.
    pruned: Vec<u32>,
    /// Per space column: the finished rows in ascending order of `(value, row)`; empty for
    /// columns that are not numeric.
    pub(crate) sorted: Vec<Vec<u32>>,
    /// What the estimators keep from one ask to the next.
    pub(crate) reuse: Reuse,
    /// The best complete rows of the last ask, extended instead of reselected when only rows
    /// were added since.
    best: Option<Best>,
    /// Changes whenever rows already converted were dropped (the space or an earlier record
    /// changed), so that state derived from the rows knows to start over.
    pub(crate) epoch: u64,
}

/// The `k` best complete rows by `(score, row)`, ascending, among rows `0..n` of one epoch.
#[derive(Debug)]
struct Best {
    epoch: u64,
    maximize: bool,
    k: usize,
    n: usize,
    rows: Vec<(f64, u32)>,
}

/// Per-history state of the estimators, kept between asks.
#[derive(Debug, Default)]
pub(crate) struct Reuse {
    /// Per column and finished row `[col][row]`: a bandwidth and the log truncation mass of
    /// the kernel on that value with it (NaN: none yet); see
    /// [`crate::parzen::Estimator::fit`].
    pub(crate) mass: Vec<Vec<(f64, f64)>>,
    /// Buffers of the estimators.
    pub(crate) scratch: Scratch,
    /// The above mixture of the multivariate model.
    pub(crate) above: AboveMixture,
}

fn key(t: &TrialRecord) -> (u64, Fingerprint) {
    let f = match &t.state {
        TrialState::Complete { .. } => t
            .value()
            .filter(|v| !v.is_nan())
            .map_or(Fingerprint::Nothing, |v| Fingerprint::Value(v.to_bits())),
        TrialState::Pruned { race } => Fingerprint::Pruned(race.seeds, race.estimate.to_bits()),
        TrialState::Running | TrialState::Failed { .. } => Fingerprint::Nothing,
    };
    (t.number.0, f)
}

/// An estimate as a rank key (smaller ranks better): negated when maximising, `+∞` when NaN.
fn ranked(maximize: bool, v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else if maximize {
        -v
    } else {
        v
    }
}

/// Optuna's key of a pruned trial (smaller ranks better): `(−seeds, estimate)`, the estimate
/// negated when maximising and `+∞` when NaN; ties go to the earlier row.
fn pruned_order(maximize: bool, a: (u64, f64, u32), b: (u64, f64, u32)) -> Ordering {
    let score = |v: f64| ranked(maximize, v);
    b.0.cmp(&a.0)
        .then(score(a.1).total_cmp(&score(b.1)))
        .then(a.2.cmp(&b.2))
}

impl History {
    /// The rows of the below group of `k` rows, in row order, as Optuna fills it: the best
    /// complete rows first (lower values are better unless `maximize`; ties go to the earlier
    /// row), then, if fewer than `k` rows are complete, the best pruned rows by
    /// `(−seeds, estimate)` (see [`pruned_order`]).
    ///
    /// With [`PrunedRank::ByEstimate`], complete rows by value and pruned rows by estimate are
    /// ranked together instead (a NaN estimate ranks last; ties go to the earlier row).
    pub(crate) fn below_rows(&mut self, maximize: bool, k: usize, rank: PrunedRank) -> Vec<u32> {
        if rank == PrunedRank::ByEstimate && !self.pruned.is_empty() {
            return self.below_rows_by_estimate(maximize, k);
        }
        let n_complete = self.outcomes.len() - self.pruned.len();
        let k_complete = k.min(n_complete);
        let mut rows = self.best_rows(maximize, k_complete);
        let k_pruned = (k - k_complete).min(self.pruned.len());
        if k_pruned > 0 {
            let outcomes = &self.outcomes;
            let mut pruned: Vec<(u64, f64, u32)> = self
                .pruned
                .iter()
                .filter_map(|&r| match outcomes[r as usize] {
                    Outcome::Pruned { seeds, estimate } => Some((seeds, estimate, r)),
                    Outcome::Complete(_) => None,
                })
                .collect();
            let by = |a: &(u64, f64, u32), b: &(u64, f64, u32)| pruned_order(maximize, *a, *b);
            if k_pruned < pruned.len() {
                pruned.select_nth_unstable_by(k_pruned - 1, by);
            }
            rows.extend(pruned[..k_pruned].iter().map(|e| e.2));
            rows.sort_unstable();
        }
        rows
    }

    /// The `k` best rows, complete by value and pruned by estimate in one ranking, in row
    /// order.
    fn below_rows_by_estimate(&self, maximize: bool, k: usize) -> Vec<u32> {
        let score = |v: f64| ranked(maximize, v);
        let mut all: Vec<(f64, u32)> = self
            .outcomes
            .iter()
            .enumerate()
            .map(|(r, o)| match *o {
                Outcome::Complete(v) => (score(v), r as u32),
                Outcome::Pruned { estimate, .. } => (score(estimate), r as u32),
            })
            .collect();
        let by = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        let k = k.min(all.len());
        if k == 0 {
            return Vec::new();
        }
        if k < all.len() {
            all.select_nth_unstable_by(k - 1, by);
        }
        let mut rows: Vec<u32> = all[..k].iter().map(|e| e.1).collect();
        rows.sort_unstable();
        rows
    }

    /// The `k` best complete rows (lower values are better unless `maximize`; ties go to
    /// the earlier row), in row order. `O(n)` the first time, then `O(new rows · k)`.
    fn best_rows(&mut self, maximize: bool, k: usize) -> Vec<u32> {
        let n = self.outcomes.len();
        let outcomes = &self.outcomes;
        let score = |r: usize| match outcomes[r] {
            Outcome::Complete(v) => Some(if maximize { -v } else { v }),
            Outcome::Pruned { .. } => None,
        };
        let lt = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt();
        let n_complete = n - self.pruned.len();
        let k = k.min(n_complete);
        let reuse = self.best.as_ref().is_some_and(|b| {
            b.epoch == self.epoch && b.maximize == maximize && b.k == k && b.n <= n
        });
        match &mut self.best {
            Some(best) if reuse => {
                for r in best.n..n {
                    let Some(s) = score(r) else { continue };
                    let e = (s, r as u32);
                    if best.rows.last().is_some_and(|last| lt(&e, last)) {
                        let at = best.rows.partition_point(|x| lt(x, &e));
                        best.rows.insert(at, e);
                        best.rows.pop();
                    }
                }
                best.n = n;
            }
            _ => {
                let mut all: Vec<(f64, u32)> = (0..n)
                    .filter_map(|r| score(r).map(|s| (s, r as u32)))
                    .collect();
                let by = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                if k > 0 && k < all.len() {
                    all.select_nth_unstable_by(k - 1, by);
                }
                all.truncate(k);
                all.sort_unstable_by(by);
                self.best = Some(Best {
                    epoch: self.epoch,
                    maximize,
                    k,
                    n,
                    rows: all,
                });
            }
        }
        let mut rows: Vec<u32> = self
            .best
            .as_ref()
            .map(|b| b.rows.iter().map(|e| e.1).collect())
            .unwrap_or_default();
        rows.sort_unstable();
        rows
    }

    /// Brings the memo in line with `ctx.history`; returns the number of finished (complete or
    /// pruned) rows.
    pub(crate) fn sync(&mut self, ctx: &AskContext<'_>, dims: &Dims<'_>) -> usize {
        let width = dims.len();
        if self.space.as_ref() != Some(ctx.space) {
            let epoch = self.epoch + 1;
            *self = History {
                epoch,
                space: Some(ctx.space.clone()),
                rows_before: vec![0],
                table: Table {
                    width,
                    data: Vec::new(),
                },
                sorted: vec![Vec::new(); width],
                reuse: Reuse {
                    mass: vec![Vec::new(); width],
                    scratch: Scratch::default(),
                    above: AboveMixture::default(),
                },
                ..History::default()
            };
        }
        // Longest prefix of records that the memo already holds.
        let same = self
            .keys
            .iter()
            .zip(ctx.history)
            .take_while(|(k, t)| **k == key(t))
            .count();
        if same < self.keys.len() {
            self.epoch += 1;
            let rows = self.rows_before[same];
            self.keys.truncate(same);
            self.rows_before.truncate(same + 1);
            self.table.data.truncate(rows as usize * width);
            self.outcomes.truncate(rows as usize);
            self.pruned.retain(|&r| r < rows);
            for col in &mut self.reuse.mass {
                col.truncate(rows as usize);
            }
            for order in &mut self.sorted {
                order.retain(|&r| r < rows);
            }
        }
        let old_rows = self.outcomes.len();
        let mut row = vec![0.0; width];
        for t in &ctx.history[same..] {
            let k = key(t);
            let outcome = match k.1 {
                Fingerprint::Nothing => None,
                Fingerprint::Value(v) => Some(Outcome::Complete(f64::from_bits(v))),
                Fingerprint::Pruned(seeds, estimate) => Some(Outcome::Pruned {
                    seeds,
                    estimate: f64::from_bits(estimate),
                }),
            };
            if let Some(outcome) = outcome {
                if dims.encode(&t.params, &mut row) {
                    if matches!(outcome, Outcome::Pruned { .. }) {
                        self.pruned.push(self.outcomes.len() as u32);
                    }
                    self.table.data.extend_from_slice(&row);
                    self.outcomes.push(outcome);
                }
            }
            self.keys.push(k);
            self.rows_before.push(self.outcomes.len() as u32);
        }
        let rows = self.outcomes.len();
        for col in &mut self.reuse.mass {
            col.resize(rows, (f64::NAN, 0.0));
        }
        let fresh = rows - old_rows;
        for (col, dim) in dims.dims.iter().enumerate() {
            if !matches!(dim, Dim::Num(_)) || fresh == 0 {
                continue;
            }
            let table = &self.table;
            let value = |r: u32| table.get(r as usize, col);
            let order = &mut self.sorted[col];
            if fresh > 8 + old_rows / 16 {
                order.clear();
                order.extend(0..rows as u32);
                order.sort_unstable_by(|&a, &b| value(a).total_cmp(&value(b)).then(a.cmp(&b)));
            } else {
                for r in old_rows as u32..rows as u32 {
                    // After every equal value: those come from earlier rows.
                    let v = value(r);
                    let at = order.partition_point(|&x| value(x).total_cmp(&v).is_le());
                    order.insert(at, r);
                }
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::{
        search_param, Direction, Params, RaceOutcome, SeedStats, TrialNumber, TrialState,
    };

    fn record(t: u64, x: f64, y: i64, value: Option<f64>) -> TrialRecord {
        let mut params = Params::new();
        params.insert("x", x);
        params.insert("y", y);
        TrialRecord {
            number: TrialNumber(t),
            params,
            state: match value {
                Some(v) => TrialState::Complete {
                    stats: SeedStats::from_values(&[v]),
                },
                None => TrialState::Failed {
                    reason: "boom".into(),
                },
            },
        }
    }

    /// A trial pruned after `seeds` seeds with estimate `estimate`.
    fn pruned(t: u64, x: f64, seeds: u64, estimate: f64) -> TrialRecord {
        let mut r = record(t, x, 0, None);
        r.state = TrialState::Pruned {
            race: Box::new(RaceOutcome {
                seeds,
                estimate,
                bound: estimate,
                beta: 0.0,
                threshold: 0.0,
                control: TrialNumber(0),
                alpha: 0.05,
                stats: SeedStats::from_values(&[estimate]),
                looks: vec![(seeds, estimate)],
            }),
        };
        r
    }

    fn synced(space: &ParamSpace, history: &[TrialRecord], memo: &mut History) -> usize {
        let dims = Dims::new(space);
        let ctx = AskContext {
            space,
            direction: Direction::Minimize,
            trial: TrialNumber(history.len() as u64),
            history,
            running: &[],
        };
        memo.sync(&ctx, &dims)
    }

    #[test]
    fn incremental_sync_equals_a_fresh_build() {
        let space = slurptuna_core::ParamSpace::new([
            ("x", search_param().range(-1.0, 1.0)),
            ("y", search_param().range(0, 3).dtype("int")),
        ])
        .unwrap();
        let history: Vec<TrialRecord> = (0..300u64)
            .map(|t| {
                let x = ((t * 37 % 101) as f64 / 50.0) - 1.0;
                let value = if t % 17 == 5 { None } else { Some(x * x) };
                if t % 5 == 2 {
                    pruned(t, x, 100 * (t % 3 + 1), x * x + 1.0)
                } else {
                    record(t, x, (t % 4) as i64, value)
                }
            })
            .collect();
        let mut grown = History::default();
        for n in (0..=300).step_by(7).chain([300]) {
            synced(&space, &history[..n], &mut grown);
        }
        // A different history with the same first records: only the prefix is kept.
        let mut other = history[..150].to_vec();
        other.push(record(999, 0.25, 1, Some(3.0)));
        synced(&space, &other, &mut grown);
        let rows = synced(&space, &history, &mut grown);
        let mut fresh = History::default();
        assert_eq!(synced(&space, &history, &mut fresh), rows);
        assert_eq!(grown.table.data, fresh.table.data);
        assert_eq!(grown.outcomes, fresh.outcomes);
        assert_eq!(grown.pruned, fresh.pruned);
        assert!(!fresh.pruned.is_empty());
        for k in [1, 25, 200, 260, 300] {
            for maximize in [false, true] {
                assert_eq!(
                    grown.below_rows(maximize, k, PrunedRank::AfterComplete),
                    fresh.below_rows(maximize, k, PrunedRank::AfterComplete),
                    "k {k}, maximize {maximize}"
                );
            }
        }
        assert_eq!(grown.sorted, fresh.sorted);
        assert_eq!(grown.keys, fresh.keys);
        assert_eq!(grown.rows_before, fresh.rows_before);
        // The order is ascending by (value, row).
        let col = &fresh.sorted[0];
        assert_eq!(col.len(), rows);
        for w in col.windows(2) {
            let (a, b) = (
                fresh.table.get(w[0] as usize, 0),
                fresh.table.get(w[1] as usize, 0),
            );
            assert!(a < b || (a == b && w[0] < w[1]));
        }
    }

    #[test]
    fn below_takes_complete_rows_first_then_pruned_by_seeds_then_estimate() {
        let space = slurptuna_core::ParamSpace::new([
            ("x", search_param().range(-1.0, 1.0)),
            ("y", search_param().range(0, 3).dtype("int")),
        ])
        .unwrap();
        let history = vec![
            record(0, 0.0, 0, Some(3.0)),    // row 0
            pruned(1, 0.1, 100, 5.0),        // row 1
            record(2, 0.2, 0, None),         // failed: no row
            pruned(3, 0.3, 400, 9.0),        // row 2
            record(4, 0.4, 0, Some(1.0)),    // row 3
            pruned(5, 0.5, 400, 7.0),        // row 4
            pruned(6, 0.6, 100, 4.0),        // row 5
            pruned(7, 0.7, 400, f64::NAN),   // row 6: NaN ranks last among 400 seeds
            pruned(8, 0.8, 50, -100.0),      // row 7: fewest seeds, however good
            pruned(9, 0.9, 100, 4.0),        // row 8: ties with row 5, after it
            record(10, -0.5, 0, Some(50.0)), // row 9: complete, worse than every pruned
        ];
        let mut memo = History::default();
        assert_eq!(synced(&space, &history, &mut memo), 10);
        // Complete by value, then pruned by (−seeds, estimate, row).
        let minimise = [3, 0, 9, 4, 2, 6, 5, 8, 1, 7];
        // Maximising: complete by descending value; pruned by (−seeds, −estimate, row), NaN
        // still last.
        let maximise = [9, 0, 3, 2, 4, 6, 1, 5, 8, 7];
        for (maximize, rank) in [(false, minimise), (true, maximise)] {
            for k in 0..=rank.len() {
                let mut want = rank[..k].to_vec();
                want.sort_unstable();
                assert_eq!(
                    memo.below_rows(maximize, k, PrunedRank::AfterComplete),
                    want,
                    "maximize {maximize}, k {k}"
                );
            }
            // k beyond the rows takes every row.
            assert_eq!(
                memo.below_rows(maximize, 99, PrunedRank::AfterComplete)
                    .len(),
                rank.len()
            );
        }
        // By estimate: complete values and pruned estimates in one ranking, NaN last.
        let minimise = [7, 3, 0, 5, 8, 1, 4, 2, 9, 6];
        let maximise = [9, 2, 4, 1, 5, 8, 0, 3, 7, 6];
        for (maximize, rank) in [(false, minimise), (true, maximise)] {
            for k in 0..=rank.len() + 1 {
                let mut want = rank[..k.min(rank.len())].to_vec();
                want.sort_unstable();
                assert_eq!(
                    memo.below_rows(maximize, k, PrunedRank::ByEstimate),
                    want,
                    "by estimate: maximize {maximize}, k {k}"
                );
            }
        }
        let minimise = [3, 0, 9, 4, 2, 6, 5, 8, 1, 7];
        // Incrementally: the same selection after growing the memo record by record.
        let mut grown = History::default();
        for n in 0..=history.len() {
            synced(&space, &history[..n], &mut grown);
            let _ = grown.below_rows(false, 3, PrunedRank::AfterComplete);
        }
        for k in 0..=minimise.len() {
            assert_eq!(
                grown.below_rows(false, k, PrunedRank::AfterComplete),
                memo.below_rows(false, k, PrunedRank::AfterComplete),
                "k {k}"
            );
        }
    }
}
