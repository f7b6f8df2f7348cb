//! The provider plugin host: loaded plugins, isolation units and their
//! instances, and the calls the engine makes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lockstep_credentials::{
    CredentialBackend, CredentialError, CredentialPolicy, DeclaredRef, IsolationUnit, PluginDeclarations, RefKind,
    ScopedCredentials, StoreKind, StoreScope,
};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

use crate::bindings::{self, PluginPre};
use crate::egress::{EgressGrant, EgressRule};
use crate::grants::{EffectiveGrants, OperatorGrants};
use crate::http::{EgressContext, HttpConfig, OutboundHttp};
use crate::imports::PROVIDER_WORLD;
use crate::sandbox::{CallError, CallLimits, Sandbox, SandboxConfig, SandboxState};
use crate::state::{EgressHooks, ProviderState};
use crate::wit::{self, ProviderError};
use crate::{HostError, HostMetrics, PluginSource};

/// When instances are thrown away besides traps, cancellations and spec changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecyclePolicy {
    /// An instance older than this is not reused.
    pub max_age: Duration,
    /// Idle instances kept per isolation unit.
    pub max_idle_per_unit: usize,
}

impl Default for RecyclePolicy {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(15 * 60), max_idle_per_unit: 2 }
    }
}

/// Everything the engine configures about plugins.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub sandbox: SandboxConfig,
    pub limits: CallLimits,
    pub http: HttpConfig,
    pub grants: OperatorGrants,
    pub credentials: CredentialPolicy,
    pub recycle: RecyclePolicy,
}

impl HostConfig {
    /// Defaults with the compile cache in `cache_dir`.
    pub fn new(cache_dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            sandbox: SandboxConfig::new(cache_dir),
            limits: CallLimits::default(),
            http: HttpConfig::default(),
            grants: OperatorGrants::default(),
            credentials: CredentialPolicy::default(),
            recycle: RecyclePolicy::default(),
        }
    }
}

/// A compiled, import-checked plugin with its metadata.
pub struct LoadedPlugin {
    source: String,
    sha256: String,
    imports: Vec<String>,
    metadata: wit::PluginMetadata,
    declarations: PluginDeclarations,
    pre: PluginPre<ProviderState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("source", &self.source).field("sha256", &self.sha256).field("name", &self.metadata.name).finish()
    }
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
    pub fn metadata(&self) -> &wit::PluginMetadata {
        &self.metadata
    }
    /// sha256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The component's imports, as checked at load.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
    /// The WIT package the plugin was built against.
    pub fn contract(&self) -> &'static str {
        "lockstep:provider@0.1.0"
    }
}

/// One store as the engine hands it to a plugin call.
#[derive(Clone)]
pub struct StoreBinding {
    /// `spec.provider.<key>`: the plugin that serves it.
    pub provider_key: String,
    pub store: StoreScope,
    /// The store's `spec.controller`, for the operator's grants.
    pub controller_class: Option<String>,
    /// Where Secrets and ServiceAccounts are read (file or kube backend).
    pub credentials: Arc<dyn CredentialBackend>,
}

/// (plugin sha256, unit, digest of the store config): an instance's egress
/// grant was derived from the config, so a different config never reuses it.
type PoolKey = (String, IsolationUnit, String);

struct Live {
    store: Store<ProviderState>,
    plugin: bindings::Plugin,
    created: Instant,
}

struct Inner {
    sandbox: Arc<Sandbox>,
    linker: Linker<ProviderState>,
    outbound: Arc<OutboundHttp>,
    metrics: HostMetrics,
    config: HostConfig,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    idle: Mutex<HashMap<PoolKey, Vec<Live>>>,
    /// One call at a time per unit, so its calls share one instance and what it
    /// caches (an access token): concurrent calls would each start a cold instance.
    turns: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// The plugin host of one process. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("sandbox", &self.inner.sandbox).finish_non_exhaustive()
    }
}

fn trap_to_provider_error(err: &CallError) -> ProviderError {
    match err {
        // A hung backend or plugin: worth retrying later.
        CallError::Deadline(_) => ProviderError::Unavailable(err.to_string()),
        CallError::MemoryLimit(_) | CallError::Trap(_) => ProviderError::Internal(err.to_string()),
    }
}

