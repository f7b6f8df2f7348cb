//! The ExternalSecret reconciler: ESO's semantics (eso.md §2), with its faults fixed —
//! spec, label and annotation changes always resync (also at `refreshInterval: 0`),
//! the condition message carries the real error, and nothing is ever deleted or
//! blanked because of an error.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::{OwnerReference, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{controller::Action, events::EventType},
};
use lockstep_api::{
    types::{CreationPolicy, ExternalSecretStatus, RefreshPolicy, SecretBinding},
    v1::ExternalSecret,
};
use lockstep_plugin_host::wit;
use lockstep_sync::{
    Call, EmptyDataOutcome, FetchResult, SecretSource, TemplateObjectKind, TemplateObjects,
    hash::{DATA_HASH_ANNOTATION, FORCE_SYNC_ANNOTATIONS, MANAGED_LABEL, data_hash, field_manager, synced_resource_version},
};
use serde_json::json;
use tokio::time::Instant;

use crate::{
    Error,
    conditions::Ready,
    context::{Answer, Context, STATUS_MANAGER},
    duration,
    fetch::{FetchError, FetchKey, Urgency},
    metrics::{Call as CallLabel, CallStatus, Metrics, ObjectLabels, ProviderCallLabels, ProviderLabels},
    stores::{StoreUse, provider_error, use_store},
};

/// ESO's cleanup finalizer; Lockstep adds none, and removes ESO's so objects still
/// delete once ESO is gone.
pub const ESO_ES_FINALIZER: &str = "externalsecrets.external-secrets.io/externalsecret-cleanup";

const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// Re-check of an ExternalSecret blocked on something that is not watched.
const BLOCKED_RECHECK: Duration = Duration::from_secs(60);

pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.gate.is_open() {
        // Standby: the acquisition of the lease reconciles everything again.
        return Ok(Action::await_change());
    }
    let ns = es.namespace().unwrap_or_default();
    let name = es.name_any();
    if es.metadata.deletion_timestamp.is_some() {
        return finalize(&es, &ctx, &ns).await;
    }
    let labels = ObjectLabels { name: name.clone(), namespace: ns.clone() };
    let outcome = sync(&es, &ctx, &ns).await;
    let (ready, action, synced) = match outcome {
        Ok(o) => o,
        Err(SyncFailure::Kube(e)) => return Err(e.into()),
        Err(SyncFailure::Condition { ready, retry }) => {
            if ready.is_current(es.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()) {
                tracing::debug!(es = %format!("{ns}/{name}"), reason = %ready.reason, "still failing");
            } else {
                tracing::warn!(es = %format!("{ns}/{name}"), reason = %ready.reason, message = %ready.message, "sync failed");
                // ESO's reason; the condition's reason as the action keeps each cause's note.
                ctx.event_as(&*es, EventType::Warning, "UpdateFailed", &ready.reason, ready.message.clone()).await;
            }
            ctx.metrics.sync_errors.get_or_create(&labels).inc();
            (ready, retry.map_or(Action::await_change(), Action::requeue), None)
        }
        Err(SyncFailure::Skip) => return Ok(Action::await_change()),
        Err(SyncFailure::Again) => return Ok(Action::requeue(Duration::ZERO)),
    };
    ctx.metrics.saw_external_secret(&labels);
    ctx.metrics.sync_calls.get_or_create(&labels).inc();
    Metrics::set_condition(&ctx.metrics.es_condition, &name, &ns, ready.status_str());
    write_status(&es, &ctx, &ready, synced).await?;
    Ok(action)
}

