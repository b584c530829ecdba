//! Search parameters: what the user writes ([`SearchParam`]), what samplers see ([`Distribution`]).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::params::{ParamValue, Params};

/// A number usable as a range bound or step: any primitive integer or float.
pub trait Bound: Copy {
    /// The bound as `f64`.
    fn to_f64(self) -> f64;
}
macro_rules! impl_bound {
    ($($t:ty),*) => {$(impl Bound for $t { fn to_f64(self) -> f64 { self as f64 } })*};
}
impl_bound!(f64, f32, i64, i32, i16, i8, u64, u32, u16, u8, usize, isize);

/// How a search parameter is written by the user, before validation.
///
/// Build one with [`search_param`]; a `(low, high)` tuple converts into a float range.
/// Nothing is checked here: [`SearchParam::resolve`] (called when the loss is built) validates
/// and names the parameter in every error.
///
/// ```
/// use slurptuna_core::{search_param, Distribution};
/// let lr = search_param().range(1e-4, 1e-1).dtype("log").resolve("lr").unwrap();
/// assert!(matches!(lr, Distribution::Float { log: true, .. }));
/// let bad = search_param().range(0.5, 3.7).dtype("int").resolve("n").unwrap_err();
/// assert!(bad.to_string().contains("'n'"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchParam {
    range: Option<(f64, f64)>,
    allowed: Option<Vec<ParamValue>>,
    dtype: Option<String>,
    step: Option<f64>,
    log: bool,
}

/// The value type of a search parameter (see [`SearchParam::dtype`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dtype {
    /// Floats on a linear scale (the default for ranges).
    Float,
    /// Whole numbers on a linear scale.
    Int,
    /// Floats on a log scale (`low > 0`).
    Log,
    /// Whole numbers on a log scale (`low > 0`).
    IntLog,
    /// Text choices.
    Str,
    /// `true` / `false` choices.
    Bool,
}

impl Dtype {
    /// The name of the seed's API: `float`, `int`, `log`, `int_log`, `str`, `bool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Float => "float",
            Dtype::Int => "int",
            Dtype::Log => "log",
            Dtype::IntLog => "int_log",
            Dtype::Str => "str",
            Dtype::Bool => "bool",
        }
    }
}

/// A dtype as given to [`SearchParam::dtype`]: a [`Dtype`] or its name (checked when the loss is
/// built, so that the error can name the parameter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtypeName(String);

impl From<Dtype> for DtypeName {
    fn from(d: Dtype) -> Self {
        DtypeName(d.as_str().to_string())
    }
}

impl From<&str> for DtypeName {
    fn from(s: &str) -> Self {
        DtypeName(s.to_string())
    }
}

impl From<String> for DtypeName {
    fn from(s: String) -> Self {
        DtypeName(s)
    }
}

/// Starts a [`SearchParam`]: then `.range(lo, hi)` or `.allowed([...])`, optionally `.dtype(..)`,
/// `.step(..)`, `.log(true)`.
pub fn search_param() -> SearchParam {
    SearchParam::default()
}

impl SearchParam {
    /// A numeric range `[low, high]` (both inclusive).
    pub fn range<A: Bound, B: Bound>(mut self, low: A, high: B) -> Self {
        self.range = Some((low.to_f64(), high.to_f64()));
        self
    }

    /// A categorical choice among `values` (all str, all int, all float or all bool).
    pub fn allowed<I, T>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<ParamValue>,
    {
        self.allowed = Some(values.into_iter().map(Into::into).collect());
        self
    }

    /// The value type: a [`Dtype`], or its name as in the seed's API: `"float"` (default for
    /// ranges), `"int"`, `"log"` (log-scale float), `"int_log"` (log-scale int); for choices
    /// `"str"`, `"int"`, `"float"`, `"bool"`. A name that is none of these is an error naming
    /// the parameter when the loss is built.
    ///
    /// ```
    /// use slurptuna_core::{search_param, Dtype};
    /// assert_eq!(search_param().range(1, 8).dtype(Dtype::Int), search_param().range(1, 8).dtype("int"));
    /// ```
    pub fn dtype(mut self, dtype: impl Into<DtypeName>) -> Self {
        self.dtype = Some(dtype.into().0);
        self
    }

