//! `lockstep run`: builds the clients, the plugin host and the watches, then runs the
//! four controllers until shutdown.

use std::{
    collections::BTreeSet,
    future::Future,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use futures::{StreamExt, channel::mpsc, future::OptionFuture};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client, Config, ResourceExt,
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use lockstep_api::{
    types::StoreKind,
    v1::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore},
};
use lockstep_plugin_host::{CallLimits, HostConfig, HostOverride, OperatorGrants, PluginHost, PluginSource, Sandbox};
use lockstep_template_functions::WasmFunctions;
use lockstep_sync::hash::MANAGED_LABEL;
use lockstep_templates::{Renderer, RendererConfig};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::{
    ControllerConfig, LogFormat,
    admin::{self, Health},
    clusterexternalsecret,
    context::Context,
    credentials::KubeCredentials,
    externalsecret,
    fetch::Scheduler,
    lease::{self, LeaderGate, WriteGuardLayer},
    metrics::Metrics,
    own_writes::OwnWrites,
    stores,
};

/// Installs the global log subscriber (JSON or text; filter from `RUST_LOG`, default info).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the controllers until `shutdown` resolves, then stops watches, lets running
/// reconciles finish and releases the lease.
pub async fn run(config: ControllerConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    init_logging(config.log_format);
    let token = CancellationToken::new();
    {
        let token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            token.cancel();
        });
    }

    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await.context("no kubeconfig and not in a cluster")?,
    };
    let cluster_url = kube_config.cluster_url.to_string();
    let gate = match &config.leader_election {
        Some(_) => LeaderGate::elected(),
        None => LeaderGate::always_open(),
    };
    // Reads and the lease use the plain client; everything that writes goes through the gate.
    let plain = Client::try_from(kube_config.clone())?;
    let client = ClientBuilder::try_from(kube_config)?.with_layer(&WriteGuardLayer::new(gate.clone())).build();

    // --namespace: only namespaced kinds of that namespace are watched, so a Role there
    // suffices; ClusterSecretStores, ClusterExternalSecrets and Namespaces are left alone.
    let cluster_scope = config.namespace.is_none();
    let es_list: Api<ExternalSecret> = match &config.namespace {
        Some(ns) => Api::namespaced(plain.clone(), ns),
        None => Api::all(plain.clone()),
    };
    // Fail early with a hint when the CRDs are missing.
    es_list
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .context("cannot list external-secrets.io/v1 ExternalSecrets: are the CRDs installed (`lockstep crds | kubectl apply -f -`) and the RBAC granted?")?;

    let host = plugin_host(&config, &cluster_url).await?;
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    host.metrics().register(&mut registry);
    let registry = Arc::new(Mutex::new(registry));
    let health = Health::default();

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(admin::serve_metrics(config.metrics_addr, registry, token.clone()));
    tasks.spawn(admin::serve_probes(config.probe_addr, health.clone(), token.clone()));
    if let Some(election) = config.leader_election.clone() {
        let (plain, gate, token) = (plain.clone(), gate.clone(), token.clone());
        tasks.spawn(async move {
            lease::run_election(plain, election, gate, token).await;
            Ok(())
        });
    }
    {
        let (gate, metrics, token) = (gate.clone(), metrics.clone(), token.clone());
        tasks.spawn(async move {
            loop {
                metrics.leader.set(i64::from(gate.is_open()));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = token.cancelled() => return Ok(()),
                }
            }
        });
    }

    let watch = watcher::Config::default().any_semantic();
    let ns_scope = config.namespace.clone();
    let namespaced = |c: &Client| -> (Api<ExternalSecret>, Api<SecretStore>) {
        match &ns_scope {
            Some(ns) => (Api::namespaced(c.clone(), ns), Api::namespaced(c.clone(), ns)),
            None => (Api::all(c.clone()), Api::all(c.clone())),
        }
    };
    let (es_api, store_api) = namespaced(&plain);

    // Triggers: every watch below turns into "reconcile these objects now".
    let (es_tx, es_rx) = mpsc::unbounded::<ObjectRef<ExternalSecret>>();
    let (ces_tx, ces_rx) = mpsc::unbounded::<ObjectRef<ClusterExternalSecret>>();
    let (ss_tx, ss_rx) = mpsc::unbounded::<ObjectRef<SecretStore>>();
    let (css_tx, css_rx) = mpsc::unbounded::<ObjectRef<ClusterSecretStore>>();

    // ExternalSecrets are the one cache that grows with N: keep them without
    // managedFields (a quarter of an object's size, never read by the reconciler).
    let (es_store, es_writer) = reflector::store::<ExternalSecret>();
    let es_objects = reflector::reflector(
        es_writer,
        watcher(es_api.clone(), watch.clone()).modify(|es| es.managed_fields_mut().clear()),
    )
    .applied_objects();
    let es_controller = Controller::for_stream(es_objects, es_store.clone());
    let ces_controller = cluster_scope.then(|| {
        Controller::new(Api::<ClusterExternalSecret>::all(plain.clone()), watch.clone()).owns(Api::<ExternalSecret>::all(plain.clone()), watch.clone())
    });

    let (ns_reader, ns_writer) = reflector::store::<Namespace>();
    let (ss_reader, ss_writer) = reflector::store::<SecretStore>();
    let (css_reader, css_writer) = reflector::store::<ClusterSecretStore>();

    // Namespaces: every change requeues every ClusterExternalSecret (so a namespace that
    // stops matching loses its ExternalSecret at once) and the namespace's ExternalSecrets
    // (ClusterSecretStore conditions may now allow or deny them).
    if let Some(ces_controller) = &ces_controller {
        spawn_watch(&mut tasks, &token, reflector::reflector(ns_writer, watcher(Api::<Namespace>::all(plain.clone()), watch.clone())).touched_objects(), {
            let (ces_store, es_store, ces_tx, es_tx) = (ces_controller.store(), es_store.clone(), ces_tx.clone(), es_tx.clone());
            move |ns: Namespace| {
                for ces in ces_store.state() {
                    let _ = ces_tx.unbounded_send(ObjectRef::from_obj(&*ces));
                }
                let name = ns.name_any();
                for es in es_store.state().iter().filter(|e| e.namespace().as_deref() == Some(name.as_str())) {
                    let _ = es_tx.unbounded_send(ObjectRef::from_obj(&**es));
                }
            }
        });
        spawn_watch(&mut tasks, &token, reflector::reflector(css_writer, watcher(Api::<ClusterSecretStore>::all(plain.clone()), watch.clone())).touched_objects(), {
            let (es_store, es_tx) = (es_store.clone(), es_tx.clone());
            move |s: ClusterSecretStore| requeue_dependents(&es_store, &es_tx, StoreKind::ClusterSecretStore, &s.name_any(), None)
        });
    }
    // Stores: a new, fixed or edited store requeues the ExternalSecrets naming it, even
    // those that named it before it existed.
    spawn_watch(&mut tasks, &token, reflector::reflector(ss_writer, watcher(store_api.clone(), watch.clone())).touched_objects(), {
        let (es_store, es_tx) = (es_store.clone(), es_tx.clone());
        move |s: SecretStore| requeue_dependents(&es_store, &es_tx, StoreKind::SecretStore, &s.name_any(), s.namespace().as_deref())
    });
    // Secrets and ServiceAccounts that stores reference: metadata only, nothing cached.
    let referenced = ReferenceIndex { stores: ss_reader.clone(), cluster_stores: css_reader.clone(), es: es_store.clone(), es_tx: es_tx.clone(), ss_tx: ss_tx.clone(), css_tx: css_tx.clone() };
    // `Api<PartialObjectMeta<_>>` makes metadata-only requests: no Secret data in memory.
    let (secrets_meta, accounts_meta): (Api<PartialObjectMeta<Secret>>, Api<PartialObjectMeta<ServiceAccount>>) = match &config.namespace {
        Some(ns) => (Api::namespaced(plain.clone(), ns), Api::namespaced(plain.clone(), ns)),
        None => (Api::all(plain.clone()), Api::all(plain.clone())),
    };
    let own_writes = OwnWrites::default();
    // The same stream also wakes ExternalSecrets whose target appears unmanaged
    // (creationPolicy Merge waiting for its Secret).
    spawn_watch(&mut tasks, &token, watcher(secrets_meta.clone(), watch.clone()).touched_objects(), {
        let (referenced, es_store, es_tx, own_writes) = (referenced.clone(), es_store.clone(), es_tx.clone(), own_writes.clone());
        move |s: PartialObjectMeta<Secret>| {
            let (name, ns) = (s.name_any(), s.namespace().unwrap_or_default());
            referenced.touched(&name, &ns);
            if !s.labels().contains_key(MANAGED_LABEL) {
                requeue_targets(&es_store, &es_tx, &own_writes, &name, &ns);
            }
        }
    });
    spawn_watch(&mut tasks, &token, watcher(accounts_meta, watch.clone()).touched_objects(), {
        let referenced = referenced.clone();
        move |s: PartialObjectMeta<ServiceAccount>| referenced.touched(&s.name_any(), s.namespace().as_deref().unwrap_or_default())
    });
    // Managed Secrets: label-selected, metadata only; an edit or delete resyncs at once
    // (the echo of our own write does not).
    spawn_watch(&mut tasks, &token, watcher(secrets_meta, watch.clone().labels(&format!("{MANAGED_LABEL}=true"))).touched_objects(), {
        let (es_store, es_tx, own_writes) = (es_store.clone(), es_tx.clone(), own_writes.clone());
        move |s: PartialObjectMeta<Secret>| {
            let (name, ns, version) = (s.name_any(), s.namespace().unwrap_or_default(), s.resource_version());
            let (es_store, es_tx, own_writes) = (es_store.clone(), es_tx.clone(), own_writes.clone());
            // The echo of our write can arrive before the write's response is recorded.
            tokio::spawn(async move {
                tokio::time::sleep(ECHO_GRACE).await;
                if !own_writes.is_echo(&ns, &name, version.as_deref()) {
                    requeue_targets(&es_store, &es_tx, &own_writes, &name, &ns);
                }
            });
        }
    });

    ss_reader.wait_until_ready().await.context("SecretStore watch")?;
    if cluster_scope {
        ns_reader.wait_until_ready().await.context("namespace watch")?;
        css_reader.wait_until_ready().await.context("ClusterSecretStore watch")?;
    }

    let renderer = renderer(&config, host.sandbox()).await?;
    let reporter = Reporter { controller: "lockstep".into(), instance: config.leader_election.as_ref().map(|l| l.identity.clone()) };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        normal_events: config.normal_events,
        client,
        controller_class: config.controller_class.clone(),
        host,
        credentials: Arc::new(KubeCredentials::new(plain.clone())),
        scheduler: Scheduler::new(config.provider_concurrency, config.store_rate_limit, config.fetch_cache_bytes),
        metrics: metrics.clone(),
        gate: gate.clone(),
        own_writes,
        renderer,
        stores: ss_reader,
        cluster_stores: css_reader,
        namespaces: ns_reader,
        external_secrets: es_store.clone(),
        store_requeue_interval: config.store_requeue_interval,
        namespace: config.namespace.clone(),
    });
    health.set_ready();
    tracing::info!(class = %config.controller_class, namespace = ?config.namespace, plugins = ?ctx.host.provider_keys(), "controllers starting");

    // Drop fetched values nobody used for a while.
    {
        let (ctx, token) = (ctx.clone(), token.clone());
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {
                        ctx.scheduler.sweep(Duration::from_secs(2 * 3600));
                        let es = ctx.external_secrets.clone();
                        ctx.metrics.retain_external_secrets(|l| es.get(&ObjectRef::new(&l.name).within(&l.namespace)).is_some());
                        ctx.metrics.fetch_cache_bytes.set(ctx.scheduler.cached_bytes() as i64);
                    }
                    _ = token.cancelled() => return Ok(()),
                }
            }
        });
    }

    let cfg = controller::Config::default().concurrency(config.concurrency);
    let stop = {
        let token = token.clone();
        move || {
            let token = token.clone();
            async move { token.cancelled().await }
        }
    };
    let es_run = es_controller
        .with_config(cfg.clone())
        .reconcile_on(es_rx)
        .reconcile_all_on(gate.acquisitions())
        .graceful_shutdown_on(stop())
        .run(externalsecret::reconcile, externalsecret::error_policy, ctx.clone())
        .for_each(|r| log_result("ExternalSecret", r));
    let ss_run = Controller::new(store_api, watch.clone())
        .with_config(cfg.clone())
        .reconcile_on(ss_rx)
        .reconcile_all_on(gate.acquisitions())
        .graceful_shutdown_on(stop())
        .run(stores::reconcile_store, store_error_policy, ctx.clone())
        .for_each(|r| log_result("SecretStore", r));
    let css_run: OptionFuture<_> = cluster_scope
        .then(|| {
            Controller::new(Api::<ClusterSecretStore>::all(plain.clone()), watch.clone())
                .with_config(cfg.clone())
                .reconcile_on(css_rx)
                .reconcile_all_on(gate.acquisitions())
                .graceful_shutdown_on(stop())
                .run(stores::reconcile_cluster_store, store_error_policy, ctx.clone())
                .for_each(|r| log_result("ClusterSecretStore", r))
        })
        .into();
    let ces_run: OptionFuture<_> = ces_controller
        .map(|c| {
            c.with_config(cfg)
                .reconcile_on(ces_rx)
                .reconcile_all_on(gate.acquisitions())
                .graceful_shutdown_on(stop())
                .run(clusterexternalsecret::reconcile, clusterexternalsecret::error_policy, ctx.clone())
                .for_each(|r| log_result("ClusterExternalSecret", r))
        })
        .into();
    drop((es_tx, ces_tx, ss_tx, css_tx));

    tokio::join!(es_run, ss_run, css_run, ces_run);
    token.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(error)) = done {
            tracing::warn!(%error, "background task ended with an error");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn store_error_policy<K>(_obj: Arc<K>, error: &crate::Error, _ctx: Arc<Context>) -> Action {
    if error.is_not_leader() {
        return Action::await_change();
    }
    tracing::warn!(%error, "store reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

async fn log_result<T, E: std::fmt::Debug>(kind: &'static str, result: Result<T, E>) {
    // Reconcile failures are logged by the error policies; this sees queue and watch errors.
    if let Err(error) = result {
        tracing::debug!(kind, ?error, "controller event");
    }
}

/// How long a managed Secret's watch event waits before it is judged foreign: a drift
/// heals this much later, and the echo of our own write is not mistaken for one.
const ECHO_GRACE: Duration = Duration::from_millis(250);

/// Runs a watch stream, calling `on_change` for each touched object; watch errors are
/// retried by the stream's backoff.
fn spawn_watch<K, S>(tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>, token: &CancellationToken, stream: S, on_change: impl Fn(K) + Send + 'static)
where
    S: futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    let token = token.clone();
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream.default_backoff());
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(obj)) => on_change(obj),
                    Some(Err(error)) => tracing::warn!(%error, "watch error"),
                    None => return Ok(()),
                },
                _ = token.cancelled() => return Ok(()),
            }
        }
    });
}

