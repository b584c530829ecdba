//! The one error type of `slurptuna-sampler`.

use slurptuna_core::CoreError;

/// What can go wrong when a sampler is configured or asked.
///
/// Converts into [`CoreError::Sampler`], which is what [`slurptuna_core::Sampler::ask`] returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// A [`crate::TpeConfig`] field is out of range.
    #[error("tpe option '{option}' is invalid: {reason}")]
    InvalidConfig {
        /// The field name, as in `TpeConfig`.
        option: &'static str,
        /// What is wrong and the accepted values.
        reason: String,
    },
}

impl SamplerError {
    pub(crate) fn config(option: &'static str, reason: impl Into<String>) -> Self {
        SamplerError::InvalidConfig {
            option,
            reason: reason.into(),
        }
    }
}

impl From<SamplerError> for CoreError {
    fn from(e: SamplerError) -> Self {
        CoreError::Sampler {
            sampler: "tpe",
            reason: e.to_string(),
        }
    }
}
