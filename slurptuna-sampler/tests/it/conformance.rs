use slurptuna_core::testing::sampler_suite;
use slurptuna_sampler::{QmcSampler, RandomSampler, TpeConfig, TpeSampler};

#[test]
fn tpe_passes_the_sampler_suite() {
    sampler_suite(&|seed| Box::new(TpeSampler::new(seed))).unwrap();
}

#[test]
fn tpe_with_optunas_configuration_passes_the_sampler_suite() {
    sampler_suite(&|seed| Box::new(TpeSampler::with_config(seed, TpeConfig::optuna()))).unwrap();
}

#[test]
fn random_passes_the_sampler_suite() {
    sampler_suite(&|seed| Box::new(RandomSampler::new(seed))).unwrap();
}

#[test]
fn qmc_passes_the_sampler_suite() {
    sampler_suite(&|seed| Box::new(QmcSampler::new(seed))).unwrap();
}
