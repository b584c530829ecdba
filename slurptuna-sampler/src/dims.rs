//! The sampler-side view of a [`ParamSpace`]: every parameter as a numeric dimension in
//! transformed space (log applied, step-extended bounds) or a categorical one, plus conversion of
//! [`Params`] to and from that internal representation.

use slurptuna_core::{Distribution, ParamSpace, ParamValue, Params};

/// A numeric parameter (float or int, optionally log-scaled or stepped).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NumDim {
    /// Raw lower bound.
    pub(crate) low: f64,
    /// Raw upper bound.
    pub(crate) high: f64,
    /// Grid step for ints and stepped floats (`None` for continuous floats).
    pub(crate) step: Option<f64>,
    /// Log scale.
    pub(crate) log: bool,
    /// Whether values are integers.
    pub(crate) int: bool,
    /// Truncation bounds in transformed space (`t(low − step/2)`, `t(high + step/2)`).
    pub(crate) lo: f64,
    /// See `lo`.
    pub(crate) hi: f64,
}

/// `x.ln()` as a call of its own: inlined, the optimiser computes it on both sides of the
/// `log` branch (it is cheap to speculate in its cost model, not in time).
#[inline(never)]
fn ln(x: f64) -> f64 {
    x.ln()
}

/// `x.exp()`, not inlined for the same reason as [`ln`].
#[inline(never)]
fn exp(x: f64) -> f64 {
    x.exp()
}

impl NumDim {
    /// The transform `t`: `ln` for log scale, identity otherwise.
    #[inline]
    pub(crate) fn t(&self, x: f64) -> f64 {
        if self.log {
            ln(x)
        } else {
            x
        }
    }

    /// Maps a transformed value back to a legal raw value (exp, snap to the grid, clip).
    #[inline]
    pub(crate) fn snap(&self, z: f64) -> f64 {
        let x = if self.log { exp(z) } else { z };
        match self.step {
            Some(s) => {
                let k = ((x - self.low) / s).round_ties_even();
                (self.low + k * s).clamp(self.low, self.high)
            }
            None => x.clamp(self.low, self.high),
        }
    }

    /// The bin of a raw grid value in transformed space: `[t(x − s/2), t(x + s/2)]`.
    #[inline]
    pub(crate) fn bin(&self, x: f64) -> (f64, f64) {
        let h = self.step.unwrap_or(0.0) / 2.0;
        (self.t(x - h), self.t(x + h))
    }

    /// Whether the kernel density is a bin mass (ints and stepped floats).
    #[inline]
    pub(crate) fn discrete(&self) -> bool {
        self.step.is_some()
    }

    fn value(&self, x: f64) -> ParamValue {
        if self.int {
            ParamValue::Int(x.round() as i64)
        } else {
            ParamValue::Float(x)
        }
    }
}

/// One dimension of the space as the samplers see it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Dim {
    /// Numeric; internal value = transformed value `t(x)`.
    Num(NumDim),
    /// Categorical with this many choices; internal value = choice index.
    Cat(usize),
    /// A single-valued parameter: always proposed as its only value, never modelled.
    Fixed,
}

/// The whole space in sampler form, in declaration order.
#[derive(Clone, Debug)]
pub(crate) struct Dims<'a> {
    entries: Vec<(&'a str, &'a Distribution)>,
    pub(crate) dims: Vec<Dim>,
    /// For each position in name order, the declaration index (`Params` iterate by name).
    by_name: Vec<usize>,
}

impl<'a> Dims<'a> {
    pub(crate) fn new(space: &'a ParamSpace) -> Self {
        let dims = space
            .iter()
            .map(|(_, d)| {
                if d.is_single() {
                    return Dim::Fixed;
                }
                match d {
                    Distribution::Float {
                        low,
                        high,
                        log,
                        step,
                    } => num_dim(*low, *high, *step, *log, false),
                    Distribution::Int {
                        low,
                        high,
                        log,
                        step,
                    } => num_dim(*low as f64, *high as f64, Some(*step as f64), *log, true),
                    Distribution::Categorical { choices } => Dim::Cat(choices.len()),
                }
            })
            .collect();
        let entries: Vec<(&str, &Distribution)> = space.iter().collect();
        let mut by_name: Vec<usize> = (0..space.len()).collect();
        by_name.sort_by(|&a, &b| entries[a].0.cmp(entries[b].0));
        Dims {
            entries,
            dims,
            by_name,
        }
    }

    /// Number of dimensions (including fixed ones).
    pub(crate) fn len(&self) -> usize {
        self.dims.len()
    }

    /// Writes the internal representation of `params` into `out` (one value per dimension).
    /// Returns false when a parameter is missing, of the wrong type or out of bounds: such a
    /// trial cannot be used as an observation.
    pub(crate) fn encode(&self, params: &Params, out: &mut [f64]) -> bool {
        if params.len() == self.dims.len() {
            // Fast path: same names, walked in lockstep in name order.
            let mut same_names = true;
            for ((name, value), &i) in params.iter().zip(&self.by_name) {
                let (want, dist) = self.entries[i];
                if !same_str(name, want) {
                    same_names = false;
                    break;
                }
                let v = match (&self.dims[i], value) {
                    (Dim::Num(n), ParamValue::Float(x)) if !n.int => {
                        let x = *x;
                        if !(x >= n.low && x <= n.high) {
                            return false;
                        }
                        if n.log {
                            x.ln()
                        } else {
                            x
                        }
                    }
                    _ => match self.encode_one(i, dist, value) {
                        Some(v) => v,
                        None => return false,
                    },
                };
                out[i] = v;
            }
            if same_names {
                return true;
            }
        }
        for (i, &(name, dist)) in self.entries.iter().enumerate() {
            match params.get(name).and_then(|v| self.encode_one(i, dist, v)) {
                Some(v) => out[i] = v,
                None => return false,
            }
        }
        true
    }

