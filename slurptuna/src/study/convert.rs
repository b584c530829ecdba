//! [`FromStudyValue`]: how a value of the study file becomes the type of an option. One
//! implementation per option type; `options.rs` derives the key → field mapping of `RunOptions`
//! and `EntriesOptions` from their field list, so an option whose type has no implementation
//! here does not compile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slurptuna_core::Direction;

use crate::backends::Scheduler;
use crate::mode::{execution_mode, ExecutionMode};
use crate::options::{Durability, Racing, SamplerChoice, ValidationSeeds};

use super::doc::{resolve, Kind, Origin, Table, Value};

/// What a conversion knows besides the value: the study file's folder, against which relative
/// paths are resolved.
pub(crate) struct Cx<'a> {
    pub(crate) base_dir: &'a Path,
}

/// Why a value was refused, and where (the value, or an item of it).
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) origin: Origin,
    pub(crate) message: String,
}

fn invalid(v: &Value, message: impl Into<String>) -> Invalid {
    Invalid {
        origin: v.origin.clone(),
        message: message.into(),
    }
}

fn expected(v: &Value, what: &str) -> Invalid {
    invalid(v, format!("expected {what}, got {}", v.kind.type_name()))
}

/// An options struct whose fields are `[run]` keys (`RunOptions`, `EntriesOptions`: implemented
/// in `options.rs`, from the field list itself).
pub(crate) trait StudyOptions {
    /// Every field name, which is its key.
    const KEYS: &'static [&'static str];

    /// Sets the field `key` from `value`; `None` when the struct has no such field.
    fn set_key(&mut self, key: &str, value: &Value, cx: &Cx<'_>) -> Option<Result<(), Invalid>>;
}

/// A type an option of the study file can have.
pub(crate) trait FromStudyValue: Sized {
    /// Converts `v`, or says what was expected.
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid>;
}

impl FromStudyValue for bool {
    fn from_study(v: &Value, _: &Cx<'_>) -> Result<Self, Invalid> {
        match v.kind {
            Kind::Bool(b) => Ok(b),
            _ => Err(expected(v, "true or false")),
        }
    }
}

impl FromStudyValue for u64 {
    fn from_study(v: &Value, _: &Cx<'_>) -> Result<Self, Invalid> {
        match v.kind {
            Kind::Int(n) => u64::try_from(n)
                .map_err(|_| invalid(v, format!("expected a whole number >= 0, got {n}"))),
            _ => Err(expected(v, "a whole number")),
        }
    }
}

macro_rules! narrow_unsigned {
    ($($t:ty),*) => {$(
        impl FromStudyValue for $t {
            fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
                let n = u64::from_study(v, cx)?;
                <$t>::try_from(n).map_err(|_| invalid(v, format!("{n} is too large (at most {})", <$t>::MAX)))
            }
        }
    )*};
}
narrow_unsigned!(u32, usize);

impl FromStudyValue for f64 {
    fn from_study(v: &Value, _: &Cx<'_>) -> Result<Self, Invalid> {
        match v.kind {
            Kind::Int(n) => Ok(n as f64),
            Kind::Float(x) => Ok(x),
            _ => Err(expected(v, "a number")),
        }
    }
}

impl FromStudyValue for String {
    fn from_study(v: &Value, _: &Cx<'_>) -> Result<Self, Invalid> {
        match (&v.kind, &v.set_text) {
            (Kind::Str(s), _) => Ok(s.clone()),
            (_, Some(text)) => Ok(text.clone()),
            _ => Err(expected(v, "a string")),
        }
    }
}

impl FromStudyValue for PathBuf {
    /// A path; a relative one is relative to the study file's folder.
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        let s = String::from_study(v, cx)?;
        if s.is_empty() {
            // Kept empty so that the option's own check reports it under its name.
            return Ok(PathBuf::new());
        }
        Ok(resolve(cx.base_dir, Path::new(&s)))
    }
}

impl FromStudyValue for Duration {
    /// Seconds (a number), a local time `01:30:00`, or a string: `"01:30:00"`,
    /// `"1-00:00:00"` (days-hours:minutes:seconds), `"30m"`, `"1h30m"`, `"90s"`, `"100ms"`.
    fn from_study(v: &Value, _: &Cx<'_>) -> Result<Self, Invalid> {
        const FORMS: &str =
            "seconds (a number) or a duration like \"01:30:00\", \"1-00:00:00\", \"30m\", \"1h30m\" or \"100ms\"";
        let secs = |x: f64| {
            Duration::try_from_secs_f64(x)
                .map_err(|_| invalid(v, format!("expected {FORMS}, got {x}")))
        };
        match &v.kind {
            Kind::Int(n) => secs(*n as f64),
            Kind::Float(x) => secs(*x),
            Kind::Datetime {
                hms: Some((h, m, s)),
                ..
            } => Ok(Duration::from_secs(h * 3600 + m * 60 + s)),
            Kind::Str(s) => {
                parse_duration(s).ok_or_else(|| invalid(v, format!("expected {FORMS}, got {s:?}")))
            }
            _ => Err(expected(v, FORMS)),
        }
    }
}

/// `"[D-]H:MM:SS"` or a sum of `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.contains(':') {
        let (days, clock) = match s.split_once('-') {
            Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
            None => (0, s),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        let [h, m, sec] = parts.as_slice() else {
            return None;
        };
        let num = |x: &str| -> Option<u64> {
            (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
                .then(|| x.parse().ok())
                .flatten()
        };
        let (h, m, sec) = (num(h)?, num(m)?, num(sec)?);
        if m >= 60 || sec >= 60 {
            return None;
        }
        return Some(Duration::from_secs(
            days.checked_mul(86_400)?
                .checked_add(h.checked_mul(3600)?)?
                .checked_add(m * 60 + sec)?,
        ));
    }
    let mut total = 0.0_f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(n_len);
        let u_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_len);
        let x: f64 = number.parse().ok()?;
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        total += x * scale;
        rest = tail.trim_start();
    }
    Duration::try_from_secs_f64(total).ok()
}