/// ExternalSecrets in `ns` whose target Secret is `name`.
fn requeue_targets(es_store: &Store<ExternalSecret>, es_tx: &mpsc::UnboundedSender<ObjectRef<ExternalSecret>>, own_writes: &OwnWrites, name: &str, ns: &str) {
    for es in es_store.state().iter().filter(|e| e.namespace().as_deref() == Some(ns)) {
        if lockstep_sync::target_name(&es.name_any(), &es.spec) == name {
            if let Some(uid) = es.uid() {
                own_writes.forget_synced_status(&uid);
            }
            let _ = es_tx.unbounded_send(ObjectRef::from_obj(&**es));
        }
    }
}

fn requeue_dependents(es_store: &Store<ExternalSecret>, es_tx: &mpsc::UnboundedSender<ObjectRef<ExternalSecret>>, kind: StoreKind, name: &str, namespace: Option<&str>) {
    for es in es_store.state() {
        let ns = es.namespace().unwrap_or_default();
        if namespace.is_some_and(|store_ns| store_ns != ns) {
            continue;
        }
        if references_store(&es, kind, name) {
            let _ = es_tx.unbounded_send(ObjectRef::from_obj(&*es));
        }
    }
}

/// Whether an ExternalSecret names this store anywhere (main ref or a sourceRef).
fn references_store(es: &ExternalSecret, kind: StoreKind, name: &str) -> bool {
    let spec = &es.spec;
    let main = spec.secret_store_ref.iter();
    let data = spec.data.iter().filter_map(|d| d.source_ref.as_ref()?.store_ref.as_ref());
    let data_from = spec.data_from.iter().filter_map(|d| d.source_ref.as_ref()?.store_ref.as_ref());
    main.chain(data).chain(data_from).any(|r| r.name == name && r.kind() == kind)
}