pub fn error_policy(_es: Arc<ExternalSecret>, error: &Error, _ctx: Arc<Context>) -> Action {
    if error.is_not_leader() {
        return Action::await_change();
    }
    tracing::warn!(%error, "ExternalSecret reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// What a successful sync records in status.
struct Synced {
    refresh_time: Timestamp,
    target: String,
}

enum SyncFailure {
    /// Publish this condition; retry after this long (None: wait for a change).
    Condition { ready: Ready, retry: Option<Duration> },
    Kube(kube::Error),
    /// Not ours (another controller class).
    Skip,
    /// Start over at once (an optimistic create met an existing Secret).
    Again,
}

impl From<kube::Error> for SyncFailure {
    fn from(e: kube::Error) -> Self {
        SyncFailure::Kube(e)
    }
}

fn failed(reason: &str, message: impl Into<String>, retry: Option<Duration>) -> SyncFailure {
    SyncFailure::Condition { ready: Ready::failed(reason, message), retry }
}

fn refresh_interval(es: &ExternalSecret) -> Result<Duration, SyncFailure> {
    match es.spec.refresh_interval.as_deref() {
        None => Ok(DEFAULT_REFRESH),
        Some(s) if s.starts_with('-') => Ok(Duration::ZERO),
        Some(s) => duration::parse(s).map_err(|e| failed("InvalidSpec", format!("spec.refreshInterval: {e}"), None)),
    }
}

async fn sync(es: &ExternalSecret, ctx: &Context, ns: &str) -> Result<(Ready, Action, Option<Synced>), SyncFailure> {
    let started = Timestamp::now();
    let spec = &es.spec;
    let plan = lockstep_sync::plan(spec, ns).map_err(|e| {
        let reason = if matches!(e, lockstep_sync::SyncError::Unsupported { .. }) { "Unsupported" } else { "InvalidSpec" };
        failed(reason, e.to_string(), None)
    })?;
    let interval = refresh_interval(es)?;

    // Stores: class first (another class's ExternalSecret is left alone), then conditions and readiness.
    let mut stores = BTreeMap::new();
    for key in plan.stores() {
        match use_store(ctx, key, ns) {
            StoreUse::Usable(store) => {
                stores.insert(key.clone(), store);
            }
            StoreUse::OtherClass => return Err(SyncFailure::Skip),
            // Stores are watched: creating or fixing one requeues this object at once.
            StoreUse::Blocked(b) => return Err(failed(&b.reason, b.message, Some(BLOCKED_RECHECK))),
        }
    }

    let target_name = lockstep_sync::target_name(&es.name_any(), spec);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // The watch echo of our own successful status write: the Secret was valid then, and
    // an edit or delete of it since would have its own event; read it only if due.
    let synced_echo = ctx.own_writes.is_synced_status_echo(es);
    let target = spec.target.clone().unwrap_or_default();
    let creation = target.creation_policy();
    let status = es.status.clone().unwrap_or_default();
    let never_synced = status.refresh_time.is_none() || status.synced_resource_version.is_none();
    // A new ExternalSecret that owns its target usually finds no Secret: create without
    // reading first (a cold start of N objects saves N GETs); a conflict starts over with a read.
    let optimistic = never_synced
        && matches!(creation, CreationPolicy::Owner | CreationPolicy::Orphan)
        && !es.uid().is_some_and(|uid| ctx.own_writes.take_create_conflict(&uid));
    let mut existing = if synced_echo || optimistic { None } else { secrets.get_opt(&target_name).await? };

    // Due? ESO's rules, except that a spec or metadata change always resyncs.
    let current_version = synced_resource_version(
        es.metadata.generation.unwrap_or(0),
        &es.labels().clone(),
        &es.annotations().clone(),
    );
    let changed = status.synced_resource_version.as_deref() != Some(current_version.as_str());
    let secret_valid = synced_echo || match creation {
        CreationPolicy::Orphan | CreationPolicy::None => true,
        _ => existing.as_ref().is_some_and(secret_is_valid),
    };
    let schedule_key = plan.fetches.first().map(|f| fetch_key(&stores[&f.store], ns, &f.call));
    let policy = spec.refresh_policy.unwrap_or_default();
    let periodic = matches!(policy, RefreshPolicy::Periodic) && !interval.is_zero();
    // CreatedOnce: written once, never refreshed — not even on a spec change (ESO's
    // meaning); only a missing or tampered Secret is written again.
    let spec_resync = changed && policy != RefreshPolicy::CreatedOnce;
    let window_start = schedule_key.as_ref().map(|k| k.window_start(interval, SystemTime::now()));
    // A refresh that changed nothing is remembered here, not written to status.
    let last_refresh = status.refresh_time.as_ref().map(|t| SystemTime::from(t.0)).max(es.uid().and_then(|uid| ctx.own_writes.quiet_refresh(&uid)));
    // refreshTime is stored in whole seconds: compare at that precision, or the status
    // write of this very refresh looks due again (a second GET and status write per cycle).
    let periodic_due = periodic && matches!((last_refresh, window_start), (Some(last), Some(start)) if last < whole_seconds(start));
    let urgency = if never_synced || spec_resync || !secret_valid {
        let forced = spec_resync && FORCE_SYNC_ANNOTATIONS.iter().any(|a| es.annotations().contains_key(*a));
        Some(if forced { Urgency::Fresh } else { Urgency::Interactive })
    } else if periodic_due {
        Some(Urgency::Periodic)
    } else {
        None
    };
    let next_refresh = if periodic {
        schedule_key.as_ref().map(|k| {
            k.next_due(interval, SystemTime::now()).duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50)
        })
    } else {
        None
    };
    let requeue = |d: Option<Duration>| d.map_or(Action::await_change(), Action::requeue);
    let Some(urgency) = urgency else {
        // Nothing to do: keep the current condition, come back when the key is due.
        let ready = current_ready(&status).unwrap_or_else(|| Ready::ok("SecretSynced", "secret synced"));
        return Ok((ready, requeue(next_refresh), None));
    };
    if synced_echo {
        existing = secrets.get_opt(&target_name).await?;
    }

    // Fetch, one provider call per key per window.
    let mut results = Vec::with_capacity(plan.fetches.len());
    for fetch in &plan.fetches {
        let store = &stores[&fetch.store];
        let bound = store.bind(ctx, Some(ns)).map_err(|b| failed(&b.reason, b.message, Some(BLOCKED_RECHECK)))?;
        let key = fetch_key_bound(store, &bound, &fetch.call);
        let provider = store.provider_key();
        let call = fetch.call.clone();
        let metrics = ctx.metrics.clone();
        let provider_for_call = provider.clone();
        let fetched = ctx
            .scheduler
            .fetch(&key, interval, urgency, || async move {
                let (label, result) = call_provider(&bound, &call).await;
                let status = match &result {
                    Ok(Answer(FetchResult::NotFound)) => CallStatus::NotFound,
                    Ok(_) => CallStatus::Success,
                    Err(FetchError::Throttled { .. }) => CallStatus::Throttled,
                    Err(_) => CallStatus::Error,
                };
                metrics.provider_calls.get_or_create(&ProviderCallLabels { provider: provider_for_call, call: label, status }).inc();
                result
            })
            .await;
        if fetched.deduplicated {
            ctx.metrics.dedupe_hits.get_or_create(&ProviderLabels { provider }).inc();
        }
        match fetched.result {
            Ok(answer) => results.push(answer.0.clone()),
            Err(error) => {
                let retry = fetched.retry_at.map(|at| at.saturating_duration_since(Instant::now()).max(Duration::from_millis(200)));
                return Err(failed(
                    error.reason(),
                    format!("could not get secret data from provider: {}: {error}", store.describe()),
                    retry.or(Some(BLOCKED_RECHECK)),
                ));
            }
        }
    }
    ctx.metrics.fetch_cache_bytes.set(ctx.scheduler.cached_bytes() as i64);

    let provider_data = lockstep_sync::resolve(spec, &plan, &results, &ctx.renderer)
        .map_err(|e| failed("SecretSyncedError", redact(format!("could not process provider data: {e}"), fetched_values(&results)), None))?;
    for missing in &provider_data.missing {
        let key = missing.remote_key.as_deref().map(|k| format!(" (key={k})")).unwrap_or_default();
        ctx.event(es, EventType::Normal, "MissingProviderSecret", format!("secret does not exist at provider using {}{key}", missing.source)).await;
    }

    if provider_data.data.is_empty() {
        match lockstep_sync::on_empty_data(spec) {
            EmptyDataOutcome::DeleteSecret => {
                if let Some(secret) = &existing
                    && controlled_by(secret, es)
                {
                    secrets.delete(&target_name, &DeleteParams::default()).await?;
                    ctx.event(es, EventType::Normal, "Deleted", "secret deleted due to DeletionPolicy=Delete".into()).await;
                }
                let ready = Ready::ok("SecretDeleted", "secret deleted due to DeletionPolicy=Delete");
                return Ok((ready, requeue(next_refresh), Some(Synced { refresh_time: started, target: target_name })));
            }
            EmptyDataOutcome::DeleteRefused { creation_policy } => {
                return Err(failed(
                    "SecretSyncedError",
                    format!("unable to delete secret {target_name}: creationPolicy={creation_policy:?} is not Owner"),
                    None,
                ));
            }
            EmptyDataOutcome::RetainSecret => {
                let ready = Ready::ok("SecretSynced", "secret retained due to DeletionPolicy=Retain");
                return Ok((ready, requeue(next_refresh), Some(Synced { refresh_time: started, target: target_name })));
            }
            EmptyDataOutcome::Continue => {}
        }
    }

    // Template objects live in the ExternalSecret's namespace.
    let mut objects = TemplateObjects::default();
    for (kind, obj_name) in lockstep_sync::template_objects(spec) {
        match kind {
            TemplateObjectKind::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
                if let Some(cm) = api.get_opt(&obj_name).await? {
                    objects.config_maps.insert(obj_name, cm.data.unwrap_or_default());
                }
            }
            TemplateObjectKind::Secret => {
                if let Some(s) = secrets.get_opt(&obj_name).await? {
                    objects.secrets.insert(obj_name, s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect());
                }
            }
        }
    }

    let manager = field_manager(&es.name_any());
    let owned = existing.as_ref().map(|s| owned_fields(s, &manager)).unwrap_or_default();
    let foreign_data: Option<BTreeMap<String, Vec<u8>>> = existing.as_ref().map(|s| {
        s.data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !owned.data.contains(k))
            .map(|(k, v)| (k, v.0))
            .collect()
    });
    let source = SecretSource {
        name: &es.name_any(),
        namespace: ns,
        labels: &es.labels().clone(),
        annotations: &es.annotations().clone(),
        spec,
        syntax: Default::default(),
    };
    let desired = lockstep_sync::desired_secret(&source, &provider_data.data, &objects, foreign_data.as_ref(), &ctx.renderer)
        .map_err(|e| {
            // A template may echo a value into its error (`{{ fail .password }}`).
            let values = fetched_values(&results)
                .chain(provider_data.data.values().map(Vec::as_slice))
                .chain(objects.secrets.values().flat_map(|m| m.values().map(Vec::as_slice)))
                .chain(foreign_data.iter().flat_map(|m| m.values().map(Vec::as_slice)));
            failed("SecretSyncedError", redact(format!("could not build the secret: {e}"), values), None)
        })?;

    let mut wrote = false;
    let done = |reason: &str, message: &str, wrote: bool| {
        let ready = Ready::ok(reason, message);
        let bound = status.binding.as_ref().is_some_and(|b| b.name == target_name);
        // Nothing changed: no status write (ESO moves refreshTime on every refresh; at
        // N objects that is N writes per interval for nothing). The next due time is kept in memory.
        if !wrote
            && !never_synced
            && !changed
            && bound
            && ready.is_current(&status.conditions)
            && let Some(uid) = es.uid()
        {
            ctx.own_writes.record_quiet_refresh(uid, SystemTime::from(started));
            return Ok((ready, requeue(next_refresh), None));
        }
        Ok((ready, requeue(next_refresh), Some(Synced { refresh_time: started, target: target_name.clone() })))
    };
    match (creation, &existing) {
        (CreationPolicy::None, _) => return done("SecretSynced", "secret synced", false),
        (CreationPolicy::Merge, None) => return done("SecretMissing", "secret will not be created due to CreationPolicy=Merge", false),
        _ => {}
    }

    let owner = owner_reference(es);
    let mut immutable_kept = false;
    match existing {
        None => {
            let secret = build_secret(None, &desired, owner.as_ref(), &owned)?;
            let created = match secrets.create(&PostParams { field_manager: Some(manager), ..Default::default() }, &secret).await {
                Err(kube::Error::Api(e)) if e.code == 409 && optimistic => {
                    if let Some(uid) = es.uid() {
                        ctx.own_writes.record_create_conflict(uid);
                    }
                    return Err(SyncFailure::Again);
                }
                other => other?,
            };
            ctx.own_writes.record(&created);
            wrote = true;
            ctx.event(es, EventType::Normal, "Created", "secret created".into()).await;
        }
        Some(current) => {
            let mut wanted = build_secret(Some(&current), &desired, owner.as_ref(), &owned)?;
            if target.immutable.unwrap_or(false) || current.immutable == Some(true) {
                let data_changes = wanted.data != current.data || wanted.type_ != current.type_;
                if current.immutable == Some(true) && data_changes && !target.immutable.unwrap_or(false) {
                    return Err(failed("SecretSyncedError", "could not update secret, target is immutable", None));
                }
                // An immutable target keeps its data; only metadata is refreshed.
                immutable_kept = data_changes;
                wanted.data = current.data.clone();
                wanted.type_ = current.type_.clone();
                if let Some(hash) = current.annotations().get(DATA_HASH_ANNOTATION) {
                    wanted.annotations_mut().insert(DATA_HASH_ANNOTATION.into(), hash.clone());
                }
            }
            if !same_secret(&current, &wanted) {
                let replaced = secrets.replace(&target_name, &PostParams { field_manager: Some(manager), ..Default::default() }, &wanted).await?;
                ctx.own_writes.record(&replaced);
                wrote = true;
                ctx.event(es, EventType::Normal, "Updated", "secret updated".into()).await;
            }
        }
    }
    if creation == CreationPolicy::Owner
        && let Some(previous) = status.binding.as_ref().map(|b| b.name.as_str()).filter(|p| !p.is_empty() && *p != target_name)
    {
        delete_orphan(es, ctx, &secrets, previous).await?;
        wrote = true;
    }
    if immutable_kept {
        // ESO silently keeps the old data; say so, once per change of condition.
        if current_ready(&status).is_none_or(|r| r.reason != IMMUTABLE_REASON) {
            ctx.event(es, EventType::Warning, "ImmutableTarget", IMMUTABLE_MESSAGE.into()).await;
        }
        return done(IMMUTABLE_REASON, IMMUTABLE_MESSAGE, wrote);
    }
    done("SecretSynced", "secret synced", wrote)
}

