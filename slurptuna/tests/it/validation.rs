use std::time::Duration;

use slurptuna::{
    loss, optimize_entries, optimize_run, search_param, EntriesOptions, ExecutionMode, RunOptions,
};

use crate::util::{bowl, opts};

fn check(o: RunOptions, needle: &str) {
    let root = o.run_root.clone();
    let e = optimize_run(&bowl("val"), o).expect_err(needle).to_string();
    assert!(e.contains(needle), "error {e:?} does not name {needle:?}");
    assert!(
        !root.exists(),
        "{needle}: run_root was created despite the error"
    );
}

#[test]
fn invalid_options_name_the_option_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = || opts(&dir.path().join("runs"));
    check(RunOptions { n_trials: 0, ..o() }, "n_trials");
    check(
        RunOptions {
            max_concurrent_trials: 0,
            ..o()
        },
        "max_concurrent_trials",
    );
    check(
        RunOptions {
            worker_parallelism: 0,
            ..o()
        },
        "worker_parallelism",
    );
    check(
        RunOptions {
            array_parallelism_limit: Some(0),
            ..o()
        },
        "array_parallelism_limit",
    );
    check(
        RunOptions {
            worker_time_limit: Duration::from_millis(500),
            ..o()
        },
        "worker_time_limit",
    );
    check(
        RunOptions {
            slurm_qos: Some("  ".into()),
            ..o()
        },
        "slurm_qos",
    );
    check(
        RunOptions {
            slurm_poll_seconds: 0.0,
            ..o()
        },
        "slurm_poll_seconds",
    );
    check(
        RunOptions {
            slurm_timeout_minutes: f64::NAN,
            ..o()
        },
        "slurm_timeout_minutes",
    );
    check(
        RunOptions {
            cpus_per_task: 0,
            ..o()
        },
        "cpus_per_task",
    );
    check(
        RunOptions {
            mem_per_cpu: "lots".into(),
            ..o()
        },
        "mem_per_cpu",
    );
    for bad in ["4gb", "0", "2 G", "-1G", "1.5G", "", "G"] {
        for mode in [ExecutionMode::Single, ExecutionMode::Distributed] {
            check(
                RunOptions {
                    mode,
                    mem_per_cpu: bad.into(),
                    ..o()
                },
                "'mem_per_cpu'",
            );
        }
    }
    check(
        RunOptions {
            chunk_size: Some(0),
            ..o()
        },
        "chunk_size",
    );
    check(
        RunOptions {
            n_seeds: Some(0),
            ..o()
        },
        "n_seeds",
    );
    check(
        RunOptions {
            n_seeds: None,
            num_chunks: Some(0),
            ..o()
        },
        "num_chunks",
    );
    check(
        RunOptions {
            seeds: Some(vec![]),
            ..o()
        },
        "seeds",
    );
    check(
        RunOptions {
            seeds: Some(vec![1, 2, 1]),
            ..o()
        },
        "seeds",
    );
    check(
        RunOptions {
            run_name: Some("../escape".into()),
            ..o()
        },
        "run_name",
    );
    check(
        RunOptions {
            run_name: Some("..".into()),
            ..o()
        },
        "run_name",
    );
    check(
        RunOptions {
            run_name: Some(String::new()),
            ..o()
        },
        "run_name",
    );
    // Slurm's own options are checked by `SlurmOptions::validate`, in every mode.
    #[cfg(feature = "slurm")]
    check(
        RunOptions {
            scheduler: slurptuna::slurm::SlurmOptions {
                slurm_partition: Some(String::new()),
                ..Default::default()
            }
            .into(),
            ..o()
        },
        "slurm_partition",
    );
    check(
        RunOptions {
            mode: ExecutionMode::Distributed,
            loss_module: Some(dir.path().join("missing")),
            ..o()
        },
        "loss_module",
    );
}

#[test]
fn invalid_parameters_name_the_parameter() {
    let f = |_: &slurptuna::Params, _: u64, _: &slurptuna::Context| -> slurptuna::LossResult {
        Ok(0.0.into())
    };
    let cases: Vec<(slurptuna::SearchParam, &str)> = vec![
        (search_param().range(1.0, 0.0), "greater"),
        (search_param().range(f64::NEG_INFINITY, 0.0), "finite"),
        (search_param().range(0.0, 1.0).dtype("log"), "log"),
        (search_param().range(0.0, 1.0).step(0.0), "step"),
        (search_param().range(0.5, 3.7).dtype("int"), "whole number"),
        (search_param().allowed(Vec::<&str>::new()), "empty"),
        (
            search_param().allowed([slurptuna::ParamValue::from("a"), 1.into()]),
            "mix",
        ),
    ];
    for (spec, why) in cases {
        let e = loss("v")
            .description("d")
            .param("theta", spec)
            .build(f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'theta'") && e.contains(why), "{e}");
    }
    let dup = loss("v")
        .description("d")
        .param("a", (0, 1))
        .param("a", (0, 1))
        .build(f);
    assert!(dup.unwrap_err().to_string().contains("'a'"));
    assert!(loss("v")
        .description("d")
        .build(f)
        .unwrap_err()
        .to_string()
        .contains("no parameters"));
    assert!(loss("a/b")
        .description("d")
        .param("a", (0, 1))
        .build(f)
        .is_err());
    assert!(loss("v")
        .param("a", (0, 1))
        .build(f)
        .unwrap_err()
        .to_string()
        .contains("description"));
}

#[test]
fn invalid_entries_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let o = || EntriesOptions {
        run_root: root.clone(),
        n_trials: 2,
        n_seeds: Some(2),
        progress: false,
        ..Default::default()
    };
    let l = bowl("val-entries");
    let cases: Vec<(Vec<&str>, EntriesOptions, &str)> = vec![
        (vec![], o(), "entry_ids"),
        (vec!["p 1", "p/1"], o(), "entry_ids"),
        (vec!["a", "a"], o(), "entry_ids"),
        (
            vec!["a"],
            EntriesOptions {
                max_concurrent_entries: Some(0),
                ..o()
            },
            "max_concurrent_entries",
        ),
        (vec!["a"], EntriesOptions { n_trials: 0, ..o() }, "n_trials"),
        (
            vec!["a"],
            EntriesOptions {
                run_name_prefix: Some("x/y".into()),
                ..o()
            },
            "run_name_prefix",
        ),
    ];
    for (ids, eo, needle) in cases {
        let e = optimize_entries(&l, ids, eo).expect_err(needle).to_string();
        assert!(e.contains(needle), "{e}");
        assert!(!root.exists(), "{needle}: created {}", root.display());
    }
}

#[test]
fn execution_mode_parses() {
    assert_eq!(
        slurptuna::execution_mode("Distributed").unwrap(),
        ExecutionMode::Distributed
    );
    for bad in ["", "local", "slurm", " single"] {
        assert!(slurptuna::execution_mode(bad)
            .unwrap_err()
            .to_string()
            .contains("single, distributed"));
    }
}
