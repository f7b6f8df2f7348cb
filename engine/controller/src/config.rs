//! The controller's configuration, built from [`crate::RunArgs`] or by tests directly.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything `lockstep run` was told.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub kubeconfig: Option<PathBuf>,
    pub controller_class: String,
    pub namespace: Option<String>,
    pub concurrency: u16,
    pub provider_concurrency: usize,
    pub store_rate_limit: f64,
    pub store_requeue_interval: Duration,
    pub fetch_cache_bytes: usize,
    pub metrics_addr: SocketAddr,
    pub probe_addr: SocketAddr,
    pub log_format: LogFormat,
    /// Publish Normal events (ESO's Created / Updated / Deleted), not only warnings.
    pub normal_events: bool,
    /// `None`: single replica, always allowed to write.
    pub leader_election: Option<LeaderElection>,
    /// `KEY=SOURCE` pairs; SOURCE as `lockstep_plugin_host::PluginSource::parse` reads it.
    pub plugins: Vec<(String, String)>,
    /// Components embedded in the binary, by name (filled by the CLI, not a flag).
    pub builtins: Vec<(&'static str, &'static [u8])>,
    pub compile_cache_dir: PathBuf,
    /// `--grant` values (`lockstep_plugin_host::OperatorGrants::from_flags`).
    pub grants: Vec<String>,
    /// `--ambient-source` values.
    pub ambient_sources: Vec<String>,
    pub extra_ca_files: Vec<PathBuf>,
    /// `HOST=IP:PORT` overrides of the plugins' outbound HTTP client.
    pub resolve: Vec<String>,
    /// Which template functions are on (`--template-functions`, docs/templates.md).
    pub template_functions: lockstep_templates::FunctionConfig,
    /// `PACK=SOURCE` template-function components, callable as `PACK_<function>`.
    pub template_plugins: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub lease_name: String,
    pub lease_namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
    pub margin: Duration,
}