/// Ready=True (the Secret exists as requested) with a reason that says it is stale.
const IMMUTABLE_REASON: &str = "SecretImmutable";
const IMMUTABLE_MESSAGE: &str =
    "provider data changed, but the target Secret is immutable and keeps its data; delete the Secret to write the new data";

/// `target.name` changed (creationPolicy Owner): the Secret this ExternalSecret wrote
/// before goes, but only if this ExternalSecret controls it (ESO's orphan cleanup).
async fn delete_orphan(es: &ExternalSecret, ctx: &Context, secrets: &Api<Secret>, previous: &str) -> Result<(), SyncFailure> {
    if let Some(old) = secrets.get_opt(previous).await?
        && controlled_by(&old, es)
    {
        secrets.delete(previous, &DeleteParams::default()).await?;
        ctx.event(es, EventType::Normal, "Deleted", format!("secret {previous} deleted because it was orphaned (target.name changed)")).await;
    }
    Ok(())
}

/// `t` truncated to the second, the precision of `status.refreshTime`.
fn whole_seconds(t: SystemTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs())
}

/// Every value a provider answered.
fn fetched_values(results: &[FetchResult]) -> impl Iterator<Item = &[u8]> {
    results.iter().flat_map(|r| match r {
        FetchResult::Value(v) => vec![v.as_slice()],
        FetchResult::Map(m) => m.values().map(Vec::as_slice).collect(),
        FetchResult::NotFound => Vec::new(),
    })
}

