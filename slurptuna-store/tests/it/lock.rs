use std::path::Path;
use std::time::{Duration, Instant};

use slurptuna_core::{Store, TrialEvent, TrialNumber};
use slurptuna_store::{host_name, FsStore, LockHolder, StoreError, LOCK_FILE};

use crate::common::{child_role, meta, params, spawn_role, wait_for_go, CHILD_MAX_LIFE};

const HOLD_TEST: &str = "lock::live_holder_is_refused_and_dead_holder_taken_over";
const RACE_TEST: &str = "lock::two_launchers_on_one_run_exactly_one_runs";

/// Child: holds the run's lock until killed (or `CHILD_MAX_LIFE`).
fn child_hold(dir: &Path) {
    let (store, _) = FsStore::open(dir).unwrap();
    store
        .append(&TrialEvent::Asked {
            trial: TrialNumber(0),
            params: params(0),
            control: None,
        })
        .unwrap();
    println!("LOCKED");
    std::thread::sleep(CHILD_MAX_LIFE);
}

#[test]
fn live_holder_is_refused_and_dead_holder_taken_over() {
    if let Some((_, arg)) = child_role() {
        return child_hold(Path::new(&arg));
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    drop(FsStore::open_or_create(&dir, &meta("toy")).unwrap());

    let mut child = spawn_role(HOLD_TEST, "hold", &dir);
    child.expect_line("LOCKED", Duration::from_secs(30));
    let e = FsStore::open_or_create(&dir, &meta("toy")).unwrap_err();
    match &e {
        StoreError::Locked {
            holder: Some(h), ..
        } => {
            assert_eq!(h.pid, child.id());
            assert_eq!(h.host, host_name());
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&format!("pid {}", child.id())), "{msg}");
    assert!(msg.contains(&format!("host {}", host_name())), "{msg}");
    assert!(msg.contains("stop that controller"), "{msg}");

    // SIGKILL: no clean-up code runs, the lock file still names the dead process.
    child.kill();
    let stale: LockHolder =
        serde_json::from_slice(&std::fs::read(dir.join(LOCK_FILE)).unwrap()).unwrap();
    assert_eq!(stale.pid, child.id());
    let (store, old) = FsStore::open_or_create(&dir, &meta("toy")).unwrap();
    assert!(old.is_some());
    let now: LockHolder =
        serde_json::from_slice(&std::fs::read(dir.join(LOCK_FILE)).unwrap()).unwrap();
    assert_eq!(now.pid, std::process::id());
    assert_eq!(store.load().unwrap().next_trial_number(), TrialNumber(1));
}

/// Child: waits for the go signal, then tries to run; the winner holds the run for a while.
fn child_launch(dir: &Path) {
    let root = dir.parent().unwrap();
    wait_for_go(root);
    match FsStore::open_or_create(dir, &meta("toy")) {
        Ok((store, _)) => {
            let pid = u64::from(std::process::id());
            store
                .append(&TrialEvent::Asked {
                    trial: TrialNumber(pid),
                    params: params(pid),
                    control: None,
                })
                .unwrap();
            println!("@@ RAN {}", std::process::id());
            // Hold the run until every other launcher has tried.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !root.join("release").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Err(StoreError::Locked {
            holder: Some(h), ..
        }) => println!("@@ REFUSED {}", h.pid),
        Err(e) => println!("@@ ERROR {e}"),
    }
}

#[test]
fn two_launchers_on_one_run_exactly_one_runs() {
    if let Some((_, arg)) = child_role() {
        return child_launch(Path::new(&arg));
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let mut children: Vec<_> = (0..4)
        .map(|_| spawn_role(RACE_TEST, "launch", &dir))
        .collect();
    std::fs::write(root.path().join("go"), "").unwrap();
    let mut ran = Vec::new();
    let mut refused = Vec::new();
    for c in &children {
        let line = c.expect_line("@@ ", Duration::from_secs(30));
        let mut parts = line.split_whitespace().skip(1);
        match (parts.next(), parts.next()) {
            (Some("RAN"), Some(pid)) => ran.push(pid.parse::<u32>().unwrap()),
            (Some("REFUSED"), Some(pid)) => refused.push(pid.parse::<u32>().unwrap()),
            _ => panic!("unexpected child output {line:?}"),
        }
    }
    std::fs::write(root.path().join("release"), "").unwrap();
    for c in &mut children {
        assert!(c.wait_timeout(Duration::from_secs(30)).success());
    }
    assert_eq!(ran.len(), 1, "ran: {ran:?}, refused: {refused:?}");
    assert_eq!(refused.len(), 3);
    assert!(
        refused.iter().all(|p| *p == ran[0]),
        "refusals must name the winner"
    );
    let (store, m) = FsStore::open(&dir).unwrap();
    assert_eq!(m.loss_name, "toy");
    let h = store.load().unwrap();
    assert_eq!(h.trials().count(), 1);
    assert!(h.trial(TrialNumber(u64::from(ran[0]))).is_some());
}
