//! The honest best: the top trials re-evaluated on fresh seeds beat the fit's lucky draw, and
//! the reported value is unbiased.

use slurptuna::{
    loss, optimize_run, Context, CoreError, Error, LossDefinition, RunOptions, SamplerChoice,
    ValidationSeeds,
};

use crate::util::opts;

/// True loss `(x − 0.3)² + (y − 0.6)²`; each seed adds noise of sd 1 hashed from (params, seed),
/// so that the fit's 100-seed means carry noise of sd 0.1, more than the spread of the true loss
/// among the best trials: the fit's best is mostly a lucky draw.
fn lucky() -> LossDefinition {
    loss("lucky")
        .description("noisy bowl, noise dominates the top trials")
        .param("x", (0.0, 1.0))
        .param("y", (0.0, 1.0))
        .build(|p, seed, _| {
            let (x, y) = (p.f64("x")?, p.f64("y")?);
            let u = |w: u64| (splitmix(w) >> 11) as f64 / (1u64 << 53) as f64;
            let key = seed ^ splitmix(x.to_bits() ^ splitmix(y.to_bits()));
            // Box–Muller: a standard normal from two uniforms.
            let (u1, u2) = (u(key).max(1e-300), u(key ^ 0x5555_5555_5555_5555));
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            Ok((truth(x, y) + z).into())
        })
        .unwrap()
}

fn truth(x: f64, y: f64) -> f64 {
    (x - 0.3).powi(2) + (y - 0.6).powi(2)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn the_validated_best_beats_the_lucky_fit_best_and_its_value_is_unbiased() {
    let dir = tempfile::tempdir().unwrap();
    let (mut better, mut same) = (0, 0);
    let (mut fit_errors, mut errors) = (Vec::new(), Vec::new());
    const STUDIES: u64 = 30;
    for study in 0..STUDIES {
        let r = optimize_run(
            &lucky(),
            RunOptions {
                n_trials: 120,
                n_seeds: Some(100),
                random_seed: study,
                sampler: SamplerChoice::Random,
                validation_seeds: Some(ValidationSeeds::Count(20000)),
                validate_top_k: 5,
                ..opts(&dir.path().join(format!("s{study}")))
            },
        )
        .unwrap();
        let v = r.validated.as_ref().expect("a validated best");
        assert_eq!(v.fit_best_trial, r.best_trial);
        assert_eq!(v.candidates.len(), 5);
        assert_eq!(v.n_seeds, 10000);
        let f = |p: &slurptuna::Params| truth(p.f64("x").unwrap(), p.f64("y").unwrap());
        let (fit_true, validated_true) = (f(&r.best_params), f(&v.params));
        if validated_true < fit_true {
            better += 1;
        }
        if !v.differs() {
            same += 1;
        }
        fit_errors.push(r.best_value - fit_true);
        errors.push(v.value - validated_true);
        // summary.json carries the same honest best.
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.run_dir.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["validated"]["trial"], v.trial.0);
        assert_eq!(summary["validated"]["value"], v.value);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let stderr = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|e| (e - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
            / (v.len() as f64).sqrt()
    };
    println!(
        "honest best over {STUDIES} studies: validated best truly better than the fit's best in {better} \
         ({:.0}%), the same trial in {same}; error of the reported value: fit {:+.4} ± {:.4}, validated {:+.4} ± {:.4}",
        100.0 * better as f64 / STUDIES as f64,
        mean(&fit_errors),
        stderr(&fit_errors),
        mean(&errors),
        stderr(&errors)
    );
    assert!(
        better * 2 > STUDIES,
        "the validated best was truly better in only {better} of {STUDIES} studies"
    );
    // The fit's best value is biased low (the winner's curse) ...
    assert!(
        mean(&fit_errors) < -2.0 * stderr(&fit_errors),
        "the fit's best shows no winner's curse: {} ± {}",
        mean(&fit_errors),
        stderr(&fit_errors)
    );
    // ... the validated value is not.
    assert!(
        mean(&errors).abs() <= 2.0 * stderr(&errors),
        "validation error {} ± {}",
        mean(&errors),
        stderr(&errors)
    );
}

#[test]
fn validation_options_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let base = RunOptions {
        n_seeds: Some(100),
        ..opts(&root)
    };
    for (o, key, says) in [
        (
            RunOptions {
                validation_seeds: Some(3.into()),
                ..base.clone()
            },
            "validation_seeds",
            "at least 4",
        ),
        (
            RunOptions {
                validation_seeds: Some(vec![500, 501, 99, 502].into()),
                ..base.clone()
            },
            "validation_seeds",
            "seed 99 is also a fit seed",
        ),
        (
            RunOptions {
                validation_seeds: Some(vec![500, 501, 500, 502].into()),
                ..base.clone()
            },
            "validation_seeds",
            "more than once",
        ),
        (
            RunOptions {
                validation_seeds: Some(100.into()),
                validate_top_k: 0,
                ..base.clone()
            },
            "validate_top_k",
            ">= 1",
        ),
        (
            RunOptions {
                seeds: Some(vec![u64::MAX - 1, u64::MAX]),
                n_seeds: None,
                validation_seeds: Some(100.into()),
                ..base.clone()
            },
            "validation_seeds",
            "overflow",
        ),
    ] {
        match optimize_run(&lucky(), o) {
            Err(Error::Core(CoreError::InvalidOption { option, reason })) => {
                assert_eq!(option, key);
                assert!(reason.contains(says), "{key}: {reason}");
            }
            other => panic!("{key}: expected an invalid option, got {other:?}"),
        }
        assert!(!root.exists(), "{key}: a run directory was created");
    }
}

#[test]
fn explicit_validation_seeds_are_used_and_a_single_candidate_reports_on_all() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<u64> = (1000..1010).collect();
    let r = optimize_run(
        &lucky(),
        RunOptions {
            n_trials: 5,
            n_seeds: Some(20),
            validation_seeds: Some(seeds.clone().into()),
            validate_top_k: 1,
            ..opts(&dir.path().join("runs"))
        },
    )
    .unwrap();
    let v = r.validated.unwrap();
    assert_eq!((v.trial, v.n_seeds), (r.best_trial, 10));
    let l = lucky();
    let mean = seeds
        .iter()
        .map(|&s| {
            let cx = Context::new(None, v.trial, s);
            l.call(&v.params, s, &cx).unwrap().total()
        })
        .sum::<f64>()
        / 10.0;
    assert!((v.value - mean).abs() < 1e-12, "{} vs {mean}", v.value);
}
