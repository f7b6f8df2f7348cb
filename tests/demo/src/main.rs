//! `make demo`: the seed how-to, end to end, on the local control plane.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "The seed how-to (Azure Key Vault through Workload Identity) end to end, locally")]
struct Args {
    /// The `lockstep` binary to run as the engine.
    #[arg(long, env = "LOCKSTEP_BIN")]
    lockstep: PathBuf,
    /// Keep the control plane and the engine running at the end (until Ctrl-C).
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { lockstep, keep } = Args::parse();
    let report = lockstep_demo::run(&lockstep_demo::Options { lockstep, checkout: lockstep_demo::checkout() }).await?;
    if keep {
        println!("\nStill running. kubeconfig (admin): {}", report.kubeconfig.display());
        println!("  export KUBECONFIG={}", report.kubeconfig.display());
        println!("Engine log: {}. Press Ctrl-C to stop everything.", report.engine_log.display());
        tokio::signal::ctrl_c().await?;
    }
    drop(report);
    println!("Stopped the engine and the control plane.");
    Ok(())
}
