use slurptuna_core::{search_param, Direction, ParamSpace, Params, Sampler};
use slurptuna_sampler::{QmcSampler, RandomSampler, TpeConfig, TpeSampler};

use crate::common::{ctx, mixed_objective, mixed_space, optimise};

/// Asks 8 trials in a row, each seeing the previous ones as running.
fn eight_in_flight(sampler: &dyn Sampler, space: &ParamSpace, history_len: u64) -> Vec<Params> {
    let history = optimise(
        sampler,
        space,
        Direction::Minimize,
        history_len,
        |p: &Params| {
            p.iter()
                .filter_map(|(_, v)| v.as_f64())
                .map(|x| (x - 1.0).powi(2))
                .sum()
        },
    );
    let mut running: Vec<Params> = Vec::new();
    for t in 0..8 {
        let p = sampler
            .ask(&ctx(
                space,
                Direction::Minimize,
                history_len + t,
                &history,
                &running,
            ))
            .unwrap();
        assert!(space.contains(&p));
        running.push(p);
    }
    running
}

fn assert_distinct(ps: &[Params], what: &str) {
    for i in 0..ps.len() {
        for j in 0..i {
            assert_ne!(ps[i], ps[j], "{what}: proposals {j} and {i} are equal");
        }
    }
}

#[test]
fn with_eight_running_no_two_proposals_are_equal() {
    // A small discrete space (21 × 3 = 63 points) where a converged TPE would repeat itself.
    let small = ParamSpace::new([
        ("n", search_param().range(0, 20).dtype("int")),
        ("c", search_param().allowed(["a", "b", "c"])),
    ])
    .unwrap();
    for seed in 0..5 {
        for (label, s) in [
            ("tpe", Box::new(TpeSampler::new(seed)) as Box<dyn Sampler>),
            (
                "tpe independent",
                Box::new(TpeSampler::with_config(
                    seed,
                    TpeConfig {
                        multivariate: false,
                        ..TpeConfig::default()
                    },
                )),
            ),
            ("random", Box::new(RandomSampler::new(seed))),
            ("qmc", Box::new(QmcSampler::new(seed))),
        ] {
            for history in [0, 60] {
                assert_distinct(
                    &eight_in_flight(s.as_ref(), &small, history),
                    &format!("{label} seed {seed} after {history} trials"),
                );
            }
        }
        let mixed = mixed_space();
        assert_distinct(
            &eight_in_flight(&TpeSampler::new(seed), &mixed, 40),
            "tpe on the mixed space",
        );
    }
}

#[test]
fn the_liar_spreads_concurrent_proposals() {
    // With the liar, 8 concurrent proposals spread more than without it.
    let space = ParamSpace::new([("x", search_param().range(-5.0, 5.0))]).unwrap();
    let spread = |liar: bool| -> f64 {
        let mut total = 0.0;
        for seed in 0..10 {
            let cfg = TpeConfig {
                constant_liar: liar,
                ..TpeConfig::default()
            };
            let xs: Vec<f64> = eight_in_flight(&TpeSampler::with_config(seed, cfg), &space, 40)
                .iter()
                .map(|p| p.f64("x").unwrap())
                .collect();
            let mean = xs.iter().sum::<f64>() / 8.0;
            total += xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 8.0;
        }
        total
    };
    let (with, without) = (spread(true), spread(false));
    assert!(
        with > without,
        "spread with liar {with} vs without {without}"
    );
    let _ = (mixed_space(), mixed_objective);
}
