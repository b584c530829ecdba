//! The history in the sampler's internal form, kept between asks.
//!
//! A study's history only grows (finished trials are appended; a trial's record never changes
//! once finished), so the observation table and the per-column sorted orders of the previous
//! ask are extended instead of rebuilt: each ask converts only the new records and inserts
//! them into the sorted orders. The memo is identified by the space and, per record, the trial
//! number and the value; on any difference it falls back to the longest matching prefix, so a
//! proposal never depends on what was asked before (the result is bit-identical to a fresh
//! build). It holds one history, the size of the history itself, and the estimators' buffers
//! (reused instead of reallocated per ask).

use slurptuna_core::{AskContext, ParamSpace, TrialRecord};

use crate::above::AboveMixture;
use crate::dims::{Dim, Dims};
use crate::parzen::{Scratch, Table};

/// Fingerprint value of a record without a usable value (failed, or NaN).
const NO_VALUE: u64 = u64::MAX;

/// Completed trials as rows of internal values, with their sorted orders.
#[derive(Debug, Default)]
pub(crate) struct History {
    space: Option<ParamSpace>,
    /// Per history record: (trial number, value bits or [`NO_VALUE`]).
    keys: Vec<(u64, u64)>,
    /// `rows_before[i]`: table rows coming from the records before record `i`
    /// (`keys.len() + 1` entries).
    rows_before: Vec<u32>,
    /// Rows of the completed, encodable records in history order (plus, during an ask, the
    /// rows of running trials after them).
    pub(crate) table: Table,
    /// Objective value per completed row.
    pub(crate) values: Vec<f64>,
    /// Per space column: the completed rows in ascending order of `(value, row)`; empty for
    /// columns that are not numeric.
    pub(crate) sorted: Vec<Vec<u32>>,
    /// What the estimators keep from one ask to the next.
    pub(crate) reuse: Reuse,
    /// The best rows of the last ask, extended instead of reselected when only rows were
    /// added since.
    best: Option<Best>,
    /// Changes whenever rows already converted were dropped (the space or an earlier record
    /// changed), so that state derived from the rows knows to start over.
    pub(crate) epoch: u64,
}

/// The `k` best completed rows by `(score, row)`, ascending, for rows `0..n` of one epoch.
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
    /// Per column and completed row `[col][row]`: a bandwidth and the log truncation mass of
    /// the kernel on that value with it (NaN: none yet); see
    /// [`crate::parzen::Estimator::fit`].
    pub(crate) mass: Vec<Vec<(f64, f64)>>,
    /// Buffers of the estimators.
    pub(crate) scratch: Scratch,
    /// The above mixture of the multivariate model.
    pub(crate) above: AboveMixture,
}

fn key(t: &TrialRecord) -> (u64, u64) {
    let v = t.value().filter(|v| !v.is_nan());
    (t.number.0, v.map_or(NO_VALUE, f64::to_bits))
}

impl History {
    /// The `k` best completed rows (lower values are better unless `maximize`; ties go to
    /// the earlier row), in row order. `O(n)` the first time, then `O(new rows · k)`.
    pub(crate) fn best_rows(&mut self, maximize: bool, k: usize) -> Vec<u32> {
        let n = self.values.len();
        let values = &self.values;
        let score = |r: usize| if maximize { -values[r] } else { values[r] };
        let lt = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt();
        let k = k.min(n);
        let reuse = self.best.as_ref().is_some_and(|b| {
            b.epoch == self.epoch && b.maximize == maximize && b.k == k && b.n <= n
        });
        match &mut self.best {
            Some(best) if reuse => {
                for r in best.n..n {
                    let e = (score(r), r as u32);
                    if best.rows.last().is_some_and(|last| lt(&e, last)) {
                        let at = best.rows.partition_point(|x| lt(x, &e));
                        best.rows.insert(at, e);
                        best.rows.pop();
                    }
                }
                best.n = n;
            }
            _ => {
                let mut all: Vec<(f64, u32)> = (0..n).map(|r| (score(r), r as u32)).collect();
                let by = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                if k > 0 && k < n {
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

    /// Brings the memo in line with `ctx.history`; returns the number of completed rows.
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
            self.values.truncate(rows as usize);
            for col in &mut self.reuse.mass {
                col.truncate(rows as usize);
            }
            for order in &mut self.sorted {
                order.retain(|&r| r < rows);
            }
        }
        let old_rows = self.values.len();
        let mut row = vec![0.0; width];
        for t in &ctx.history[same..] {
            let k = key(t);
            if k.1 != NO_VALUE && dims.encode(&t.params, &mut row) {
                self.table.data.extend_from_slice(&row);
                self.values.push(f64::from_bits(k.1));
            }
            self.keys.push(k);
            self.rows_before.push(self.values.len() as u32);
        }
        let rows = self.values.len();
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
    use slurptuna_core::{search_param, Direction, Params, SeedStats, TrialNumber, TrialState};

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
                record(t, x, (t % 4) as i64, value)
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
        assert_eq!(grown.values, fresh.values);
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
}
