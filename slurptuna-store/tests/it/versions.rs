use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use slurptuna_store::{create_versioned_dir, parse_version, FsStore};

use crate::common::{child_role, meta, spawn_role, wait_for_go};

const TEST: &str = "versions::concurrent_claims_from_threads_and_processes_never_collide";
const PER_WORKER: usize = 15;

fn claim_many(root: &Path) -> Vec<PathBuf> {
    (0..PER_WORKER)
        .map(|i| {
            if i % 3 == 0 {
                // Through the store too: claim, lock, meta.
                FsStore::create_versioned(root, "race", &meta("race"))
                    .unwrap()
                    .dir()
                    .to_path_buf()
            } else {
                create_versioned_dir(root, "race").unwrap()
            }
        })
        .collect()
}

#[test]
fn concurrent_claims_from_threads_and_processes_never_collide() {
    if let Some((_, arg)) = child_role() {
        let root = PathBuf::from(arg);
        wait_for_go(root.parent().unwrap());
        for p in claim_many(&root) {
            println!("@@ {}", p.display());
        }
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("runs");
    let children: Vec<_> = (0..4).map(|_| spawn_role(TEST, "claim", &root)).collect();
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (root, barrier, go) = (root.clone(), barrier.clone(), top.path().join("go"));
            std::thread::spawn(move || {
                if barrier.wait().is_leader() {
                    std::fs::write(go, "").unwrap();
                }
                claim_many(&root)
            })
        })
        .collect();
    let mut all: Vec<PathBuf> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    for c in &children {
        let lines = c.collect_lines("@@ ", Duration::from_secs(60));
        assert_eq!(lines.len(), PER_WORKER, "child {}", c.id());
        all.extend(lines.iter().map(|l| PathBuf::from(&l[3..])));
    }
    let n = all.len();
    assert_eq!(n, (threads + children.len()) * PER_WORKER);
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), n, "two claimers got the same directory");
    let versions: BTreeSet<u64> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| parse_version(e.unwrap().file_name().to_str().unwrap(), "race").unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=n as u64).collect(),
        "versions are dense from v0001"
    );
}
