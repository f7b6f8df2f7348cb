//! The ClusterExternalSecret reconciler: fans an ExternalSecret out to the selected
//! namespaces, removes it from a namespace as soon as the namespace stops matching
//! (every namespace change requeues every ClusterExternalSecret), never touches an
//! ExternalSecret it does not control, leaves no finalizer on namespaces, and sums up
//! its ExternalSecrets in one condition.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use lockstep_api::{
    types::{ClusterExternalSecretNamespaceFailure, ClusterExternalSecretStatus},
    v1::{ClusterExternalSecret, ExternalSecret},
};
use lockstep_sync::namespaces::{ces_external_secret, ces_external_secret_name, ces_namespaces};
use serde_json::json;

use crate::{
    Error,
    conditions::Ready,
    context::{Context, STATUS_MANAGER},
    duration,
    externalsecret::remove_finalizers,
    metrics::Metrics,
};

/// ESO's finalizer on the ClusterExternalSecret itself.
pub const ESO_CES_FINALIZER: &str = "externalsecrets.external-secrets.io/clusterexternalsecret-cleanup";
/// ESO's per-CES finalizer on namespaces (`...ces-<name>`).
pub const ESO_NAMESPACE_FINALIZER_PREFIX: &str = "externalsecrets.external-secrets.io/ces-";

const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

pub async fn reconcile(ces: Arc<ClusterExternalSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.gate.is_open() {
        return Ok(Action::await_change());
    }
    let name = ces.name_any();
    let es_name = ces_external_secret_name(&ces);
    let uid = ces.uid().unwrap_or_default();
    let all_namespaces: Vec<Namespace> = ctx.namespaces.state().iter().map(|n| (**n).clone()).collect();

    // ESO's namespace finalizer for this CES is never needed by Lockstep: drop it (ESO #6677).
    let ns_finalizer = format!("{ESO_NAMESPACE_FINALIZER_PREFIX}{name}");
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in all_namespaces.iter().filter(|n| n.finalizers().contains(&ns_finalizer)) {
        remove_finalizers(&ns_api, ns, |f| f == ns_finalizer).await?;
    }

    if ces.metadata.deletion_timestamp.is_some() {
        // Children go with the CES through their ownerReference; ESO's finalizer must not block.
        remove_finalizers(&Api::<ClusterExternalSecret>::all(ctx.client.clone()), &*ces, |f| f == ESO_CES_FINALIZER).await?;
        Metrics::forget_condition(&ctx.metrics.ces_condition, &name, "");
        return Ok(Action::await_change());
    }

    // Coexistence: a ClusterExternalSecret whose ClusterSecretStore belongs to another
    // controller class is that controller's to fan out (ESO fans out regardless).
    if let Some(store_ref) = &ces.spec.external_secret_spec.secret_store_ref
        && store_ref.kind() == lockstep_api::types::StoreKind::ClusterSecretStore
        && let Some(store) = ctx.cluster_stores.get(&ObjectRef::new(&store_ref.name))
        && !ctx.serves_class(store.spec.controller.as_deref())
    {
        return Ok(Action::await_change());
    }

    let selected = match ces_namespaces(&ces, &all_namespaces) {
        Ok(s) => s,
        Err(e) => {
            let ready = Ready::failed("InvalidSpec", e.to_string());
            write_status(&ces, &ctx, &ready, Vec::new(), Vec::new(), &es_name).await?;
            return Ok(Action::await_change());
        }
    };
    let selected: BTreeSet<String> = selected.into_iter().collect();
    let status = ces.status.clone().unwrap_or_default();

    // Renamed children and namespaces that stopped matching: delete what we control.
    let previous_name = status.external_secret_name.clone().unwrap_or_else(|| es_name.clone());
    for ns in &status.provisioned_namespaces {
        if previous_name != es_name || !selected.contains(ns) {
            delete_if_controlled(&ctx, ns, &previous_name, &uid).await?;
        }
    }

    let mut provisioned = Vec::new();
    let mut failed = Vec::new();
    for ns in &selected {
        let terminating = ctx
            .namespaces
            .get(&ObjectRef::new(ns))
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some() || n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"));
        if terminating {
            continue;
        }
        let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), ns);
        let mut desired = ces_external_secret(&ces, ns);
        // Children are read from the watch cache: this runs on every change of any child,
        // and a GET per namespace would make a fan-out over N namespaces cost N² reads.
        // A child the cache does not have yet shows up as a create conflict: read it then.
        let mut child = ctx.external_secrets.get(&ObjectRef::new(&es_name).within(ns)).map(|c| (*c).clone());
        if child.is_none() {
            match api.create(&PostParams::default(), &desired).await {
                Ok(_) => {
                    provisioned.push(ns.clone());
                    continue;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => child = api.get_opt(&es_name).await?,
                Err(e) => return Err(e.into()),
            }
        }
        match child {
            Some(existing) if !controlled_by_uid(&existing, &uid) => {
                failed.push(ClusterExternalSecretNamespaceFailure {
                    namespace: ns.clone(),
                    reason: Some(format!("external secret {es_name:?} already exists in namespace and is not controlled by this ClusterExternalSecret")),
                });
                continue;
            }
            Some(existing) => {
                let unchanged = existing.spec == desired.spec
                    && existing.metadata.labels == desired.metadata.labels
                    && existing.metadata.annotations == desired.metadata.annotations
                    && existing.metadata.owner_references == desired.metadata.owner_references;
                if !unchanged {
                    desired.metadata.resource_version = existing.metadata.resource_version.clone();
                    desired.metadata.finalizers = existing.metadata.finalizers.clone();
                    api.replace(&es_name, &PostParams::default(), &desired).await?;
                }
            }
            // Deleted between the conflict and the read: the next change of it comes back here.
            None => continue,
        }
        provisioned.push(ns.clone());
    }

    // Sum up the children: how many fail, and the first failing one with its reason.
    let mut failing = Vec::new();
    for ns in &provisioned {
        let child = ctx.external_secrets.get(&ObjectRef::new(&es_name).within(ns));
        let ready = child.as_ref().and_then(|c| c.status.as_ref()).and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
        match ready {
            Some(c) if c.status == "True" => {}
            Some(c) => failing.push(format!("{ns}: {}: {}", c.reason.unwrap_or_default(), c.message.unwrap_or_default())),
            None => failing.push(format!("{ns}: not synced yet")),
        }
    }
    let total = provisioned.len();
    let ready = if !failed.is_empty() {
        Ready::failed(
            "NamespacesFailed",
            format!("{} namespace(s) failed; first: {}: {}", failed.len(), failed[0].namespace, failed[0].reason.clone().unwrap_or_default()),
        )
    } else if let Some(first) = failing.first() {
        Ready::failed("ExternalSecretsNotReady", format!("{} of {total} ExternalSecrets not ready; first: {first}", failing.len()))
    } else {
        Ready::ok("AllReady", format!("{total} ExternalSecret(s) ready"))
    };
    Metrics::set_condition(&ctx.metrics.ces_condition, &name, "", ready.status_str());
    let was_ready = status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True");
    if was_ready != Some(ready.status) && !ready.status {
        ctx.event(&*ces, EventType::Warning, &ready.reason, ready.message.clone()).await;
    }
    write_status(&ces, &ctx, &ready, provisioned, failed, &es_name).await?;

    let refresh = ces.spec.refresh_time.as_deref().and_then(|s| duration::parse(s).ok()).filter(|d| !d.is_zero()).unwrap_or(DEFAULT_REFRESH);
    Ok(Action::requeue(refresh))
}