/// Which stores reference a Secret or ServiceAccount by name. Over-approximates on
/// purpose (any `{name, namespace?}` object in a provider config counts): a spurious
/// wake-up costs one cheap reconcile, a missed one costs minutes of staleness.
#[derive(Clone)]
struct ReferenceIndex {
    stores: Store<SecretStore>,
    cluster_stores: Store<ClusterSecretStore>,
    es: Store<ExternalSecret>,
    es_tx: mpsc::UnboundedSender<ObjectRef<ExternalSecret>>,
    ss_tx: mpsc::UnboundedSender<ObjectRef<SecretStore>>,
    css_tx: mpsc::UnboundedSender<ObjectRef<ClusterSecretStore>>,
}

impl ReferenceIndex {
    fn touched(&self, name: &str, namespace: &str) {
        for store in self.stores.state() {
            let store_ns = store.namespace().unwrap_or_default();
            if store_ns == namespace && names_in(&store.spec.provider.0).iter().any(|(n, ns)| n == name && ns.as_deref().is_none_or(|ns| ns == namespace)) {
                let _ = self.ss_tx.unbounded_send(ObjectRef::from_obj(&*store));
                requeue_dependents(&self.es, &self.es_tx, StoreKind::SecretStore, &store.name_any(), Some(&store_ns));
            }
        }
        for store in self.cluster_stores.state() {
            let refs = names_in(&store.spec.provider.0);
            let direct = refs.iter().any(|(n, ns)| n == name && ns.as_deref() == Some(namespace));
            let referent = refs.iter().any(|(n, ns)| n == name && ns.is_none());
            if direct || referent {
                let _ = self.css_tx.unbounded_send(ObjectRef::from_obj(&*store));
                // A referent reference resolves in the consumer's namespace: only its ExternalSecrets.
                requeue_dependents(&self.es, &self.es_tx, StoreKind::ClusterSecretStore, &store.name_any(), (!direct).then_some(namespace));
            }
        }
    }
}

