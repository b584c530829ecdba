//! Quickstart: recover two parameters of a noisy loss whose optimum is known.
//!
//! Run with `cargo run --release --example quickstart`. Each trial evaluates 50 seeds; the
//! per-seed noise does not depend on the parameters, so averaging over seeds keeps the optimum at
//! alpha = 0.3, beta = 0.7.

use slurptuna::{loss, optimize_run, RunOptions};

/// A deterministic pseudo-random number in [-0.5, 0.5) for a seed (SplitMix64).
fn noise(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library installs no logging of its own: a program chooses where events go.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let (alpha_true, beta_true) = (0.3, 0.7);
    let model = loss("quickstart")
        .description("a noisy bowl with its minimum at alpha = 0.3, beta = 0.7")
        .param("alpha", (0.0, 1.0))
        .param("beta", (0.0, 1.0))
        .build(move |p, seed, _ctx| {
            let (a, b) = (p.f64("alpha")?, p.f64("beta")?);
            Ok(((a - alpha_true).powi(2) + (b - beta_true).powi(2) + 0.05 * noise(seed)).into())
        })?;

    let result = optimize_run(
        &model,
        RunOptions {
            n_trials: 100,
            n_seeds: Some(50),
            worker_parallelism: 2,
            ..RunOptions::default()
        },
    )?;

    let (a, b) = (
        result.best_params.f64("alpha")?,
        result.best_params.f64("beta")?,
    );
    println!(
        "best value  {:.6} (trial {})",
        result.best_value, result.best_trial
    );
    println!("best params alpha = {a:.4} (truth {alpha_true}), beta = {b:.4} (truth {beta_true})");
    println!("run dir     {}", result.run_dir.display());
    let err = (a - alpha_true).abs().max((b - beta_true).abs());
    if err > 0.05 {
        return Err(format!("best params are {err:.3} from the truth (more than 0.05)").into());
    }
    Ok(())
}