/// Values shorter than this are not masked: they cannot be told apart from ordinary
/// words of an error message, and masking them would garble it.
const REDACT_MIN_LEN: usize = 4;

/// `message` with every occurrence of a secret value replaced, so an error that echoes
/// one never reaches a condition, an event or a log.
fn redact<'a>(mut message: String, values: impl Iterator<Item = &'a [u8]>) -> String {
    let mut values: Vec<&str> = values.filter(|v| v.len() >= REDACT_MIN_LEN).filter_map(|v| std::str::from_utf8(v).ok()).collect();
    // Longest first, so a value containing another is masked whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        if message.contains(v) {
            message = message.replace(v, "[redacted]");
        }
    }
    message
}

fn current_ready(status: &ExternalSecretStatus) -> Option<Ready> {
    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some(Ready {
        status: c.status == "True",
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
    })
}

/// ESO's validity: managed label present and data-hash matching the data.
fn secret_is_valid(secret: &Secret) -> bool {
    let data: BTreeMap<String, Vec<u8>> = secret.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    secret.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true")
        && secret.annotations().get(DATA_HASH_ANNOTATION) == Some(&data_hash(&data))
}

fn controlled_by(secret: &Secret, es: &ExternalSecret) -> bool {
    let uid = es.uid();
    secret.owner_references().iter().any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

fn owner_reference(es: &ExternalSecret) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: format!("{}/v1", lockstep_api::GROUP),
        kind: "ExternalSecret".into(),
        name: es.name_any(),
        uid: es.uid()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Keys this ExternalSecret's field manager wrote before (from managedFields).
#[derive(Default)]
struct Owned {
    data: BTreeSet<String>,
    labels: BTreeSet<String>,
    annotations: BTreeSet<String>,
}

fn owned_fields(secret: &Secret, manager: &str) -> Owned {
    let mut owned = Owned::default();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(manager) {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref().map(|f| &f.0) else { continue };
        let keys = |v: Option<&serde_json::Value>| -> BTreeSet<String> {
            v.and_then(|v| v.as_object())
                .map(|o| o.keys().filter_map(|k| k.strip_prefix("f:")).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        owned.data.extend(keys(fields.get("f:data")));
        let meta = fields.get("f:metadata");
        owned.labels.extend(keys(meta.and_then(|m| m.get("f:labels"))));
        owned.annotations.extend(keys(meta.and_then(|m| m.get("f:annotations"))));
    }
    owned
}

/// The Secret to write: foreign labels, annotations and keys kept (ESO keeps them),
/// what this ExternalSecret wrote before and no longer wants removed.
fn build_secret(current: Option<&Secret>, desired: &lockstep_sync::DesiredSecret, owner: Option<&OwnerReference>, owned: &Owned) -> Result<Secret, SyncFailure> {
    let mut secret = current.cloned().unwrap_or_else(|| Secret {
        metadata: ObjectMeta { name: Some(desired.name.clone()), namespace: Some(desired.namespace.clone()), ..Default::default() },
        ..Default::default()
    });
    secret.metadata.managed_fields = None;
    let mut labels = secret.metadata.labels.take().unwrap_or_default();
    labels.retain(|k, _| !owned.labels.contains(k));
    labels.extend(desired.labels.clone());
    if !desired.owned {
        labels.remove(lockstep_sync::hash::CREATED_BY_LABEL);
    }
    secret.metadata.labels = Some(labels);
    let mut annotations = secret.metadata.annotations.take().unwrap_or_default();
    annotations.retain(|k, _| !owned.annotations.contains(k));
    annotations.extend(desired.annotations.clone());
    secret.metadata.annotations = Some(annotations);
    let mut finalizers = secret.metadata.finalizers.take().unwrap_or_default();
    for f in &desired.finalizers {
        if !finalizers.contains(f) {
            finalizers.push(f.clone());
        }
    }
    secret.metadata.finalizers = (!finalizers.is_empty()).then_some(finalizers);
    let mut refs = secret.metadata.owner_references.take().unwrap_or_default();
    if let Some(owner) = owner {
        if let Some(other) = refs.iter().find(|r| r.controller == Some(true) && r.uid != owner.uid) {
            let reason = if other.kind == "ExternalSecret" { "target is owned by another ExternalSecret" } else { "failed to take ownership of target secret" };
            return Err(failed("SecretSyncedError", format!("{reason}: {} {}", other.kind, other.name), None));
        }
        refs.retain(|r| r.uid != owner.uid);
        if desired.owned {
            refs.push(owner.clone());
        }
    }
    secret.metadata.owner_references = (!refs.is_empty()).then_some(refs);
    if let Some(t) = &desired.type_ {
        secret.type_ = Some(t.clone());
    }
    secret.data = Some(desired.data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone()))).collect());
    if desired.immutable {
        secret.immutable = Some(true);
    }
    Ok(secret)
}