/// Every `{name, namespace?}` object inside a provider config.
fn names_in(provider: &std::collections::BTreeMap<String, serde_json::Value>) -> BTreeSet<(String, Option<String>)> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<(String, Option<String>)>) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::String(name)) = o.get("name") {
                    out.insert((name.clone(), o.get("namespace").and_then(|n| n.as_str()).map(str::to_owned)));
                }
                o.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    provider.values().for_each(|v| walk(v, &mut out));
    out
}

/// The template engine with the configured packs and template-function components,
/// which run in the same sandbox as provider plugins.
async fn renderer(config: &ControllerConfig, sandbox: &Arc<Sandbox>) -> anyhow::Result<Renderer> {
    let mut external = Vec::new();
    for (pack, text) in &config.template_plugins {
        let flag = format!("--template-plugin {pack}={text}");
        let wasm = PluginSource::parse(text, &[]).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?.read().await.map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
        let functions = WasmFunctions::load(sandbox.clone(), pack, wasm, TEMPLATE_CALL_LIMITS).await.map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
        external.push(functions.into_pack(pack, &format!("{pack}_")));
    }
    Renderer::new(RendererConfig { functions: config.template_functions.clone(), external, ..RendererConfig::default() })
        .map_err(|e| anyhow::anyhow!("template engine: {e}"))
}

