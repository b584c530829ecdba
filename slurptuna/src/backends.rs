//! The schedulers compiled into this build (one registration line each) and [`Scheduler`], a
//! scheduler as a value.

use std::fmt;
use std::sync::Arc;

use slurptuna_core::{Backend, BackendEnv, BoxError, CoreError, Executor};

/// Registers the scheduler crates of this build. One line per scheduler: its cargo feature (the
/// crate is an optional dependency of the same name in `Cargo.toml`) and its options type, which
/// implements `Backend` and `Default`. The crate is re-exported as `slurptuna::<name>`; the first
/// one compiled in is DISTRIBUTED mode's default.
macro_rules! schedulers {
    ($( $feature:literal => $krate:ident :: $options:ident, )*) => {
        /// The scheduler crates compiled into this build, re-exported.
        pub(crate) mod compiled {
            $(
                #[cfg(feature = $feature)]
                #[doc(inline)]
                pub use ::$krate;
            )*
        }

        /// A default-configured instance of every scheduler compiled in, in registration order.
        fn registered() -> Vec<Scheduler> {
            vec![$(
                #[cfg(feature = $feature)]
                Scheduler::new(::$krate::$options::default()),
            )*]
        }
    };
}

schedulers! {
    "slurm" => slurm::SlurmOptions,
}

/// DISTRIBUTED mode's scheduler with its options: a value (`RunOptions::scheduler`).
///
/// The scheduler-independent knobs of DISTRIBUTED mode (`cpus_per_task`, `mem_per_cpu`,
/// `slurm_poll_seconds`, ...) are fields of `RunOptions` and reach the scheduler as
/// `DistributedOptions`; a `Scheduler` carries only the scheduler's own options.
///
/// - `Scheduler::default()`: the first scheduler compiled into this build with its defaults
///   (Slurm when the `slurm` feature is on), or none.
/// - `SlurmOptions { slurm_partition: Some("gpu".into()), ..Default::default() }.into()`: a
///   configured one; any [`Backend`] converts, including a scheduler of your own.
/// - [`Scheduler::executor`]: your own [`Executor`], used as it is.
///
/// ```
/// use slurptuna::Scheduler;
/// # #[cfg(feature = "slurm")] {
/// use slurptuna::slurm::SlurmOptions;
/// let s: Scheduler = SlurmOptions { slurm_partition: Some("gpu".into()), ..Default::default() }.into();
/// assert_eq!(s.name(), Some("slurm"));
/// assert_eq!(Scheduler::default().name(), Some("slurm"));
/// # }
/// ```
#[derive(Clone)]
pub struct Scheduler(Option<Arc<dyn Backend>>);

impl Scheduler {
    /// A scheduler from its options (anything implementing [`Backend`]).
    pub fn new(backend: impl Backend + 'static) -> Self {
        Scheduler(Some(Arc::new(backend)))
    }

    /// Your own executor. Its workers, if it starts any, must be recognised by the program
    /// before `optimize_run` (or use [`Scheduler::executor_with_worker`]).
    pub fn executor(executor: Arc<dyn Executor>) -> Self {
        Self::new(ExecutorBackend {
            executor,
            worker: None,
        })
    }

    /// Your own executor and its worker entry: `worker` is called first thing in every
    /// `optimize_*` call; in a process started as one of the executor's workers it does the
    /// work and returns `Some` (the call then exits the process), elsewhere `None`.
    pub fn executor_with_worker(
        executor: Arc<dyn Executor>,
        worker: impl Fn() -> Option<Result<(), BoxError>> + Send + Sync + 'static,
    ) -> Self {
        Self::new(ExecutorBackend {
            executor,
            worker: Some(Arc::new(worker)),
        })
    }

    /// A scheduler of this build by name (`"slurm"`), with its defaults.
    pub fn named(name: &str) -> Option<Scheduler> {
        registered().into_iter().find(|s| s.name() == Some(name))
    }

    /// The names of the schedulers compiled into this build.
    pub fn compiled() -> Vec<&'static str> {
        registered().iter().filter_map(Scheduler::name).collect()
    }

    /// The scheduler's name, `None` when this build has none.
    pub fn name(&self) -> Option<&'static str> {
        self.0.as_ref().map(|b| b.name())
    }

    /// The scheduler as a backend, `None` when this build has none.
    pub fn backend(&self) -> Option<&dyn Backend> {
        self.0.as_deref()
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        registered().into_iter().next().unwrap_or(Scheduler(None))
    }
}

impl<B: Backend + 'static> From<B> for Scheduler {
    fn from(backend: B) -> Self {
        Scheduler::new(backend)
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(b) => b.fmt(f),
            None => f.write_str("Scheduler(none compiled in)"),
        }
    }
}

/// Runs the worker side of every scheduler this process may be a worker of (the configured one,
/// then those compiled in); `Some` when it was one.
pub(crate) fn run_worker(configured: &Scheduler) -> Option<Result<(), BoxError>> {
    let mut all = vec![configured.clone()];
    all.extend(registered());
    all.iter()
        .find_map(|s| s.backend().and_then(Backend::run_worker))
}

type WorkerFn = dyn Fn() -> Option<Result<(), BoxError>> + Send + Sync;

/// A user's executor as a backend.
struct ExecutorBackend {
    executor: Arc<dyn Executor>,
    worker: Option<Arc<WorkerFn>>,
}

impl fmt::Debug for ExecutorBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scheduler::executor({})", self.executor.name())
    }
}

impl Backend for ExecutorBackend {
    fn name(&self) -> &'static str {
        self.executor.name()
    }
    fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }
    fn executor(&self, _env: &BackendEnv<'_>) -> Result<Arc<dyn Executor>, CoreError> {
        Ok(self.executor.clone())
    }
    fn run_worker(&self) -> Option<Result<(), BoxError>> {
        self.worker.as_ref().and_then(|w| w())
    }
}
