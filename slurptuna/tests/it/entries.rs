use slurptuna::{loss, optimize_entries, EntriesOptions, Error};

fn opts(root: &std::path::Path) -> EntriesOptions {
    EntriesOptions {
        run_root: root.to_path_buf(),
        n_trials: 15,
        n_seeds: Some(3),
        progress: false,
        ..Default::default()
    }
}

#[test]
fn each_entry_gets_its_own_study() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("per-entry")
        .description("target depends on the entry")
        .param("alpha", (0.0, 1.0))
        .build(|p, _, ctx| {
            let target = match ctx.entry_id() {
                Some("p01") => 0.2,
                Some("p 02/x") => 0.8,
                other => return Err(format!("unexpected entry {other:?}").into()),
            };
            Ok((p.f64("alpha")? - target).abs().into())
        })
        .unwrap();
    let m = optimize_entries(
        &l,
        ["p01", "p 02/x"],
        EntriesOptions {
            max_concurrent_entries: Some(1),
            ..opts(dir.path())
        },
    )
    .unwrap();
    assert_eq!(m.entries, vec!["p01", "p 02/x"]);
    assert!(
        m.best_params_by_entry["p01"].f64("alpha").unwrap()
            < m.best_params_by_entry["p 02/x"].f64("alpha").unwrap()
    );
    assert_eq!(m.run_dir, dir.path().join("per-entry_entries_v0001"));
    assert_eq!(m.run_dirs_by_entry["p 02/x"], m.run_dir.join("p_02_x"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["entries"], serde_json::json!(["p01", "p 02/x"]));
    assert!(summary["best_params_by_entry"]["p01"]["alpha"].is_number());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.run_dir.join("p_02_x/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["entry_id"], "p 02/x");
}

#[test]
fn entry_seeds_differ_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("same-target")
        .description("same loss for all entries")
        .param("alpha", (0.0, 1.0))
        .build(|p, _, _| Ok(p.f64("alpha")?.into()))
        .unwrap();
    let m = optimize_entries(&l, ["a", "b"], opts(dir.path())).unwrap();
    let first = |id: &str| m.results_by_entry[id].trials[0].params.to_json();
    assert_ne!(
        first("a"),
        first("b"),
        "entries must use random_seed + index"
    );
}

#[test]
fn a_failing_entry_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("one-bad")
        .description("entry 'bad' always fails")
        .param("alpha", (0.0, 1.0))
        .build(|p, _, ctx| {
            if ctx.entry_id() == Some("bad") {
                return Err("this entry's data is broken".into());
            }
            Ok(p.f64("alpha")?.into())
        })
        .unwrap();
    match optimize_entries(&l, ["ok1", "bad", "ok2"], opts(dir.path())) {
        Err(Error::EntriesFailed { finished, failures }) => {
            let run_dir = finished.run_dir.clone();
            assert_eq!(finished.n_entries, 3);
            assert_eq!(finished.entries, ["ok1", "bad", "ok2"]);
            // The entries that finished come back with their results.
            let done: Vec<&String> = finished.results_by_entry.keys().collect();
            assert_eq!(done, ["ok1", "ok2"]);
            for id in ["ok1", "ok2"] {
                let r = &finished.results_by_entry[id];
                assert_eq!(r.n_complete, r.n_trials, "{id}");
                assert_eq!(finished.best_values_by_entry[id], r.best_value);
                assert!(finished.run_dirs_by_entry[id]
                    .join("journal.jsonl")
                    .is_file());
            }
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].0, "bad");
            assert!(
                failures[0].1.to_string().contains("broken"),
                "{}",
                failures[0].1
            );
            let summary: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(run_dir.join("summary.json")).unwrap(),
            )
            .unwrap();
            assert!(summary["best_values_by_entry"]["ok1"].is_number());
            assert!(summary["best_values_by_entry"]["ok2"].is_number());
            assert!(summary["errors_by_entry"]["bad"].is_string());
        }
        other => panic!("expected EntriesFailed, got {other:?}"),
    }
}

#[test]
fn entries_resume_under_the_same_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let l = loss("entries-resume")
        .description("per-entry target")
        .param("alpha", (0.0, 1.0))
        .build(|p, _, ctx| {
            Ok((p.f64("alpha")?
                - if ctx.entry_id() == Some("a") {
                    0.2
                } else {
                    0.7
                })
            .abs()
            .into())
        })
        .unwrap();
    let named = |n: u64| EntriesOptions {
        n_trials: n,
        run_name_prefix: Some("fits".into()),
        ..opts(dir.path())
    };
    let first = optimize_entries(&l, ["a", "b"], named(4)).unwrap();
    assert!(first.results_by_entry.values().all(|r| r.trials.len() == 4));
    let second = optimize_entries(&l, ["a", "b"], named(9)).unwrap();
    assert_eq!(second.run_dir, dir.path().join("fits"));
    for id in ["a", "b"] {
        let (t1, t2) = (
            &first.results_by_entry[id].trials,
            &second.results_by_entry[id].trials,
        );
        assert_eq!(t2.len(), 9, "n_trials is a total per entry");
        assert_eq!(&t2[..4], &t1[..], "the first trials are kept, not re-run");
    }
}
