use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slurptuna_core::{
    ChunkIndex, ChunkKey, ChunkResult, RunHistory, SeedStats, Store, TrialEvent, TrialNumber,
};
use slurptuna_store::{FsStore, SyncPolicy, JOURNAL_FILE, LOCK_FILE};

use crate::common::{params, trial_events, values, without_times};

/// How many records at the end of the journal are cut at every byte.
const TAIL_RECORDS: usize = 20;
/// Threads checking cuts.
const THREADS: usize = 4;

/// The journal and what each cut of it must load.
#[derive(Clone, Copy)]
struct Case<'a> {
    /// The whole journal.
    full: &'a [u8],
    /// `ends[i]`: the byte offset just after record `i`.
    ends: &'a [usize],
    /// `prefix[k]`: the fold of the first `k` records.
    prefix: &'a [RunHistory],
    /// `after[k]`: `prefix[k]` and then `extra`.
    after: &'a [RunHistory],
    /// The event appended after each cut.
    extra: &'a TrialEvent,
}

impl Case<'_> {
    /// Checks each cut in `cuts` on the run directory `dir` (sidecars in place); returns the
    /// number of cuts and the bytes of the appended record.
    fn check_cuts(&self, dir: &Path, cuts: impl Iterator<Item = usize>) -> (usize, Vec<u8>) {
        let journal = dir.join(JOURNAL_FILE);
        let mut extra_line: Option<Vec<u8>> = None;
        let mut buf = Vec::with_capacity(self.full.len() + 256);
        let mut n = 0;
        for cut in cuts {
            fs::write(&journal, &self.full[..cut]).unwrap();
            let k = self.ends.partition_point(|&end| end <= cut);
            let whole = if k == 0 { 0 } else { self.ends[k - 1] };
            // Both policies; `Grouped` with an interval long enough that only drop syncs.
            let policy = if cut % 3 == 0 {
                SyncPolicy::Always
            } else {
                SyncPolicy::Grouped {
                    interval: Duration::from_secs(3600),
                }
            };
            let store = FsStore::attach(dir).unwrap().with_sync_policy(policy);
            let (h, report) = store
                .load_with_report()
                .unwrap_or_else(|e| panic!("cut at byte {cut}: {e}"));
            assert!(
                h == self.prefix[k],
                "cut at byte {cut}: not the fold of {k} records"
            );
            assert_eq!(report.records as usize, k, "cut at byte {cut}");
            assert_eq!(
                report.dropped_tail_bytes as usize,
                cut - whole,
                "cut at byte {cut}"
            );
            assert_eq!(report.invalid_chunks, 0, "cut at byte {cut}");
            store.append(self.extra).unwrap();
            assert!(
                store.load().unwrap() == self.after[k],
                "append after a cut at byte {cut}"
            );
            drop(store);
            // The journal is the whole records before the cut and the new record, nothing else.
            buf.clear();
            buf.extend_from_slice(&fs::read(&journal).unwrap());
            assert_eq!(&buf[..whole], &self.full[..whole], "cut at byte {cut}");
            let line = &buf[whole..];
            assert!(
                line.ends_with(b"\n") && line.iter().filter(|&&b| b == b'\n').count() == 1,
                "cut at byte {cut}: {:?}",
                String::from_utf8_lossy(line)
            );
            match &extra_line {
                None => extra_line = Some(line.to_vec()),
                Some(l) => assert_eq!(without_times(line), without_times(l), "cut at byte {cut}"),
            }
            n += 1;
        }
        (n, extra_line.unwrap_or_default())
    }
}

fn chunk(t: u64, c: u64, keep_values: bool) -> TrialEvent {
    let v = values(t, c, 10);
    TrialEvent::ChunkDone {
        trial: TrialNumber(t),
        chunk: ChunkIndex(c),
        key: ChunkKey::new(format!("key-{t}-{c}")),
        result: ChunkResult {
            stats: SeedStats::from_values(&v),
            values: keep_values.then_some(v),
        },
    }
}

fn asked(t: u64) -> TrialEvent {
    TrialEvent::Asked {
        trial: TrialNumber(t),
        params: params(t),
        control: None,
    }
}

fn failed(t: u64) -> TrialEvent {
    TrialEvent::Failed {
        trial: TrialNumber(t),
        reason: format!("seed {t}: \"boom\"\nsecond line"),
    }
}

