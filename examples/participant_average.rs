//! One shared fit over several participants: the loss returns a map participant -> loss, and the
//! trial's value is the mean over participants and seeds.
//!
//! Run with `cargo run --release --example participant_average`.

use std::collections::BTreeMap;

use slurptuna::{loss, optimize_run, RunOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library installs no logging of its own: a program chooses where events go.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    // Each participant prefers a slightly different alpha; the shared optimum is their mean, 0.5.
    let targets = [("p01", 0.35), ("p02", 0.45), ("p03", 0.55), ("p04", 0.65)];
    let model = loss("participant_average")
        .description("shared alpha for all participants, averaged over participants")
        .param("alpha", (0.0, 1.0))
        .param(
            "temperature",
            slurptuna::search_param().range(0.1, 10.0).dtype("log"),
        )
        .build(move |p, seed, _ctx| {
            let (alpha, temperature) = (p.f64("alpha")?, p.f64("temperature")?);
            let jitter = ((seed * 2_654_435_761) % 1000) as f64 / 1000.0 - 0.5;
            let per_participant: BTreeMap<String, f64> = targets
                .iter()
                .map(|(id, t)| {
                    (
                        id.to_string(),
                        (alpha - t).powi(2) + 0.01 * temperature.ln().powi(2) + 0.01 * jitter,
                    )
                })
                .collect();
            Ok(per_participant.into())
        })?;
    let r = optimize_run(
        &model,
        RunOptions {
            n_trials: 60,
            n_seeds: Some(20),
            ..Default::default()
        },
    )?;
    println!(
        "best alpha {:.3} (expected about 0.5), temperature {:.3} (expected about 1)",
        r.best_params.f64("alpha")?,
        r.best_params.f64("temperature")?
    );
    println!("run dir {}", r.run_dir.display());
    Ok(())
}
