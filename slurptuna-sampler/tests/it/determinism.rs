use slurptuna_core::{Direction, Params, Sampler};
use slurptuna_sampler::{QmcSampler, RandomSampler, Startup, TpeConfig, TpeSampler};

use crate::common::{ctx, mixed_objective, mixed_space, optimise};

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