/// A journal of mixed records: complete and failed trials, chunks with and without per-seed
/// values, two trials in flight at once at the end (interleaved, as with concurrent trials).
fn events() -> Vec<TrialEvent> {
    let mut ev = Vec::new();
    ev.extend(trial_events(0, 3, true));
    ev.extend([asked(1), chunk(1, 0, false), failed(1)]);
    ev.extend(trial_events(2, 2, false));
    ev.extend(trial_events(3, 4, true));
    ev.extend([asked(4), chunk(4, 0, true), failed(4)]);
    ev.extend(trial_events(5, 3, false));
    // Trials 6 and 7 overlap; 7 fails with chunks of both kinds stored.
    let t6 = trial_events(6, 2, true);
    ev.extend([t6[0].clone(), asked(7), t6[1].clone(), chunk(7, 0, true)]);
    ev.extend([t6[2].clone(), chunk(7, 1, false), t6[3].clone(), failed(7)]);
    ev.extend(trial_events(8, 3, true));
    // Trials 9 and 10 are in flight when the journal ends.
    ev.extend([asked(9), chunk(9, 0, true), asked(10), chunk(10, 0, false)]);
    ev.extend([chunk(9, 1, false), chunk(10, 1, true), chunk(9, 2, true)]);
    ev
}

/// Every file under `dir` but the journal and the lock, with its content.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                if rel != Path::new(JOURNAL_FILE) && rel != Path::new(LOCK_FILE) {
                    out.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_tree(files: &BTreeMap<PathBuf, Vec<u8>>, to: &Path) {
    for (rel, bytes) in files {
        let p = to.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
}

/// What an OS crash can leave: the journal cut at any byte. For every byte offset within the
/// last `TAIL_RECORDS` records, the run (a copy of the directory with the journal cut there)
/// must open, load exactly the records that end before the cut, and take a new append.
#[test]
fn journal_cut_at_every_byte_of_its_last_records_loads_the_whole_records() {
    let started = Instant::now();
    let events = events();
    assert!(events.len() >= 40, "{} records", events.len());
    let src = tempfile::tempdir().unwrap();
    // ends[i]: byte offset just after record i.
    let mut ends = Vec::with_capacity(events.len());
    {
        let store = FsStore::attach(src.path()).unwrap();
        for e in &events {
            store.append(e).unwrap();
            ends.push(fs::metadata(store.journal_path()).unwrap().len() as usize);
        }
    }
    let full = fs::read(src.path().join(JOURNAL_FILE)).unwrap();
    assert_eq!(ends.last(), Some(&full.len()));
    assert_eq!(ends.len(), full.iter().filter(|&&b| b == b'\n').count());
    let sidecars = files(src.path());
    assert!(sidecars.len() >= 10, "{} sidecars", sidecars.len());

    // prefix[k]: the fold of the first k records; after[k]: the same plus the new event.
    let extra = asked(100);
    let mut prefix = vec![RunHistory::default()];
    for e in &events {
        let mut h = prefix.last().unwrap().clone();
        h.apply(e.clone());
        prefix.push(h);
    }
    let after: Vec<RunHistory> = prefix
        .iter()
        .map(|h| {
            let mut h = h.clone();
            h.apply(extra.clone());
            h
        })
        .collect();

    // Cuts are checked by a few threads (the time goes to fsyncs, which overlap), each on its
    // own copy of the run directory: sidecars copied once (loading and appending a boundary
    // event never touch them; checked at the end), the journal rewritten for every cut.
    let first_cut = ends[ends.len() - TAIL_RECORDS - 1];
    let case = Case {
        full: &full,
        ends: &ends,
        prefix: &prefix,
        after: &after,
        extra: &extra,
    };
    let works: Vec<_> = (0..THREADS).map(|_| tempfile::tempdir().unwrap()).collect();
    let results: Vec<(usize, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = works
            .iter()
            .enumerate()
            .map(|(i, work)| {
                let sidecars = &sidecars;
                scope.spawn(move || {
                    copy_tree(sidecars, work.path());
                    let cuts = (first_cut + i..=case.full.len()).step_by(THREADS);
                    let out = case.check_cuts(work.path(), cuts);
                    assert_eq!(&files(work.path()), sidecars, "the sidecars were changed");
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cases: usize = results.iter().map(|(n, _)| n).sum();
    assert_eq!(cases, full.len() - first_cut + 1);
    assert!(
        results
            .windows(2)
            .all(|w| without_times(&w[0].1) == without_times(&w[1].1)),
        "the new record differs"
    );
    // And a fresh store on a final state reads it the same way.
    let store = FsStore::attach(works[0].path()).unwrap();
    let last = (first_cut..=full.len()).step_by(THREADS).last().unwrap();
    let k = ends.partition_point(|&end| end <= last);
    assert!(store.load().unwrap() == after[k]);
    eprintln!(
        "{cases} cuts over the last {TAIL_RECORDS} of {} records in {:?}",
        events.len(),
        started.elapsed()
    );
}
