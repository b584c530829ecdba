use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use slurptuna_core::{RunHistory, Store, TrialEvent, TrialNumber};
use slurptuna_store::{FsStore, StoreError};

use crate::common::{trial_events, without_times};

/// Writes `events` through a fresh store and returns the journal's bytes and the byte offset
/// where the last record starts.
fn write_all(dir: &Path, events: &[TrialEvent]) -> (Vec<u8>, usize) {
    let store = FsStore::attach(dir).unwrap();
    for e in &events[..events.len() - 1] {
        store.append(e).unwrap();
    }
    let before = fs::metadata(store.journal_path()).unwrap().len() as usize;
    store.append(&events[events.len() - 1]).unwrap();
    (fs::read(store.journal_path()).unwrap(), before)
}

fn check_every_cut(events: Vec<TrialEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let (full, start) = write_all(dir.path(), &events);
    let journal = dir.path().join(slurptuna_store::JOURNAL_FILE);
    let previous = RunHistory::from_events(events[..events.len() - 1].to_vec());
    let all = RunHistory::from_events(events.clone());
    assert!(full.len() - start > 20);
    for cut in start..full.len() {
        fs::write(&journal, &full[..cut]).unwrap();
        let store = FsStore::attach(dir.path()).unwrap();
        let (h, report) = store.load_with_report().unwrap();
        assert_eq!(h, previous, "cut at byte {cut}");
        assert_eq!(
            report.dropped_tail_bytes as usize,
            cut - start,
            "cut at byte {cut}"
        );
        store.append(&events[events.len() - 1]).unwrap();
        assert_eq!(store.load().unwrap(), all, "append after cut at byte {cut}");
        assert_eq!(
            without_times(&fs::read(&journal).unwrap()),
            without_times(&full),
            "cut at byte {cut}"
        );
    }
}

#[test]
fn torn_boundary_record_at_every_byte_offset() {
    let mut ev = trial_events(0, 3, true);
    ev.extend(trial_events(1, 2, false));
    check_every_cut(ev);
}

#[test]
fn torn_chunk_record_at_every_byte_offset() {
    let mut ev = trial_events(0, 2, false);
    let mut t1 = trial_events(1, 2, true);
    t1.pop(); // trial 1 stays in flight: its last chunk (with values) is the torn record
    ev.extend(t1);
    check_every_cut(ev);
}

#[test]
fn append_without_load_first_also_truncates_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let ev = trial_events(0, 1, false);
    let (full, start) = write_all(dir.path(), &ev);
    let journal = dir.path().join(slurptuna_store::JOURNAL_FILE);
    fs::write(&journal, &full[..start + 7]).unwrap();
    let store = FsStore::attach(dir.path()).unwrap();
    store.append(&ev[ev.len() - 1]).unwrap();
    assert_eq!(
        without_times(&fs::read(&journal).unwrap()),
        without_times(&full)
    );
}

#[test]
fn zero_filled_tail_after_power_loss_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let ev = trial_events(0, 3, false);
    let (_, _) = write_all(dir.path(), &ev);
    let journal = dir.path().join(slurptuna_store::JOURNAL_FILE);
    let len = fs::metadata(&journal).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    let store = FsStore::attach(dir.path()).unwrap();
    let (h, report) = store.load_with_report().unwrap();
    assert_eq!(h, RunHistory::from_events(ev));
    assert_eq!(report.dropped_tail_bytes, 4096);
    assert_eq!(fs::metadata(&journal).unwrap().len(), len);
}

