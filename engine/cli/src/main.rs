//! `lockstep`: the controller, and the offline tools that share its engine.
#![forbid(unsafe_code)]

mod builtins;
mod conformance;
mod host_args;
mod manifests;
mod plugin_cmd;
mod render;
mod show;
mod template_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "lockstep", version, about = "Kubernetes secret sync with sandboxed WebAssembly providers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller: watch stores and ExternalSecrets, write Secrets.
    Run(lockstep_controller::RunArgs),
    /// Print the CRDs (external-secrets.io v1 + v1beta1) as YAML.
    Crds,
    /// Print the Secrets a file of stores, ExternalSecrets and
    /// ClusterExternalSecrets would produce, without a cluster.
    Render(render::RenderArgs),
    /// Render a template against data offline.
    Template(template_cmd::TemplateArgs),
    /// Provider plugin tools.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        command => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LOCKSTEP_LOG").unwrap_or_else(|_| "warn".into()))
                .with_writer(std::io::stderr)
                .init();
            offline(command).await
        }
    }
}

async fn run(args: lockstep_controller::RunArgs) -> anyhow::Result<()> {
    let mut config = args.into_config()?;
    lockstep_controller::init_logging(config.log_format);
    config.builtins = builtins::BUILTINS.to_vec();
    // SIGTERM is how Kubernetes stops a pod: release the lease then, not only on Ctrl-C.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    lockstep_controller::run(config, shutdown).await
}

/// Writes to stdout; a reader that stops early (`lockstep crds | head`) is not an error.
fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The commands that need no cluster.
async fn offline(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(_) => anyhow::bail!("`run` is not an offline command"),
        Command::Crds => write_stdout(&lockstep_api::crds::crds_yaml())?,
        Command::Render(args) => render::execute(args).await?,
        Command::Template(args) => template_cmd::execute(args)?,
        Command::Plugin(command) => plugin_cmd::execute(command).await?,
    }
    Ok(())
}
