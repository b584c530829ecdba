use slurptuna_core::{
    search_param, AskContext, Direction, ParamSpace, Params, RaceOutcome, Sampler, SeedStats,
    TrialNumber, TrialRecord, TrialState,
};

/// A space with every kind of parameter.
pub(crate) fn mixed_space() -> ParamSpace {
    ParamSpace::new([
        ("x", search_param().range(-3.0, 2.0)),
        ("lr", search_param().range(1e-5, 1e-1).dtype("log")),
        ("n", search_param().range(1, 9).dtype("int")),
        ("k", search_param().range(-4, 20).dtype("int").step(4)),
        ("width", search_param().range(2, 512).dtype("int_log")),
        ("drop", search_param().range(0.0, 0.5).step(0.05)),
        ("act", search_param().allowed(["relu", "tanh", "gelu"])),
        ("flag", search_param().allowed([true, false])),
        ("fixed", search_param().allowed([7])),
    ])
    .unwrap()
}

/// A smooth objective over `mixed_space` (minimum 0 at x = 0.5, lr = 1e-3, n = 6, k = 8,
/// width = 64, drop = 0.2, act = gelu, flag = true).
pub(crate) fn mixed_objective(p: &Params) -> f64 {
    let act = match p.str("act").unwrap() {
        "gelu" => 0.0,
        "relu" => 0.5,
        _ => 1.0,
    };
    (p.f64("x").unwrap() - 0.5).powi(2)
        + (p.f64("lr").unwrap().log10() + 3.0).powi(2)
        + (p.i64("n").unwrap() as f64 - 6.0).powi(2) / 10.0
        + (p.i64("k").unwrap() as f64 - 8.0).powi(2) / 50.0
        + ((p.i64("width").unwrap() as f64).log2() - 6.0).powi(2) / 5.0
        + (p.f64("drop").unwrap() - 0.2).powi(2)
        + act
        + if p.bool("flag").unwrap() { 0.0 } else { 0.3 }
}

pub(crate) fn ctx<'a>(
    space: &'a ParamSpace,
    direction: Direction,
    trial: u64,
    history: &'a [TrialRecord],
    running: &'a [Params],
) -> AskContext<'a> {
    AskContext {
        space,
        direction,
        trial: TrialNumber(trial),
        history,
        running,
    }
}

pub(crate) fn complete(number: u64, params: Params, value: f64) -> TrialRecord {
    TrialRecord {
        number: TrialNumber(number),
        params,
        state: TrialState::Complete {
            stats: SeedStats::from_values(&[value]),
        },
    }
}

/// A trial a seed race pruned after `seeds` seeds, with estimate `estimate` of its mean (the
/// last of its looks).
pub(crate) fn pruned(number: u64, params: Params, seeds: u64, estimate: f64) -> TrialRecord {
    TrialRecord {
        number: TrialNumber(number),
        params,
        state: TrialState::Pruned {
            race: Box::new(RaceOutcome {
                seeds,
                estimate,
                bound: estimate - 0.1,
                beta: 0.5,
                threshold: estimate - 0.2,
                control: TrialNumber(0),
                alpha: 0.05,
                stats: SeedStats::from_values(&[estimate]),
                looks: vec![(seeds / 2, estimate + 0.3), (seeds, estimate)],
            }),
        },
    }
}

/// Runs `trials` sequential trials; returns the history.
pub(crate) fn optimise(
    sampler: &dyn Sampler,
    space: &ParamSpace,
    direction: Direction,
    trials: u64,
    f: impl Fn(&Params) -> f64,
) -> Vec<TrialRecord> {
    let mut history = Vec::new();
    for t in 0..trials {
        let p = sampler
            .ask(&ctx(space, direction, t, &history, &[]))
            .unwrap();
        assert!(space.contains(&p), "trial {t}: illegal proposal {p}");
        let v = f(&p);
        history.push(complete(t, p, v));
    }
    history
}

pub(crate) fn best(history: &[TrialRecord], direction: Direction) -> f64 {
    history
        .iter()
        .filter_map(TrialRecord::value)
        .fold(None, |b: Option<f64>, v| match b {
            Some(b) if !direction.better(v, b) => Some(b),
            _ => Some(v),
        })
        .unwrap()
}