    fn encode_one(&self, i: usize, dist: &Distribution, v: &ParamValue) -> Option<f64> {
        match (&self.dims[i], dist) {
            (Dim::Fixed, _) => Some(0.0),
            (Dim::Num(n), _) => {
                let x = v.as_f64()?;
                if !(x >= n.low && x <= n.high) {
                    None
                } else if n.log {
                    Some(x.ln())
                } else {
                    Some(x)
                }
            }
            (Dim::Cat(_), Distribution::Categorical { choices }) => {
                choices.iter().position(|c| c == v).map(|k| k as f64)
            }
            (Dim::Cat(_), _) => None,
        }
    }

    /// Turns internal values back into [`Params`]. Numeric values must already be snapped
    /// (see [`NumDim::snap`]); categorical values are choice indices.
    pub(crate) fn decode(&self, raw: &[f64]) -> Params {
        let mut p = Params::new();
        for (&(name, dist), (dim, &x)) in self.entries.iter().zip(self.dims.iter().zip(raw)) {
            let value = match (dim, dist) {
                (Dim::Num(n), _) => n.value(x),
                (Dim::Cat(_), Distribution::Categorical { choices }) => {
                    choices[(x as usize).min(choices.len() - 1)].clone()
                }
                (_, d) => single_value(d),
            };
            p.insert(name, value);
        }
        p
    }

    /// A legal raw value for dimension `i` from a uniform `u ∈ [0, 1)` (random and QMC
    /// sampling): uniform in transformed space over the step-extended range, then snapped.
    pub(crate) fn unit_to_raw(&self, i: usize, u: f64) -> f64 {
        match &self.dims[i] {
            Dim::Num(n) => n.snap(n.lo + u * (n.hi - n.lo)),
            Dim::Cat(k) => ((u * *k as f64) as usize).min(k - 1) as f64,
            Dim::Fixed => 0.0,
        }
    }
}

/// String equality without a library call (parameter names are short).
#[inline]
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn num_dim(low: f64, high: f64, step: Option<f64>, log: bool, int: bool) -> Dim {
    let h = step.unwrap_or(0.0) / 2.0;
    let (lo, hi) = if log {
        ((low - h).ln(), (high + h).ln())
    } else {
        (low - h, high + h)
    };
    Dim::Num(NumDim {
        low,
        high,
        step,
        log,
        int,
        lo,
        hi,
    })
}

fn single_value(d: &Distribution) -> ParamValue {
    match d {
        Distribution::Float { low, .. } => ParamValue::Float(*low),
        Distribution::Int { low, .. } => ParamValue::Int(*low),
        Distribution::Categorical { choices } => {
            choices.first().cloned().unwrap_or(ParamValue::Bool(false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::search_param;

    fn space() -> ParamSpace {
        ParamSpace::new([
            ("z", search_param().range(1e-3, 1.0).dtype("log")),
            ("a", search_param().range(-2, 6).dtype("int").step(2)),
            ("m", search_param().allowed(["x", "y", "w"])),
            ("c", search_param().range(0.0, 0.5).step(0.1)),
            ("one", search_param().allowed([7])),
        ])
        .unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = space();
        let d = Dims::new(&s);
        let mut p = Params::new();
        p.insert("z", 0.01);
        p.insert("a", 4);
        p.insert("m", "w");
        p.insert("c", 0.3);
        p.insert("one", 7);
        let mut buf = vec![0.0; d.len()];
        assert!(d.encode(&p, &mut buf));
        assert!((buf[0] - 0.01f64.ln()).abs() < 1e-15);
        assert_eq!(&buf[1..3], &[4.0, 2.0]);
        let mut raw = buf.clone();
        raw[0] = 0.01;
        assert_eq!(d.decode(&raw), p);
        p.insert("a", 8);
        assert!(
            !d.encode(&p, &mut buf),
            "out of bounds is not an observation"
        );
        p.insert("a", 4);
        p.insert("m", "q");
        assert!(
            !d.encode(&p, &mut buf),
            "unknown choice is not an observation"
        );
    }

    #[test]
    fn snapping_and_bins() {
        let s = space();
        let d = Dims::new(&s);
        let Dim::Num(a) = &d.dims[1] else {
            panic!("int dim")
        };
        assert_eq!((a.lo, a.hi), (-3.0, 7.0));
        assert_eq!(a.snap(2.9), 2.0);
        assert_eq!(a.snap(3.1), 4.0);
        assert_eq!(a.snap(7.0), 6.0);
        assert_eq!(a.bin(4.0), (3.0, 5.0));
        for u in [0.0, 0.2, 0.5, 0.999_999] {
            let v = d.unit_to_raw(1, u);
            assert!(s.get("a").unwrap().contains(&ParamValue::Int(v as i64)));
        }
    }
}
