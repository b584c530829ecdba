//! Measures the cost of one TPE proposal with `n` completed trials of `d` float parameters in
//! the history (random points, sphere values; each proposal is told back, so the history grows
//! by one per ask as in a study, and is cut back to `n` trials after growing by 10%), for
//! profiling:
//! `cargo run --release -p slurptuna-sampler --example ask_cost -- 1000 10 [parity]`.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slurptuna_core::{
    search_param, AskContext, Direction, ParamSpace, Params, Sampler, SeedStats, TrialNumber,
    TrialRecord, TrialState,
};
use slurptuna_sampler::{TpeConfig, TpeSampler};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.first().map_or(Ok(1000), |a| a.parse())?;
    let d: usize = args.get(1).map_or(Ok(10), |a| a.parse())?;
    let config = if args.get(2).is_some_and(|a| a == "parity") {
        TpeConfig::optuna()
    } else {
        TpeConfig::default()
    };
    let space =
        ParamSpace::new((0..d).map(|i| (format!("x{i}"), search_param().range(-5.0, 5.0))))?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut history: Vec<TrialRecord> = (0..n)
        .map(|t| {
            let x: Vec<f64> = (0..d).map(|_| rng.gen_range(-5.0..5.0)).collect();
            record(t, &x)
        })
        .collect();
    let sampler = TpeSampler::with_config(0, config);
    let reps = (400_000 / n).clamp(20, 4000);
    let start = Instant::now();
    // Order-sensitive checksum of the proposals: equal between builds that propose alike.
    let mut checksum = 0u64;
    for _ in 0..reps {
        let ctx = AskContext {
            space: &space,
            direction: Direction::Minimize,
            trial: TrialNumber(history.len() as u64),
            history: &history,
            running: &[],
        };
        let p = std::hint::black_box(sampler.ask(&ctx)?);
        // Tell: the history grows by one trial per ask, as in a study.
        let x: Vec<f64> = (0..d)
            .map(|i| p.f64(&format!("x{i}")))
            .collect::<Result<_, _>>()?;
        for v in &x {
            checksum = (checksum ^ v.to_bits()).wrapping_mul(0x0000_0100_0000_01b3);
        }
        history.push(record(history.len() as u64, &x));
        if history.len() as u64 >= n + (n / 10).max(1) {
            // Keep the history within 10% of n: start over from the first n trials.
            history.truncate(n as usize);
        }
    }
    let per = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "n={n} d={d}: {:.1} µs per ask + tell ({reps} asks; proposal checksum {checksum:016x})",
        per * 1e6
    );
    Ok(())
}

/// A completed trial at `x` with the sphere value.
fn record(t: u64, x: &[f64]) -> TrialRecord {
    let params: Params = x
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("x{i}"), *v))
        .collect();
    TrialRecord {
        number: TrialNumber(t),
        params,
        state: TrialState::Complete {
            stats: SeedStats::from_values(&[x.iter().map(|v| v * v).sum()]),
        },
    }
}
