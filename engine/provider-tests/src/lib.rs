//! Harness for the provider integration tests: loads components built by
//! `make components` from `$LOCKSTEP_COMPONENTS_DIR` into a real
//! [`PluginHost`] and binds stores to them. Components are never built here.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use lockstep_credentials::{FileBackend, StoreKind, StoreScope};
use lockstep_plugin_host::{BoundStore, HostConfig, LoadedPlugin, PluginHost, PluginSource, StoreBinding, wit};
use sha2::Digest;

/// A host with its own compile cache and a short deadline.
pub struct Harness {
    pub host: PluginHost,
    _cache: tempfile::TempDir,
}

/// Where `make components` puts the `.wasm` files.
pub fn components_dir() -> PathBuf {
    std::env::var_os("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("LOCKSTEP_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
            base.join("lockstep")
        });
        cache.join("components")
    })
}

impl Harness {
    pub fn new(deadline: Duration) -> Result<Harness> {
        Harness::with_replay(deadline, None)
    }

    /// A host whose outbound HTTP is answered from a recording (the host's
    /// `--replay` format) instead of the network.
    pub fn with_replay(deadline: Duration, replay: Option<PathBuf>) -> Result<Harness> {
        let cache = tempfile::tempdir()?;
        let mut config = HostConfig::new(cache.path().join("compiled"));
        config.limits.deadline = deadline;
        config.http.replay = replay;
        let host = PluginHost::new(config).map_err(|e| anyhow!("{e}"))?;
        Ok(Harness { host, _cache: cache })
    }

    /// Loads `lockstep_provider_<name>.wasm`, pinned by its sha256, and registers it.
    pub async fn load(&self, name: &str) -> Result<Arc<LoadedPlugin>> {
        let path = components_dir().join(format!("lockstep_provider_{name}.wasm"));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("{} missing: run `make components` first", path.display()))?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let source = PluginSource::File { path, sha256 };
        self.host.load_and_register(&source).await.map_err(|e| anyhow!("loading {name}: {e}"))
    }

    /// Binds a store. `manifests` are the Secrets/ServiceAccounts the file backend serves.
    /// A refusal of the store's references may come here or from the call.
    pub fn bind(&self, store: Store<'_>, manifests: &str) -> Result<BoundStore, wit::ProviderError> {
        let backend = FileBackend::from_yaml(manifests).expect("test manifests parse");
        self.bind_with(store, backend)
    }

    pub fn bind_with(&self, store: Store<'_>, backend: FileBackend) -> Result<BoundStore, wit::ProviderError> {
        let scope = StoreScope {
            kind: store.kind,
            name: store.name.into(),
            namespace: store.namespace.map(Into::into),
            uid: format!("uid-{}", store.name),
            generation: store.generation,
            provider_config: store.config,
            consumer_namespace: store.consumer_namespace.map(Into::into),
        };
        self.host
            .bind(StoreBinding {
                provider_key: store.provider_key.into(),
                store: scope,
                controller_class: None,
                credentials: Arc::new(backend),
            })
    }
}

/// The store fields a test varies.
pub struct Store<'a> {
    pub provider_key: &'a str,
    pub kind: StoreKind,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub consumer_namespace: Option<&'a str>,
    pub generation: i64,
    pub config: serde_json::Value,
}

impl<'a> Store<'a> {
    /// A SecretStore in `namespace`, consumed from the same namespace.
    pub fn namespaced(provider_key: &'a str, namespace: &'a str, config: serde_json::Value) -> Store<'a> {
        Store {
            provider_key,
            kind: StoreKind::SecretStore,
            name: "store",
            namespace: Some(namespace),
            consumer_namespace: Some(namespace),
            generation: 1,
            config,
        }
    }

    /// A ClusterSecretStore consumed from `consumer_namespace`.
    pub fn cluster(provider_key: &'a str, consumer_namespace: &'a str, config: serde_json::Value) -> Store<'a> {
        Store {
            provider_key,
            kind: StoreKind::ClusterSecretStore,
            name: "cluster-store",
            namespace: None,
            consumer_namespace: Some(consumer_namespace),
            generation: 1,
            config,
        }
    }
}

/// A `remoteRef`.
pub fn remote(key: &str, version: Option<&str>, property: Option<&str>) -> wit::SecretRef {
    wit::SecretRef {
        key: key.into(),
        version: version.map(Into::into),
        property: property.map(Into::into),
        metadata_policy: wit::MetadataPolicy::None,
    }
}

/// The WIT variant name of an error.
pub fn variant(e: &wit::ProviderError) -> &'static str {
    use wit::ProviderError as E;
    match e {
        E::NotFound(_) => "not-found",
        E::Unauthorized(_) => "unauthorized",
        E::Forbidden(_) => "forbidden",
        E::Throttled(_) => "throttled",
        E::InvalidConfig(_) => "invalid-config",
        E::Denied(_) => "denied",
        E::Unavailable(_) => "unavailable",
        E::Internal(_) => "internal",
    }
}

/// Entries as (key, UTF-8 value) pairs, sorted by key.
pub fn entries(list: Vec<wit::SecretEntry>) -> Vec<(String, String)> {
    let mut out: Vec<_> = list.into_iter().map(|e| (e.key, String::from_utf8_lossy(&e.value).into_owned())).collect();
    out.sort();
    out
}
