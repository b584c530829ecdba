use std::collections::VecDeque;

use slurptuna_core::{
    search_param, Direction, ParamSpace, Params, Sampler, TrialNumber, TrialRecord, TrialState,
};
use slurptuna_sampler::{Gamma, PrunedRank, QmcSampler, RandomSampler, TpeConfig, TpeSampler};

use crate::common::{complete, ctx, mixed_objective, mixed_space, pruned};

fn line() -> ParamSpace {
    ParamSpace::new([("x", search_param().range(-5.0, 5.0))]).unwrap()
}

fn at(x: f64) -> Params {
    let mut p = Params::new();
    p.insert("x", x);
    p
}

/// The x of each proposal for trials `first..first + asks` on a fixed history.
fn proposals(sampler: &TpeSampler, history: &[TrialRecord], first: u64, asks: u64) -> Vec<f64> {
    let space = line();
    (first..first + asks)
        .map(|t| {
            let p = sampler
                .ask(&ctx(&space, Direction::Minimize, t, history, &[]))
                .unwrap();
            p.f64("x").unwrap()
        })
        .collect()
}

fn share(xs: &[f64], inside: impl Fn(f64) -> bool) -> f64 {
    xs.iter().filter(|&&x| inside(x)).count() as f64 / xs.len() as f64
}

/// The same trials, with every pruned one recorded as failed instead (what a sampler that
/// ignores pruned trials sees).
fn pruned_as_failed(history: &[TrialRecord]) -> Vec<TrialRecord> {
    history
        .iter()
        .map(|t| match t.state {
            TrialState::Pruned { .. } => TrialRecord {
                number: t.number,
                params: t.params.clone(),
                state: TrialState::Failed {
                    reason: "pruned".into(),
                },
            },
            _ => t.clone(),
        })
        .collect()
}

/// One complete trial and nine pruned ones: six near x = −4 with good estimates on 100 seeds,
/// three near x = 4 with worse estimates on 400 seeds.
fn pruned_near_and_far() -> Vec<TrialRecord> {
    let mut history = vec![complete(0, at(0.0), 0.0)];
    for (i, x) in [-4.2, -4.1, -4.0, -3.9, -3.8, -3.7].into_iter().enumerate() {
        history.push(pruned(1 + i as u64, at(x), 100, 1.0));
    }
    for (i, (x, estimate)) in [(3.9, 10.0), (4.0, 11.0), (4.1, 12.0)]
        .into_iter()
        .enumerate()
    {
        history.push(pruned(7 + i as u64, at(x), 400, estimate));
    }
    history
}

/// Shares of 200 proposals near x = 4 and near x = −4 with gamma(10) = 3 (the complete trial
/// plus two pruned ones below).
fn near_far_close(rank: PrunedRank, multivariate: bool) -> (f64, f64) {
    let sampler = TpeSampler::with_config(
        5,
        TpeConfig {
            gamma: Gamma::Linear {
                fraction: 0.3,
                max: 25,
            },
            multivariate,
            pruned: rank,
            ..TpeConfig::default()
        },
    );
    let xs = proposals(&sampler, &pruned_near_and_far(), 10, 200);
    (share(&xs, |x| x > 2.0), share(&xs, |x| x < -2.0))
}

#[test]
fn in_optunas_order_below_fills_up_with_the_pruned_trials_that_evaluated_most_seeds() {
    // Ranked by (−seeds, estimate), the two pruned trials below are two of the three near
    // x = 4 that ran 400 seeds, not the six near x = −4 whose estimates are better but rest on
    // 100 seeds.
    for multivariate in [true, false] {
        let (far, close) = near_far_close(PrunedRank::AfterComplete, multivariate);
        assert!(
            far > 0.5 && close < 0.05,
            "multivariate {multivariate}: {far} of proposals near the pruned trials that \
             evaluated 400 seeds, {close} near those that evaluated 100"
        );
    }
}

#[test]
fn by_default_pruned_trials_rank_by_their_estimate() {
    // Ranked by estimate with the complete trial, the two pruned trials below are near
    // x = −4 (estimate 1.0), whatever their seeds: the trials near x = 4 are above, and the
    // proposals stay away from them (in Optuna's order most go there).
    assert_eq!(TpeConfig::default().pruned, PrunedRank::ByEstimate);
    assert_eq!(TpeConfig::optuna().pruned, PrunedRank::AfterComplete);
    for multivariate in [true, false] {
        let (far, _) = near_far_close(PrunedRank::ByEstimate, multivariate);
        assert!(
            far < 0.05,
            "multivariate {multivariate}: {far} of proposals near the pruned trials with the \
             worse estimates"
        );
    }
}