    /// Quantises a range to `low + k * step`.
    pub fn step<S: Bound>(mut self, step: S) -> Self {
        self.step = Some(step.to_f64());
        self
    }

    /// Samples a range on a log scale (same as dtype `"log"` / `"int_log"`).
    pub fn log(mut self, log: bool) -> Self {
        self.log = log;
        self
    }

    /// Validates this parameter and turns it into a [`Distribution`]; errors name `name`.
    pub fn resolve(&self, name: &str) -> Result<Distribution> {
        let err = |reason: String| CoreError::param(name, reason);
        match (&self.range, &self.allowed) {
            (Some(_), Some(_)) | (None, None) => Err(err(
                "define exactly one of range(low, high) or allowed([...])".into(),
            )),
            (Some((low, high)), None) => self.resolve_range(name, *low, *high),
            (None, Some(values)) => {
                if self.step.is_some() || self.log {
                    return Err(err(
                        "step and log apply to ranges, not to allowed values".into()
                    ));
                }
                resolve_choices(name, values, self.dtype.as_deref())
            }
        }
    }

    fn resolve_range(&self, name: &str, low: f64, high: f64) -> Result<Distribution> {
        let err = |reason: String| CoreError::param(name, reason);
        if !low.is_finite() || !high.is_finite() {
            return Err(err(format!(
                "range bounds must be finite, got ({low}, {high})"
            )));
        }
        if low > high {
            return Err(err(format!("range low {low} is greater than high {high}")));
        }
        let (int, dtype_log) = match self.dtype.as_deref().unwrap_or("float") {
            "float" => (false, false),
            "log" => (false, true),
            "int" => (true, false),
            "int_log" | "log_int" => (true, true),
            other => {
                return Err(err(format!(
                    "unknown dtype '{other}' for a range: use float, int, log or int_log"
                )))
            }
        };
        let log = self.log || dtype_log;
        if log && low <= 0.0 {
            return Err(err(format!("log scale needs low > 0, got low = {low}")));
        }
        if let Some(step) = self.step {
            if !step.is_finite() || step <= 0.0 {
                return Err(err(format!("step must be a finite number > 0, got {step}")));
            }
            if log {
                return Err(err("step cannot be combined with log scale".into()));
            }
        }
        if int {
            let as_int = |x: f64, what: &str| -> Result<i64> {
                if x.fract() != 0.0 || x.abs() > 9.007_199_254_740_992e15 {
                    Err(err(format!(
                        "int range {what} must be a whole number, got {x} (bounds are never truncated)"
                    )))
                } else {
                    Ok(x as i64)
                }
            };
            let (lo, hi) = (as_int(low, "low")?, as_int(high, "high")?);
            let step = match self.step {
                None => 1,
                Some(s) => as_int(s, "step")?,
            };
            if (hi - lo) % step != 0 {
                return Err(err(format!(
                    "int range ({lo}, {hi}) is not a whole number of steps of {step}"
                )));
            }
            return Ok(Distribution::Int {
                low: lo,
                high: hi,
                log,
                step,
            });
        }
        if let Some(step) = self.step {
            let k = (high - low) / step;
            if (k - k.round()).abs() > 1e-8 * k.abs().max(1.0) {
                return Err(err(format!(
                    "range ({low}, {high}) is not a whole number of steps of {step}"
                )));
            }
        }
        Ok(Distribution::Float {
            low,
            high,
            log,
            step: self.step,
        })
    }
}

