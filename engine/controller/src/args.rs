//! The flags of `lockstep run`. The CLI embeds [`RunArgs`] with `#[command(flatten)]`
//! and calls [`RunArgs::into_config`]; the destructuring there makes an unused flag
//! a compile error.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use crate::config::{ControllerConfig, LeaderElection, LogFormat};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Json,
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsArg {
    /// ESO's events: Created / Updated / Deleted on every write, and every failure.
    All,
    /// Failures only (Warning events); each sync is still recorded in the status.
    Warnings,
}

/// `lockstep run`: the controllers.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use; without it the in-cluster config or `$KUBECONFIG` is used.
    #[arg(long, env = "LOCKSTEP_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Controller class: stores whose `spec.controller` is set to another value are
    /// ignored, and so are the ExternalSecrets that use them (ESO's `--controller-class`).
    #[arg(long, default_value = "default")]
    pub controller_class: String,

    /// Watch only this namespace (cluster-scoped kinds are then not reconciled).
    #[arg(long)]
    pub namespace: Option<String>,

    /// Reconciles running at once per kind.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,

    /// Provider calls running at once (one slot is always kept for new or edited objects).
    #[arg(long, default_value_t = 4)]
    pub provider_concurrency: usize,

    /// Provider calls per second allowed per store (token bucket, burst = 2 × rate).
    #[arg(long, default_value_t = 10.0)]
    pub store_rate_limit: f64,

    /// Re-validation period of stores that set no `spec.refreshInterval`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub store_requeue_interval: Duration,

    /// Upper bound of the memory that cached provider values may take, in MiB.
    #[arg(long, default_value_t = 64)]
    pub fetch_cache_mib: usize,

    /// Address of `/metrics`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8082")]
    pub probe_addr: SocketAddr,

    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormatArg,

    /// Which Kubernetes Events to publish. Every event is an etcd write: `warnings`
    /// drops the Normal one per Secret write (a third of a cold sync's writes).
    #[arg(long, value_enum, default_value = "all")]
    pub events: EventsArg,

    /// Elect a leader through a Lease; only the leader calls providers and writes.
    #[arg(long, default_value_t = false)]
    pub leader_elect: bool,

    /// Name of the Lease.
    #[arg(long, default_value = "lockstep-controller")]
    pub lease_name: String,

    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a lease is valid after its last renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How often the leader renews, and standbys retry.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub lease_renew_interval: Duration,

    /// Writes stop this long before the lease would expire, so a slow or paused leader
    /// never writes after another replica may have taken over.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub lease_margin: Duration,

    /// This replica's identity in the Lease (default: `$POD_NAME`, else host name + pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// A plugin serving a `spec.provider` key: `KEY=builtin:NAME` or
    /// `KEY=file:PATH@sha256:HEX` (a component file pinned by digest). Repeatable;
    /// without any, every built-in plugin serves the key it declares.
    #[arg(long = "plugin", value_name = "KEY=SOURCE")]
    pub plugins: Vec<String>,

    /// Directory where compiled plugins are cached (created 0700 by the engine).
    #[arg(long, env = "LOCKSTEP_COMPILE_CACHE", default_value = "/tmp/lockstep-compiled")]
    pub compile_cache_dir: PathBuf,

    /// Operator-only grant `SELECTOR=CAPABILITY[,...]` (selector `*`, `class:NAME`,
    /// `kind:SecretStore|ClusterSecretStore`; capabilities private, loopback,
    /// link-local, metadata, http, ambient:NAME). Store authors can never grant these.
    #[arg(long = "grant", value_name = "SELECTOR=CAPS")]
    pub grants: Vec<String>,

    /// Defines an ambient credential that `--grant ...=ambient:NAME` may hand out.
    #[arg(long = "ambient-source", value_name = "NAME=SOURCE")]
    pub ambient_sources: Vec<String>,

    /// Extra CA bundle (PEM) trusted by the plugins' outbound HTTP client. Repeatable.
    #[arg(long = "extra-ca-file")]
    pub extra_ca_files: Vec<PathBuf>,

    /// Host-to-address override for the plugins' outbound HTTP client: `HOST=IP:PORT`.
    #[arg(long = "resolve", value_name = "HOST=ADDR")]
    pub resolve: Vec<String>,

    /// Template function packs and functions on or off, e.g. `-sprig.now,+eso` (docs/templates.md).
    #[arg(long, default_value = "")]
    pub template_functions: lockstep_templates::FunctionConfig,

    /// A template-function component: `PACK=file:PATH@sha256:HEX`; its functions are
    /// callable as `PACK_<name>` and configured as pack `PACK`. Repeatable.
    #[arg(long = "template-plugin", value_name = "PACK=SOURCE")]
    pub template_plugins: Vec<String>,
}

impl RunArgs {
    /// Turns the flags into the controller's configuration.
    pub fn into_config(self) -> anyhow::Result<ControllerConfig> {
        let RunArgs {
            kubeconfig,
            controller_class,
            namespace,
            concurrency,
            provider_concurrency,
            store_rate_limit,
            store_requeue_interval,
            fetch_cache_mib,
            metrics_addr,
            probe_addr,
            log_format,
            events,
            leader_elect,
            lease_name,
            lease_namespace,
            lease_duration,
            lease_renew_interval,
            lease_margin,
            identity,
            plugins,
            compile_cache_dir,
            grants,
            ambient_sources,
            extra_ca_files,
            resolve,
            template_functions,
            template_plugins,
        } = self;
        anyhow::ensure!(concurrency > 0, "--concurrency must be at least 1");
        anyhow::ensure!(provider_concurrency > 1, "--provider-concurrency must be at least 2 (one slot is reserved for new objects)");
        anyhow::ensure!(store_rate_limit > 0.0, "--store-rate-limit must be positive");
        anyhow::ensure!(
            lease_margin + lease_renew_interval < lease_duration,
            "--lease-margin plus --lease-renew-interval must be shorter than --lease-duration"
        );
        let plugins = key_value_pairs("--plugin", "KEY=SOURCE", &plugins)?;
        let template_plugins = key_value_pairs("--template-plugin", "PACK=SOURCE", &template_plugins)?;
        let leader_election = leader_elect.then(|| LeaderElection {
            lease_name,
            lease_namespace: lease_namespace.unwrap_or_else(|| "default".to_owned()),
            identity: identity.unwrap_or_else(default_identity),
            lease_duration,
            renew_interval: lease_renew_interval,
            margin: lease_margin,
        });
        Ok(ControllerConfig {
            kubeconfig,
            controller_class,
            namespace,
            concurrency,
            provider_concurrency,
            store_rate_limit,
            store_requeue_interval,
            fetch_cache_bytes: fetch_cache_mib * 1024 * 1024,
            metrics_addr,
            probe_addr,
            log_format: match log_format {
                LogFormatArg::Json => LogFormat::Json,
                LogFormatArg::Text => LogFormat::Text,
            },
            normal_events: events == EventsArg::All,
            leader_election,
            plugins,
            builtins: Vec::new(),
            compile_cache_dir,
            grants,
            ambient_sources,
            extra_ca_files,
            resolve,
            template_functions,
            template_plugins,
        })
    }
}

fn key_value_pairs(flag: &str, form: &str, values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| {
            let (key, value) = v.split_once('=').filter(|(k, _)| !k.is_empty()).ok_or_else(|| anyhow::anyhow!("{flag} {v:?}: expected {form}"))?;
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "lockstep".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Parses `90`, `500ms`, `15s`, `5m`, `1h` (a bare number is seconds, as ESO accepts).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}
