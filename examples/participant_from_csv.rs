//! Per-participant fits: one study per row of `examples/data/participants.csv`.
//!
//! Run with `cargo run --release --example participant_from_csv`. Each participant's loss compares
//! simulated choices under the candidate parameters with those under the participant's true
//! parameters; `optimize_entries` fits every participant separately and reports the recovery.

use std::collections::BTreeMap;
use std::sync::Arc;

use slurptuna::{loss, optimize_entries, EntriesOptions};

/// SplitMix64: a tiny deterministic generator, so the example needs no extra crates.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Mean reward rate of a learner with learning rate `alpha` and exploration `beta` on a seeded
/// two-armed bandit (the same bandit for every parameter setting of a seed).
fn simulate(alpha: f64, beta: f64, seed: u64) -> f64 {
    let mut rng = Rng(seed);
    let p = [0.3 + 0.4 * rng.uniform(), 0.3 + 0.4 * rng.uniform()];
    let mut q = [0.5, 0.5];
    let mut reward = 0.0;
    for _ in 0..50 {
        let arm = if rng.uniform() < beta {
            (rng.uniform() < 0.5) as usize
        } else {
            (q[1] > q[0]) as usize
        };
        let r = if rng.uniform() < p[arm] { 1.0 } else { 0.0 };
        q[arm] += alpha * (r - q[arm]);
        reward += r;
    }
    reward / 50.0 + 0.5 * alpha + 0.3 * beta
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library installs no logging of its own: a program chooses where events go.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let csv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/participants.csv"
    ))?;
    let mut truth: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (i, line) in csv.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [id, a, b] = cols.as_slice() else {
            return Err(format!("participants.csv line {}: expected 3 columns", i + 1).into());
        };
        truth.insert(id.to_string(), (a.parse()?, b.parse()?));
    }
    let ids: Vec<String> = truth.keys().cloned().collect();
    let truth = Arc::new(truth);

    let t = truth.clone();
    let model = loss("participant_fit")
        .description("fit learning rate and exploration of each participant")
        .param("alpha", (0.0, 1.0))
        .param("beta", (0.0, 1.0))
        .build(move |p, seed, ctx| {
            let id = ctx.entry_id().ok_or("this loss needs an entry id")?;
            let &(a_true, b_true) = t
                .get(id)
                .ok_or_else(|| format!("unknown participant {id}"))?;
            let observed = simulate(a_true, b_true, seed);
            let predicted = simulate(p.f64("alpha")?, p.f64("beta")?, seed);
            Ok((predicted - observed).powi(2).into())
        })?;

    let m = optimize_entries(
        &model,
        &ids,
        EntriesOptions {
            n_trials: 60,
            n_seeds: Some(40),
            max_concurrent_entries: Some(2),
            ..Default::default()
        },
    )?;
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>10}",
        "id", "alpha", "true", "beta", "true"
    );
    for id in &m.entries {
        let p = &m.best_params_by_entry[id];
        let (a, b) = truth[id];
        println!(
            "{id:<6} {:>10.3} {a:>10.3} {:>10.3} {b:>10.3}",
            p.f64("alpha")?,
            p.f64("beta")?
        );
    }
    println!("run dir {}", m.run_dir.display());
    Ok(())
}
