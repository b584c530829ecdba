use slurptuna_core::{
    search_param, Direction, ParamSpace, Params, Sampler, TrialNumber, TrialRecord, TrialState,
};
use slurptuna_sampler::{RandomSampler, SamplerError, TpeConfig, TpeSampler};

use crate::common::{best, complete, ctx, mixed_objective, mixed_space, optimise};

fn sphere_space() -> ParamSpace {
    ParamSpace::new((0..3).map(|i| (format!("x{i}"), search_param().range(-5.0, 5.0)))).unwrap()
}

fn sphere(p: &Params) -> f64 {
    p.iter()
        .filter_map(|(_, v)| v.as_f64())
        .map(|x| (x - 1.0).powi(2))
        .sum()
}

#[test]
fn tpe_beats_random_on_every_seed_pair_in_aggregate() {
    let space = sphere_space();
    let (mut tpe, mut random) = (0.0, 0.0);
    for seed in 0..6 {
        tpe += best(
            &optimise(
                &TpeSampler::new(seed),
                &space,
                Direction::Minimize,
                80,
                sphere,
            ),
            Direction::Minimize,
        );
        random += best(
            &optimise(
                &RandomSampler::new(seed),
                &space,
                Direction::Minimize,
                80,
                sphere,
            ),
            Direction::Minimize,
        );
    }
    assert!(tpe < random / 3.0, "tpe {tpe} vs random {random}");
}

#[test]
fn the_direction_is_honoured() {
    let space = sphere_space();
    let f = |p: &Params| -sphere(p);
    let max_best = best(
        &optimise(&TpeSampler::new(3), &space, Direction::Maximize, 80, f),
        Direction::Maximize,
    );
    let min_best = best(
        &optimise(&TpeSampler::new(3), &space, Direction::Minimize, 80, f),
        Direction::Minimize,
    );
    // Maximising -sphere finds the centre; minimising it runs to a corner.
    assert!(max_best > -0.5, "maximize best {max_best}");
    assert!(min_best < -50.0, "minimize best {min_best}");
}

#[test]
fn failed_trials_are_excluded() {
    let space = mixed_space();
    let sampler = TpeSampler::new(11);
    let history = optimise(&sampler, &space, Direction::Minimize, 30, mixed_objective);
    // The same history with failed trials (odd parameters, other numbers) mixed in gives the
    // same proposals, and so does a NaN-free copy where failures were never recorded.
    let mut with_failures: Vec<TrialRecord> = Vec::new();
    for (i, t) in history.iter().enumerate() {
        with_failures.push(t.clone());
        if i % 3 == 0 {
            with_failures.push(TrialRecord {
                number: TrialNumber(1000 + i as u64),
                params: history[0].params.clone(),
                state: TrialState::Failed {
                    reason: "seed 3 raised".into(),
                },
            });
        }
    }
    for t in 30..40 {
        let a = sampler
            .ask(&ctx(&space, Direction::Minimize, t, &history, &[]))
            .unwrap();
        let b = sampler
            .ask(&ctx(&space, Direction::Minimize, t, &with_failures, &[]))
            .unwrap();
        assert_eq!(a, b, "trial {t}");
    }
    // Failed trials do not count towards the startup phase either: 9 complete + 5 failed
    // trials still give the random startup proposal.
    let mut short: Vec<TrialRecord> = history[..9].to_vec();
    short.extend((0..5).map(|i| TrialRecord {
        number: TrialNumber(100 + i),
        params: history[0].params.clone(),
        state: TrialState::Failed { reason: "x".into() },
    }));
    let startup = sampler
        .ask(&ctx(&space, Direction::Minimize, 50, &short, &[]))
        .unwrap();
    let random_like = sampler
        .ask(&ctx(&space, Direction::Minimize, 50, &history[..9], &[]))
        .unwrap();
    assert_eq!(startup, random_like);
}

#[test]
fn trials_from_another_space_are_ignored() {
    let space = sphere_space();
    let sampler = TpeSampler::new(2);
    let history = optimise(&sampler, &space, Direction::Minimize, 20, sphere);
    let mut odd = history.clone();
    let mut p = Params::new();
    p.insert("x0", 99.0);
    p.insert("other", "q");
    odd.push(complete(20, p, -1e9));
    let a = sampler
        .ask(&ctx(&space, Direction::Minimize, 21, &history, &[]))
        .unwrap();
    let b = sampler
        .ask(&ctx(&space, Direction::Minimize, 21, &odd, &[]))
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn invalid_options_are_reported_by_name() {
    let bad = TpeConfig {
        n_ei_candidates: 0,
        ..TpeConfig::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(SamplerError::InvalidConfig {
            option: "n_ei_candidates",
            ..
        })
    ));
    let no_refine_candidates = TpeConfig {
        refine_candidates: 0,
        ..TpeConfig::default()
    };
    assert!(matches!(
        no_refine_candidates.validate(),
        Err(SamplerError::InvalidConfig {
            option: "refine_candidates",
            ..
        })
    ));
    let space = sphere_space();
    let err = TpeSampler::with_config(
        0,
        TpeConfig {
            prior_weight: -1.0,
            ..TpeConfig::optuna()
        },
    )
    .ask(&ctx(&space, Direction::Minimize, 0, &[], &[]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("prior_weight") && err.contains("tpe"), "{err}");
}
