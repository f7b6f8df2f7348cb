//! SecretStore / ClusterSecretStore: lookup for ExternalSecrets, and the reconciler
//! that validates a store through its plugin and publishes Ready with the real reason.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use lockstep_api::{
    types::{SecretStoreStatus, StoreKind},
    v1::{ClusterSecretStore, SecretStore, SecretStoreSpec},
};
use lockstep_credentials::{StoreKind as CredKind, StoreScope};
use lockstep_plugin_host::{BoundStore, StoreBinding, wit};
use lockstep_sync::StoreKey;
use serde_json::json;

use crate::{
    Error,
    conditions::Ready,
    context::{Context, STATUS_MANAGER},
    duration,
    fetch::{CAPABILITY_DENIED, FetchError},
    metrics::Metrics,
};

/// A store as an ExternalSecret (or the store reconciler) uses it.
#[derive(Clone, Debug)]
pub struct ResolvedStore {
    pub kind: StoreKind,
    pub name: String,
    pub namespace: Option<String>,
    pub uid: String,
    pub generation: i64,
    pub spec: SecretStoreSpec,
    pub status: Option<SecretStoreStatus>,
}

impl ResolvedStore {
    pub fn from_namespaced(s: &SecretStore) -> Self {
        Self {
            kind: StoreKind::SecretStore,
            name: s.name_any(),
            namespace: s.namespace(),
            uid: s.uid().unwrap_or_default(),
            generation: s.metadata.generation.unwrap_or(0),
            spec: s.spec.clone(),
            status: s.status.clone(),
        }
    }

    pub fn from_cluster(s: &ClusterSecretStore) -> Self {
        Self {
            kind: StoreKind::ClusterSecretStore,
            name: s.name_any(),
            namespace: None,
            uid: s.uid().unwrap_or_default(),
            generation: s.metadata.generation.unwrap_or(0),
            spec: s.spec.clone().into(),
            status: s.status.clone(),
        }
    }

    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.as_str(), self.name),
            None => format!("{} {:?}", self.kind.as_str(), self.name),
        }
    }

    /// The plugin binding of this store for a consumer namespace (`None`: validation).
    pub fn bind(&self, ctx: &Context, consumer: Option<&str>) -> Result<BoundStore, Blocked> {
        let (key, config) = self.spec.provider.single().ok_or_else(|| {
            Blocked::new("InvalidProviderConfig", format!("{}: spec.provider must have exactly one key", self.describe()))
        })?;
        if ctx.host.plugin(key).is_none() {
            return Err(Blocked::new(
                "UnsupportedProvider",
                format!("{}: no plugin serves spec.provider.{key} (configure one with --plugin {key}=SOURCE)", self.describe()),
            ));
        }
        let binding = StoreBinding {
            provider_key: key.to_owned(),
            store: StoreScope {
                kind: match self.kind {
                    StoreKind::SecretStore => CredKind::SecretStore,
                    StoreKind::ClusterSecretStore => CredKind::ClusterSecretStore,
                },
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                uid: self.uid.clone(),
                generation: self.generation,
                provider_config: config.clone(),
                consumer_namespace: consumer.map(str::to_owned),
            },
            controller_class: self.spec.controller.clone(),
            credentials: ctx.credentials.clone(),
        };
        ctx.host.bind(binding).map_err(|e| {
            let e = provider_error(e);
            Blocked::new(e.reason(), format!("{}: {e}", self.describe()))
        })
    }

    pub fn provider_key(&self) -> String {
        self.spec.provider.single().map(|(k, _)| k.to_owned()).unwrap_or_default()
    }
}

/// Why an ExternalSecret cannot use a store right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub reason: String,
    pub message: String,
}

impl Blocked {
    pub fn new(reason: &str, message: String) -> Self {
        Self { reason: reason.to_owned(), message }
    }
}

/// What an ExternalSecret gets when it asks for a store.
pub enum StoreUse {
    Usable(ResolvedStore),
    /// The store belongs to another controller class: leave the ExternalSecret alone.
    OtherClass,
    Blocked(Blocked),
}

