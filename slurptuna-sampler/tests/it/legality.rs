use slurptuna_core::{Direction, ParamValue, Params, Sampler};
use slurptuna_sampler::{QmcSampler, RandomSampler, TpeConfig, TpeSampler};

use crate::common::{ctx, mixed_objective, mixed_space, optimise};

/// Checks one proposal beyond `ParamSpace::contains`: value types, grid and log bounds.
fn check(p: &Params) {
    assert!(mixed_space().contains(p), "illegal: {p}");
    assert!(matches!(p.get("n"), Some(ParamValue::Int(_))), "{p}");
    assert!(matches!(p.get("width"), Some(ParamValue::Int(_))), "{p}");
    assert_eq!(p.i64("k").unwrap().rem_euclid(4), 0, "{p}");
    let drop = p.f64("drop").unwrap();
    assert!(((drop / 0.05) - (drop / 0.05).round()).abs() < 1e-9, "{p}");
    let lr = p.f64("lr").unwrap();
    assert!(lr > 0.0 && (1e-5..=1e-1).contains(&lr), "{p}");
    assert_eq!(p.get("fixed"), Some(&ParamValue::Int(7)));
    assert!(matches!(p.get("flag"), Some(ParamValue::Bool(_))));
}

fn proposals(sampler: &(dyn Sampler + Sync), history_len: u64, count: u64) -> usize {
    let space = mixed_space();
    let history = optimise(
        sampler,
        &space,
        Direction::Minimize,
        history_len,
        mixed_objective,
    );
    let running: Vec<Params> = history.iter().take(3).map(|t| t.params.clone()).collect();
    // The proposals run on two threads (the test binary is unoptimised).
    let part = |from: u64, to: u64| {
        let mut seen_ends = [false; 2];
        for t in from..to {
            let c = ctx(
                &space,
                Direction::Minimize,
                history_len + t,
                &history,
                &running,
            );
            let p = sampler.ask(&c).unwrap();
            check(&p);
            let n = p.i64("n").unwrap();
            seen_ends[0] |= n == 1;
            seen_ends[1] |= n == 9;
        }
        seen_ends
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| part(0, count / 2));
        let b = part(count / 2, count);
        (a.join().unwrap(), b)
    });
    (0..2).filter(|&i| a[i] || b[i]).count()
}

#[test]
fn ten_thousand_tpe_proposals_are_legal() {
    // Past the startup phase: every proposal comes from the Parzen estimators.
    proposals(&TpeSampler::new(1), 12, 10_000);
}

#[test]
fn independent_tpe_proposals_are_legal() {
    let cfg = TpeConfig {
        multivariate: false,
        ..TpeConfig::default()
    };
    proposals(&TpeSampler::with_config(2, cfg), 12, 2_000);
}

#[test]
fn ten_thousand_random_and_qmc_proposals_are_legal_and_reach_both_ends() {
    assert_eq!(proposals(&RandomSampler::new(3), 0, 10_000), 2);
    assert_eq!(proposals(&QmcSampler::new(4), 0, 10_000), 2);
}
