//! `sampler_suite`: the conformance suite of [`Sampler`] implementations.

use crate::error::Result;
use crate::mode::Direction;
use crate::params::{ParamValue, Params};
use crate::sampler::{AskContext, Sampler};
use crate::space::{search_param, ParamSpace};
use crate::stats::SeedStats;
use crate::testing::conformance;
use crate::trial::{TrialNumber, TrialRecord, TrialState};

/// A space with every kind of distribution: linear, log and stepped floats and ints,
/// categorical text, numbers and booleans, and a parameter with a single value.
fn every_distribution() -> Result<ParamSpace> {
    ParamSpace::new([
        ("f", search_param().range(-2.0, 3.0)),
        ("f_log", search_param().range(1e-4, 1e-1).dtype("log")),
        ("f_step", search_param().range(0.0, 0.5).step(0.05)),
        ("i", search_param().range(-3, 7).dtype("int")),
        ("i_log", search_param().range(1, 1024).dtype("int_log")),
        ("i_step", search_param().range(0, 20).dtype("int").step(4)),
        ("c_str", search_param().allowed(["a", "b", "c"])),
        ("c_num", search_param().allowed([0.5, 1.5, 2.5])),
        ("c_bool", search_param().allowed([true, false])),
        ("fixed", search_param().range(2.0, 2.0)),
    ])
}

/// A continuous space, where proposing the parameters of a running trial again is avoidable.
fn continuous() -> Result<ParamSpace> {
    ParamSpace::new([
        ("x", search_param().range(0.0, 1.0)),
        ("y", search_param().range(-5.0, 5.0)),
    ])
}

/// A deterministic objective over any params: the sum of the numeric values.
fn objective(p: &Params) -> f64 {
    p.iter()
        .map(|(_, v)| match v {
            ParamValue::Str(s) => s.len() as f64,
            ParamValue::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_f64().unwrap_or(0.0),
        })
        .map(|x| (x - 0.3).powi(2))
        .sum()
}

fn record(n: u64, params: Params, failed: bool) -> TrialRecord {
    let state = if failed {
        TrialState::Failed {
            reason: "suite failure".into(),
        }
    } else {
        TrialState::Complete {
            stats: SeedStats::from_values(&[objective(&params)]),
        }
    };
    TrialRecord {
        number: TrialNumber(n),
        params,
        state,
    }
}

fn ask(
    s: &dyn Sampler,
    space: &ParamSpace,
    trial: u64,
    history: &[TrialRecord],
    running: &[Params],
) -> Result<Params> {
    s.ask(&AskContext {
        space,
        direction: Direction::Minimize,
        trial: TrialNumber(trial),
        history,
        running,
    })
}

/// Drives a study of `n` trials (every 7th failed) and returns the proposals.
fn study(s: &dyn Sampler, space: &ParamSpace, n: u64) -> Result<Vec<Params>> {
    let mut history = Vec::new();
    let mut out = Vec::new();
    for t in 0..n {
        let p = ask(s, space, t, &history, &[])?;
        history.push(record(t, p.clone(), t % 7 == 3));
        out.push(p);
    }
    Ok(out)
}

/// The conformance suite for [`Sampler`]s. `make(seed)` builds a fresh sampler with that seed.
///
/// Checks, on a space with every kind of distribution: legal values with exactly the space's
/// names (empty history, a growing history with failed trials, running trials); determinism (two
/// fresh samplers with one seed propose the same, and asking twice with the same context gives
/// the same); and, on a continuous space, no proposal equal to the parameters of a running trial.
pub fn sampler_suite(make: &dyn Fn(u64) -> Box<dyn Sampler>) -> Result<()> {
    let fail = |check: &'static str, detail: String| conformance("sampler", check, detail);
    let space = every_distribution()?;
    let legal = |p: &Params, when: &str| -> Result<()> {
        if space.contains(p) {
            Ok(())
        } else {
            Err(fail(
                "legal values",
                format!("{when}: proposed {p}, which is not in the space (every name, nothing else, each value legal)"),
            ))
        }
    };

    let s = make(5);
    legal(&ask(s.as_ref(), &space, 0, &[], &[])?, "empty history")?;
    let proposals = study(s.as_ref(), &space, 40)?;
    for (t, p) in proposals.iter().enumerate() {
        legal(p, &format!("trial {t}"))?;
    }
    let history: Vec<TrialRecord> = proposals
        .iter()
        .enumerate()
        .map(|(t, p)| record(t as u64, p.clone(), t % 7 == 3))
        .collect();
    let running: Vec<Params> = proposals[..3].to_vec();
    legal(
        &ask(s.as_ref(), &space, 40, &history, &running)?,
        "with running trials",
    )?;

    let again = study(make(5).as_ref(), &space, 40)?;
    if again != proposals {
        let t = again
            .iter()
            .zip(&proposals)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(fail(
            "determinism",
            format!(
                "two fresh samplers with seed 5 differ at trial {t}: {} vs {}",
                proposals[t], again[t]
            ),
        ));
    }
    let a = ask(s.as_ref(), &space, 40, &history, &running)?;
    let b = ask(s.as_ref(), &space, 40, &history, &running)?;
    if a != b {
        return Err(fail(
            "determinism",
            format!("asking twice with the same context gave {a} and {b}"),
        ));
    }

    let space = continuous()?;
    for seed in [1, 2] {
        let s = make(seed);
        let mut history: Vec<TrialRecord> = Vec::new();
        for t in 0..12 {
            let p = ask(s.as_ref(), &space, t, &history, &[])?;
            history.push(record(t, p, false));
        }
        let mut running: Vec<Params> = Vec::new();
        for t in 12..20 {
            let p = ask(s.as_ref(), &space, t, &history, &running)?;
            if running.contains(&p) {
                return Err(fail(
                    "running trials",
                    format!("trial {t} proposed {p}, the parameters of a running trial"),
                ));
            }
            running.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proposes the low end of every range and the first choice: legal, deterministic, and
    /// always the same, so it repeats running trials.
    #[derive(Debug)]
    struct Stubborn;

    impl Sampler for Stubborn {
        fn name(&self) -> &'static str {
            "stubborn"
        }
        fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
            Ok(ctx
                .space
                .iter()
                .map(|(n, d)| {
                    let v = match d {
                        crate::Distribution::Float { low, .. } => ParamValue::Float(*low),
                        crate::Distribution::Int { low, .. } => ParamValue::Int(*low),
                        crate::Distribution::Categorical { choices } => choices[0].clone(),
                    };
                    (n.to_string(), v)
                })
                .collect())
        }
    }

    /// Proposes one value out of range.
    #[derive(Debug)]
    struct OutOfRange;

    impl Sampler for OutOfRange {
        fn name(&self) -> &'static str {
            "out-of-range"
        }
        fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
            let mut p = Stubborn.ask(ctx)?;
            p.insert("f", 99.0);
            Ok(p)
        }
    }

    #[test]
    fn broken_samplers_fail_the_suite() {
        let e = sampler_suite(&|_| Box::new(OutOfRange)).unwrap_err();
        assert!(e.to_string().contains("legal values"), "{e}");
        let e = sampler_suite(&|_| Box::new(Stubborn)).unwrap_err();
        assert!(e.to_string().contains("running trials"), "{e}");
    }
}
