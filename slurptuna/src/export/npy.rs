//! Per-seed values as plain `.npy` files (values, seeds, trial numbers).

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::WriteNpyExt;
use slurptuna_core::{SeedLayout, SeedList};

use super::{invalid, write_atomic, Study};
use crate::error::Result;

/// The three files of an npy export to `out` (see [`super::Format::Npy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyFiles {
    /// float64 `[n_trials, n_seeds]`: per-seed values, NaN where none (`out` itself).
    pub values: PathBuf,
    /// uint64 `[n_seeds]`: the seed of each column (`<stem>.seeds.npy`).
    pub seeds: PathBuf,
    /// uint64 `[n_trials]`: the trial number of each row (`<stem>.trials.npy`).
    pub trials: PathBuf,
}

/// The files an npy export to `out` writes; for an entries run, those of the entry whose run
/// directory is named `entry_dir`.
///
/// ```
/// use std::path::Path;
/// let f = slurptuna::export::npy_files(Path::new("out/fit.npy"), None);
/// assert_eq!(f.seeds, Path::new("out/fit.seeds.npy"));
/// let e = slurptuna::export::npy_files(Path::new("out/fit.npy"), Some("p01"));
/// assert_eq!((e.values, e.trials), ("out/fit.p01.npy".into(), "out/fit.p01.trials.npy".into()));
/// ```
pub fn npy_files(out: &Path, entry_dir: Option<&str>) -> NpyFiles {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.strip_suffix(".npy").unwrap_or(&name).to_string();
    let values = match entry_dir {
        None => out.to_path_buf(),
        Some(e) => {
            stem = format!("{stem}.{e}");
            out.with_file_name(format!("{stem}.npy"))
        }
    };
    NpyFiles {
        values,
        seeds: out.with_file_name(format!("{stem}.seeds.npy")),
        trials: out.with_file_name(format!("{stem}.trials.npy")),
    }
}

pub(super) fn write(studies: &[Study], out: &Path) -> Result<()> {
    for study in studies {
        let files = npy_files(out, study.entry.as_ref().map(|(_, dir)| dir.as_str()));
        write_study(study, &files)?;
    }
    Ok(())
}

fn write_study(study: &Study, files: &NpyFiles) -> Result<()> {
    let meta = &study.data.meta;
    let out = &files.values;
    // The seed list: contiguous seeds are recorded in meta.json; an explicit non-contiguous list
    // only as its fingerprint.
    let layout = SeedLayout::new(
        SeedList::Range {
            start: meta.seed_start,
            count: meta.n_seeds,
        },
        meta.chunk_size,
    )?;
    if format!("{:016x}", layout.fingerprint()) != meta.seeds_fingerprint {
        return Err(invalid(
            out,
            format!(
                "the run used an explicit, non-contiguous seed list, which {} does not record: the seed of each column is unknown",
                study.data.run_dir.join("meta.json").display()
            ),
        ));
    }
    let trials: Vec<_> = study.data.trials().map(|t| t.number).collect();
    let n_seeds = usize::try_from(layout.n_seeds())
        .map_err(|_| invalid(out, "too many seeds".to_string()))?;
    let mut matrix = Array2::<f64>::from_elem((trials.len(), n_seeds), f64::NAN);
    let mut any = false;
    let mut stored = slurptuna_store::read_all_seed_values(&study.data.run_dir)?;
    for (row, number) in trials.iter().enumerate() {
        for (chunk, v) in stored.remove(number).unwrap_or_default() {
            let positions = layout.chunk_positions(chunk);
            if positions.end - positions.start != v.len() as u64 {
                continue;
            }
            any = true;
            for (pos, x) in positions.zip(v) {
                matrix[[row, pos as usize]] = x;
            }
        }
    }
    if !any && !trials.is_empty() {
        return Err(invalid(
            out,
            format!(
                "{} has no per-seed values: run the study with keep_seed_values = true",
                study.data.run_dir.display()
            ),
        ));
    }
    let seeds: Array1<u64> = (0..layout.n_seeds())
        .map(|i| layout.seeds().get(i))
        .collect();
    let numbers: Array1<u64> = trials.iter().map(|t| t.0).collect();
    let npy = |e: ndarray_npy::WriteNpyError| std::io::Error::other(e.to_string());
    write_atomic(&files.values, |w| matrix.write_npy(w).map_err(npy))?;
    write_atomic(&files.seeds, |w| seeds.write_npy(w).map_err(npy))?;
    write_atomic(&files.trials, |w| numbers.write_npy(w).map_err(npy))?;
    Ok(())
}