impl FromStudyValue for Direction {
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        let s = String::from_study(v, cx)?;
        s.parse::<Direction>().map_err(|_| {
            invalid(
                v,
                format!("expected \"minimize\" or \"maximize\", got {s:?}"),
            )
        })
    }
}

impl FromStudyValue for ExecutionMode {
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        let s = String::from_study(v, cx)?;
        execution_mode(&s).map_err(|_| {
            invalid(
                v,
                format!("expected \"single\" or \"distributed\", got {s:?}"),
            )
        })
    }
}

impl FromStudyValue for SamplerChoice {
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        let s = String::from_study(v, cx)?;
        match s.as_str() {
            "tpe" => Ok(SamplerChoice::Tpe),
            "random" => Ok(SamplerChoice::Random),
            "qmc" => Ok(SamplerChoice::Qmc),
            _ => Err(invalid(
                v,
                format!("expected \"tpe\", \"random\" or \"qmc\", got {s:?}"),
            )),
        }
    }
}

impl FromStudyValue for Racing {
    /// A table (`[racing]`, or `racing = { alpha = 0.05 }` in `[run]`) of `alpha`, `min_seeds`,
    /// `margin`, each optional; `true` for the defaults.
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        match &v.kind {
            Kind::Bool(true) => Ok(Racing::default()),
            Kind::Table(t) => racing_from_table(t, cx).map_err(|(_, e)| e),
            _ => Err(expected(v, "a table of alpha, min_seeds, margin, or true")),
        }
    }
}

impl FromStudyValue for ValidationSeeds {
    /// A count (`validation_seeds = 2000`: the seeds after the fit's) or an array of seeds.
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        match &v.kind {
            Kind::Int(_) => u64::from_study(v, cx).map(ValidationSeeds::Count),
            Kind::Array(_) => Vec::<u64>::from_study(v, cx).map(ValidationSeeds::List),
            _ => Err(expected(v, "a number of seeds or an array of seeds")),
        }
    }
}

/// The `[racing]` table: `alpha`, `min_seeds`, `margin`, each optional. Errors come with the
/// key they are about (`racing.alpha`, ...).
pub(crate) fn racing_from_table(table: &Table, cx: &Cx<'_>) -> Result<Racing, (String, Invalid)> {
    let mut r = Racing::default();
    for (key, value) in &table.entries {
        let at = |e: Invalid| (format!("racing.{}", key.name), e);
        let bad = |message: String| at(invalid(value, message));
        match key.name.as_str() {
            "alpha" => {
                r.alpha = f64::from_study(value, cx).map_err(at)?;
                if !(r.alpha > 0.0 && r.alpha < 0.5) {
                    return Err(bad(format!(
                        "must be in (0, 0.5), got {} (the per-trial false-elimination level; default 0.01)",
                        r.alpha
                    )));
                }
            }
            "min_seeds" => {
                let m = u64::from_study(value, cx).map_err(at)?;
                if m < 2 {
                    return Err(bad(format!("must be >= 2, got {m}")));
                }
                r.min_seeds = Some(m);
            }
            "margin" => {
                r.margin = f64::from_study(value, cx).map_err(at)?;
                if !(r.margin.is_finite() && r.margin >= 0.0) {
                    return Err(bad(format!("must be finite and >= 0, got {}", r.margin)));
                }
            }
            _ => {
                return Err(at(Invalid {
                    origin: key.origin.clone(),
                    message: "unknown key (racing has alpha, min_seeds, margin)".to_string(),
                }))
            }
        }
    }
    Ok(r)
}

impl FromStudyValue for Durability {
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        let s = String::from_study(v, cx)?;
        s.parse::<Durability>().map_err(|e| invalid(v, e))
    }
}

impl FromStudyValue for Scheduler {
    /// A scheduler of this build by name, with its defaults (its own options go in its table,
    /// e.g. `[slurm]`).
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        let s = String::from_study(v, cx)?;
        Scheduler::named(&s).ok_or_else(|| {
            let compiled = Scheduler::compiled();
            let list = if compiled.is_empty() {
                "this build has none".to_string()
            } else {
                format!(
                    "this build has {}",
                    compiled
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            invalid(v, format!("unknown scheduler {s:?}: {list}"))
        })
    }
}

impl<T: FromStudyValue> FromStudyValue for Option<T> {
    /// The value, or `false` for none (TOML has no null).
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        match v.kind {
            Kind::Bool(false) => Ok(None),
            _ => T::from_study(v, cx).map(Some).map_err(|mut e| {
                if e.origin == v.origin {
                    e.message.push_str(" (or false for none)");
                }
                e
            }),
        }
    }
}

impl<T: FromStudyValue> FromStudyValue for Vec<T> {
    fn from_study(v: &Value, cx: &Cx<'_>) -> Result<Self, Invalid> {
        match &v.kind {
            Kind::Array(items) => items.iter().map(|i| T::from_study(i, cx)).collect(),
            _ => Err(expected(v, "an array")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_documented_form() {
        let d = |s: &str| parse_duration(s);
        assert_eq!(d("01:30:00"), Some(Duration::from_secs(5400)));
        assert_eq!(d("1-00:00:01"), Some(Duration::from_secs(86_401)));
        assert_eq!(d("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(d("0.5s"), Some(Duration::from_millis(500)));
        for bad in ["", "10", "1:2", "00:61:00", "3 parsecs", "-5s", "1:-2:00"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }
}
