//! Flags that configure the plugin host, shared by `run`, `render` and
//! `plugin run|test`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use lockstep_plugin_host::{HostConfig, HostOverride, OperatorGrants, PluginHost, PluginSource};

use crate::builtins::{BUILTINS, DEFAULT_PLUGINS};

#[derive(Args, Debug, Clone)]
pub struct HostArgs {
    /// Directory for compiled plugin artifacts (created with mode 0700).
    /// Default: $XDG_CACHE_HOME/lockstep/plugins, or $HOME/.cache/lockstep/plugins.
    #[arg(long, env = "LOCKSTEP_COMPILE_CACHE")]
    compile_cache_dir: Option<PathBuf>,
    /// Provider plugins to load: `builtin:NAME` or `file:PATH@sha256:HEX`
    /// (repeatable). Each serves the `spec.provider` key its metadata names.
    /// Default: every built-in plugin.
    #[arg(long = "plugin", value_name = "SOURCE")]
    plugins: Vec<String>,
    /// Operator grant `SELECTOR=CAPABILITY[,...]` (repeatable); see docs/security.md.
    #[arg(long = "grant", value_name = "RULE")]
    grants: Vec<String>,
    /// Source of an ambient credential: `NAME=env:VAR` or `NAME=file:/path` (repeatable).
    #[arg(long = "ambient-source", value_name = "DEFINITION")]
    ambient_sources: Vec<String>,
    /// Connect to IP:PORT for HOST (repeatable); for private endpoints.
    #[arg(long = "resolve", value_name = "HOST=IP:PORT")]
    overrides: Vec<HostOverride>,
    /// Extra PEM CA bundle trusted for plugin egress (repeatable).
    #[arg(long = "extra-ca-file", value_name = "FILE")]
    extra_ca: Vec<PathBuf>,
    /// Proxy for plugin egress.
    #[arg(long)]
    proxy: Option<String>,
    /// Wall-clock deadline of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    plugin_deadline_ms: u64,
    /// Memory cap of one plugin instance, in MiB.
    #[arg(long, default_value_t = 64)]
    plugin_memory_mib: usize,
}

impl HostArgs {
    /// The host configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<HostConfig> {
        let Self {
            compile_cache_dir,
            plugins: _,
            grants,
            ambient_sources,
            overrides,
            extra_ca,
            proxy,
            plugin_deadline_ms,
            plugin_memory_mib,
        } = self;
        let cache = match compile_cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir()?.join("plugins"),
        };
        let mut config = HostConfig::new(cache);
        config.grants = OperatorGrants::from_flags(grants, ambient_sources)?;
        config.http.overrides = overrides.clone();
        config.http.proxy = proxy.clone();
        for path in extra_ca {
            config.http.extra_ca_pem.push(std::fs::read(path).with_context(|| format!("reading --extra-ca-file {}", path.display()))?);
        }
        config.limits.deadline = Duration::from_millis(*plugin_deadline_ms);
        config.limits.max_memory_bytes = plugin_memory_mib << 20;
        config.sandbox.max_memory_bytes = config.sandbox.max_memory_bytes.max(config.limits.max_memory_bytes);
        Ok(config)
    }

    /// A plugin host with the configured plugins loaded and registered.
    pub async fn host(&self, config: HostConfig) -> anyhow::Result<PluginHost> {
        let host = PluginHost::new(config)?;
        let sources: Vec<&str> = if self.plugins.is_empty() {
            DEFAULT_PLUGINS.to_vec()
        } else {
            self.plugins.iter().map(String::as_str).collect()
        };
        for text in sources {
            let source = PluginSource::parse(text, BUILTINS)?;
            host.load_and_register(&source).await.with_context(|| format!("loading plugin {text}"))?;
        }
        Ok(host)
    }
}

fn default_cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("lockstep"));
    }
    let home = std::env::var_os("HOME").context("neither --compile-cache-dir, XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/lockstep"))
}

impl HostArgs {
    /// Defaults, for commands that only load components (`plugin inspect`).
    pub fn offline_config() -> anyhow::Result<HostConfig> {
        Ok(HostConfig::new(default_cache_dir()?.join("plugins")))
    }
}
