//! `[params]`: the parameter space, with the rules of the Rust API (`search_param()`), each
//! parameter checked by core where it is written.

use slurptuna_core::{search_param, CoreError, ParamValue, SearchParam};

use super::doc::{Kind, Located, Origin, Table, Value};
use super::reader::Reader;

/// The keys of a parameter written as a table.
const PARAM_KEYS: &[&str] = &["range", "allowed", "dtype", "step", "log"];

/// The parameters of `[params]`, in the order written, each validated.
pub(crate) fn read_params(
    table: &Table,
    header: &Origin,
) -> Result<Vec<(String, SearchParam)>, Located> {
    if table.entries.is_empty() {
        return Err(Located::new(
            header,
            "params",
            "no parameters: add at least one, e.g. alpha = [0.0, 1.0]",
        ));
    }
    let mut out = Vec::new();
    for (key, value) in &table.entries {
        let name = key.name.as_str();
        let path = format!("params.{name}");
        if name.trim().is_empty() {
            return Err(Located::new(&key.origin, &path, "a parameter needs a name"));
        }
        let spec = param(value, &path)?;
        // Core's rules, checked here so the error points at this parameter.
        spec.resolve(name).map_err(|e| match e {
            CoreError::InvalidParam { reason, .. } => Located::new(&value.origin, &path, reason),
            other => Located::new(&value.origin, &path, other.to_string()),
        })?;
        out.push((name.to_string(), spec));
    }
    Ok(out)
}

/// One parameter: `[low, high]` (a float range) or a table of `range` / `allowed`, `dtype`,
/// `step`, `log`.
fn param(value: &Value, path: &str) -> Result<SearchParam, Located> {
    match &value.kind {
        Kind::Array(_) => {
            let (low, high) = bounds(value, path)?;
            Ok(search_param().range(low, high))
        }
        Kind::Table(t) => {
            let r = Reader::new(t, path);
            let mut spec = search_param();
            if let Some(v) = r.get("range") {
                let (low, high) = bounds(v, &format!("{path}.range"))?;
                spec = spec.range(low, high);
            }
            if let Some(v) = r.get("allowed") {
                spec = spec.allowed(choices(v, &format!("{path}.allowed"))?);
            }
            if let Some(v) = r.get("dtype") {
                match &v.kind {
                    Kind::Str(s) => spec = spec.dtype(s.as_str()),
                    other => {
                        return Err(Located::new(
                            &v.origin,
                            format!("{path}.dtype"),
                            format!("expected a string (float, int, log, int_log, str, bool), got {}", other.type_name()),
                        ))
                    }
                }
            }
            if let Some(v) = r.get("step") {
                spec = spec.step(number(v, &format!("{path}.step"))?);
            }
            if let Some(v) = r.get("log") {
                match v.kind {
                    Kind::Bool(b) => spec = spec.log(b),
                    ref other => {
                        return Err(Located::new(
                            &v.origin,
                            format!("{path}.log"),
                            format!("expected true or false, got {}", other.type_name()),
                        ))
                    }
                }
            }
            r.finish(PARAM_KEYS)?;
            Ok(spec)
        }
        other => Err(Located::new(
            &value.origin,
            path,
            format!(
                "expected a range [low, high] or a table like {{ range = [low, high], dtype = \"int\" }} or {{ allowed = [...] }}, got {}",
                other.type_name()
            ),
        )),
    }
}

fn number(v: &Value, path: &str) -> Result<f64, Located> {
    match v.kind {
        Kind::Int(n) => Ok(n as f64),
        Kind::Float(x) => Ok(x),
        ref other => Err(Located::new(
            &v.origin,
            path,
            format!("expected a number, got {}", other.type_name()),
        )),
    }
}

fn bounds(v: &Value, path: &str) -> Result<(f64, f64), Located> {
    match &v.kind {
        Kind::Array(items) if items.len() == 2 => {
            Ok((number(&items[0], path)?, number(&items[1], path)?))
        }
        Kind::Array(items) => Err(Located::new(
            &v.origin,
            path,
            format!("a range is [low, high], got {} values", items.len()),
        )),
        other => Err(Located::new(
            &v.origin,
            path,
            format!("expected a range [low, high], got {}", other.type_name()),
        )),
    }
}

fn choices(v: &Value, path: &str) -> Result<Vec<ParamValue>, Located> {
    let Kind::Array(items) = &v.kind else {
        return Err(Located::new(
            &v.origin,
            path,
            format!("expected an array of choices, got {}", v.kind.type_name()),
        ));
    };
    items
        .iter()
        .map(|i| match &i.kind {
            Kind::Str(s) => Ok(ParamValue::from(s.as_str())),
            Kind::Int(n) => Ok(ParamValue::Int(*n)),
            Kind::Float(x) => Ok(ParamValue::Float(*x)),
            Kind::Bool(b) => Ok(ParamValue::Bool(*b)),
            other => Err(Located::new(
                &i.origin,
                path,
                format!(
                    "a choice is a string, an integer, a float or a boolean, got {}",
                    other.type_name()
                ),
            )),
        })
        .collect()
}
