//! Which seeds a trial evaluates and how they are cut into chunks.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::trial::ChunkIndex;

/// Default seeds per chunk when none is given.
pub const DEFAULT_CHUNK_SIZE: u64 = 100;
/// Default number of chunks when neither `seeds` nor `n_seeds` is given.
pub const DEFAULT_NUM_CHUNKS: u64 = 10;

/// The user's seed options, unresolved (the `seeds`, `n_seeds`, `chunk_size`, `num_chunks` options).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedSpec {
    /// Explicit seeds, in order; highest priority.
    pub seeds: Option<Vec<u64>>,
    /// Number of contiguous seeds from the loss's `seed_start`.
    pub n_seeds: Option<u64>,
    /// Seeds per chunk (per Slurm array task); default 100.
    pub chunk_size: Option<u64>,
    /// Number of chunks; default 10 when neither `seeds` nor `n_seeds` is given.
    pub num_chunks: Option<u64>,
}

/// The seeds of a trial: a contiguous range or an explicit list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SeedList {
    /// `start, start + 1, ..., start + count - 1`.
    Range {
        /// First seed.
        start: u64,
        /// Number of seeds.
        count: u64,
    },
    /// Exactly these seeds, in this order.
    Explicit {
        /// The seeds.
        seeds: Arc<[u64]>,
    },
}

impl SeedList {
    /// Number of seeds.
    pub fn len(&self) -> u64 {
        match self {
            SeedList::Range { count, .. } => *count,
            SeedList::Explicit { seeds } => seeds.len() as u64,
        }
    }

    /// True when there are no seeds (never for a resolved layout).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The seed at position `i` (`i < len()`).
    pub fn get(&self, i: u64) -> u64 {
        match self {
            SeedList::Range { start, .. } => start + i,
            SeedList::Explicit { seeds } => seeds[i as usize],
        }
    }
}

/// A resolved seed layout: the seed list and its cut into chunks of `chunk_size`
/// (the last chunk may be shorter).
///
/// Priority: explicit `seeds` > `n_seeds` > `chunk_size × num_chunks`; defaults 100 and 10.
/// Zero counts are errors, never silently replaced.
///
/// ```
/// use slurptuna_core::{SeedLayout, SeedSpec, ChunkIndex};
/// let l = SeedLayout::resolve(&SeedSpec { n_seeds: Some(250), ..Default::default() }, 5).unwrap();
/// assert_eq!((l.n_seeds(), l.chunk_size(), l.num_chunks()), (250, 100, 3));
/// assert_eq!(l.chunk_seeds(ChunkIndex(2)).collect::<Vec<_>>().len(), 50);
/// assert_eq!(l.seeds().get(0), 5);
/// let e = SeedLayout::resolve(&SeedSpec { chunk_size: Some(0), ..Default::default() }, 0);
/// assert!(e.unwrap_err().to_string().contains("chunk_size"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedLayout {
    seeds: SeedList,
    chunk_size: u64,
}