/// Finds the store and checks class, ClusterSecretStore conditions and readiness.
pub fn use_store(ctx: &Context, key: &StoreKey, consumer: &str) -> StoreUse {
    if key.kind == StoreKind::ClusterSecretStore
        && let Some(watched) = &ctx.namespace
    {
        return StoreUse::Blocked(Blocked::new(
            "StoreNotAllowed",
            format!("ClusterSecretStore {:?} cannot be used: the engine watches only namespace {watched:?} (--namespace), not cluster-scoped stores", key.name),
        ));
    }
    let found = match key.kind {
        StoreKind::SecretStore => ctx
            .stores
            .get(&ObjectRef::new(&key.name).within(key.namespace.as_deref().unwrap_or(consumer)))
            .map(|s| ResolvedStore::from_namespaced(&s)),
        StoreKind::ClusterSecretStore => ctx.cluster_stores.get(&ObjectRef::new(&key.name)).map(|s| ResolvedStore::from_cluster(&s)),
    };
    let Some(store) = found else {
        return StoreUse::Blocked(Blocked::new(
            "StoreNotFound",
            format!("{} {:?} does not exist{}", key.kind.as_str(), key.name, match key.kind {
                StoreKind::SecretStore => format!(" in namespace {consumer:?}"),
                StoreKind::ClusterSecretStore => String::new(),
            }),
        ));
    };
    if !ctx.serves_class(store.spec.controller.as_deref()) {
        return StoreUse::OtherClass;
    }
    if store.kind == StoreKind::ClusterSecretStore && !store.spec.conditions.is_empty() {
        let namespace = ctx.namespaces.get(&ObjectRef::<Namespace>::new(consumer)).map(|n| (*n).clone()).unwrap_or_else(|| Namespace {
            metadata: kube::api::ObjectMeta { name: Some(consumer.to_owned()), ..Default::default() },
            ..Default::default()
        });
        match lockstep_sync::namespaces::store_allows_namespace(&store.spec.conditions, &namespace) {
            Ok(true) => {}
            Ok(false) => {
                return StoreUse::Blocked(Blocked::new(
                    "StoreNotAllowed",
                    format!("using cluster store {:?} is not allowed from namespace {consumer:?}: denied by spec.conditions", store.name),
                ));
            }
            Err(e) => return StoreUse::Blocked(Blocked::new("InvalidStoreConfiguration", format!("{}: {e}", store.describe()))),
        }
    }
    let ready = store.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => StoreUse::Usable(store),
        // A refused credential reference is the same refusal whether the store's
        // validation or a fetch met it first: one reason for both.
        Some(c) => StoreUse::Blocked(Blocked::new(
            if c.reason.as_deref() == Some(CAPABILITY_DENIED) { CAPABILITY_DENIED } else { "StoreNotReady" },
            format!("{} is not ready: {}", store.describe(), c.message.clone().unwrap_or_default()),
        )),
        None => StoreUse::Blocked(Blocked::new("StoreNotReady", format!("{} has not been validated yet", store.describe()))),
    }
}

/// A plugin's error as the scheduler and conditions use it.
pub fn provider_error(e: wit::ProviderError) -> FetchError {
    use wit::ProviderError as P;
    let message = lockstep_plugin_host::describe(&e);
    match e {
        P::NotFound(_) | P::Internal(_) => FetchError::Internal(message),
        P::Unauthorized(_) => FetchError::Unauthorized(message),
        P::Forbidden(_) => FetchError::Forbidden(message),
        P::Throttled(t) => FetchError::Throttled { retry_after: Duration::from_millis(t.retry_after_ms.unwrap_or(1000)), message },
        P::InvalidConfig(_) => FetchError::InvalidConfig(message),
        P::Denied(_) => FetchError::Denied(message),
        P::Unavailable(_) => FetchError::Unavailable(message),
    }
}

/// The store's own re-validation period.
fn refresh_interval(ctx: &Context, spec: &SecretStoreSpec) -> Result<Duration, String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match &spec.refresh_interval {
        None => Ok(ctx.store_requeue_interval),
        Some(IntOrString::Int(n)) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
        Some(IntOrString::Int(n)) => Err(format!("spec.refreshInterval {n} is negative")),
        Some(IntOrString::String(s)) => duration::parse(s).map_err(|e| format!("spec.refreshInterval: {e}")),
    }
}