fn same_secret(a: &Secret, b: &Secret) -> bool {
    let norm = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    a.data.clone().unwrap_or_default() == b.data.clone().unwrap_or_default()
        && a.type_ == b.type_
        && norm(&a.metadata.labels) == norm(&b.metadata.labels)
        && norm(&a.metadata.annotations) == norm(&b.metadata.annotations)
        && a.metadata.owner_references.clone().unwrap_or_default() == b.metadata.owner_references.clone().unwrap_or_default()
        && a.metadata.finalizers.clone().unwrap_or_default() == b.metadata.finalizers.clone().unwrap_or_default()
        && a.immutable.unwrap_or(false) == b.immutable.unwrap_or(false)
}

fn fetch_key(store: &crate::stores::ResolvedStore, ns: &str, call: &Call) -> FetchKey {
    // Scheduling phase only: the credential scope is refined once bound.
    FetchKey { store: format!("{}/{}", store.uid, store.generation), scope: ns.to_owned(), request: format!("{call:?}") }
}

fn fetch_key_bound(store: &crate::stores::ResolvedStore, bound: &lockstep_plugin_host::BoundStore, call: &Call) -> FetchKey {
    FetchKey {
        store: format!("{}/{}", store.uid, store.generation),
        scope: format!("{:?}", bound.isolation_unit().scope),
        request: format!("{call:?}"),
    }
}