/// A template function runs inside a reconcile: far tighter than a provider call.
const TEMPLATE_CALL_LIMITS: CallLimits = CallLimits { deadline: Duration::from_secs(1), max_memory_bytes: 32 << 20 };

async fn plugin_host(config: &ControllerConfig, cluster_url: &str) -> anyhow::Result<PluginHost> {
    let mut host_config = HostConfig::new(config.compile_cache_dir.clone());
    host_config.grants = OperatorGrants::from_flags(config.grants.as_slice(), config.ambient_sources.as_slice())?;
    for path in &config.extra_ca_files {
        host_config.http.extra_ca_pem.push(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    for text in &config.resolve {
        host_config.http.overrides.push(HostOverride::from_str(text).map_err(|e| anyhow::anyhow!("--resolve {text:?}: {e}"))?);
    }
    // Tokens for the apiserver itself would let a plugin act against the cluster.
    host_config.credentials.apiserver_audiences.push(cluster_url.trim_end_matches('/').to_owned());
    let host = PluginHost::new(host_config).map_err(|e| anyhow::anyhow!("plugin host: {e}"))?;
    if config.plugins.is_empty() {
        for (name, _) in &config.builtins {
            let source = PluginSource::parse(&format!("builtin:{name}"), &config.builtins).map_err(|e| anyhow::anyhow!("{e}"))?;
            let plugin = host.load(&source).await.map_err(|e| anyhow::anyhow!("plugin {name}: {e}"))?;
            let key = plugin.metadata().provider_key.clone();
            host.register(&key, plugin);
        }
    }
    for (key, text) in &config.plugins {
        let source = PluginSource::parse(text, &config.builtins).map_err(|e| anyhow::anyhow!("--plugin {key}={text}: {e}"))?;
        let plugin = host.load(&source).await.map_err(|e| anyhow::anyhow!("--plugin {key}={text}: {e}"))?;
        anyhow::ensure!(
            plugin.metadata().provider_key == *key,
            "--plugin {key}={text}: the component serves spec.provider.{}, not {key}",
            plugin.metadata().provider_key
        );
        host.register(key, plugin);
    }
    Ok(host)
}