#[test]
fn a_region_holding_only_pruned_trials_is_avoided() {
    // Complete trials on [0, 5] improve towards x = 0; the racing pruned every trial on
    // [−2.5, 0), where the loss is in fact worse. A sampler that ignored them would push on
    // past the best trials into that unexplored region; TPE puts them in the above group
    // and looks elsewhere.
    let mut history = Vec::new();
    for i in 0..20u64 {
        let x = 0.1 + 0.25 * i as f64;
        history.push(complete(2 * i, at(x), x));
        let x = -2.5 + 0.125 * i as f64;
        history.push(pruned(2 * i + 1, at(x), 100 + 50 * (i % 3), 4.0 - x));
    }
    for multivariate in [true, false] {
        let sampler = TpeSampler::with_config(
            9,
            TpeConfig {
                multivariate,
                ..TpeConfig::default()
            },
        );
        let with_pruned = share(&proposals(&sampler, &history, 40, 300), |x| x < 0.0);
        let ignored = share(
            &proposals(&sampler, &pruned_as_failed(&history), 40, 300),
            |x| x < 0.0,
        );
        assert!(
            with_pruned < 0.1 && ignored > 2.0 * with_pruned + 0.1,
            "multivariate {multivariate}: {with_pruned} of proposals in the pruned region, \
             {ignored} when the pruned trials are ignored"
        );
    }
}

/// A study where a simulated seed race prunes most trials that are clearly worse than the best
/// complete one, with `in_flight` trials running at each ask (the oldest finishes after each
/// ask) and every 13th trial failing. Returns the proposals in order and the final history.
fn racing_study(
    sampler: &dyn Sampler,
    direction: Direction,
    trials: u64,
    in_flight: usize,
) -> (Vec<Params>, Vec<TrialRecord>) {
    let space = mixed_space();
    let sign = if direction == Direction::Maximize {
        -1.0
    } else {
        1.0
    };
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut running: VecDeque<(u64, Params)> = VecDeque::new();
    let mut asked = Vec::new();
    for t in 0..trials {
        let live: Vec<Params> = running.iter().map(|(_, p)| p.clone()).collect();
        let p = sampler
            .ask(&ctx(&space, direction, t, &history, &live))
            .unwrap();
        assert!(space.contains(&p), "trial {t}: illegal proposal {p}");
        asked.push(p.clone());
        running.push_back((t, p));
        while running.len() > in_flight {
            let (number, p) = running.pop_front().unwrap();
            let v = sign * mixed_objective(&p);
            let best = history.iter().filter_map(TrialRecord::value).fold(
                None,
                |b: Option<f64>, x| match b {
                    Some(b) if !direction.better(x, b) => Some(b),
                    _ => Some(x),
                },
            );
            let record = if number % 13 == 12 {
                TrialRecord {
                    number: TrialNumber(number),
                    params: p,
                    state: TrialState::Failed {
                        reason: "diverged".into(),
                    },
                }
            } else if best.is_some_and(|b| sign * (v - b) > 0.05) && number % 4 != 0 {
                // Closer calls need more seeds; the estimate is noisy around the mean.
                let gap = sign * (v - best.unwrap_or(v));
                let seeds = 100 + (400.0 / gap).min(2000.0) as u64 / 100 * 100;
                let noise = ((number * 2_654_435_761) % 1000) as f64 / 1000.0 - 0.5;
                pruned(number, p, seeds, v + sign * 0.1 * noise)
            } else {
                complete(number, p, v)
            };
            history.push(record);
        }
    }
    (asked, history)
}