async fn call_provider(bound: &lockstep_plugin_host::BoundStore, call: &Call) -> (CallLabel, Result<Answer, FetchError>) {
    let secret_ref = |r: &lockstep_sync::SecretRequest| wit::SecretRef {
        key: r.key.clone(),
        version: r.version.clone(),
        property: r.property.clone(),
        metadata_policy: match r.metadata_policy {
            lockstep_api::types::MetadataPolicy::None => wit::MetadataPolicy::None,
            lockstep_api::types::MetadataPolicy::Fetch => wit::MetadataPolicy::Fetch,
        },
    };
    let not_found = |e: &wit::ProviderError| matches!(e, wit::ProviderError::NotFound(_));
    let entries = |list: Vec<wit::SecretEntry>| FetchResult::Map(list.into_iter().map(|e| (e.key, e.value)).collect());
    match call {
        Call::GetSecret(r) => (CallLabel::GetSecret, match bound.get_secret(&secret_ref(r)).await {
            Ok(v) => Ok(Answer(FetchResult::Value(v.value))),
            Err(e) if not_found(&e) => Ok(Answer(FetchResult::NotFound)),
            Err(e) => Err(provider_error(e)),
        }),
        Call::GetSecretMap(r) => (CallLabel::GetSecretMap, match bound.get_secret_map(&secret_ref(r)).await {
            Ok(list) => Ok(Answer(entries(list))),
            Err(e) if not_found(&e) => Ok(Answer(FetchResult::NotFound)),
            Err(e) => Err(provider_error(e)),
        }),
        Call::FindSecrets(f) => {
            let request = wit::FindRequest {
                path: f.path.clone(),
                name_regexp: f.name_regexp.clone(),
                tags: f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            (CallLabel::FindSecrets, match bound.find_secrets(&request).await {
                Ok(list) => Ok(Answer(entries(list))),
                Err(e) if not_found(&e) => Ok(Answer(FetchResult::NotFound)),
                Err(e) => Err(provider_error(e)),
            })
        }
    }
}

async fn write_status(es: &ExternalSecret, ctx: &Context, ready: &Ready, synced: Option<Synced>) -> Result<(), Error> {
    let current = es.status.clone().unwrap_or_default();
    if synced.is_none() && ready.is_current(&current.conditions) {
        return Ok(());
    }
    let mut status = ExternalSecretStatus { conditions: ready.apply_to(&current.conditions), ..current };
    if let Some(s) = synced {
        status.refresh_time = Some(Time(s.refresh_time));
        status.synced_resource_version =
            Some(synced_resource_version(es.metadata.generation.unwrap_or(0), &es.labels().clone(), &es.annotations().clone()));
        status.binding = Some(SecretBinding { name: s.target });
    }
    let patch = json!({
        "apiVersion": format!("{}/v1", lockstep_api::GROUP),
        "kind": "ExternalSecret",
        "status": status,
    });
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let written = api.patch_status(&es.name_any(), &PatchParams::apply(STATUS_MANAGER).force(), &Patch::Apply(&patch)).await?;
    if ready.status && written.resource_version() != es.resource_version() {
        ctx.own_writes.record_synced_status(&written);
    }
    Ok(())
}

/// Deletion: honour deletionPolicy Delete for a Secret this ExternalSecret controls
/// (garbage collection does it too), then drop ESO's finalizer if ESO left one.
async fn finalize(es: &ExternalSecret, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let finalizers = es.finalizers();
    if !finalizers.iter().any(|f| f == ESO_ES_FINALIZER) {
        return Ok(Action::await_change());
    }
    let target = es.spec.target.clone().unwrap_or_default();
    if target.deletion_policy() == lockstep_api::types::DeletionPolicy::Delete {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let name = lockstep_sync::target_name(&es.name_any(), &es.spec);
        if let Some(secret) = secrets.get_opt(&name).await?
            && controlled_by(&secret, es)
        {
            secrets.delete(&name, &DeleteParams::default()).await?;
        }
    }
    remove_finalizers(&Api::<ExternalSecret>::namespaced(ctx.client.clone(), ns), es, |f| f == ESO_ES_FINALIZER).await?;
    ctx.metrics.forget_external_secret(&es.name_any(), ns);
    Ok(Action::await_change())
}

/// Removes matching finalizers with a JSON patch guarded by the current list.
pub async fn remove_finalizers<K>(api: &Api<K>, obj: &K, remove: impl Fn(&str) -> bool) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let current = obj.meta().finalizers.clone().unwrap_or_default();
    let kept: Vec<String> = current.iter().filter(|f| !remove(f)).cloned().collect();
    if kept.len() == current.len() {
        return Ok(());
    }
    // resourceVersion makes the patch fail on a concurrent change instead of dropping it.
    let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": obj.meta().resource_version}});
    api.patch(&obj.meta().name.clone().unwrap_or_default(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_every_echoed_value_longest_first() {
        let values: [&[u8]; 4] = [b"s3cr3t", b"s3cr3t-and-more", b"pw", b"\xff\xfe binary"];
        let message = "error calling fail: s3cr3t-and-more, then s3cr3t; pw stays".to_owned();
        let out = redact(message, values.into_iter());
        assert_eq!(out, "error calling fail: [redacted], then [redacted]; pw stays");
    }
}
