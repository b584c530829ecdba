//! The worker side of the process pool: what the user's program does when the pool started it.

use std::io::{BufRead, BufWriter, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use slurptuna_core::{
    evaluate_seeds, registered_loss, registered_loss_names, SeedTask, TrialNumber,
};

use crate::error::LocalError;
use crate::os;
use crate::protocol::{encode, to_bits, BatchRequest, Reply, Request, PROTOCOL_VERSION};

/// The environment variable that marks a process as a pool worker (set by [`crate::ProcessExecutor`]).
pub const POOL_WORKER_ENV: &str = "SLURPTUNA_POOL_WORKER";

/// The environment variable naming the file descriptor a pool worker writes its replies to.
pub const POOL_REPLY_FD_ENV: &str = "SLURPTUNA_POOL_REPLY_FD";

/// True when this process was started by a [`crate::ProcessExecutor`] as one of its workers.
///
/// The facade checks this at the start of `optimize_run` / `optimize_entries` and then calls
/// [`serve_pool_worker`] instead of optimising.
pub fn is_pool_worker() -> bool {
    std::env::var_os(POOL_WORKER_ENV).is_some_and(|v| !v.is_empty())
}

/// Serves pool requests until the parent closes this process's stdin, then returns `Ok(())`
/// (the caller exits the process).
///
/// Announces itself with the names of the losses registered in this process, then, for each batch
/// it receives, looks the loss up with [`registered_loss`], announces each seed before evaluating
/// it with [`evaluate_seeds`] (parallelism 1: the pool is the parallelism) and answers with the
/// values in seed order or the failure of the first failing seed. A batch for an unknown loss is
/// answered with an error naming the loss, this process's argv and the registered losses.
///
/// The user's own prints are untouched: replies go to a dedicated file descriptor, not stdout.
pub fn serve_pool_worker() -> Result<(), LocalError> {
    let raw = std::env::var(POOL_REPLY_FD_ENV).ok();
    let fd = raw
        .as_deref()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|&fd| fd > 2)
        .ok_or_else(|| LocalError::WorkerEnvironment {
            var: POOL_REPLY_FD_ENV,
            value: raw.clone(),
        })?;
    // Also checks that the descriptor is open; processes the loss starts must not inherit it,
    // or the parent would not see end-of-file when this worker dies.
    let replies = os::open_reply_fd(fd).map_err(|_| LocalError::WorkerEnvironment {
        var: POOL_REPLY_FD_ENV,
        value: raw.clone(),
    })?;
    let stdin = std::io::stdin();
    serve(stdin.lock(), BufWriter::new(replies))
}

fn argv() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn send(out: &mut impl Write, reply: &Reply) -> Result<(), LocalError> {
    let io = |source| LocalError::WorkerIo {
        what: "writing a reply",
        source,
    };
    let line = encode(reply).map_err(|e| io(e.into()))?;
    out.write_all(&line).map_err(io)?;
    out.flush().map_err(io)
}

/// The request loop, generic over the pipes so it can be tested in memory.
pub(crate) fn serve(input: impl BufRead, mut out: impl Write) -> Result<(), LocalError> {
    send(
        &mut out,
        &Reply::Hello {
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            losses: registered_loss_names(),
            argv: argv(),
        },
    )?;
    for line in input.lines() {
        let line = line.map_err(|source| LocalError::WorkerIo {
            what: "reading a request from stdin",
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = serde_json::from_str(&line).map_err(|e| LocalError::Protocol {
            pid: 0,
            detail: format!("unreadable request ({e}): {line:.200}"),
        })?;
        match request {
            Request::Batch(batch) => run_batch(&batch, &mut out)?,
        }
    }
    Ok(())
}

fn run_batch(batch: &BatchRequest, out: &mut impl Write) -> Result<(), LocalError> {
    let Some(loss) = registered_loss(&batch.loss) else {
        return send(
            out,
            &Reply::UnknownLoss {
                batch: batch.batch,
                requested: batch.loss.clone(),
                registered: registered_loss_names(),
                argv: argv(),
            },
        );
    };
    let task = SeedTask {
        loss: &loss,
        params: &batch.params,
        entry_id: batch.entry_id.as_deref().map(Arc::from),
        trial: TrialNumber(batch.trial),
        trial_dir: None,
    };
    let never = AtomicBool::new(false);
    let mut values = Vec::with_capacity(batch.seeds.len());
    for seed in &batch.seeds {
        send(
            out,
            &Reply::Start {
                batch: batch.batch,
                seed: *seed,
            },
        )?;
        match evaluate_seeds(&task, std::slice::from_ref(seed), 1, &never) {
            Ok(v) => values.extend(v),
            Err(failure) => {
                return send(
                    out,
                    &Reply::Failed {
                        batch: batch.batch,
                        failure,
                    },
                )
            }
        }
    }
    send(
        out,
        &Reply::Done {
            batch: batch.batch,
            value_bits: to_bits(&values),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{from_bits, BatchId};
    use slurptuna_core::{loss, Params, SeedFailure};

    fn replies(out: &[u8]) -> Vec<Reply> {
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn request(batch: u64, loss: &str, seeds: Vec<u64>) -> String {
        let mut params = Params::new();
        params.insert("x", 0.25);
        let line = encode(&Request::Batch(BatchRequest {
            batch: BatchId(batch),
            loss: loss.into(),
            entry_id: Some("p7".into()),
            trial: 3,
            params,
            seeds,
        }))
        .unwrap();
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn serves_batches_in_seed_order_and_reports_failures() {
        loss("worker-unit")
            .description("d")
            .param("x", (0.0, 1.0))
            .build(|p, seed, ctx| {
                if seed == 13 {
                    return Err("unlucky".into());
                }
                let entry = ctx.entry_id().map_or(0, str::len) as f64;
                Ok(
                    (p.f64("x")? + seed as f64 + ctx.trial_number().0 as f64 * 1000.0 + entry)
                        .into(),
                )
            })
            .unwrap();
        let input = [
            request(1, "worker-unit", vec![100, 7, 3]),
            request(2, "worker-unit", vec![5, 13, 6]),
            request(3, "no-such-loss", vec![1]),
        ]
        .concat();
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        let r = replies(&out);
        assert!(
            matches!(&r[0], Reply::Hello { protocol, losses, .. } if *protocol == PROTOCOL_VERSION && losses.contains(&"worker-unit".to_string()))
        );
        let starts: Vec<u64> = r
            .iter()
            .filter_map(|m| match m {
                Reply::Start { batch, seed } if *batch == BatchId(1) => Some(*seed),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![100, 7, 3]);
        let done = r
            .iter()
            .find_map(|m| match m {
                Reply::Done { batch, value_bits } if *batch == BatchId(1) => {
                    Some(from_bits(value_bits))
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(done, vec![3102.25, 3009.25, 3005.25]);
        assert!(r.iter().any(|m| matches!(m, Reply::Failed { batch, failure: SeedFailure::Error { seed: 13, .. } } if *batch == BatchId(2))));
        assert!(!r
            .iter()
            .any(|m| matches!(m, Reply::Start { batch, seed: 6 } if *batch == BatchId(2))));
        assert!(r.iter().any(|m| matches!(m, Reply::UnknownLoss { batch, requested, registered, .. } if *batch == BatchId(3) && requested == "no-such-loss" && registered.contains(&"worker-unit".to_string()))));
    }

    #[test]
    fn garbage_requests_are_a_protocol_error() {
        let mut out = Vec::new();
        let e = serve("not json\n".as_bytes(), &mut out).unwrap_err();
        assert!(e.to_string().contains("unreadable request"), "{e}");
    }
}
