use std::collections::BTreeSet;

use slurptuna::{loss, optimize_run, Direction, Error, RunOptions, SamplerChoice, TrialState};

use crate::util::{bowl, opts, trial_sequence};

#[test]
fn same_random_seed_gives_identical_trials() {
    let dir = tempfile::tempdir().unwrap();
    let l = bowl("det");
    let a = optimize_run(
        &l,
        RunOptions {
            n_trials: 25,
            ..opts(&dir.path().join("a"))
        },
    )
    .unwrap();
    let b = optimize_run(
        &l,
        RunOptions {
            n_trials: 25,
            ..opts(&dir.path().join("b"))
        },
    )
    .unwrap();
    assert_eq!(trial_sequence(&a), trial_sequence(&b));
    assert_eq!(a.trials.len(), 25);
    let c = optimize_run(
        &l,
        RunOptions {
            n_trials: 25,
            random_seed: 5,
            ..opts(&dir.path().join("c"))
        },
    )
    .unwrap();
    assert_ne!(trial_sequence(&a), trial_sequence(&c));
}

#[test]
fn explicit_non_contiguous_seeds_give_their_mean() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("seedmean")
        .description("returns the seed")
        .param("x", (0.0, 1.0))
        .build(|_, seed, _| Ok((seed as f64).into()))
        .unwrap();
    for (parallelism, chunk) in [(1, None), (3, Some(3)), (2, Some(1))] {
        let r = optimize_run(
            &l,
            RunOptions {
                n_trials: 2,
                seeds: Some(vec![100, 7, 3, 55]),
                n_seeds: None,
                worker_parallelism: parallelism,
                chunk_size: chunk,
                ..opts(&dir.path().join(format!("p{parallelism}")))
            },
        )
        .unwrap();
        assert_eq!(r.best_value, 41.25);
        let TrialState::Complete { stats } = &r.trials[0].state else {
            panic!()
        };
        assert_eq!(stats.count(), 4);
    }
}

#[test]
fn trials_converge_and_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &bowl("conv"),
        RunOptions {
            n_trials: 60,
            ..opts(dir.path())
        },
    )
    .unwrap();
    assert!(r.best_value < 0.06, "best {}", r.best_value);
    assert_eq!(r.run_dir, dir.path().join("conv_v0001"));
    for f in ["meta.json", "summary.json"] {
        let text = std::fs::read_to_string(r.run_dir.join(f)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("best_value").is_some(), "{f}: {text}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.run_dir.join("meta.json")).unwrap())
            .unwrap();
    for key in [
        "loss_name",
        "run_name",
        "run_dir",
        "mode",
        "n_trials",
        "entry_id",
        "started_at_utc",
        "seed_start",
        "seed_end",
        "n_seeds",
        "chunk_size",
        "num_chunks",
        "max_concurrent_trials",
        "array_parallelism_limit",
        "worker_parallelism",
        "worker_time_limit_seconds",
        "slurm_qos",
        "completed_at_utc",
        "duration_seconds",
        "best_params",
    ] {
        assert!(meta.get(key).is_some(), "meta.json lacks {key}");
    }
    assert_eq!(meta["mode"], "single");
    let second = optimize_run(
        &bowl("conv"),
        RunOptions {
            n_trials: 2,
            ..opts(dir.path())
        },
    )
    .unwrap();
    assert_eq!(second.run_dir, dir.path().join("conv_v0002"));
}

#[test]
fn maximize_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("peak")
        .description("a peak at 0.8")
        .param("x", (0.0, 1.0))
        .build(|p, _, _| Ok((-(p.f64("x")? - 0.8).powi(2)).into()))
        .unwrap();
    let r = optimize_run(
        &l,
        RunOptions {
            n_trials: 40,
            direction: Direction::Maximize,
            ..opts(dir.path())
        },
    )
    .unwrap();
    assert!(
        (r.best_params.f64("x").unwrap() - 0.8).abs() < 0.1,
        "{:?}",
        r.best_params
    );
    assert!(r
        .trials
        .iter()
        .filter_map(|t| t.value())
        .all(|v| v <= r.best_value));
}

#[test]
fn concurrent_trials_never_share_params() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &bowl("conc"),
        RunOptions {
            n_trials: 40,
            max_concurrent_trials: 8,
            worker_parallelism: 2,
            ..opts(dir.path())
        },
    )
    .unwrap();
    assert_eq!(r.trials.len(), 40);
    let distinct: BTreeSet<String> = r.trials.iter().map(|t| t.params.to_json()).collect();
    assert_eq!(
        distinct.len(),
        40,
        "duplicate params among concurrent trials"
    );
    let numbers: Vec<u64> = r.trials.iter().map(|t| t.number.0).collect();
    assert_eq!(numbers, (0..40).collect::<Vec<_>>());
}

