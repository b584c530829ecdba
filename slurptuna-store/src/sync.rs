//! [`SyncPolicy`]: when the run store waits for its writes to reach the disk.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, StoreError};

/// The interval of [`SyncPolicy::default`] (`Grouped`): 100 ms.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// When an [`FsStore`](crate::FsStore) waits for the journal and `summary.json` to reach the
/// disk (fsync). Either way every record is written to the journal file before `append`
/// returns, so a killed process loses nothing; the policy only decides what an operating-system
/// crash or power loss can take (see "Durability" in the crate documentation).
///
/// ```
/// use std::time::Duration;
/// use slurptuna_store::{SyncPolicy, DEFAULT_SYNC_INTERVAL};
///
/// assert_eq!(SyncPolicy::default(), SyncPolicy::Grouped { interval: DEFAULT_SYNC_INTERVAL });
/// assert_eq!("always".parse::<SyncPolicy>().unwrap(), SyncPolicy::Always);
/// let p = SyncPolicy::from_name("grouped", Duration::from_millis(250)).unwrap();
/// assert_eq!(p.interval(), Some(Duration::from_millis(250)));
/// assert_eq!(p.to_string(), "grouped");
/// assert!("sometimes".parse::<SyncPolicy>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncPolicy {
    /// fdatasync the journal after every trial-boundary event (`asked`, `completed`, `failed`)
    /// before `append` returns, and write `summary.json` fully synced (file, rename, directory).
    /// A boundary event survives an OS crash as soon as `append` returned. One or more fsyncs
    /// per event: 1–30 ms each on network file systems.
    Always,
    /// Group commit: at most one journal fsync per `interval`. A boundary event is synced inline
    /// only when the last sync is at least `interval` old; otherwise a background thread of the
    /// store syncs it at `last sync + interval`. `summary.json` is replaced atomically (rename)
    /// without fsync and made durable by the next `Store::sync`. An OS crash loses at most about
    /// `interval` of boundary events. A zero interval syncs every boundary event inline.
    Grouped {
        /// The longest time a boundary event stays unsynced (besides the fsync itself).
        interval: Duration,
    },
}

impl Default for SyncPolicy {
    /// `Grouped { interval: DEFAULT_SYNC_INTERVAL }`.
    fn default() -> Self {
        SyncPolicy::Grouped {
            interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

impl SyncPolicy {
    /// The policy named `name` (`"always"` or `"grouped"`, as in options); `interval` is used
    /// by `"grouped"` and ignored by `"always"`.
    pub fn from_name(name: &str, interval: Duration) -> Result<SyncPolicy> {
        match name {
            "always" => Ok(SyncPolicy::Always),
            "grouped" => Ok(SyncPolicy::Grouped { interval }),
            _ => Err(StoreError::UnknownSyncPolicy {
                name: name.to_string(),
            }),
        }
    }

    /// The policy's name: `"always"` or `"grouped"`.
    pub fn name(&self) -> &'static str {
        match self {
            SyncPolicy::Always => "always",
            SyncPolicy::Grouped { .. } => "grouped",
        }
    }

    /// The group-commit interval (`None` for `Always`).
    pub fn interval(&self) -> Option<Duration> {
        match self {
            SyncPolicy::Always => None,
            SyncPolicy::Grouped { interval } => Some(*interval),
        }
    }

    /// True for `Grouped`.
    pub fn is_grouped(&self) -> bool {
        matches!(self, SyncPolicy::Grouped { .. })
    }
}

impl fmt::Display for SyncPolicy {
    /// The name (`always`, `grouped`); the interval is a separate option.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SyncPolicy {
    type Err = StoreError;

    /// `"always"`, or `"grouped"` with [`DEFAULT_SYNC_INTERVAL`].
    fn from_str(s: &str) -> Result<SyncPolicy> {
        SyncPolicy::from_name(s, DEFAULT_SYNC_INTERVAL)
    }
}

/// A handle on the fsync counter of an [`FsStore`](crate::FsStore) (see
/// [`FsStore::sync_count`](crate::FsStore::sync_count)); it outlives the store, so it also sees
/// the syncs of the store's drop. For tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct SyncCounter(Arc<AtomicU64>);

impl SyncCounter {
    /// fsync/fdatasync calls issued so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_allowed() {
        for p in [SyncPolicy::Always, SyncPolicy::default()] {
            assert_eq!(p.to_string().parse::<SyncPolicy>().unwrap(), p);
        }
        let e = "Always ".parse::<SyncPolicy>().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("'Always '") && msg.contains("'grouped'"),
            "{msg}"
        );
        assert_eq!(SyncPolicy::Always.interval(), None);
        assert!(!SyncPolicy::Always.is_grouped() && SyncPolicy::default().is_grouped());
    }
}
