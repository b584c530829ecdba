//! One row (CSV) or one JSON object per line per trial.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};
use slurptuna_core::ParamValue;

use super::{summarize, utc, write_atomic, Study};
use crate::error::Result;
use crate::inspect::{csv_field, param_text};

const COLUMNS: [&str; 8] = [
    "number", "state", "value", "stderr", "n_seeds", "start", "end", "reason",
];

/// The parameter names of all studies, in space order (first seen first).
fn param_names(studies: &[Study]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in studies {
        for (n, _) in s.data.meta.space.iter() {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
    }
    names
}

fn num_text(x: Option<f64>) -> String {
    match x {
        None => String::new(),
        Some(x) if x == f64::INFINITY => "inf".into(),
        Some(x) if x == f64::NEG_INFINITY => "-inf".into(),
        Some(x) => x.to_string(),
    }
}

pub(super) fn write_csv(studies: &[Study], out: &Path) -> Result<()> {
    let entries = studies.iter().any(|s| s.entry.is_some());
    let names = param_names(studies);
    let mut text = String::new();
    let mut header: Vec<String> = Vec::new();
    if entries {
        header.push("entry".into());
    }
    header.extend(COLUMNS.iter().map(|c| c.to_string()));
    header.extend(names.iter().map(|n| format!("params_{n}")));
    text.push_str(
        &header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    text.push('\n');
    for study in studies {
        for t in study.data.trials() {
            let s = summarize(&study.data, t);
            let mut row: Vec<String> = Vec::new();
            if entries {
                row.push(study.entry_id().unwrap_or_default().to_string());
            }
            row.push(t.number.0.to_string());
            row.push(t.state.label().to_string());
            row.push(num_text(s.value));
            row.push(num_text(s.stderr));
            row.push(s.n_seeds.map(|n| n.to_string()).unwrap_or_default());
            row.push(s.started.and_then(utc).unwrap_or_default());
            row.push(s.finished.and_then(utc).unwrap_or_default());
            row.push(s.reason.unwrap_or_default().to_string());
            for n in &names {
                row.push(t.params.get(n).map(param_text).unwrap_or_default());
            }
            text.push_str(
                &row.iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            text.push('\n');
        }
    }
    write_atomic(out, |w| w.write_all(text.as_bytes()))
}

fn num_json(x: Option<f64>) -> Value {
    match x {
        None => Value::Null,
        Some(x) if x.is_nan() => json!("nan"),
        Some(x) if x == f64::INFINITY => json!("inf"),
        Some(x) if x == f64::NEG_INFINITY => json!("-inf"),
        Some(x) => json!(x),
    }
}

fn param_json(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => json!(b),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(x) => num_json(Some(*x)),
        ParamValue::Str(s) => json!(s),
    }
}

pub(super) fn write_json(studies: &[Study], out: &Path) -> Result<()> {
    let mut text = String::new();
    for study in studies {
        for t in study.data.trials() {
            let s = summarize(&study.data, t);
            let mut m = Map::new();
            if let Some(id) = study.entry_id() {
                m.insert("entry".into(), json!(id));
            }
            m.insert("number".into(), json!(t.number.0));
            m.insert("state".into(), json!(t.state.label()));
            m.insert("value".into(), num_json(s.value));
            m.insert("stderr".into(), num_json(s.stderr));
            m.insert("n_seeds".into(), json!(s.n_seeds));
            m.insert("start".into(), json!(s.started.and_then(utc)));
            m.insert("end".into(), json!(s.finished.and_then(utc)));
            m.insert("reason".into(), json!(s.reason));
            if let Some(r) = t.pruned() {
                m.insert(
                    "race".into(),
                    json!({
                        "seeds": r.seeds,
                        "estimate": num_json(Some(r.estimate)),
                        "bound": num_json(Some(r.bound)),
                        "beta": num_json(Some(r.beta)),
                        "threshold": num_json(Some(r.threshold)),
                        "control": r.control.0,
                        "alpha": r.alpha,
                    }),
                );
            }
            m.insert(
                "params".into(),
                Value::Object(
                    t.params
                        .iter()
                        .map(|(n, v)| (n.to_string(), param_json(v)))
                        .collect(),
                ),
            );
            text.push_str(&Value::Object(m).to_string());
            text.push('\n');
        }
    }
    write_atomic(out, |w| w.write_all(text.as_bytes()))
}
