use slurptuna::{loss, optimize_run, Error, RunOptions};

use crate::util::{bowl, opts, trial_sequence};

#[test]
fn n_trials_is_a_total_and_resume_continues_the_same_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let l = bowl("resume");
    let named = |n: u64, name: &str| RunOptions {
        n_trials: n,
        run_name: Some(name.into()),
        ..opts(dir.path())
    };
    let full = optimize_run(&l, named(20, "full")).unwrap();
    let first = optimize_run(&l, named(8, "split")).unwrap();
    assert_eq!(first.trials.len(), 8);
    let second = optimize_run(&l, named(20, "split")).unwrap();
    assert_eq!(second.trials.len(), 20);
    assert_eq!(trial_sequence(&full), trial_sequence(&second));
    let again = optimize_run(&l, named(20, "split")).unwrap();
    assert_eq!(
        again.trials.len(),
        20,
        "a finished run does not run more trials"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(second.run_dir.join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["resumes"].as_array().unwrap().len(), 2);
}

#[test]
fn resume_with_other_settings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let named = || RunOptions {
        n_trials: 3,
        run_name: Some("r".into()),
        ..opts(dir.path())
    };
    optimize_run(&bowl("mismatch"), named()).unwrap();
    let other_space = loss("mismatch")
        .description("d")
        .param("x", (0.0, 2.0))
        .build(|p, _, _| Ok(p.f64("x")?.into()))
        .unwrap();
    let e = optimize_run(&other_space, named()).unwrap_err();
    assert!(matches!(e, Error::ResumeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("parameter space"), "{e}");
    let e = optimize_run(
        &bowl("mismatch"),
        RunOptions {
            n_seeds: Some(7),
            ..named()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("seed layout"), "{e}");
    let e = optimize_run(
        &bowl("mismatch"),
        RunOptions {
            direction: slurptuna::Direction::Maximize,
            ..named()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("direction"), "{e}");
    let e = optimize_run(&bowl("other-name"), named()).unwrap_err();
    assert!(e.to_string().contains("loss name"), "{e}");
}