impl SeedLayout {
    /// Resolves the user's options against the loss's `seed_start`.
    pub fn resolve(spec: &SeedSpec, seed_start: u64) -> Result<Self> {
        let chunk_size = match spec.chunk_size {
            Some(0) => return Err(CoreError::option("chunk_size", "must be > 0")),
            Some(c) => c,
            None => DEFAULT_CHUNK_SIZE,
        };
        if spec.num_chunks == Some(0) {
            return Err(CoreError::option("num_chunks", "must be > 0"));
        }
        if spec.n_seeds == Some(0) {
            return Err(CoreError::option("n_seeds", "must be > 0"));
        }
        let seeds = if let Some(seeds) = &spec.seeds {
            if seeds.is_empty() {
                return Err(CoreError::option("seeds", "must not be empty"));
            }
            if spec.n_seeds.is_some_and(|n| n != seeds.len() as u64) {
                return Err(CoreError::option(
                    "n_seeds",
                    format!(
                        "is {} but {} explicit seeds were given: drop one of the two",
                        spec.n_seeds.unwrap_or_default(),
                        seeds.len()
                    ),
                ));
            }
            let mut sorted = seeds.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(CoreError::option(
                    "seeds",
                    format!("seed {} appears more than once", w[0]),
                ));
            }
            let contiguous = seeds.windows(2).all(|w| w[1] == w[0] + 1);
            if contiguous {
                SeedList::Range {
                    start: seeds[0],
                    count: seeds.len() as u64,
                }
            } else {
                SeedList::Explicit {
                    seeds: seeds.clone().into(),
                }
            }
        } else {
            let count = match spec.n_seeds {
                Some(n) => n,
                None => chunk_size
                    .checked_mul(spec.num_chunks.unwrap_or(DEFAULT_NUM_CHUNKS))
                    .ok_or_else(|| {
                        CoreError::option("num_chunks", "chunk_size × num_chunks overflows")
                    })?,
            };
            if seed_start.checked_add(count).is_none() {
                return Err(CoreError::option(
                    "n_seeds",
                    "seed_start + n_seeds overflows u64",
                ));
            }
            SeedList::Range {
                start: seed_start,
                count,
            }
        };
        let layout = SeedLayout { seeds, chunk_size };
        if let Some(k) = spec.num_chunks {
            if k != layout.num_chunks() && (spec.seeds.is_some() || spec.n_seeds.is_some()) {
                return Err(CoreError::option(
                    "num_chunks",
                    format!(
                        "is {k} but {} seeds in chunks of {chunk_size} make {} chunks: drop num_chunks or fix chunk_size",
                        layout.n_seeds(),
                        layout.num_chunks()
                    ),
                ));
            }
        }
        Ok(layout)
    }

    /// A layout from parts (e.g. read from a task file); `chunk_size` must be > 0.
    pub fn new(seeds: SeedList, chunk_size: u64) -> Result<Self> {
        if chunk_size == 0 {
            return Err(CoreError::option("chunk_size", "must be > 0"));
        }
        if seeds.is_empty() {
            return Err(CoreError::option("seeds", "must not be empty"));
        }
        Ok(Self { seeds, chunk_size })
    }

    /// The seed list.
    pub fn seeds(&self) -> &SeedList {
        &self.seeds
    }

    /// Total number of seeds.
    pub fn n_seeds(&self) -> u64 {
        self.seeds.len()
    }

    /// Seeds per chunk.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Number of chunks (`ceil(n_seeds / chunk_size)`).
    pub fn num_chunks(&self) -> u64 {
        self.n_seeds().div_ceil(self.chunk_size)
    }

    /// All chunk indices.
    pub fn chunks(&self) -> impl Iterator<Item = ChunkIndex> {
        (0..self.num_chunks()).map(ChunkIndex)
    }

    /// Positions (into the seed list) covered by chunk `c`.
    pub fn chunk_positions(&self, c: ChunkIndex) -> Range<u64> {
        let start = (c.0 * self.chunk_size).min(self.n_seeds());
        let end = (start + self.chunk_size).min(self.n_seeds());
        start..end
    }

    /// The seeds of chunk `c`, in order.
    pub fn chunk_seeds(&self, c: ChunkIndex) -> impl Iterator<Item = u64> + '_ {
        self.chunk_positions(c).map(|i| self.seeds.get(i))
    }

    /// A stable 64-bit fingerprint of the seeds of chunk `c` (for result keys).
    pub fn chunk_fingerprint(&self, c: ChunkIndex) -> u64 {
        let mut h = crate::hash::Fnv64::new();
        for s in self.chunk_seeds(c) {
            h.write(&s.to_le_bytes());
        }
        h.finish()
    }

    /// A stable 64-bit fingerprint of the whole layout (seeds and chunking).
    pub fn fingerprint(&self) -> u64 {
        let mut h = crate::hash::Fnv64::new();
        h.write(&self.chunk_size.to_le_bytes());
        for i in 0..self.n_seeds() {
            h.write(&self.seeds.get(i).to_le_bytes());
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SeedSpec {
        SeedSpec::default()
    }

    #[test]
    fn defaults_and_priority() {
        let l = SeedLayout::resolve(&spec(), 3).unwrap();
        assert_eq!(
            (l.n_seeds(), l.num_chunks(), l.seeds().get(0)),
            (1000, 10, 3)
        );
        let l = SeedLayout::resolve(
            &SeedSpec {
                seeds: Some(vec![100, 7, 3, 55]),
                chunk_size: Some(3),
                ..spec()
            },
            0,
        )
        .unwrap();
        assert_eq!(l.num_chunks(), 2);
        assert_eq!(
            l.chunk_seeds(ChunkIndex(0)).collect::<Vec<_>>(),
            vec![100, 7, 3]
        );
        assert_eq!(l.chunk_seeds(ChunkIndex(1)).collect::<Vec<_>>(), vec![55]);
        let l = SeedLayout::resolve(
            &SeedSpec {
                chunk_size: Some(5),
                num_chunks: Some(3),
                ..spec()
            },
            0,
        )
        .unwrap();
        assert_eq!(l.n_seeds(), 15);
    }

    #[test]
    fn zero_and_conflicts_are_errors() {
        for (s, opt) in [
            (
                SeedSpec {
                    chunk_size: Some(0),
                    ..spec()
                },
                "chunk_size",
            ),
            (
                SeedSpec {
                    num_chunks: Some(0),
                    ..spec()
                },
                "num_chunks",
            ),
            (
                SeedSpec {
                    n_seeds: Some(0),
                    ..spec()
                },
                "n_seeds",
            ),
            (
                SeedSpec {
                    seeds: Some(vec![]),
                    ..spec()
                },
                "seeds",
            ),
            (
                SeedSpec {
                    seeds: Some(vec![1, 1]),
                    ..spec()
                },
                "seeds",
            ),
            (
                SeedSpec {
                    n_seeds: Some(10),
                    num_chunks: Some(3),
                    ..spec()
                },
                "num_chunks",
            ),
        ] {
            let e = SeedLayout::resolve(&s, 0).unwrap_err().to_string();
            assert!(e.contains(opt), "{e}");
        }
    }
}
