//! Optuna 5's `JournalStorage` file: per study one CREATE_STUDY record, its user attrs, and one
//! CREATE_TRIAL record per trial carrying the whole trial (the form `study.add_trial` writes).

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};
use slurptuna_core::{Direction, Distribution, ParamSpace, ParamValue, Params, TrialState};

use super::{invalid, summarize, utc, write_atomic, Study};
use crate::error::Result;

const WORKER_ID: &str = "slurptuna-export";
const OP_CREATE_STUDY: u8 = 0;
const OP_SET_STUDY_USER_ATTR: u8 = 2;
const OP_CREATE_TRIAL: u8 = 4;
const RUNNING: u8 = 0;
const COMPLETE: u8 = 1;
const PRUNED: u8 = 2;
const FAIL: u8 = 3;

pub(super) fn write(studies: &[Study], out: &Path) -> Result<()> {
    let mut lines = Vec::new();
    for (study_id, study) in studies.iter().enumerate() {
        study_lines(study, study_id, out, &mut lines)?;
    }
    write_atomic(out, |w| {
        for line in &lines {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// The study name of `study`: the loss name, with `:<entry id>` for an entry.
pub(super) fn study_name(study: &Study) -> String {
    match study.entry_id() {
        Some(id) => format!("{}:{id}", study.data.meta.loss_name),
        None => study.data.meta.loss_name.clone(),
    }
}

fn record(op_code: u8, fields: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("op_code".into(), json!(op_code));
    m.insert("worker_id".into(), json!(WORKER_ID));
    m.extend(fields);
    m
}

fn study_lines(study: &Study, study_id: usize, out: &Path, lines: &mut Vec<String>) -> Result<()> {
    let meta = &study.data.meta;
    let direction = match meta.direction {
        Direction::Minimize => 1,
        Direction::Maximize => 2,
    };
    let mut create = Map::new();
    create.insert("study_name".into(), json!(study_name(study)));
    create.insert("directions".into(), json!([direction]));
    lines.push(Value::Object(record(OP_CREATE_STUDY, create)).to_string());
    let mut attrs = vec![
        ("loss_name", json!(meta.loss_name)),
        ("description", json!(meta.description)),
        ("n_seeds", json!(meta.n_seeds)),
        ("seed_start", json!(meta.seed_start)),
        ("seed_end", json!(meta.seed_end)),
    ];
    if let Some(id) = study.entry_id() {
        attrs.push(("entry_id", json!(id)));
    }
    for (key, value) in attrs {
        let mut m = Map::new();
        m.insert("study_id".into(), json!(study_id));
        m.insert(
            "user_attr".into(),
            Value::Object(Map::from_iter([(key.to_string(), value)])),
        );
        lines.push(Value::Object(record(OP_SET_STUDY_USER_ATTR, m)).to_string());
    }
    let distributions = distributions(&meta.space);
    let fallback_start = meta.started_at_utc.clone();
    for t in study.data.trials() {
        let s = summarize(&study.data, t);
        let start = s
            .started
            .and_then(utc)
            .unwrap_or_else(|| fallback_start.clone());
        let end = s.finished.and_then(utc).unwrap_or_else(|| start.clone());
        // A complete trial whose mean is NaN is what Optuna's `tell` fails itself.
        let value = s.value.filter(|v| !v.is_nan());
        let state = match (&t.state, value) {
            (TrialState::Running, _) => RUNNING,
            (TrialState::Complete { .. }, Some(_)) => COMPLETE,
            (TrialState::Pruned { .. }, _) => PRUNED,
            _ => FAIL,
        };
        // A pruned trial: its race's looks are Optuna's intermediate values (step = seeds of
        // the evaluated prefix, value = the estimate of its mean), and, as Optuna does for a
        // pruned trial, the last of them is its value.
        let mut intermediate = Map::new();
        let mut pruned_value = None;
        if let Some(race) = t.pruned() {
            for &(seeds, estimate) in race.looks.iter().filter(|(_, e)| e.is_finite()) {
                intermediate.insert(seeds.to_string(), json!(estimate));
                pruned_value = Some(estimate);
            }
        }
        let mut user_attrs = Map::new();
        if let Some(n) = s.n_seeds {
            user_attrs.insert("n_seeds".into(), json!(n));
        }
        for (key, v) in [("stderr", s.stderr), ("std", s.std)] {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                user_attrs.insert(key.into(), json!(v));
            }
        }
        user_attrs.insert("slurptuna_trial".into(), json!(t.number.0));
        if let Some(race) = t.pruned() {
            let finite = |x: f64| x.is_finite().then_some(x);
            user_attrs.insert(
                "race".into(),
                json!({
                    "seeds": race.seeds,
                    "estimate": finite(race.estimate),
                    "bound": finite(race.bound),
                    "beta": finite(race.beta),
                    "threshold": finite(race.threshold),
                    "control": race.control.0,
                    "alpha": race.alpha,
                }),
            );
        }
        if let Some(id) = study.entry_id() {
            user_attrs.insert("entry_id".into(), json!(id));
        }
        match (&t.state, s.reason) {
            (_, Some(reason)) => {
                user_attrs.insert("fail_reason".into(), json!(reason));
            }
            (TrialState::Complete { .. }, None) if state == FAIL => {
                user_attrs.insert("fail_reason".into(), json!("the mean over seeds is NaN"));
            }
            _ => {}
        }
        let mut m = Map::new();
        m.insert("study_id".into(), json!(study_id));
        m.insert("datetime_start".into(), json!(start));
        m.insert("state".into(), json!(state));
        m.insert("values".into(), Value::Null);
        if state != RUNNING {
            m.insert("datetime_complete".into(), json!(end));
        }
        m.insert(
            "distributions".into(),
            Value::Object(
                distributions
                    .iter()
                    .map(|(n, d)| (n.clone(), json!(d)))
                    .collect(),
            ),
        );
        m.insert(
            "params".into(),
            Value::Object(internal_params(&meta.space, &t.params, out, t.number.0)?),
        );
        m.insert("user_attrs".into(), Value::Object(user_attrs));
        m.insert("system_attrs".into(), json!({}));
        m.insert("intermediate_values".into(), Value::Object(intermediate));
        let body = Value::Object(record(OP_CREATE_TRIAL, m)).to_string();
        let value = match state {
            COMPLETE => value,
            PRUNED => pruned_value,
            _ => None,
        };
        lines.push(with_value(&body, value));
    }
    Ok(())
}

/// Puts `"value":<v>` first into the serialized object `body`: infinities as the bare tokens
/// Python's `json` reads (`serde_json` would write `null`), none as `null`.
fn with_value(body: &str, value: Option<f64>) -> String {
    let token = match value {
        None => "null".to_string(),
        Some(v) if v == f64::INFINITY => "Infinity".to_string(),
        Some(v) if v == f64::NEG_INFINITY => "-Infinity".to_string(),
        Some(v) => json!(v).to_string(),
    };
    let rest = body.strip_prefix('{').unwrap_or(body);
    format!("{{\"value\":{token},{rest}")
}

/// Each parameter's distribution as Optuna's `distribution_to_json` writes it (a JSON string).
fn distributions(space: &ParamSpace) -> Vec<(String, String)> {
    space
        .iter()
        .map(|(name, d)| {
            let v = match d {
                Distribution::Float {
                    low,
                    high,
                    log,
                    step,
                } => json!({
                    "name": "FloatDistribution",
                    "attributes": {"step": step, "low": low, "high": high, "log": log},
                }),
                Distribution::Int {
                    low,
                    high,
                    log,
                    step,
                } => json!({
                    "name": "IntDistribution",
                    "attributes": {"log": log, "step": step, "low": low, "high": high},
                }),
                Distribution::Categorical { choices } => json!({
                    "name": "CategoricalDistribution",
                    "attributes": {"choices": choices.iter().map(choice).collect::<Vec<_>>()},
                }),
            };
            (name.to_string(), v.to_string())
        })
        .collect()
}

fn choice(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => json!(b),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(x) => json!(x),
        ParamValue::Str(s) => json!(s),
    }
}

/// The params in Optuna's internal representation: floats, ints as floats, choice indices.
fn internal_params(
    space: &ParamSpace,
    params: &Params,
    out: &Path,
    trial: u64,
) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for (name, value) in params.iter() {
        let bad = |what: &str| invalid(out, format!("trial {trial}: parameter '{name}' {what}"));
        let d = space
            .get(name)
            .ok_or_else(|| bad("is not in the run's parameter space"))?;
        let internal = match d {
            Distribution::Float { .. } | Distribution::Int { .. } => {
                let x = value.as_f64().ok_or_else(|| bad("is not a number"))?;
                json!(x)
            }
            Distribution::Categorical { choices } => {
                let i = choices
                    .iter()
                    .position(|c| c == value)
                    .ok_or_else(|| bad(&format!("has {value}, which is not one of its choices")))?;
                json!(i)
            }
        };
        m.insert(name.to_string(), internal);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_values_are_the_tokens_python_reads() {
        let body = r#"{"op_code":4,"state":1}"#;
        assert_eq!(
            with_value(body, Some(f64::INFINITY)),
            r#"{"value":Infinity,"op_code":4,"state":1}"#
        );
        assert_eq!(
            with_value(body, Some(f64::NEG_INFINITY)),
            r#"{"value":-Infinity,"op_code":4,"state":1}"#
        );
        assert_eq!(
            with_value(body, Some(0.25)),
            r#"{"value":0.25,"op_code":4,"state":1}"#
        );
        assert_eq!(
            with_value(body, None),
            r#"{"value":null,"op_code":4,"state":1}"#
        );
    }
}
