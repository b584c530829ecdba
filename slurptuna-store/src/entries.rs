//! The entries parent directory's `summary.json` (`optimize_entries`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use slurptuna_core::Params;

use crate::atomic::{read_json, write_json_atomic};
use crate::error::Result;
use crate::fs_store::SUMMARY_FILE;

/// `summary.json` of an `optimize_entries` parent directory
/// (`run_root/<loss>_entries_vNNNN/` or `run_root/<run_name_prefix>/`).
///
/// The first three fields are the original's; maps are keyed by the original entry id. The
/// facade rewrites it (with [`EntriesSummary::write`]) each time an entry finishes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EntriesSummary {
    /// Every entry id, in input order.
    pub entries: Vec<String>,
    /// Best params of each finished entry.
    pub best_params_by_entry: BTreeMap<String, Params>,
    /// Best value of each finished entry.
    pub best_values_by_entry: BTreeMap<String, f64>,
    /// Directory label (sub-directory name) of each entry.
    #[serde(default)]
    pub labels_by_entry: BTreeMap<String, String>,
    /// Why each failed entry failed.
    #[serde(default)]
    pub errors_by_entry: BTreeMap<String, String>,
}

impl EntriesSummary {
    /// Writes `parent_dir/summary.json` atomically.
    pub fn write(&self, parent_dir: &Path) -> Result<()> {
        write_json_atomic(&parent_dir.join(SUMMARY_FILE), self)
    }

    /// Reads `parent_dir/summary.json`, if present.
    pub fn read(parent_dir: &Path) -> Result<Option<EntriesSummary>> {
        read_json(&parent_dir.join(SUMMARY_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_the_originals_documents() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EntriesSummary {
            entries: vec!["p 1".into(), "p2".into()],
            ..Default::default()
        };
        s.best_params_by_entry
            .insert("p 1".into(), [("alpha", 0.3)].into_iter().collect());
        s.best_values_by_entry.insert("p 1".into(), 0.01);
        s.labels_by_entry.insert("p 1".into(), "p_1".into());
        s.write(dir.path()).unwrap();
        assert_eq!(EntriesSummary::read(dir.path()).unwrap(), Some(s));

        std::fs::write(
            dir.path().join(SUMMARY_FILE),
            r#"{"entries": ["a"], "best_params_by_entry": {"a": {"x": 1}}, "best_values_by_entry": {"a": 0.5}}"#,
        )
        .unwrap();
        let old = EntriesSummary::read(dir.path()).unwrap().unwrap();
        assert_eq!(old.best_values_by_entry["a"], 0.5);
        assert!(old.labels_by_entry.is_empty());
    }
}
