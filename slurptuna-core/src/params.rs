//! Parameter values and the ordered parameter set a loss receives.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// One parameter value: what a sampler proposes and a loss reads.
///
/// Serialises untagged, so a [`Params`] is a plain JSON object
/// (`{"alpha": 0.3, "n": 4, "kind": "a", "flag": true}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean choice.
    Bool(bool),
    /// An integer (int ranges, integer choices).
    Int(i64),
    /// A float (float ranges, float choices).
    Float(f64),
    /// A string choice.
    Str(String),
}

impl ParamValue {
    /// The type name used in messages: `float`, `int`, `str` or `bool`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::Bool(_) => "bool",
            ParamValue::Int(_) => "int",
            ParamValue::Float(_) => "float",
            ParamValue::Str(_) => "str",
        }
    }

    /// The value as `f64` when it is numeric (ints convert exactly up to 2^53).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Float(x) => Some(*x),
            ParamValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}
impl From<f32> for ParamValue {
    fn from(v: f32) -> Self {
        ParamValue::Float(v as f64)
    }
}
impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::Int(v)
    }
}
impl From<i32> for ParamValue {
    fn from(v: i32) -> Self {
        ParamValue::Int(v as i64)
    }
}
impl From<u32> for ParamValue {
    fn from(v: u32) -> Self {
        ParamValue::Int(v as i64)
    }
}
impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Bool(v)
    }
}
impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::Str(v.to_string())
    }
}
impl From<String> for ParamValue {
    fn from(v: String) -> Self {
        ParamValue::Str(v)
    }
}

/// The parameters of one trial, ordered by name.
///
/// Typed getters return an error naming the parameter, so a loss can use `?`:
///
/// ```
/// use slurptuna_core::{Params, ParamValue};
/// let mut p = Params::new();
/// p.insert("alpha", 0.25);
/// p.insert("kind", "a");
/// assert_eq!(p.f64("alpha").unwrap(), 0.25);
/// assert_eq!(p.str("kind").unwrap(), "a");
/// assert!(p.i64("alpha").unwrap_err().to_string().contains("alpha"));
/// assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"alpha":0.25,"kind":"a"}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(BTreeMap<String, ParamValue>);

impl Params {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing any previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<ParamValue>) {
        self.0.insert(name.into(), value.into());
    }

    /// The raw value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }

    fn require(&self, name: &str) -> Result<&ParamValue> {
        self.0.get(name).ok_or_else(|| CoreError::ParamAccess {
            name: name.to_string(),
            reason: format!(
                "no such parameter (have: {})",
                self.0.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    fn mismatch(name: &str, want: &str, got: &ParamValue) -> CoreError {
        CoreError::ParamAccess {
            name: name.to_string(),
            reason: format!("is a {} ({got}), not a {want}", got.type_name()),
        }
    }

    /// The float value of `name`. Integer values convert; other types are an error.
    pub fn f64(&self, name: &str) -> Result<f64> {
        let v = self.require(name)?;
        v.as_f64().ok_or_else(|| Self::mismatch(name, "float", v))
    }

    /// The integer value of `name`.
    pub fn i64(&self, name: &str) -> Result<i64> {
        match self.require(name)? {
            ParamValue::Int(i) => Ok(*i),
            v => Err(Self::mismatch(name, "int", v)),
        }
    }

    /// The string value of `name`.
    pub fn str(&self, name: &str) -> Result<&str> {
        match self.require(name)? {
            ParamValue::Str(s) => Ok(s),
            v => Err(Self::mismatch(name, "str", v)),
        }
    }

    /// The boolean value of `name`.
    pub fn bool(&self, name: &str) -> Result<bool> {
        match self.require(name)? {
            ParamValue::Bool(b) => Ok(*b),
            v => Err(Self::mismatch(name, "bool", v)),
        }
    }

    /// Iterates `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compact JSON, keys sorted: the canonical form used for hashing and task files.
    pub fn to_json(&self) -> String {
        // Serialising a map of plain values cannot fail; NaN floats become `null`.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v}")?;
        }
        f.write_str("}")
    }
}

impl<K: Into<String>, V: Into<ParamValue>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Params(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}