#[test]
fn damage_followed_only_by_unsynced_chunk_records_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = trial_events(0, 3, false);
    ev.pop(); // trial 0 in flight with three chunks
    let (full, _) = write_all(dir.path(), &ev);
    // Garble the first chunk record (line 2): lines 3 and 4 are chunk records after it.
    let text = String::from_utf8(full).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"event\":\"chunk_do";
    let journal = dir.path().join(slurptuna_store::JOURNAL_FILE);
    fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let store = FsStore::attach(dir.path()).unwrap();
    let (h, report) = store.load_with_report().unwrap();
    assert_eq!(report.dropped_tail_line, Some(2));
    assert_eq!(h, RunHistory::from_events(ev[..1].to_vec()));
    assert!(h.chunks(TrialNumber(0)).is_none());
}

#[test]
fn damage_followed_by_a_synced_record_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = trial_events(0, 2, false);
    ev.extend(trial_events(1, 1, false));
    let (full, _) = write_all(dir.path(), &ev);
    let text = String::from_utf8(full).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = "this is not json".into(); // the `completed` of trial 0; `asked` of trial 1 follows
    let journal = dir.path().join(slurptuna_store::JOURNAL_FILE);
    let damaged = lines.join("\n") + "\n";
    fs::write(&journal, &damaged).unwrap();
    let store = FsStore::attach(dir.path()).unwrap();
    match store.load_with_report().unwrap_err() {
        StoreError::CorruptJournal { line, .. } => assert_eq!(line, 4),
        other => panic!("unexpected {other}"),
    }
    let e = store.append(&ev[0]).unwrap_err();
    assert!(e.to_string().contains("store 'fs'"), "{e}");
    assert_eq!(
        fs::read_to_string(&journal).unwrap(),
        damaged,
        "nothing may be truncated"
    );
}

fn sidecar(dir: &Path) -> std::path::PathBuf {
    let d = dir.join("trials/trial_00000/seed_values");
    let mut files: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.remove(0)
}

#[test]
fn chunks_whose_values_do_not_verify_are_never_returned() {
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper); 3] = [
        ("flipped byte", |p| {
            let mut b = fs::read(p).unwrap();
            b[3] ^= 0x40;
            fs::write(p, b).unwrap();
        }),
        ("truncated", |p| {
            let b = fs::read(p).unwrap();
            fs::write(p, &b[..b.len() - 8]).unwrap();
        }),
        ("missing", |p| fs::remove_file(p).unwrap()),
    ];
    for (what, tamper) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = trial_events(0, 2, true);
        ev.pop();
        write_all(dir.path(), &ev);
        tamper(&sidecar(dir.path()));
        let store = FsStore::attach(dir.path()).unwrap();
        let (h, report) = store.load_with_report().unwrap();
        assert_eq!(report.invalid_chunks, 1, "{what}");
        let chunks = h.chunks(TrialNumber(0)).unwrap();
        assert_eq!(chunks.len(), 1, "{what}");
        assert!(chunks.values().all(|c| c.result.values.is_some()), "{what}");
    }
}

#[test]
fn finished_trials_never_read_their_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let ev = trial_events(0, 2, true);
    write_all(dir.path(), &ev);
    fs::remove_dir_all(dir.path().join("trials")).unwrap();
    let store = FsStore::attach(dir.path()).unwrap();
    let (h, report) = store.load_with_report().unwrap();
    assert_eq!(report.invalid_chunks, 0);
    assert_eq!(h, RunHistory::from_events(ev));
}

#[test]
fn records_of_unknown_or_finished_trials_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut ev = trial_events(0, 1, false);
    // A chunk of a trial never asked, and a late chunk of a finished trial.
    ev.insert(0, trial_events(9, 1, false)[1].clone());
    ev.push(trial_events(0, 1, false)[1].clone());
    ev.push(trial_events(1, 0, false)[0].clone());
    let (_, _) = write_all(dir.path(), &ev);
    let store = FsStore::attach(dir.path()).unwrap();
    let h = store.load().unwrap();
    assert_eq!(h, RunHistory::from_events(ev));
    assert!(h.trial(TrialNumber(9)).is_none());
    assert!(h.chunks(TrialNumber(0)).is_none());
    assert_eq!(h.unfinished().count(), 1);
}
