//! `lockstep-testenv up|down|status --state DIR`: the local control plane for
//! the demo, people and `make test` (tests attach via LOCKSTEP_TESTENV_STATE).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lockstep_testenv::proc::{self, Lifetime};
use lockstep_testenv::state::{self, EnvState};
use lockstep_testenv::{fakes, pki::PkiFiles};

#[derive(Parser)]
#[command(about = "Local control plane: etcd, kube-apiserver, kube-controller-manager, fake Entra ID, Key Vault gateway")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start everything in the background; prints the exports to use it.
    Up {
        #[arg(long)]
        state: PathBuf,
    },
    /// Stop everything recorded in the state directory (by PID).
    Down {
        #[arg(long)]
        state: PathBuf,
    },
    /// Show what runs and whether it answers.
    Status {
        #[arg(long, env = "LOCKSTEP_TESTENV_STATE")]
        state: PathBuf,
    },
    /// (internal) Serve the fakes in the foreground for `up`.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        state: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Up { state } => up(state).await,
        Cmd::Down { state } => {
            let s = EnvState::load(&state)?;
            s.stop();
            println!("stopped {} processes; logs kept in {}", s.procs().len(), state.join("logs").display());
            Ok(())
        }
        Cmd::Status { state } => status(state).await,
        Cmd::Serve { state } => {
            let addrs = fakes::start(&PkiFiles::in_dir(&state)).await?;
            let file = state.join(state::FAKES_FILE);
            std::fs::write(&file, serde_json::to_string(&addrs)?).with_context(|| file.display().to_string())?;
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}

async fn up(dir: PathBuf) -> Result<()> {
    if let Ok(s) = EnvState::load(&dir)
        && s.procs().iter().any(|p| proc::alive(p.pid))
    {
        bail!("{} already runs a control plane; `lockstep-testenv down --state {}` first", dir.display(), dir.display());
    }
    // Only ever wipe a previous state directory (or an empty one), never an arbitrary path.
    if dir.exists() && !dir.join(state::STATE_FILE).exists() && !dir.join("ca.crt").exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not a lockstep-testenv state directory", dir.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let dir = std::path::absolute(&dir)?;
    let exe = std::env::current_exe()?;
    let s = state::start(&dir, Lifetime::Detached, Some(&exe)).await.with_context(|| format!("logs in {}", dir.join("logs").display()))?;
    println!("control plane ready in {:.1} s", s.startup_secs);
    println!("  apiserver  {}", s.cluster.api_url);
    println!("  entra      https://login.microsoftonline.com -> {}", s.fakes.entra);
    println!("  vaults     https://*.vault.azure.net -> {}", s.fakes.vault);
    println!("  imds       http://{}", s.fakes.imds);
    println!("  admin      http://{}", s.fakes.admin);
    println!("export LOCKSTEP_TESTENV_STATE={}", dir.display());
    println!("export KUBECONFIG={}", s.cluster.kubeconfig.display());
    Ok(())
}

async fn status(dir: PathBuf) -> Result<()> {
    let s = EnvState::load(&dir)?;
    for p in s.procs() {
        println!("{:<24} pid {:<8} {}", p.name, p.pid, if proc::alive(p.pid) { "running" } else { "gone" });
    }
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&s.cluster.ca_cert)?)?;
    let http = reqwest::Client::builder().add_root_certificate(ca).build()?;
    let ready = http.get(format!("{}/readyz", s.cluster.api_url)).bearer_auth(&s.cluster.admin_token).send().await.map(|r| r.status().is_success());
    let admin = reqwest::get(format!("http://{}/health", s.fakes.admin)).await.map(|r| r.status().is_success());
    println!("apiserver /readyz: {}", if matches!(ready, Ok(true)) { "ok" } else { "not ready" });
    println!("fakes admin: {}", if matches!(admin, Ok(true)) { "ok" } else { "down" });
    println!("kubeconfig: {}", s.cluster.kubeconfig.display());
    println!("audit log: {}", s.cluster.audit_log.display());
    Ok(())
}
