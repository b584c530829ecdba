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
use slurptuna_core::{ChunkIndex, TrialNumber};

use crate::error::{Result, StoreError};
use crate::journal::{read_sidecar, JOURNAL_FILE};

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

/// Per chunk (in chunk order), the per-seed values stored for `trial` in the run at `run_dir`
/// (kept with `keep_seed_values`), read without the run lock. A chunk recomputed on resume keeps
/// its last record; a sidecar that is missing, or whose length or hash does not match its record,
/// is left out; a torn last journal line is skipped.
pub fn read_seed_values(run_dir: &Path, trial: TrialNumber) -> Result<Vec<(ChunkIndex, Vec<f64>)>> {
    Ok(read_all_seed_values(run_dir)?
        .remove(&trial)
        .unwrap_or_default())
}

/// [`read_seed_values`] for every trial at once, in one pass over the journal.
pub fn read_all_seed_values(run_dir: &Path) -> Result<SeedValues> {
    let path = run_dir.join(JOURNAL_FILE);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(StoreError::io("open the journal", &path, e)),
    };
    let mut refs: BTreeMap<(TrialNumber, ChunkIndex), (String, ValuesLine)> = BTreeMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| StoreError::io("read the journal", &path, e))?;
        let Ok(rec) = serde_json::from_slice::<ChunkLine>(&line) else {
            continue;
        };
        if rec.event != "chunk_done" {
            continue;
        }
        if let (Some(chunk), Some(key), Some(values)) = (rec.chunk, rec.key, rec.values) {
            refs.insert((rec.trial, chunk), (key, values));
        }
    }
    let mut out = SeedValues::new();
    for ((trial, chunk), (key, r)) in refs {
        if let Ok(values) = read_sidecar(run_dir, trial, chunk, &key, r.len, &r.fnv) {
            out.entry(trial).or_default().push((chunk, values));
        }
    }
    Ok(out)
}

/// Per trial, per chunk in chunk order, the stored per-seed values.
pub type SeedValues = BTreeMap<TrialNumber, Vec<(ChunkIndex, Vec<f64>)>>;

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

/// The file (in a trial directory) holding a racing control's per-seed values, in the order of
/// the study's seed list: a 16-byte header (value count and FNV-1a hash of the values' bytes,
/// both u64 little-endian), then the values as f64 little-endian.
pub(crate) const CONTROL_VALUES_FILE: &str = "control_values.f64";

/// Encodes a control-values file.
pub(crate) fn encode_control_values(values: &[f64]) -> Vec<u8> {
    let mut body = Vec::with_capacity(values.len() * 8);
    for v in values {
        body.extend_from_slice(&v.to_le_bytes());
    }
    let mut h = slurptuna_core::Fnv64::new();
    h.write(&body);
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    out.extend_from_slice(&h.finish().to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a control-values file; `None` when it is damaged (length or hash).
pub(crate) fn decode_control_values(bytes: &[u8]) -> Option<Vec<f64>> {
    let word = |i: usize| -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes.get(i..i + 8)?);
        Some(u64::from_le_bytes(a))
    };
    let (len, fnv) = (word(0)?, word(8)?);
    let body = bytes.get(16..)?;
    if body.len() as u64 != len.checked_mul(8)? {
        return None;
    }
    let mut h = slurptuna_core::Fnv64::new();
    h.write(body);
    if h.finish() != fnv {
        return None;
    }
    Some(
        body.chunks_exact(8)
            .map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                f64::from_le_bytes(a)
            })
            .collect(),
    )
}

#[cfg(test)]
mod control_tests {
    use super::*;

    #[test]
    fn control_values_round_trip_and_damage_is_detected() {
        let v = vec![1.5, -0.25, f64::INFINITY, 3.0];
        let bytes = encode_control_values(&v);
        assert_eq!(decode_control_values(&bytes), Some(v));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert_eq!(decode_control_values(&bad), None);
        assert_eq!(decode_control_values(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_control_values(&[]), None);
    }
}