pub fn error_policy(_ces: Arc<ClusterExternalSecret>, error: &Error, _ctx: Arc<Context>) -> Action {
    if error.is_not_leader() {
        return Action::await_change();
    }
    tracing::warn!(%error, "ClusterExternalSecret reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn controlled_by_uid(es: &ExternalSecret, uid: &str) -> bool {
    es.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid)
}

async fn delete_if_controlled(ctx: &Context, ns: &str, name: &str, uid: &str) -> Result<(), kube::Error> {
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(es) = api.get_opt(name).await?
        && controlled_by_uid(&es, uid)
    {
        api.delete(name, &DeleteParams::default()).await?;
        tracing::info!(namespace = ns, name, "removed ExternalSecret from a namespace that no longer matches");
    }
    Ok(())
}

async fn write_status(
    ces: &ClusterExternalSecret,
    ctx: &Context,
    ready: &Ready,
    provisioned: Vec<String>,
    failed: Vec<ClusterExternalSecretNamespaceFailure>,
    es_name: &str,
) -> Result<(), kube::Error> {
    let current = ces.status.clone().unwrap_or_default();
    let status = ClusterExternalSecretStatus {
        external_secret_name: Some(es_name.to_owned()),
        failed_namespaces: failed,
        provisioned_namespaces: provisioned,
        conditions: ready.apply_to(&current.conditions),
    };
    if ready.is_current(&current.conditions)
        && current.provisioned_namespaces == status.provisioned_namespaces
        && current.failed_namespaces == status.failed_namespaces
        && current.external_secret_name == status.external_secret_name
    {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": format!("{}/v1", lockstep_api::GROUP),
        "kind": "ClusterExternalSecret",
        "status": status,
    });
    Api::<ClusterExternalSecret>::all(ctx.client.clone())
        .patch_status(&ces.name_any(), &PatchParams::apply(STATUS_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}
