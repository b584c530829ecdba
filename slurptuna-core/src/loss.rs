//! Loss definitions: the user's per-seed function, its metadata, and what it may return.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::error::{BoxError, CoreError, Result};
use crate::evaluate::SeedFailure;
use crate::params::Params;
use crate::space::{ParamSpace, SearchParam};
use crate::trial::TrialNumber;

/// What a loss returns for one seed.
pub type LossResult = std::result::Result<LossValue, BoxError>;

/// The signature of a per-seed loss.
pub type LossFn = dyn Fn(&Params, u64, &Context) -> LossResult + Send + Sync + 'static;

/// The value of a loss for one seed: a number, named components (averaged), or a list (averaged).
///
/// ```
/// use slurptuna_core::LossValue;
/// use std::collections::BTreeMap;
/// assert_eq!(LossValue::from(2.0).total(), 2.0);
/// assert_eq!(LossValue::from(vec![1.0, 3.0]).total(), 2.0);
/// let m: BTreeMap<String, f64> = [("p1".into(), 2.0), ("p2".into(), 4.0)].into();
/// assert_eq!(LossValue::from(m).total(), 3.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum LossValue {
    /// A single number.
    Scalar(f64),
    /// Named components (e.g. one per participant); the trial uses their unweighted mean.
    Components(BTreeMap<String, f64>),
    /// A list of values; the trial uses their mean.
    List(Vec<f64>),
}

impl LossValue {
    /// The number this seed contributes: the scalar, or the mean of the components/list
    /// (NaN when empty, which fails the trial with a clear reason).
    pub fn total(&self) -> f64 {
        fn mean<'a>(it: impl ExactSizeIterator<Item = &'a f64>) -> f64 {
            let n = it.len();
            if n == 0 {
                return f64::NAN;
            }
            it.sum::<f64>() / n as f64
        }
        match self {
            LossValue::Scalar(x) => *x,
            LossValue::Components(m) => mean(m.values()),
            LossValue::List(v) => mean(v.iter()),
        }
    }
}

