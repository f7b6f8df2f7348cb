//! `lockstep-bench`: scale benchmarks of the engine on the real apiserver (issue 9).
//!
//! Every scenario run starts a fresh local control plane (new etcd data directory),
//! runs `lockstep run` as a separate process with its own ServiceAccount token, and
//! measures it from outside: /proc for CPU and memory, the apiserver's own
//! `apiserver_request_total`, the engine's /metrics, the fakes' counters. Results
//! are medians over `--runs`; `--out` writes markdown, `--json` machine-readable.
#![forbid(unsafe_code)]

mod engine;
mod metrics;
mod plane;
mod report;
mod scenarios;
mod workload;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(about = "Scale benchmarks of `lockstep run` on a local control plane (fresh per scenario run)")]
pub struct Args {
    /// 1..6 or `all` (1-5; 6 re-runs the plugin-host criterion bench and is only run when named or with `all`).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Small N, one run: seconds per scenario (the CI smoke).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions per scenario (medians reported).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Scenario 1 sizes (comma-separated), default 1000,5000,10000.
    #[arg(long, value_delimiter = ',')]
    pub n: Vec<usize>,
    /// Markdown report.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Machine-readable results.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Extra flags for `lockstep run` (repeatable), e.g. `--engine-arg=--concurrency=16`.
    #[arg(long = "engine-arg", allow_hyphen_values = true)]
    pub engine_args: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(scenarios::run_all(args))
}
