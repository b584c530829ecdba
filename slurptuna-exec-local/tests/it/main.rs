//! Integration tests of slurptuna-exec-local. The process-pool tests start the
//! `exec-local-fixture` program (`tests/fixture`) as their worker program, never this test
//! harness, which re-executed would run the whole suite in every worker.

// The losses of the fixture program, built here too so the thread executor can compute the values
// the workers must reproduce; each test module uses a few of them.
#[allow(dead_code)]
#[path = "../fixture/losses.rs"]
mod losses;
// CommandLoss: an external program (tests/commands) speaking the JSON line protocol, through
// the thread executor; command losses exist on Unix only.
#[cfg(unix)]
mod command;
// The conformance suite of slurptuna_core::testing on both executors.
mod conformance;
// ProcessExecutor: parity with threads, crashes, concurrency, cancellation, shutdown, startup.
// Worker processes exist on Unix only.
#[cfg(unix)]
mod process;
// Shared test support: a collecting sink, jobs, timeouts, process checks.
#[cfg_attr(not(unix), allow(dead_code))]
mod support;
// ThreadExecutor: values in seed order, failures, cancellation.
mod thread;