/// Validates a store through its plugin; Ready carries the plugin's real answer.
async fn validate(ctx: &Context, store: &ResolvedStore) -> Ready {
    if store.kind == StoreKind::ClusterSecretStore
        && let Err(e) = lockstep_sync::namespaces::validate_store_conditions(&store.spec.conditions)
    {
        return Ready::failed("InvalidStoreConfiguration", e.to_string());
    }
    let bound = match store.bind(ctx, None) {
        Ok(b) => b,
        Err(b) => return Ready::failed(&b.reason, b.message),
    };
    let provider = store.provider_key();
    let result = bound.validate().await;
    let status = match &result {
        Ok(_) => crate::metrics::CallStatus::Success,
        Err(wit::ProviderError::Throttled(_)) => crate::metrics::CallStatus::Throttled,
        Err(_) => crate::metrics::CallStatus::Error,
    };
    ctx.metrics
        .provider_calls
        .get_or_create(&crate::metrics::ProviderCallLabels { provider, call: crate::metrics::Call::Validate, status })
        .inc();
    match result {
        Ok(wit::Validation::Ready) => Ready::ok("Valid", "store validated"),
        Ok(wit::Validation::Unknown) => Ready::ok("ValidationUnknown", "could not determine validation status"),
        Err(e) => {
            let e = provider_error(e);
            Ready::failed(if matches!(e, FetchError::InvalidConfig(_)) { "InvalidProviderConfig" } else { e.reason() }, e.to_string())
        }
    }
}

pub async fn reconcile_store(store: Arc<SecretStore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let resolved = ResolvedStore::from_namespaced(&store);
    let api = Api::<SecretStore>::namespaced(ctx.client.clone(), &store.namespace().unwrap_or_default());
    reconcile_any(&*store, api, resolved, &ctx, |ready| Metrics::set_condition(&ctx.metrics.store_condition, &store.name_any(), &store.namespace().unwrap_or_default(), ready)).await
}

pub async fn reconcile_cluster_store(store: Arc<ClusterSecretStore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let resolved = ResolvedStore::from_cluster(&store);
    let api = Api::<ClusterSecretStore>::all(ctx.client.clone());
    reconcile_any(&*store, api, resolved, &ctx, |ready| Metrics::set_condition(&ctx.metrics.cluster_store_condition, &store.name_any(), "", ready)).await
}

async fn reconcile_any<K>(obj: &K, api: Api<K>, store: ResolvedStore, ctx: &Context, gauge: impl Fn(&str)) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !ctx.gate.is_open() {
        return Ok(Action::await_change());
    }
    if !ctx.serves_class(store.spec.controller.as_deref()) {
        return Ok(Action::await_change());
    }
    let interval = refresh_interval(ctx, &store.spec);
    let ready = match &interval {
        Err(message) => Ready::failed("InvalidStoreConfiguration", message.clone()),
        Ok(_) => validate(ctx, &store).await,
    };
    gauge(ready.status_str());
    let conditions = store.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    if !ready.is_current(&conditions) {
        let status = SecretStoreStatus { conditions: ready.apply_to(&conditions), capabilities: Some("ReadOnly".into()) };
        let patch = json!({
            "apiVersion": format!("{}/v1", lockstep_api::GROUP),
            "kind": store.kind.as_str(),
            "status": status,
        });
        api.patch_status(&store.name, &PatchParams::apply(STATUS_MANAGER).force(), &Patch::Apply(&patch)).await?;
        let (type_, reason) = if ready.status { (EventType::Normal, ready.reason.as_str()) } else { (EventType::Warning, ready.reason.as_str()) };
        ctx.event(obj, type_, reason, ready.message.clone()).await;
        tracing::info!(store = %store.describe(), ready = ready.status, reason = %ready.reason, message = %ready.message, "store condition");
    }
    // A failing store is re-validated within a minute; watches requeue it at once on a fix.
    Ok(match interval {
        Ok(d) if !d.is_zero() && !ready.status => Action::requeue(d.min(Duration::from_secs(60))),
        Ok(d) if !d.is_zero() => Action::requeue(d),
        _ => Action::await_change(),
    })
}