impl From<f64> for LossValue {
    fn from(v: f64) -> Self {
        LossValue::Scalar(v)
    }
}
impl From<f32> for LossValue {
    fn from(v: f32) -> Self {
        LossValue::Scalar(v as f64)
    }
}
impl From<Vec<f64>> for LossValue {
    fn from(v: Vec<f64>) -> Self {
        LossValue::List(v)
    }
}
impl<K: Into<String>> From<BTreeMap<K, f64>> for LossValue {
    fn from(m: BTreeMap<K, f64>) -> Self {
        LossValue::Components(m.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}
impl<K: Into<String>, S> From<HashMap<K, f64, S>> for LossValue {
    fn from(m: HashMap<K, f64, S>) -> Self {
        LossValue::Components(m.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// What a loss knows about the call besides params and seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    entry_id: Option<Arc<str>>,
    trial_number: TrialNumber,
    seed: u64,
}

impl Context {
    /// A context for one seed evaluation.
    pub fn new(entry_id: Option<Arc<str>>, trial_number: TrialNumber, seed: u64) -> Self {
        Self {
            entry_id,
            trial_number,
            seed,
        }
    }

    /// The entry (participant, condition) being fitted by `optimize_entries`; `None` in `optimize_run`.
    pub fn entry_id(&self) -> Option<&str> {
        self.entry_id.as_deref()
    }

    /// The number of the trial this evaluation belongs to (0-based, unique within a run).
    pub fn trial_number(&self) -> TrialNumber {
        self.trial_number
    }

    /// The seed being evaluated.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// A named loss: metadata, parameter space, first seed and the per-seed function.
///
/// Cheap to clone (the function is shared). Build one with [`loss`].
#[derive(Clone)]
pub struct LossDefinition {
    name: String,
    description: String,
    space: ParamSpace,
    seed_start: u64,
    func: LossKind,
}

/// How a loss is evaluated: one seed per call, or a batch of seeds per call.
#[derive(Clone)]
enum LossKind {
    PerSeed(Arc<LossFn>),
    Batch(Arc<dyn BatchLoss>),
}

/// One batch of seeds for a [`BatchLoss`]: the trial's parameters and the seeds to evaluate.
#[derive(Clone, Copy, Debug)]
pub struct BatchRequest<'a> {
    /// The trial's parameters.
    pub params: &'a Params,
    /// The seeds to evaluate, in the order the values are returned.
    pub seeds: &'a [u64],
    /// The entry id, for `optimize_entries`.
    pub entry_id: Option<&'a str>,
    /// The trial number.
    pub trial: TrialNumber,
    /// The trial's directory, where the loss may keep a log (created on demand), if the run has
    /// one.
    pub trial_dir: Option<&'a std::path::Path>,
}

/// A loss evaluated a batch of seeds per call: an external command speaking a line protocol, or
/// a model that vectorises over seeds.
///
/// To the rest of the system it is an ordinary [`LossDefinition`] (built with
/// [`LossBuilder::build_batch`]): the same executors, store, resume and workers. The evaluation
/// routine ([`crate::evaluate_seeds`]) splits a chunk's seeds into at most `parallelism` batches
/// of at most [`BatchLoss::max_batch`] seeds and calls [`BatchLoss::evaluate_batch`] from that
/// many threads at once; an implementation that holds resources (processes) keeps one per
/// concurrent caller.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use slurptuna_core::{loss, BatchLoss, BatchRequest, LossValue, Params, SeedFailure};
/// struct Vectorised;
/// impl BatchLoss for Vectorised {
///     fn evaluate_batch(&self, r: &BatchRequest<'_>, _cancel: &AtomicBool)
///         -> Result<Vec<LossValue>, SeedFailure> {
///         let x = r.params.f64("x").map_err(|e| SeedFailure::Batch { message: e.to_string() })?;
///         Ok(r.seeds.iter().map(|&s| LossValue::Scalar(x + s as f64)).collect())
///     }
/// }
/// let l = loss("vectorised").description("x plus the seed").param("x", (0.0, 1.0))
///     .build_batch(Vectorised).unwrap();
/// assert!(l.is_batch());
/// ```
pub trait BatchLoss: Send + Sync + 'static {
    /// Evaluates every seed of `request`: one value per seed, in `request.seeds` order, or why
    /// the batch failed ([`SeedFailure::Error`] for a seed the loss reported an error for,
    /// [`SeedFailure::Batch`] when the batch as a whole failed). NaN values are checked by the
    /// caller. `cancel` turns true when the trial is abandoned: return
    /// [`SeedFailure::Cancelled`] as soon as practical.
    fn evaluate_batch(
        &self,
        request: &BatchRequest<'_>,
        cancel: &AtomicBool,
    ) -> std::result::Result<Vec<LossValue>, SeedFailure>;

    /// The most seeds one call should get (default: no limit).
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    /// Checks, before any trial and before any run directory exists, that the loss can be
    /// evaluated at all (for a command: that its program exists and is executable).
    fn preflight(&self) -> Result<()> {
        Ok(())
    }

    /// Stops what the loss keeps between calls (idle processes). Executors call it when they
    /// shut down and workers before they exit; a later call starts afresh.
    fn release(&self) {}
}

impl fmt::Debug for LossDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossDefinition")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("space", &self.space)
            .field("seed_start", &self.seed_start)
            .finish_non_exhaustive()
    }
}

impl LossDefinition {
    /// The loss name (safe as a directory name).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The human-readable description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The validated parameter space.
    pub fn space(&self) -> &ParamSpace {
        &self.space
    }
    /// The first seed of the default contiguous seed range.
    pub fn seed_start(&self) -> u64 {
        self.seed_start
    }
    /// Calls the loss for one seed (no panic catching; see [`crate::evaluate_seeds`]).
    pub fn call(&self, params: &Params, seed: u64, ctx: &Context) -> LossResult {
        match &self.func {
            LossKind::PerSeed(f) => f(params, seed, ctx),
            LossKind::Batch(b) => {
                let request = BatchRequest {
                    params,
                    seeds: &[seed],
                    entry_id: ctx.entry_id(),
                    trial: ctx.trial_number(),
                    trial_dir: None,
                };
                let mut values = b.evaluate_batch(&request, &AtomicBool::new(false))?;
                match (values.pop(), values.is_empty()) {
                    (Some(v), true) => Ok(v),
                    _ => Err(format!("batch loss '{}' answered a batch of one seed with the wrong number of values", self.name).into()),
                }
            }
        }
    }

    /// The batch evaluator, for a loss built with [`LossBuilder::build_batch`].
    pub fn batch(&self) -> Option<&dyn BatchLoss> {
        match &self.func {
            LossKind::PerSeed(_) => None,
            LossKind::Batch(b) => Some(b.as_ref()),
        }
    }

    /// True for a loss built with [`LossBuilder::build_batch`].
    pub fn is_batch(&self) -> bool {
        self.batch().is_some()
    }

