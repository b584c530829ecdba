use slurptuna_core::{Direction, Params, Sampler, TrialNumber, TrialRecord, TrialState};
use slurptuna_sampler::{QmcSampler, RandomSampler, Startup, TpeConfig, TpeSampler};

use crate::common::{complete, ctx, mixed_objective, mixed_space, optimise};

fn sequence(sampler: &dyn Sampler) -> Vec<Params> {
    optimise(
        sampler,
        &mixed_space(),
        Direction::Minimize,
        40,
        mixed_objective,
    )
    .into_iter()
    .map(|t| t.params)
    .collect()
}

#[test]
fn a_fixed_seed_gives_the_same_sequence() {
    // (sampler, the same again, another seed)
    type Trio = (Box<dyn Sampler>, Box<dyn Sampler>, Box<dyn Sampler>);
    let samplers: Vec<Trio> = vec![
        (
            Box::new(TpeSampler::new(5)),
            Box::new(TpeSampler::new(5)),
            Box::new(TpeSampler::new(6)),
        ),
        (
            Box::new(RandomSampler::new(5)),
            Box::new(RandomSampler::new(5)),
            Box::new(RandomSampler::new(6)),
        ),
        (
            Box::new(QmcSampler::new(5)),
            Box::new(QmcSampler::new(5)),
            Box::new(QmcSampler::new(6)),
        ),
    ];
    for (a, b, other) in samplers {
        let first = sequence(a.as_ref());
        assert_eq!(first, sequence(b.as_ref()), "{}", a.name());
        assert_ne!(
            first,
            sequence(other.as_ref()),
            "{}: seeds differ",
            a.name()
        );
    }
}

#[test]
fn a_resumed_run_proposes_what_an_uninterrupted_run_would() {
    let space = mixed_space();
    let cfg = TpeConfig {
        startup: Startup::Qmc,
        ..TpeConfig::default()
    };
    let full = optimise(
        &TpeSampler::with_config(9, cfg.clone()),
        &space,
        Direction::Minimize,
        30,
        mixed_objective,
    );
    // A fresh sampler (a new process after a crash) asked with the first 25 trials.
    let resumed = TpeSampler::with_config(9, cfg);
    for t in 20..30 {
        let p = resumed
            .ask(&ctx(
                &space,
                Direction::Minimize,
                t,
                &full[..t as usize],
                &[],
            ))
            .unwrap();
        assert_eq!(p, full[t as usize].params, "trial {t}");
    }
}

#[test]
fn a_sampler_that_remembers_the_history_proposes_what_a_fresh_one_would() {
    // One sampler asked along a growing history (it extends what it remembers) against a
    // fresh sampler per ask, with failed trials, running trials, a history that is not a
    // continuation of the previous one, and both modes.
    let space = mixed_space();
    for multivariate in [true, false] {
        let cfg = TpeConfig {
            multivariate,
            ..TpeConfig::default()
        };
        let kept = TpeSampler::with_config(4, cfg.clone());
        let mut history: Vec<TrialRecord> = Vec::new();
        // Past 100 trials the magic clip stops changing and the kept mixture is updated in
        // place rather than recomputed.
        let trials = if multivariate { 240 } else { 90 };
        for t in 0..trials {
            let running: Vec<Params> = history
                .iter()
                .rev()
                .take(2)
                .map(|r| r.params.clone())
                .collect();
            let c = ctx(&space, Direction::Minimize, t, &history, &running);
            let p = kept.ask(&c).unwrap();
            let fresh = TpeSampler::with_config(4, cfg.clone()).ask(&c).unwrap();
            assert_eq!(p, fresh, "trial {t}, multivariate {multivariate}");
            if t == 60 {
                // Another history with the same first trials.
                let other = &history[..40];
                let c = ctx(&space, Direction::Maximize, t, other, &[]);
                let fresh = TpeSampler::with_config(4, cfg.clone()).ask(&c).unwrap();
                assert_eq!(kept.ask(&c).unwrap(), fresh, "other history");
            }
            let record = if t % 11 == 7 {
                TrialRecord {
                    number: TrialNumber(t),
                    params: p,
                    state: TrialState::Failed {
                        reason: "diverged".into(),
                    },
                }
            } else {
                let v = mixed_objective(&p);
                complete(t, p, v)
            };
            history.push(record);
        }
    }
}