#[test]
fn failed_trials_are_recorded_and_the_study_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("flaky")
        .description("fails for x > 0.5 (error), panics for x < 0.1, NaN in between for seed 3")
        .param("x", (0.0, 1.0))
        .build(|p, seed, _| {
            let x = p.f64("x")?;
            if x > 0.5 {
                return Err(format!("x too large: {x}").into());
            }
            if x < 0.1 {
                panic!("x too small");
            }
            if seed == 3 && x > 0.45 {
                return Ok(f64::NAN.into());
            }
            Ok(x.into())
        })
        .unwrap();
    let r = optimize_run(
        &l,
        RunOptions {
            n_trials: 30,
            sampler: SamplerChoice::Random,
            ..opts(dir.path())
        },
    )
    .unwrap();
    assert_eq!(r.trials.len(), 30);
    assert!(r.n_failed > 0 && r.n_complete > 0);
    let reasons: Vec<&str> = r
        .trials
        .iter()
        .filter_map(|t| match &t.state {
            TrialState::Failed { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("x too large") && r.contains("seed 0")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("panicked") && r.contains("x too small")),
        "{reasons:?}"
    );
}

#[test]
fn no_completed_trial_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("allnan")
        .description("always NaN")
        .param("x", (0.0, 1.0))
        .build(|_, _, _| Ok(f64::NAN.into()))
        .unwrap();
    match optimize_run(
        &l,
        RunOptions {
            n_trials: 3,
            ..opts(dir.path())
        },
    ) {
        Err(Error::NoTrialCompleted {
            n_failed,
            last_failure,
            run_dir,
        }) => {
            assert_eq!(n_failed, 3);
            assert!(last_failure.contains("NaN"), "{last_failure}");
            assert!(run_dir.join("summary.json").is_file());
        }
        other => panic!("expected NoTrialCompleted, got {other:?}"),
    }
}

#[test]
fn map_and_list_losses_are_averaged() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("mapavg")
        .description("map of two components")
        .param("x", (0.0, 1.0))
        .build(|p, seed, _| {
            let x = p.f64("x")?;
            if seed % 2 == 0 {
                let m: std::collections::HashMap<&str, f64> = [("a", x), ("b", x + 2.0)].into();
                Ok(m.into())
            } else {
                Ok(vec![x + 1.0, x + 1.0].into())
            }
        })
        .unwrap();
    let r = optimize_run(
        &l,
        RunOptions {
            n_trials: 3,
            n_seeds: Some(4),
            ..opts(dir.path())
        },
    )
    .unwrap();
    for t in &r.trials {
        let x = t.params.f64("x").unwrap();
        assert!((t.value().unwrap() - (x + 1.0)).abs() < 1e-12);
    }
}

#[test]
fn a_single_mode_run_leaves_no_empty_trial_directories_and_a_final_summary() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize_run(
        &bowl("nodirs"),
        RunOptions {
            n_trials: 30,
            ..opts(dir.path())
        },
    )
    .unwrap();
    // Nothing wrote per-trial files (no kept seed values, no scheduler): no `trials/` at all.
    assert!(
        !r.run_dir.join("trials").exists(),
        "empty per-trial directories were created"
    );
    // summary.json is written at most once per interval, and always at the end: it is final.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["n_complete"], 30);
    assert_eq!(summary["best_trial"], r.best_trial.0);
    // With kept seed values the sidecars make their trial's directory, and only those.
    let kept = optimize_run(
        &bowl("nodirs"),
        RunOptions {
            n_trials: 3,
            keep_seed_values: true,
            ..opts(&dir.path().join("kept"))
        },
    )
    .unwrap();
    let n_dirs = std::fs::read_dir(kept.run_dir.join("trials"))
        .unwrap()
        .count();
    assert_eq!(n_dirs, 3);
}

#[test]
fn both_durability_policies_give_the_same_trials() {
    let dir = tempfile::tempdir().unwrap();
    let run = |durability, sub: &str| {
        optimize_run(
            &bowl("durable"),
            RunOptions {
                n_trials: 12,
                durability,
                ..opts(&dir.path().join(sub))
            },
        )
        .unwrap()
    };
    let a = run(slurptuna::Durability::Grouped, "g");
    let b = run(slurptuna::Durability::Always, "a");
    assert_eq!(trial_sequence(&a), trial_sequence(&b));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.run_dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["durability"], "always");
}