    /// Runs the loss's [`BatchLoss::preflight`] check (a per-seed loss has none).
    pub fn preflight(&self) -> Result<()> {
        self.batch().map_or(Ok(()), BatchLoss::preflight)
    }
}

/// Starts a [`LossBuilder`] for a loss called `name`.
///
/// ```
/// use slurptuna_core::{loss, search_param};
/// let l = loss("toy")
///     .description("a bowl")
///     .param("x", (0.0, 1.0))
///     .param("k", search_param().allowed(["a", "b"]))
///     .build(|p, _seed, _ctx| Ok(((p.f64("x")? - 0.5).powi(2)).into()))
///     .unwrap();
/// assert_eq!(l.name(), "toy");
/// ```
pub fn loss(name: impl Into<String>) -> LossBuilder {
    LossBuilder {
        name: name.into(),
        description: String::new(),
        params: Vec::new(),
        seed_start: 0,
    }
}

/// Builder returned by [`loss`]; [`LossBuilder::build`] validates everything.
#[derive(Clone, Debug)]
#[must_use]
pub struct LossBuilder {
    name: String,
    description: String,
    params: Vec<(String, SearchParam)>,
    seed_start: u64,
}

impl LossBuilder {
    /// A human-readable description (required, non-empty).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a parameter: a `(low, high)` float range or a [`SearchParam`].
    pub fn param(mut self, name: impl Into<String>, spec: impl Into<SearchParam>) -> Self {
        self.params.push((name.into(), spec.into()));
        self
    }

    /// The first seed of the default contiguous range (default 0).
    pub fn seed_start(mut self, seed_start: u64) -> Self {
        self.seed_start = seed_start;
        self
    }

    /// Validates name, description and space, registers the loss for worker processes, and
    /// returns it.
    pub fn build<F>(self, func: F) -> Result<LossDefinition>
    where
        F: Fn(&Params, u64, &Context) -> LossResult + Send + Sync + 'static,
    {
        self.finish(LossKind::PerSeed(Arc::new(func)))
    }

    /// Like [`LossBuilder::build`], for a loss that evaluates a batch of seeds per call (see
    /// [`BatchLoss`]).
    pub fn build_batch(self, batch: impl BatchLoss) -> Result<LossDefinition> {
        self.finish(LossKind::Batch(Arc::new(batch)))
    }

    fn finish(self, func: LossKind) -> Result<LossDefinition> {
        validate_name(&self.name)?;
        if self.description.trim().is_empty() {
            return Err(CoreError::InvalidLoss(format!(
                "loss '{}' needs a non-empty description: loss(\"{}\").description(\"...\")",
                self.name, self.name
            )));
        }
        let space = ParamSpace::new(self.params)?;
        let def = LossDefinition {
            name: self.name,
            description: self.description,
            space,
            seed_start: self.seed_start,
            func,
        };
        register(&def);
        Ok(def)
    }
}

/// Checks that a loss name is non-empty and made of `[A-Za-z0-9_.-]` (it names directories and jobs).
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(CoreError::InvalidLoss(
            "the loss name must not be empty".to_string(),
        ));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err(CoreError::InvalidLoss(format!(
            "loss name '{name}' must not start with '.'"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(CoreError::InvalidLoss(format!(
            "loss name '{name}' contains {c:?}: use letters, digits, '_', '-' or '.' (it names run directories)"
        )));
    }
    Ok(())
}

static REGISTRY: Mutex<BTreeMap<String, LossDefinition>> = Mutex::new(BTreeMap::new());

fn register(def: &LossDefinition) {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.insert(def.name.clone(), def.clone());
}

/// The loss built under `name` in this process, if any (used by worker processes to find
/// the loss a task asks for).
pub fn registered_loss(name: &str) -> Option<LossDefinition> {
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.get(name).cloned()
}

/// Names of every loss built in this process, sorted.
pub fn registered_loss_names() -> Vec<String> {
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_descriptions_are_checked() {
        let f = |_: &Params, _: u64, _: &Context| -> LossResult { Ok(0.0.into()) };
        for bad in ["", "a/b", "..", "a b", "x$(y)"] {
            let e = loss(bad).description("d").param("x", (0, 1)).build(f);
            assert!(e.is_err(), "{bad}");
        }
        let e = loss("ok").param("x", (0, 1)).build(f).unwrap_err();
        assert!(e.to_string().contains("description"));
        assert!(loss("ok").description("d").build(f).is_err());
        let ok = loss("ok-1.v2")
            .description("d")
            .param("x", (0, 1))
            .build(f)
            .unwrap();
        assert_eq!(registered_loss("ok-1.v2").unwrap().name(), ok.name());
    }
}
