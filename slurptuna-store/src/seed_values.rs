//! Reading the per-seed values of one trial back from its sidecars, for reports and exports.
//!
//! Reading never takes the run's lock and never writes: it scans `journal.jsonl` for the
//! trial's `chunk_done` records that name a sidecar, skips lines it cannot parse (a torn last
//! line of a running controller), and returns only sidecars whose length and FNV-1a hash match
//! their record, so a missing or damaged sidecar is left out rather than read wrongly.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use slurptuna_core::{fingerprint_hex, ChunkIndex, TrialNumber};

use crate::error::{Result, StoreError};
use crate::journal::{trial_dir_path, JOURNAL_FILE};

/// The fields of a `chunk_done` record this reader needs; other records fail to match.
#[derive(Deserialize)]
struct ChunkLine {
    event: String,
    trial: TrialNumber,
    chunk: Option<ChunkIndex>,
    key: Option<String>,
    values: Option<ValuesLine>,
}

#[derive(Deserialize)]
struct ValuesLine {
    len: u64,
    fnv: String,
}

/// The per-seed values of `trial` in the run at `run_dir`, per chunk in chunk order
/// (`(chunk, values)`; the chunk's seeds are `seed_start + chunk * chunk_size ..`).
///
/// Only chunks whose values were kept (`keep_seed_values`) and whose sidecar is intact are
/// returned; a run without a journal, or a trial without kept values, gives an empty list.
/// When a chunk was recorded more than once (a resumed trial), the last record wins.
pub fn read_seed_values(run_dir: &Path, trial: TrialNumber) -> Result<Vec<(ChunkIndex, Vec<f64>)>> {
    let path = run_dir.join(JOURNAL_FILE);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("open the journal", &path, e)),
    };
    let mut refs: BTreeMap<ChunkIndex, (String, ValuesLine)> = BTreeMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| StoreError::io("read the journal", &path, e))?;
        let Ok(rec) = serde_json::from_slice::<ChunkLine>(&line) else {
            continue;
        };
        if rec.event != "chunk_done" || rec.trial != trial {
            continue;
        }
        if let (Some(chunk), Some(key), Some(values)) = (rec.chunk, rec.key, rec.values) {
            refs.insert(chunk, (key, values));
        }
    }
    let dir = trial_dir_path(run_dir, trial).join("seed_values");
    let mut out = Vec::with_capacity(refs.len());
    for (chunk, (key, r)) in refs {
        let file = dir.join(format!(
            "chunk_{:05}_{}.f64",
            chunk.0,
            fingerprint_hex(key.as_bytes())
        ));
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("read a seed-value sidecar", &file, e)),
        };
        if bytes.len() as u64 != r.len.saturating_mul(8) || fingerprint_hex(&bytes) != r.fnv {
            continue;
        }
        let values = bytes
            .chunks_exact(8)
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                f64::from_le_bytes(a)
            })
            .collect();
        out.push((chunk, values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_journal_is_empty() {
        let dir = std::env::temp_dir().join(format!("slurptuna-seedvals-{}", std::process::id()));
        assert!(read_seed_values(&dir, TrialNumber(0))
            .expect("no journal is not an error")
            .is_empty());
    }
}