#[test]
fn a_study_with_pruned_trials_gives_deterministic_proposals() {
    // Optuna's gamma, and a wide one whose below group needs pruned trials once most trials
    // are pruned.
    let gammas = [
        Gamma::default(),
        Gamma::Linear {
            fraction: 0.6,
            max: 200,
        },
    ];
    for multivariate in [true, false] {
        for (direction, gamma) in [
            (Direction::Minimize, gammas[0]),
            (Direction::Maximize, gammas[0]),
            (Direction::Minimize, gammas[1]),
            (Direction::Maximize, gammas[1]),
        ] {
            let cfg = TpeConfig {
                multivariate,
                gamma,
                ..TpeConfig::default()
            };
            let trials = if multivariate { 160 } else { 70 };
            let label = format!("multivariate {multivariate}, {direction:?}, {gamma:?}");
            // The same seed gives the same sequence, and the study does prune.
            let (a, history) = racing_study(
                &TpeSampler::with_config(3, cfg.clone()),
                direction,
                trials,
                2,
            );
            let (b, _) = racing_study(
                &TpeSampler::with_config(3, cfg.clone()),
                direction,
                trials,
                2,
            );
            assert_eq!(a, b, "{label}");
            let n_pruned = history
                .iter()
                .filter(|t| matches!(t.state, TrialState::Pruned { .. }))
                .count();
            let n_complete = history.iter().filter_map(TrialRecord::value).count();
            assert!(
                n_pruned > n_complete,
                "{label}: {n_pruned} pruned, {n_complete} complete"
            );
            // A sampler that remembers the history (growing, and then a history that does not
            // continue it) proposes what a fresh one does on every prefix.
            let space = mixed_space();
            let kept = TpeSampler::with_config(3, cfg.clone());
            for n in (0..history.len()).chain([history.len() / 2]) {
                let running = [history[n / 2].params.clone()];
                let c = ctx(&space, direction, 1000 + n as u64, &history[..n], &running);
                let fresh = TpeSampler::with_config(3, cfg.clone()).ask(&c).unwrap();
                assert_eq!(kept.ask(&c).unwrap(), fresh, "{label}, prefix {n}");
            }
            // The pruned trials are used: ignoring them changes the proposals.
            let ignored = pruned_as_failed(&history);
            let differ = (0..20u64).any(|i| {
                let with = ctx(&space, direction, 5000 + i, &history, &[]);
                let without = ctx(&space, direction, 5000 + i, &ignored, &[]);
                kept.ask(&with).unwrap() != kept.ask(&without).unwrap()
            });
            assert!(differ, "{label}: pruned trials made no difference");
        }
    }
}

#[test]
fn pruned_trials_count_towards_the_startup_phase() {
    // 9 complete trials are still in the startup phase; a 10th trial, pruned, ends it (Optuna
    // counts COMPLETE and PRUNED). A history of pruned trials only is modelled as well.
    let space = line();
    let sampler = TpeSampler::with_config(1, TpeConfig::optuna());
    let nine: Vec<TrialRecord> = (0..9)
        .map(|t| complete(t, at(t as f64 - 4.0), t as f64))
        .collect();
    let mut ten = nine.clone();
    ten.push(pruned(9, at(4.5), 100, 20.0));
    let failed = pruned_as_failed(&ten);
    let ask = |h: &[TrialRecord]| {
        sampler
            .ask(&ctx(&space, Direction::Minimize, 10, h, &[]))
            .unwrap()
    };
    assert_eq!(
        ask(&nine),
        ask(&failed),
        "a failed 10th trial keeps the startup"
    );
    assert_ne!(ask(&nine), ask(&ten), "a pruned 10th trial ends it");
    let only_pruned: Vec<TrialRecord> = (0..12)
        .map(|t| pruned(t, at(t as f64 * 0.8 - 4.5), 100 * (t % 3 + 1), t as f64))
        .collect();
    for t in 12..20 {
        let p = sampler
            .ask(&ctx(&space, Direction::Minimize, t, &only_pruned, &[]))
            .unwrap();
        assert!(space.contains(&p), "{p}");
    }
}

#[test]
fn random_and_qmc_ignore_pruned_trials() {
    // Neither reads the history: pruned trials (like any others) leave their proposals alone.
    let (_, history) = racing_study(&RandomSampler::new(2), Direction::Minimize, 40, 0);
    assert!(history
        .iter()
        .any(|t| matches!(t.state, TrialState::Pruned { .. })));
    let space = mixed_space();
    let samplers: [Box<dyn Sampler>; 2] = [
        Box::new(RandomSampler::new(8)),
        Box::new(QmcSampler::new(8)),
    ];
    for s in &samplers {
        for t in 40..50 {
            let with = s
                .ask(&ctx(&space, Direction::Minimize, t, &history, &[]))
                .unwrap();
            let without = s
                .ask(&ctx(&space, Direction::Minimize, t, &[], &[]))
                .unwrap();
            assert_eq!(with, without, "{} trial {t}", s.name());
        }
    }
}