fn resolve_choices(name: &str, values: &[ParamValue], dtype: Option<&str>) -> Result<Distribution> {
    let err = |reason: String| CoreError::param(name, reason);
    if values.is_empty() {
        return Err(err("allowed values must not be empty".into()));
    }
    let all = |f: fn(&ParamValue) -> bool| values.iter().all(f);
    let inferred = if all(|v| matches!(v, ParamValue::Bool(_))) {
        "bool"
    } else if all(|v| matches!(v, ParamValue::Int(_))) {
        "int"
    } else if all(|v| matches!(v, ParamValue::Int(_) | ParamValue::Float(_))) {
        "float"
    } else if all(|v| matches!(v, ParamValue::Str(_))) {
        "str"
    } else {
        let types: Vec<_> = values.iter().map(ParamValue::type_name).collect();
        return Err(err(format!(
            "allowed values mix types ({}): use all str, all int, all float or all bool",
            types.join(", ")
        )));
    };
    let wanted = dtype.unwrap_or(inferred);
    let choices: Vec<ParamValue> = match (wanted, inferred) {
        (w, i) if w == i => values.to_vec(),
        ("float", "int") => values
            .iter()
            .map(|v| ParamValue::Float(v.as_f64().unwrap_or(f64::NAN)))
            .collect(),
        (w, i) => return Err(err(format!("allowed values are {i} but dtype is '{w}'"))),
    };
    if choices
        .iter()
        .any(|v| matches!(v, ParamValue::Float(x) if !x.is_finite()))
    {
        return Err(err("allowed float values must be finite".into()));
    }
    for (i, a) in choices.iter().enumerate() {
        if choices[..i].contains(a) {
            return Err(err(format!("allowed value {a} appears twice")));
        }
    }
    Ok(Distribution::Categorical { choices })
}

impl<A: Bound, B: Bound> From<(A, B)> for SearchParam {
    fn from((low, high): (A, B)) -> Self {
        search_param().range(low, high)
    }
}

/// A validated search distribution: what samplers draw from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Distribution {
    /// A float in `[low, high]`, optionally log-scaled or quantised to `low + k * step`.
    Float {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (inclusive).
        high: f64,
        /// Sample on a log scale (`low > 0`).
        log: bool,
        /// Quantisation step (never together with `log`).
        step: Option<f64>,
    },
    /// An integer in `[low, high]` on the grid `low + k * step`, optionally log-scaled.
    Int {
        /// Lower bound (inclusive).
        low: i64,
        /// Upper bound (inclusive).
        high: i64,
        /// Sample on a log scale (`low >= 1`).
        log: bool,
        /// Grid step (1 unless given; 1 when `log`).
        step: i64,
    },
    /// One of a fixed list of values, all of one type.
    Categorical {
        /// The choices, in the order given.
        choices: Vec<ParamValue>,
    },
}

impl Distribution {
    /// True when `value` is a legal draw from this distribution (bounds, grid, type).
    pub fn contains(&self, value: &ParamValue) -> bool {
        match (self, value) {
            (
                Distribution::Float {
                    low, high, step, ..
                },
                ParamValue::Float(x),
            ) => {
                if !(x >= low && x <= high) {
                    return false;
                }
                match step {
                    None => true,
                    Some(s) => {
                        let k = (x - low) / s;
                        (k - k.round()).abs() < 1e-6
                    }
                }
            }
            (
                Distribution::Int {
                    low, high, step, ..
                },
                ParamValue::Int(i),
            ) => i >= low && i <= high && (i - low) % step == 0,
            (Distribution::Categorical { choices }, v) => choices.contains(v),
            _ => false,
        }
    }

    /// True for a single-valued distribution (`low == high`, or one choice).
    pub fn is_single(&self) -> bool {
        match self {
            Distribution::Float { low, high, .. } => low == high,
            Distribution::Int { low, high, .. } => low == high,
            Distribution::Categorical { choices } => choices.len() == 1,
        }
    }
}

/// The validated parameter space of a loss: unique names, at least one parameter, in the order given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpace {
    params: Vec<(String, Distribution)>,
}

