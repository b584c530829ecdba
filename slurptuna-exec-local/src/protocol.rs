//! The pool protocol: one JSON object per line.
//!
//! Parent → worker on the worker's stdin: [`Request`]. Worker → parent on file descriptor
//! [`crate::os::REPLY_FD`]: [`Reply`]. Every message about work carries the batch id, which is
//! unique within a pool, so an answer is always tied to its trial and seeds. Values travel as
//! IEEE-754 bit patterns: exact, and infinities survive (JSON has no `inf`).

use serde::{Deserialize, Serialize};
use slurptuna_core::{Params, SeedFailure};

/// Version of this protocol; a worker built from another slurptuna release is refused.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// A unique id of one batch of seeds within a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct BatchId(pub(crate) u64);

/// Parent → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Request {
    /// Evaluate `seeds` (in order) for one trial.
    Batch(BatchRequest),
}

/// The seeds of one trial that one worker evaluates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BatchRequest {
    pub(crate) batch: BatchId,
    pub(crate) loss: String,
    pub(crate) entry_id: Option<String>,
    pub(crate) trial: u64,
    pub(crate) params: Params,
    pub(crate) seeds: Vec<u64>,
}

/// Worker → parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Sent once, when the worker reaches its entry point.
    Hello {
        protocol: u32,
        pid: u32,
        losses: Vec<String>,
        argv: Vec<String>,
    },
    /// The worker starts evaluating `seed` (so a crash can be tied to it).
    Start { batch: BatchId, seed: u64 },
    /// Every seed of the batch evaluated; values in seed order, as `f64::to_bits`.
    Done {
        batch: BatchId,
        value_bits: Vec<u64>,
    },
    /// A seed failed (error, panic, NaN); the worker stays usable.
    Failed {
        batch: BatchId,
        failure: SeedFailure,
    },
    /// The worker has no loss of the requested name.
    UnknownLoss {
        batch: BatchId,
        requested: String,
        registered: Vec<String>,
        argv: Vec<String>,
    },
}

/// Encodes a message as one line (with its newline).
pub(crate) fn encode<T: Serialize>(msg: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    Ok(line)
}

/// Values to their bit patterns.
pub(crate) fn to_bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Bit patterns to values.
pub(crate) fn from_bits(bits: &[u64]) -> Vec<f64> {
    bits.iter().map(|&b| f64::from_bits(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slurptuna_core::ParamValue;

    #[test]
    fn requests_round_trip_bit_exactly() {
        let mut params = Params::new();
        params.insert("whole", 3.0);
        params.insert("tiny", 1e-300);
        params.insert("third", 1.0 / 3.0);
        params.insert("neg_zero", -0.0);
        params.insert("n", 3i64);
        params.insert("kind", "a\nb\"c");
        params.insert("flag", true);
        let req = Request::Batch(BatchRequest {
            batch: BatchId(7),
            loss: "toy".into(),
            entry_id: Some("p01".into()),
            trial: 4,
            params: params.clone(),
            seeds: vec![100, 7, 3, 55],
        });
        let line = encode(&req).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Request = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, req);
        let Request::Batch(b) = back;
        assert_eq!(b.params.get("whole"), Some(&ParamValue::Float(3.0)));
        assert_eq!(b.params.get("n"), Some(&ParamValue::Int(3)));
        assert!(b.params.f64("neg_zero").unwrap().is_sign_negative());
        assert_eq!(
            b.params.f64("third").unwrap().to_bits(),
            (1.0f64 / 3.0).to_bits()
        );
    }

    #[test]
    fn replies_carry_infinities_and_failures() {
        let values = [1.5, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1.0 / 3.0];
        let reply = Reply::Done {
            batch: BatchId(1),
            value_bits: to_bits(&values),
        };
        let back: Reply = serde_json::from_slice(&encode(&reply).unwrap()).unwrap();
        let Reply::Done { value_bits, .. } = back else {
            panic!("wrong variant")
        };
        let got = from_bits(&value_bits);
        assert!(got
            .iter()
            .zip(values)
            .all(|(a, b)| a.to_bits() == b.to_bits()));

        let failed = Reply::Failed {
            batch: BatchId(2),
            failure: SeedFailure::Panic {
                seed: 13,
                message: "boom".into(),
            },
        };
        let back: Reply = serde_json::from_slice(&encode(&failed).unwrap()).unwrap();
        assert_eq!(back, failed);
    }
}