/// The test bowl plus seed noise (sd ≈ 0.03, mostly shared by every trial, as common random
/// numbers are): far trials are clearly worse long before their last seed.
fn noisy_bowl() -> slurptuna::LossDefinition {
    loss("noisy")
        .description("noisy bowl")
        .param("x", (0.0, 1.0))
        .param("y", (0.0, 1.0))
        .build(|p, seed, _| {
            let (x, y) = (p.f64("x")?, p.f64("y")?);
            let h = |w: u64| {
                let z = w.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (w >> 29);
                (z.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 11) as f64 / (1u64 << 53) as f64
            };
            let own = h(seed ^ x.to_bits().rotate_left(17) ^ y.to_bits());
            Ok(
                ((x - 0.3).powi(2)
                    + (y - 0.6).powi(2)
                    + 0.02 * (own - 0.5)
                    + 0.1 * (h(seed) - 0.5))
                    .into(),
            )
        })
        .expect("valid loss")
}

#[test]
fn racing_prunes_worse_trials_and_reports_the_seeds_it_saved() {
    let dir = tempfile::tempdir().unwrap();
    let racing = RunOptions {
        n_trials: 20,
        n_seeds: Some(1000),
        chunk_size: Some(100),
        racing: Some(slurptuna::Racing::default()),
        sampler: SamplerChoice::Random,
        ..opts(&dir.path().join("on"))
    };
    let on = optimize_run(&noisy_bowl(), racing.clone()).unwrap();
    let off = optimize_run(
        &noisy_bowl(),
        RunOptions {
            racing: None,
            run_root: dir.path().join("off"),
            ..racing.clone()
        },
    )
    .unwrap();
    assert!(on.n_pruned >= 5, "{} of 20 trials pruned", on.n_pruned);
    assert_eq!(on.n_complete + on.n_pruned + on.n_failed, 20);
    assert!(on.seeds_saved > 0);
    assert_eq!(on.seeds_evaluated + on.seeds_saved, 20 * 1000);
    assert_eq!(off.seeds_evaluated, 20 * 1000);
    assert_eq!(off.n_pruned, 0);
    // The same proposals (random sampler): the best trial is the same, and with the same value
    // (the race never pruned it, and its mean is over all seeds).
    assert_eq!(on.best_trial, off.best_trial);
    assert_eq!(on.best_value, off.best_value);
    // Every pruned trial is worse than the best in its full mean (the unraced run has it).
    for t in on.trials.iter().filter(|t| t.pruned().is_some()) {
        let full = off.trials[t.number.0 as usize].value().unwrap();
        assert!(
            full > on.best_value,
            "trial {} pruned, its mean {full} ≤ best",
            t.number
        );
        assert!(matches!(t.state, TrialState::Pruned { .. }));
    }
    // summary.json counts them; the journal says why; values no race needs are gone.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(on.run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["n_pruned"], on.n_pruned);
    assert_eq!(summary["seeds_saved"], on.seeds_saved);
    let journal = std::fs::read_to_string(on.run_dir.join("journal.jsonl")).unwrap();
    assert_eq!(
        journal.matches("\"event\":\"pruned\"").count() as u64,
        on.n_pruned
    );
    let best_dir = on
        .run_dir
        .join(format!("trials/trial_{:05}", on.best_trial.0));
    assert!(best_dir.join("control_values.f64").is_file());
    let with_values = std::fs::read_dir(on.run_dir.join("trials"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("seed_values").is_dir())
        .count();
    assert!(
        with_values <= 2,
        "{with_values} trials still hold per-seed values; only the incumbent needs them"
    );
}

#[test]
fn racing_options_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    for (racing, key) in [
        (
            slurptuna::Racing {
                alpha: 0.7,
                ..Default::default()
            },
            "racing.alpha",
        ),
        (
            slurptuna::Racing {
                min_seeds: Some(1),
                ..Default::default()
            },
            "racing.min_seeds",
        ),
        (
            slurptuna::Racing {
                margin: -1.0,
                ..Default::default()
            },
            "racing.margin",
        ),
    ] {
        let e = optimize_run(
            &noisy_bowl(),
            RunOptions {
                racing: Some(racing),
                ..opts(&root)
            },
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Core(c) if c.to_string().contains(key))
                || e.to_string().contains(key),
            "{e}"
        );
        assert!(!root.exists(), "a rejected option left a run directory");
    }
}
