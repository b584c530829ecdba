//! Uniform random sampling, and the per-trial random stream every sampler draws from.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slurptuna_core::{AskContext, Params, Result, Sampler};

use crate::dims::Dims;

/// The random stream of trial `trial` for a sampler seeded with `seed`: ChaCha8 keyed by the
/// seed, on stream number `trial`. Streams of different trials are independent, and a trial's
/// draws never depend on what was drawn for earlier trials.
pub(crate) fn trial_rng(seed: u64, trial: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(trial);
    rng
}

/// One uniform draw per parameter (in transformed space over the step-extended range, like
/// Optuna's `RandomSampler`).
pub(crate) fn random_params<R: Rng>(dims: &Dims<'_>, rng: &mut R) -> Params {
    let raw: Vec<f64> = (0..dims.len())
        .map(|i| dims.unit_to_raw(i, rng.gen::<f64>()))
        .collect();
    dims.decode(&raw)
}

/// Independent uniform sampling: each parameter uniform in its (log-)range, on its grid, or
/// over its choices.
///
/// ```
/// use slurptuna_core::{search_param, AskContext, Direction, ParamSpace, Sampler, TrialNumber};
/// use slurptuna_sampler::RandomSampler;
///
/// let space = ParamSpace::new([("x", search_param().range(-1.0, 1.0))]).unwrap();
/// let ctx = AskContext {
///     space: &space,
///     direction: Direction::Minimize,
///     trial: TrialNumber(3),
///     history: &[],
///     running: &[],
/// };
/// let p = RandomSampler::new(1).ask(&ctx).unwrap();
/// assert!(space.contains(&p));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    /// A random sampler whose draws for trial `t` depend only on `seed` and `t`.
    pub fn new(seed: u64) -> Self {
        RandomSampler { seed }
    }
}

impl Sampler for RandomSampler {
    fn name(&self) -> &'static str {
        "random"
    }

    fn ask(&self, ctx: &AskContext<'_>) -> Result<Params> {
        let dims = Dims::new(ctx.space);
        let mut rng = trial_rng(self.seed, ctx.trial.0);
        let p = random_params(&dims, &mut rng);
        // Re-draw (a bounded number of times) while the draw equals a running trial.
        Ok(crate::qmc::avoid_running(p, &dims, ctx, &mut rng))
    }
}