impl PluginHost {
    /// Creates the engine, compile cache and HTTP client. Must run inside a tokio runtime.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let sandbox = Sandbox::new(config.sandbox.clone())?;
        Self::with_sandbox(sandbox, config)
    }

    /// Shares an existing sandbox (e.g. with template-function components).
    pub fn with_sandbox(sandbox: Arc<Sandbox>, config: HostConfig) -> Result<Self, HostError> {
        let mut linker = sandbox.linker::<ProviderState>()?;
        let link = |r: wasmtime::Result<()>| r.map_err(|e| HostError::Engine(format!("linker: {e:#}")));
        link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))?;
        link(bindings::lockstep::provider::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
        link(bindings::lockstep::provider::credentials::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
        link(bindings::lockstep::provider::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
        let outbound = Arc::new(OutboundHttp::new(config.http.clone())?);
        Ok(Self {
            inner: Arc::new(Inner {
                sandbox,
                linker,
                outbound,
                metrics: HostMetrics::default(),
                config,
                plugins: RwLock::default(),
                idle: Mutex::default(),
                turns: Mutex::default(),
            }),
        })
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.inner.sandbox
    }

    /// The one outbound HTTP client (its replayer, in `plugin test`).
    pub fn outbound(&self) -> &OutboundHttp {
        &self.inner.outbound
    }

    pub fn metrics(&self) -> &HostMetrics {
        &self.inner.metrics
    }

    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    fn state(&self, plugin: &str, grant: EgressGrant, creds: Option<Arc<ScopedCredentials>>) -> ProviderState {
        ProviderState {
            sandbox: SandboxState::new(&self.inner.config.limits),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            hooks: EgressHooks {
                outbound: self.inner.outbound.clone(),
                ctx: EgressContext::new(plugin, grant, self.inner.metrics.clone()),
            },
            creds,
        }
    }

    /// Compiles (or loads from the cache) and checks a component, and asks it
    /// for its metadata. Does not register it.
    pub async fn load(&self, source: &PluginSource) -> Result<Arc<LoadedPlugin>, HostError> {
        let wasm = source.read().await?;
        let compiled = self.inner.sandbox.compile(wasm, PROVIDER_WORLD).await?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(compiled.component())
            .and_then(PluginPre::new)
            .map_err(|e| HostError::Link(format!("{}: {e:#}", source.describe())))?;
        let mut store = self.inner.sandbox.store(self.state("loading", EgressGrant::default(), None));
        let deadline = self.inner.config.limits.deadline;
        let sandbox = &self.inner.sandbox;
        let metadata = sandbox
            .call(deadline, async {
                let plugin = pre.instantiate_async(&mut store).await?;
                plugin.lockstep_provider_provider().call_metadata(&mut store).await
            })
            .await
            .map_err(|e| HostError::Metadata(format!("{}: {}", source.describe(), store.data().sandbox.classify(e))))?;
        let declarations = declarations(&metadata).map_err(|e| HostError::Metadata(format!("{}: {e}", source.describe())))?;
        if metadata.provider_key.is_empty() || metadata.name.is_empty() {
            return Err(HostError::Metadata(format!("{}: name and provider-key must not be empty", source.describe())));
        }
        tracing::info!(plugin = %metadata.name, source = %source.describe(), cache = ?compiled.cache_outcome(), "plugin loaded");
        Ok(Arc::new(LoadedPlugin {
            source: source.describe(),
            sha256: compiled.sha256().to_string(),
            imports: compiled.imports().to_vec(),
            metadata,
            declarations,
            pre,
        }))
    }

    /// Serves `provider_key` (a `spec.provider` key) with `plugin`, replacing
    /// any earlier plugin for it; idle instances of the replaced one are dropped.
    pub fn register(&self, provider_key: &str, plugin: Arc<LoadedPlugin>) {
        let old = self.inner.plugins.write().expect("plugins lock").insert(provider_key.to_string(), plugin);
        if let Some(old) = old {
            self.inner.idle.lock().expect("idle lock").retain(|(sha, _, _), _| sha != old.sha256());
        }
    }

    /// Loads and registers under the key the plugin's metadata names.
    pub async fn load_and_register(&self, source: &PluginSource) -> Result<Arc<LoadedPlugin>, HostError> {
        let plugin = self.load(source).await?;
        self.register(&plugin.metadata.provider_key.clone(), plugin.clone());
        Ok(plugin)
    }

    /// The plugin serving a `spec.provider` key.
    pub fn plugin(&self, provider_key: &str) -> Option<Arc<LoadedPlugin>> {
        self.inner.plugins.read().expect("plugins lock").get(provider_key).cloned()
    }

    /// The registered `spec.provider` keys.
    pub fn provider_keys(&self) -> Vec<String> {
        let mut keys: Vec<_> = self.inner.plugins.read().expect("plugins lock").keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Drops every idle instance of a store (deleted, or changed: a new
    /// generation starts new units anyway).
    pub fn forget_store(&self, store_uid: &str) {
        self.inner.idle.lock().expect("idle lock").retain(|(_, unit, _), _| unit.store_uid != store_uid);
    }

    /// Number of idle instances kept (for tests and metrics).
    pub fn idle_instances(&self) -> usize {
        self.inner.idle.lock().expect("idle lock").values().map(Vec::len).sum()
    }

    /// Prepares calls for one store: finds the plugin, collects the store's
    /// credential references (an ill-shaped one is an invalid config) and
    /// computes the isolation unit and the operator's grants.
    pub fn bind(&self, binding: StoreBinding) -> Result<BoundStore, ProviderError> {
        let plugin = self.plugin(&binding.provider_key).ok_or_else(|| {
            ProviderError::InvalidConfig(wit::ConfigIssue {
                field: format!("spec.provider.{}", binding.provider_key),
                reason: format!("no plugin serves provider {:?}", binding.provider_key),
            })
        })?;
        let grants = self.inner.config.grants.for_store(binding.store.kind, binding.controller_class.as_deref());
        let store_config = wit::StoreConfig {
            provider_key: binding.provider_key.clone(),
            config_json: binding.store.provider_config.to_string(),
            kind: match binding.store.kind {
                StoreKind::SecretStore => wit::StoreKind::SecretStore,
                StoreKind::ClusterSecretStore => wit::StoreKind::ClusterSecretStore,
            },
            name: binding.store.name.clone(),
            namespace: binding.store.namespace.clone(),
        };
        let creds = ScopedCredentials::new(
            binding.credentials.clone(),
            binding.store.clone(),
            plugin.declarations.clone(),
            Arc::new(self.inner.config.credentials.clone()),
            grants.ambient.clone(),
        )
        .map_err(credential_config_error)?;
        let config_digest = crate::cache::sha256_hex(store_config.config_json.as_bytes());
        Ok(BoundStore { host: self.clone(), plugin, creds: Arc::new(creds), grants, store_config, config_digest })
    }
}

fn credential_config_error(e: CredentialError) -> ProviderError {
    match e {
        CredentialError::InvalidConfig { field, reason } => ProviderError::InvalidConfig(wit::ConfigIssue { field, reason }),
        CredentialError::Denied(m) => ProviderError::Denied(m),
        CredentialError::Unavailable(m) => ProviderError::Unavailable(m),
    }
}

fn declarations(md: &wit::PluginMetadata) -> Result<PluginDeclarations, String> {
    let credential_refs = md
        .credential_refs
        .iter()
        .map(|r| {
            if r.path.is_empty() || r.path.split('.').any(str::is_empty) {
                return Err(format!("credential reference path {:?} is malformed", r.path));
            }
            Ok(DeclaredRef {
                path: r.path.clone(),
                kind: match r.kind {
                    wit::CredentialRefKind::SecretKeySelector => RefKind::SecretKeySelector,
                    wit::CredentialRefKind::ServiceAccountRef => RefKind::ServiceAccountRef,
                },
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(PluginDeclarations { credential_refs, token_audiences: md.token_audiences.clone(), ambient: md.ambient_credentials.clone() })
}

/// A store bound to its plugin: the engine's handle for calls. Calls of one
/// isolation unit run one at a time and reuse its instance; a trap, a
/// deadline, a cancelled call or a bounded age retires it.
pub struct BoundStore {
    host: PluginHost,
    plugin: Arc<LoadedPlugin>,
    creds: Arc<ScopedCredentials>,
    grants: EffectiveGrants,
    store_config: wit::StoreConfig,
    config_digest: String,
}

impl std::fmt::Debug for BoundStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundStore").field("plugin", &self.plugin.name()).field("unit", self.creds.isolation_unit()).finish()
    }
}

impl BoundStore {
    pub fn isolation_unit(&self) -> &IsolationUnit {
        self.creds.isolation_unit()
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// The operator's grants that apply to this store.
    pub fn grants(&self) -> &EffectiveGrants {
        &self.grants
    }

    fn key(&self) -> PoolKey {
        (self.plugin.sha256.clone(), self.isolation_unit().clone(), self.config_digest.clone())
    }

    fn fail(&self, live: &Live, err: CallError) -> ProviderError {
        let err = live.store.data().sandbox.classify(err);
        self.host.inner.metrics.trap(self.plugin.name(), err.reason());
        tracing::warn!(plugin = %self.plugin.name(), unit = %self.isolation_unit(), "{err}; instance retired");
        live.store.data().hooks.ctx.take_denial().map(|d| ProviderError::Denied(d.to_string())).unwrap_or_else(|| trap_to_provider_error(&err))
    }

    /// An idle instance of this unit, or a fresh one whose egress grant is
    /// the plugin's answer for this store within the operator's grants.
    async fn checkout(&self) -> Result<Live, ProviderError> {
        let inner = &self.host.inner;
        let key = self.key();
        {
            let mut idle = inner.idle.lock().expect("idle lock");
            // A newer generation of the store retires the older units.
            let unit = &key.1;
            idle.retain(|(_, u, _), _| u.store_uid != unit.store_uid || u.generation >= unit.generation);
            if let Some(list) = idle.get_mut(&key) {
                while let Some(live) = list.pop() {
                    if live.created.elapsed() < inner.config.recycle.max_age {
                        return Ok(live);
                    }
                    inner.metrics.instance(self.plugin.name(), "recycled_age");
                }
            }
        }
        let state = self.host.state(self.plugin.name(), EgressGrant::default(), Some(self.creds.clone()));
        let mut store = inner.sandbox.store(state);
        let deadline = inner.config.limits.deadline;
        let pre = &self.plugin.pre;
        let cfg = &self.store_config;
        let res = inner
            .sandbox
            .call(deadline, async {
                let plugin = pre.instantiate_async(&mut store).await?;
                let egress = plugin.lockstep_provider_provider().call_egress(&mut store, cfg).await?;
                Ok((plugin, egress))
            })
            .await;
        inner.metrics.instance(self.plugin.name(), "created");
        let (plugin, egress) = match res {
            Ok(r) => r,
            Err(e) => {
                let live_err = store.data().sandbox.classify(e);
                inner.metrics.trap(self.plugin.name(), live_err.reason());
                return Err(trap_to_provider_error(&live_err));
            }
        };
        let rules = egress?
            .iter()
            .map(|r| EgressRule::new(&r.scheme, &r.host, r.port))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ProviderError::Internal(format!("plugin {} answered egress with a bad rule: {e}", self.plugin.name())))?;
        let grant = EgressGrant { rules, network: self.grants.network };
        store.data_mut().hooks.ctx = EgressContext::new(self.plugin.name(), grant, inner.metrics.clone());
        Ok(Live { store, plugin, created: Instant::now() })
    }

    /// This unit's turn lock. Locks nobody holds or awaits carry no state and are
    /// dropped when a new unit's lock is made, so the map follows the active units.
    fn turn(&self) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.host.inner.turns.lock().expect("turns lock");
        let key = self.key();
        if let Some(t) = turns.get(&key) {
            return t.clone();
        }
        turns.retain(|_, t| Arc::strong_count(t) > 1);
        turns.entry(key).or_default().clone()
    }

    fn release(&self, live: Live) {
        let inner = &self.host.inner;
        if live.created.elapsed() >= inner.config.recycle.max_age {
            inner.metrics.instance(self.plugin.name(), "recycled_age");
            return;
        }
        let mut idle = inner.idle.lock().expect("idle lock");
        let list = idle.entry(self.key()).or_default();
        if list.len() < inner.config.recycle.max_idle_per_unit {
            list.push(live);
        }
    }

    /// Runs one export on an instance of this unit, after the unit's earlier
    /// calls. The instance goes back to the unit only after a normal return; if
    /// this future is dropped, the instance is dropped with it.
    async fn run(&self, op: Op<'_>) -> Result<Answer, ProviderError> {
        let turn = self.turn();
        let _turn = turn.lock().await;
        let mut live = self.checkout().await?;
        let deadline = self.host.inner.config.limits.deadline;
        let cfg = &self.store_config;
        let Live { store, plugin, .. } = &mut live;
        let p = plugin.lockstep_provider_provider();
        let res = self
            .host
            .inner
            .sandbox
            .call(deadline, async {
                Ok(match op {
                    Op::Egress => p.call_egress(&mut *store, cfg).await?.map(Answer::Egress),
                    Op::Validate => p.call_validate(&mut *store, cfg).await?.map(Answer::Validation),
                    Op::GetSecret(r) => p.call_get_secret(&mut *store, cfg, r).await?.map(Answer::Value),
                    Op::GetSecretMap(r) => p.call_get_secret_map(&mut *store, cfg, r).await?.map(Answer::Entries),
                    Op::Find(f) => p.call_find_secrets(&mut *store, cfg, f).await?.map(Answer::Entries),
                })
            })
            .await;
        let returned = || match &res {
            Ok(Ok(Answer::Value(v))) => vec![v.value.as_slice()],
            Ok(Ok(Answer::Entries(entries))) => entries.iter().map(|e| e.value.as_slice()).collect(),
            _ => Vec::new(),
        };
        if let Err(e) = self.host.inner.outbound.commit_recording(returned) {
            return Err(ProviderError::Internal(format!("writing the recording: {e}")));
        }
        match res {
            Ok(Ok(answer)) => {
                live.store.data().hooks.ctx.take_denial();
                self.release(live);
                Ok(answer)
            }
            Ok(Err(err)) => {
                // The plugin answered; a policy refusal it ran into is the real cause.
                let err = match live.store.data().hooks.ctx.take_denial() {
                    Some(d) => ProviderError::Denied(d.to_string()),
                    None => err,
                };
                self.release(live);
                Err(err)
            }
            Err(e) => Err(self.fail(&live, e)),
        }
    }

    /// `egress(store)`: the destinations the plugin says this store needs.
    pub async fn egress(&self) -> Result<Vec<wit::EgressRule>, ProviderError> {
        match self.run(Op::Egress).await? {
            Answer::Egress(rules) => Ok(rules),
            _ => unreachable!("egress answers with rules"),
        }
    }

    /// `validate(store)`.
    pub async fn validate(&self) -> Result<wit::Validation, ProviderError> {
        match self.run(Op::Validate).await? {
            Answer::Validation(v) => Ok(v),
            _ => unreachable!("validate answers with a validation"),
        }
    }

    /// `get-secret(store, ref)`.
    pub async fn get_secret(&self, secret_ref: &wit::SecretRef) -> Result<wit::SecretValue, ProviderError> {
        match self.run(Op::GetSecret(secret_ref)).await? {
            Answer::Value(v) => Ok(v),
            _ => unreachable!("get-secret answers with a value"),
        }
    }

    /// `get-secret-map(store, ref)`.
    pub async fn get_secret_map(&self, secret_ref: &wit::SecretRef) -> Result<Vec<wit::SecretEntry>, ProviderError> {
        match self.run(Op::GetSecretMap(secret_ref)).await? {
            Answer::Entries(v) => Ok(v),
            _ => unreachable!("get-secret-map answers with entries"),
        }
    }

    /// `find-secrets(store, find)`.
    pub async fn find_secrets(&self, find: &wit::FindRequest) -> Result<Vec<wit::SecretEntry>, ProviderError> {
        match self.run(Op::Find(find)).await? {
            Answer::Entries(v) => Ok(v),
            _ => unreachable!("find-secrets answers with entries"),
        }
    }
}

enum Op<'r> {
    Egress,
    Validate,
    GetSecret(&'r wit::SecretRef),
    GetSecretMap(&'r wit::SecretRef),
    Find(&'r wit::FindRequest),
}

enum Answer {
    Egress(Vec<wit::EgressRule>),
    Validation(wit::Validation),
    Value(wit::SecretValue),
    Entries(Vec<wit::SecretEntry>),
}