impl ParamSpace {
    /// Validates every parameter (errors name it), rejects duplicate names and an empty space.
    pub fn new<I, S>(params: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, SearchParam)>,
        S: Into<String>,
    {
        let mut out: Vec<(String, Distribution)> = Vec::new();
        for (name, spec) in params {
            let name = name.into();
            if name.trim().is_empty() {
                return Err(CoreError::InvalidSpace(
                    "a parameter has an empty name".to_string(),
                ));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(CoreError::param(&name, "is defined twice"));
            }
            let dist = spec.resolve(&name)?;
            out.push((name, dist));
        }
        Self::from_distributions(out)
    }

    /// Builds a space from already validated distributions (e.g. read back from disk).
    pub fn from_distributions(params: Vec<(String, Distribution)>) -> Result<Self> {
        if params.is_empty() {
            return Err(CoreError::InvalidSpace(
                "no parameters: add at least one with .param(name, spec)".to_string(),
            ));
        }
        Ok(Self { params })
    }

    /// `(name, distribution)` in declaration order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Distribution)> {
        self.params.iter().map(|(n, d)| (n.as_str(), d))
    }

    /// The distribution of `name`.
    pub fn get(&self, name: &str) -> Option<&Distribution> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Always false for a validated space; present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// True when `params` has exactly this space's names and every value is legal.
    pub fn contains(&self, params: &Params) -> bool {
        params.len() == self.params.len()
            && self
                .params
                .iter()
                .all(|(n, d)| params.get(n).is_some_and(|v| d.contains(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: SearchParam) -> String {
        p.resolve("x").unwrap_err().to_string()
    }

    #[test]
    fn invalid_specs_name_the_parameter() {
        for msg in [
            e(search_param().range(2.0, 1.0)),
            e(search_param().range(f64::NAN, 1.0)),
            e(search_param().range(0.0, f64::INFINITY)),
            e(search_param().range(0.0, 1.0).dtype("log")),
            e(search_param().range(0.0, 1.0).step(0.0)),
            e(search_param().range(0.0, 1.0).step(-1.0)),
            e(search_param().range(0.5, 3.0).dtype("int")),
            e(search_param().range(0, 3).dtype("int").step(0.5)),
            e(search_param().allowed(Vec::<i64>::new())),
            e(search_param().allowed([ParamValue::from("a"), ParamValue::from(1)])),
            e(search_param().range(0, 1).allowed([1])),
            e(search_param()),
            e(search_param().range(0, 1).dtype("complex")),
            e(search_param().allowed(["a", "a"])),
            e(search_param().allowed([1, 2]).dtype("str")),
        ] {
            assert!(msg.contains("parameter 'x'"), "{msg}");
        }
    }

    #[test]
    fn valid_specs() {
        assert_eq!(
            search_param()
                .range(1, 8)
                .dtype("int")
                .resolve("n")
                .unwrap(),
            Distribution::Int {
                low: 1,
                high: 8,
                log: false,
                step: 1
            }
        );
        assert!(matches!(
            search_param()
                .range(0.0, 0.5)
                .step(0.05)
                .resolve("d")
                .unwrap(),
            Distribution::Float { step: Some(_), .. }
        ));
        assert_eq!(
            search_param()
                .allowed([1, 2])
                .dtype("float")
                .resolve("c")
                .unwrap(),
            Distribution::Categorical {
                choices: vec![1.0.into(), 2.0.into()]
            }
        );
        assert_eq!(
            SearchParam::from((0, 1)).resolve("a").unwrap(),
            Distribution::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None
            }
        );
    }

    #[test]
    fn space_rejects_duplicates_and_empty() {
        let dup = ParamSpace::new([("a", (0.0, 1.0).into()), ("a", (0.0, 1.0).into())]);
        assert!(dup.unwrap_err().to_string().contains("'a'"));
        let empty = ParamSpace::new(Vec::<(String, SearchParam)>::new());
        assert!(empty.unwrap_err().to_string().contains("no parameters"));
    }
}
