//! End-to-end tests of the ExternalSecret life cycle on the real local control plane:
//! refresh policies, force-sync, immutable targets, `refreshInterval: 0`, target
//! renames, ClusterExternalSecret ownership / status / finalizers, refusal reasons,
//! `--namespace` mode with only a Role, and the engine's requests in the apiserver's
//! audit log against `rbac/clusterrole.yaml`.
//!
//! Same engine set-up as `e2e.rs` (tests/common: a TokenRequest token of a
//! ServiceAccount bound to the ClusterRole, never admin). Each scenario has its own
//! namespaces, stores and remote keys, so scenarios run in parallel.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    core::v1::{ConfigMap, Event, Namespace, Secret, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding},
};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use lockstep_api::v1;
use lockstep_testenv::TestEnv;
use serde_json::{Value, json};

use common::{Engine, Identity, component, namespace, ready_of, suffix, wait_for};

const ID: Identity = Identity { namespace: "lockstep-lifecycle-system", service_account: "lockstep-lifecycle", tag: "lifecycle" };

static ENGINE: tokio::sync::OnceCell<Engine> = tokio::sync::OnceCell::const_new();
/// Where both in-process engines of this binary log (see `capture_logs`).
static ENGINE_LOG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

async fn engine() -> &'static Engine {
    ENGINE
        .get_or_init(|| async {
            let env = TestEnv::shared().await;
            let plugins = vec![
                ("fake".into(), component("lockstep_provider_fake")),
                ("probe".into(), component("lockstep_provider_probe")),
            ];
            let config = common::config(env, &ID, plugins).await;
            capture_logs(&config.compile_cache_dir.parent().unwrap().join("engine.log"));
            common::start(config).await
        })
        .await
}

/// Installs the global log subscriber before the engine does (its own `try_init` then
/// keeps this one): JSON lines to a file, the engine's crates at debug, so each scenario
/// can scan everything the engines logged for its secret values.
fn capture_logs(path: &std::path::Path) {
    let file = std::fs::File::create(path).expect("engine log");
    let filter = tracing_subscriber::EnvFilter::new("info,lockstep_controller=debug,lockstep_plugin_host=debug,lockstep_credentials=debug,kube=warn");
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::sync::Mutex::new(file)).try_init().expect("the first log subscriber");
    ENGINE_LOG.set(path.to_owned()).expect("logs captured once");
}

/// No value of `values` in anything the engines logged so far.
fn assert_not_logged(values: &[&str]) {
    let path = ENGINE_LOG.get().expect("engine started");
    let text = std::fs::read_to_string(path).expect("engine log");
    assert!(text.contains("controllers starting"), "the engine log at {} is not the engine's", path.display());
    for v in values {
        assert!(!text.contains(v), "the engine logged a secret value ({})", path.display());
    }
    eprintln!("log scan: {} bytes of engine logs, none of {} secret value(s)", text.len(), values.len());
}

async fn admin() -> Client {
    TestEnv::shared().await.client().await
}

/// Server-side apply as the test user (creates or replaces the fields given).
async fn apply<K>(api: &Api<K>, name: &str, doc: Value)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply("lifecycle-test").force(), &Patch::Apply(doc)).await.unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

async fn set_secret(client: &Client, ns: &str, name: &str, data: Value) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    apply(&api, name, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": data})).await;
}

async fn value_of(secrets: &Api<Secret>, name: &str, key: &str) -> Option<String> {
    let s = secrets.get_opt(name).await.ok()??;
    Some(String::from_utf8_lossy(&s.data?.get(key)?.0).into_owned())
}

async fn wait_value(secrets: &Api<Secret>, name: &str, key: &str, want: &str, timeout: Duration) -> Duration {
    wait_for(&format!("Secret {name}.{key} = {want}"), timeout, || async move { (value_of(secrets, name, key).await.as_deref() == Some(want)).then_some(()) }).await.1
}

async fn wait_ready(api: &Api<v1::ExternalSecret>, name: &str, what: &str, timeout: Duration, want: impl Fn(&(String, String, String)) -> bool) -> (String, String, String) {
    let want = &want;
    wait_for(what, timeout, || async move { ready_of(api.get(name).await.ok()?.status.as_ref()).filter(|r| want(r)) }).await.0
}

fn external_secret(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

async fn label_es(api: &Api<v1::ExternalSecret>, name: &str, key: &str, value: &str) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {key: value}}}))).await.expect("label ExternalSecret");
}

async fn synced_version(api: &Api<v1::ExternalSecret>, name: &str) -> Option<String> {
    api.get(name).await.ok()?.status?.synced_resource_version
}

/// Waits until the engine has processed the ExternalSecret's current metadata
/// (syncedResourceVersion recorded, or for a policy that skips: a few seconds).
async fn wait_synced_change(api: &Api<v1::ExternalSecret>, name: &str, before: Option<String>) {
    wait_for(&format!("{name}: the change reconciled"), Duration::from_secs(20), || {
        let before = before.clone();
        async move { synced_version(api, name).await.filter(|v| Some(v) != before.as_ref()).map(drop) }
    })
    .await;
}

/// refreshPolicy Periodic / OnChange / CreatedOnce, `refreshInterval: 0`, force-sync
/// and `target.immutable`, driven by one backend value (a Secret the probe store reads
/// through its declared credential reference) changing without any store edit.
#[tokio::test]
async fn refresh_policies_force_sync_immutable_and_interval_zero() {
    let _engine = engine().await;
    let client = admin().await;
    let id = suffix();
    let ns = format!("refresh-{id}");
    namespace(&client, &ns, json!({})).await;
    let v = |n: u32| format!("backend-v{n}-{id}");
    set_secret(&client, &ns, "backend", json!({"value": v(1)})).await;
    // One remote key per ExternalSecret: separate fetch keys, so no answer is shared.
    let keys = ["periodic", "onchange", "once", "zero", "forced", "immutable"];
    let responses: serde_json::Map<String, Value> = keys.iter().map(|k| (k.to_string(), json!({"from": "secretKey"}))).collect();
    let stores: Api<v1::SecretStore> = Api::namespaced(client.clone(), &ns);
    let reference = json!({"name": "backend", "key": "value"});
    apply(&stores, "probe", json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "probe", "namespace": ns},
        "spec": {"provider": {"probe": {"auth": {"secretRef": reference}, "request": {"secretKey": reference}, "responses": responses}}},
    }))
    .await;
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let make = |name: &str, interval: &str, policy: Option<&str>, target: Value| {
        let mut spec = json!({"refreshInterval": interval, "secretStoreRef": {"name": "probe"}, "target": target,
                              "data": [{"secretKey": "value", "remoteRef": {"key": name}}]});
        if let Some(p) = policy {
            spec["refreshPolicy"] = json!(p);
        }
        external_secret(&ns, name, spec)
    };
    apply(&es_api, "periodic", make("periodic", "3s", Some("Periodic"), json!({}))).await;
    apply(&es_api, "onchange", make("onchange", "1s", Some("OnChange"), json!({}))).await;
    apply(&es_api, "once", make("once", "1s", Some("CreatedOnce"), json!({}))).await;
    apply(&es_api, "zero", make("zero", "0s", None, json!({}))).await;
    apply(&es_api, "forced", make("forced", "24h", None, json!({}))).await;
    apply(&es_api, "immutable", make("immutable", "1s", None, json!({"immutable": true}))).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for k in keys {
        wait_value(&secrets, k, "value", &v(1), Duration::from_secs(30)).await;
    }
    let immutable_before = secrets.get("immutable").await.unwrap();
    assert_eq!(immutable_before.immutable, Some(true), "target.immutable must make the Secret immutable");

    // The backend changes; no object the engine watches for these ExternalSecrets' specs does.
    set_secret(&client, &ns, "backend", json!({"value": v(2)})).await;
    let changed_at = Instant::now();
    let took = wait_value(&secrets, "periodic", "value", &v(2), Duration::from_secs(3 + 5)).await;
    eprintln!("refresh: Periodic 3s picked up the backend change in {took:?}");
    // Several 1 s intervals later, the non-periodic policies still hold the first value.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(changed_at.elapsed())).await;
    for k in ["onchange", "once", "zero", "forced"] {
        assert_eq!(value_of(&secrets, k, "value").await, Some(v(1)), "{k} must not refresh on a backend change alone");
    }
    // Immutable: refreshed every second, never rewritten, and the change is reported.
    let ready = wait_ready(&es_api, "immutable", "the immutable target's change reported", Duration::from_secs(15), |r| r.1 == "SecretImmutable").await;
    eprintln!("refresh: immutable: {} / {} / {}", ready.0, ready.1, ready.2);
    assert!(ready.2.contains("immutable"), "{ready:?}");
    let immutable_after = secrets.get("immutable").await.unwrap();
    assert_eq!(immutable_after.data, immutable_before.data, "an immutable Secret keeps its data");
    assert_eq!(immutable_after.metadata.resource_version, immutable_before.metadata.resource_version, "an immutable Secret is not rewritten");
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("ImmutableTarget") && e.involved_object.name.as_deref() == Some("immutable")),
        "a Warning event must report the kept data"
    );

    // OnChange: a label change resyncs (a 1 s window: the value is fetched again).
    let before = synced_version(&es_api, "onchange").await;
    label_es(&es_api, "onchange", "touched", "1").await;
    wait_synced_change(&es_api, "onchange", before).await;
    wait_value(&secrets, "onchange", "value", &v(2), Duration::from_secs(5)).await;

    // refreshInterval 0: label and spec changes resync anyway (ESO ignores them there).
    let before = synced_version(&es_api, "zero").await;
    label_es(&es_api, "zero", "touched", "1").await;
    wait_synced_change(&es_api, "zero", before).await;
    let took = wait_value(&secrets, "zero", "value", &v(2), Duration::from_secs(5)).await;
    eprintln!("refresh: refreshInterval 0 resynced on a label change ({took:?} after status)");
    set_secret(&client, &ns, "backend", json!({"value": v(3)})).await;
    let mut spec = make("zero", "0s", None, json!({}));
    spec["spec"]["data"].as_array_mut().unwrap().push(json!({"secretKey": "again", "remoteRef": {"key": "zero"}}));
    apply(&es_api, "zero", spec).await;
    wait_value(&secrets, "zero", "again", &v(3), Duration::from_secs(10)).await;
    assert_eq!(value_of(&secrets, "zero", "value").await, Some(v(3)));

    // CreatedOnce: neither a backend change nor a label change rewrites it ...
    label_es(&es_api, "once", "touched", "1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(value_of(&secrets, "once", "value").await, Some(v(1)), "CreatedOnce must not refresh after the first sync");
    // ... but a deleted Secret is written again.
    secrets.delete("once", &DeleteParams::default()).await.unwrap();
    let took = wait_value(&secrets, "once", "value", &v(3), Duration::from_secs(10)).await;
    eprintln!("refresh: CreatedOnce Secret re-created {took:?} after its deletion");

    // force-sync: a plain metadata change reuses the value fetched in this (24 h) window;
    // the force-sync annotation calls the provider.
    let before = synced_version(&es_api, "forced").await;
    label_es(&es_api, "forced", "touched", "1").await;
    wait_synced_change(&es_api, "forced", before).await;
    assert_eq!(value_of(&secrets, "forced", "value").await, Some(v(1)), "a label change reuses the window's value");
    es_api
        .patch("forced", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": format!("{id}")}}})))
        .await
        .unwrap();
    let took = wait_value(&secrets, "forced", "value", &v(3), Duration::from_secs(10)).await;
    eprintln!("refresh: force-sync fetched the new value in {took:?}");
    assert_not_logged(&[&v(1), &v(2), &v(3)]);
    Api::<Namespace>::all(client).delete(&ns, &DeleteParams::default()).await.ok();
}

/// `target.name` changes: with creationPolicy Owner the old Secret goes if this
/// ExternalSecret controls it, never otherwise; Orphan leaves it.
#[tokio::test]
async fn target_rename_removes_only_the_owned_old_secret() {
    let _engine = engine().await;
    let client = admin().await;
    let id = suffix();
    let ns = format!("rename-{id}");
    namespace(&client, &ns, json!({})).await;
    let stores: Api<v1::SecretStore> = Api::namespaced(client.clone(), &ns);
    apply(&stores, "fake", json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": ns},
        "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "rename-value"}]}}},
    }))
    .await;
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let es = |name: &str, target: &str, policy: &str| {
        external_secret(&ns, name, json!({"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
            "target": {"name": target, "creationPolicy": policy}, "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}))
    };
    let exists = |name: &'static str| {
        let secrets = secrets.clone();
        async move { secrets.get_opt(name).await.unwrap().is_some() }
    };

    apply(&es_api, "app", es("app", "first", "Owner")).await;
    wait_value(&secrets, "first", "v", "rename-value", Duration::from_secs(30)).await;
    apply(&es_api, "app", es("app", "second", "Owner")).await;
    wait_value(&secrets, "second", "v", "rename-value", Duration::from_secs(10)).await;
    let (_, took) = wait_for("the old owned Secret removed", Duration::from_secs(10), || async move { (!exists("first").await).then_some(()) }).await;
    eprintln!("rename: old Secret removed {took:?} after the new one appeared");

    // Someone takes "second" over (drops the ownerReference): a rename must leave it.
    secrets.patch("second", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"ownerReferences": null}}))).await.unwrap();
    apply(&es_api, "app", es("app", "third", "Owner")).await;
    wait_value(&secrets, "third", "v", "rename-value", Duration::from_secs(10)).await;
    wait_ready(&es_api, "app", "synced to third", Duration::from_secs(10), |r| r.0 == "True").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(exists("second").await, "a Secret the ExternalSecret no longer controls must never be deleted");

    // Orphan: the old Secret stays.
    apply(&es_api, "loose", es("loose", "o1", "Orphan")).await;
    wait_value(&secrets, "o1", "v", "rename-value", Duration::from_secs(20)).await;
    apply(&es_api, "loose", es("loose", "o2", "Orphan")).await;
    wait_value(&secrets, "o2", "v", "rename-value", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(exists("o1").await, "creationPolicy Orphan leaves the old Secret");
    assert_not_logged(&["rename-value"]);
    Api::<Namespace>::all(client).delete(&ns, &DeleteParams::default()).await.ok();
}

/// ClusterExternalSecret: never overwrites an ExternalSecret it does not own, lists
/// provisioned and failed namespaces, sums up failing children in its condition
/// (here a ClusterSecretStore `conditions` refusal, reason StoreNotAllowed), removes
/// its ExternalSecret as soon as a namespace stops matching, drops ESO's namespace
/// finalizer, and deletes despite ESO's own finalizer.
#[tokio::test]
async fn cluster_external_secret_ownership_status_and_finalizers() {
    let _engine = engine().await;
    let client = admin().await;
    let id = suffix();
    let (select, allow) = (format!("ces-{id}"), format!("allow-{id}"));
    let ces_name = format!("fanout-{id}");
    let ns_finalizer = format!("externalsecrets.external-secrets.io/ces-{ces_name}");
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| format!("ces-{n}-{id}"));
    namespace(&client, &a, json!({ &select: "yes", &allow: "yes" })).await;
    namespace(&client, &b, json!({ &select: "yes" })).await;
    namespace(&client, &c, json!({ &select: "yes", &allow: "yes" })).await;
    // d carries the finalizer ESO puts on namespaces (ESO #6677 leaves it behind).
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": d, "labels": { &select: "yes", &allow: "yes" }, "finalizers": [ns_finalizer]}})).unwrap())
        .await
        .unwrap();
    let store = format!("ces-store-{id}");
    apply(&Api::<v1::ClusterSecretStore>::all(client.clone()), &store, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": store},
        "spec": {"conditions": [{"namespaceSelector": {"matchLabels": { &allow: "yes" }}}],
                 "provider": {"fake": {"data": [{"key": "k", "value": "ces-value"}]}}},
    }))
    .await;
    // An ExternalSecret of the same name the CES does not own.
    let foreign_spec = json!({"refreshInterval": "1h", "secretStoreRef": {"name": store, "kind": "ClusterSecretStore"},
                              "target": {"name": "foreign-target"}, "data": [{"secretKey": "mine", "remoteRef": {"key": "k"}}]});
    let c_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &c);
    apply(&c_api, "shared", external_secret(&c, "shared", foreign_spec.clone())).await;
    // Status writes (the ExternalSecret reconciler syncs it) change resourceVersion; only
    // generation, labels, annotations and owners say whether the CES wrote it.
    let fingerprint = |es: v1::ExternalSecret| (es.metadata.generation, es.metadata.labels, es.metadata.annotations, es.metadata.owner_references);
    let foreign_before = fingerprint(c_api.get("shared").await.unwrap());

    let ces_api: Api<v1::ClusterExternalSecret> = Api::all(client.clone());
    let ces_name = &ces_name;
    let ces_api = &ces_api;
    apply(&ces_api, &ces_name, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": ces_name, "finalizers": ["externalsecrets.external-secrets.io/clusterexternalsecret-cleanup"]},
        "spec": {"externalSecretName": "shared", "refreshTime": "1h", "namespaceSelectors": [{"matchLabels": { &select: "yes" }}],
                 "externalSecretSpec": {"refreshInterval": "1h", "secretStoreRef": {"name": store, "kind": "ClusterSecretStore"},
                                        "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}},
    }))
    .await;
    let ces_ready = |status: &lockstep_api::types::ClusterExternalSecretStatus| {
        status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
    };
    let status = |want: Box<dyn Fn(&lockstep_api::types::ClusterExternalSecretStatus) -> bool>| {
        let ces_api = ces_api.clone();
        let ces_name = ces_name.clone();
        async move {
            let (ces_api, ces_name, want) = (&ces_api, &ces_name, &want);
            wait_for("the ClusterExternalSecret status", Duration::from_secs(30), || async move {
                ces_api.get(&ces_name).await.ok()?.status.filter(|s| want(s))
            })
            .await
            .0
        }
    };

    // Provisioned a, b, d; c refused (not ours); b's child refused by the store's conditions.
    let expected: Vec<String> = vec![a.clone(), b.clone(), d.clone()];
    let c2 = c.clone();
    let s = status(Box::new(move |s| {
        s.provisioned_namespaces == expected
            && s.failed_namespaces.iter().map(|f| f.namespace.as_str()).collect::<Vec<_>>() == vec![c2.as_str()]
            && ces_ready(s).is_some_and(|r| r.1 == "NamespacesFailed")
    }))
    .await;
    let ready = ces_ready(&s).unwrap();
    eprintln!("ces: {} / {} / {}", ready.0, ready.1, ready.2);
    assert_eq!(ready.0, "False");
    assert!(ready.2.contains(&c) && ready.2.contains("not controlled"), "the condition names the failing namespace and why: {ready:?}");
    assert!(s.failed_namespaces[0].reason.as_deref().unwrap_or_default().contains("not controlled"));
    assert_eq!(fingerprint(c_api.get("shared").await.unwrap()), foreign_before, "an ExternalSecret the CES does not own is never written");
    let b_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &b);
    let b_api = &b_api;
    let refused = wait_ready(&b_api, "shared", "the conditions refusal", Duration::from_secs(20), |r| r.0 == "False").await;
    eprintln!("ces: child in {b}: {} / {}", refused.1, refused.2);
    assert_eq!(refused.1, "StoreNotAllowed", "a ClusterSecretStore conditions refusal has its own reason: {refused:?}");
    assert!(refused.2.contains("not allowed from namespace"), "{refused:?}");
    for ns in [&a, &d] {
        wait_value(&Api::namespaced(client.clone(), ns), "shared", "v", "ces-value", Duration::from_secs(20)).await;
    }
    let finalizers = Api::<Namespace>::all(client.clone()).get(&d).await.unwrap().metadata.finalizers.unwrap_or_default();
    assert!(!finalizers.contains(&ns_finalizer), "ESO's namespace finalizer must be removed: {finalizers:?}");

    // c stops matching: the foreign ExternalSecret stays; the summary now counts b.
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let (ns_api, d) = (&ns_api, &d);
    ns_api.patch(&c, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": { &select: null }}}))).await.unwrap();
    let b3 = b.clone();
    let s = status(Box::new(move |s| s.failed_namespaces.is_empty() && ces_ready(s).is_some_and(|r| r.1 == "ExternalSecretsNotReady" && r.2.contains(&b3)))).await;
    let ready = ces_ready(&s).unwrap();
    eprintln!("ces: {} / {} / {}", ready.0, ready.1, ready.2);
    assert!(ready.2.starts_with("1 of 3 ExternalSecrets not ready") && ready.2.contains("StoreNotAllowed"), "{ready:?}");
    assert_eq!(fingerprint(c_api.get("shared").await.unwrap()), foreign_before, "unmatching must not touch a foreign ExternalSecret");

    // a stops matching: its ExternalSecret goes at once (refreshTime is 1 h).
    ns_api.patch(&a, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": { &select: null }}}))).await.unwrap();
    let a_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &a);
    let a_api = &a_api;
    let (_, took) = wait_for("removal from the unmatched namespace", Duration::from_secs(10), || async move { a_api.get_opt("shared").await.ok()?.is_none().then_some(()) }).await;
    eprintln!("ces: ExternalSecret removed {took:?} after the namespace stopped matching");

    // b is allowed by the store: every child ready, the summary says so.
    ns_api.patch(&b, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": { &allow: "yes" }}}))).await.unwrap();
    let s = status(Box::new(|s| ces_ready(s).is_some_and(|r| r.0 == "True"))).await;
    assert_eq!(s.provisioned_namespaces, vec![b.clone(), d.clone()]);
    assert_eq!(ces_ready(&s).unwrap().2, "2 ExternalSecret(s) ready");

    // Deleting the CES despite ESO's finalizer; the children go with it (GC).
    ces_api.delete(&ces_name, &DeleteParams::default()).await.unwrap();
    wait_for("the CES deleted despite ESO's finalizer", Duration::from_secs(15), || async move { ces_api.get_opt(&ces_name).await.ok()?.is_none().then_some(()) }).await;
    wait_for("the children garbage-collected", Duration::from_secs(30), || async move { b_api.get_opt("shared").await.ok()?.is_none().then_some(()) }).await;
    for ns in [&a, &b, &c, &d] {
        ns_api.delete(ns, &DeleteParams::default()).await.ok();
    }
    wait_for("namespace d (had ESO's finalizer) deleted", Duration::from_secs(60), || async move { ns_api.get_opt(&d).await.ok()?.is_none().then_some(()) }).await;
    assert_not_logged(&["ces-value"]);
    Api::<v1::ClusterSecretStore>::all(client).delete(&store, &DeleteParams::default()).await.ok();
}

/// Credential refusals end in reason CapabilityDenied whether the store's validation
/// or a fetch meets them first (not StoreNotReady), with the real cause in the message.
#[tokio::test]
async fn credential_refusals_have_a_precise_reason() {
    let _engine = engine().await;
    let client = admin().await;
    let id = suffix();
    let (ns, other) = (format!("refuse-{id}"), format!("refuse-other-{id}"));
    namespace(&client, &ns, json!({})).await;
    namespace(&client, &other, json!({})).await;
    for n in [&ns, &other] {
        set_secret(&client, n, "creds", json!({"token": "refuse-T0ken-value"})).await;
        Api::<ServiceAccount>::namespaced(client.clone(), n)
            .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "workload"}})).unwrap())
            .await
            .unwrap();
    }
    let stores: Api<v1::SecretStore> = Api::namespaced(client.clone(), &ns);
    let store = |name: &str, probe: Value| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name, "namespace": ns}, "spec": {"provider": {"probe": probe}}})
    };
    let secret_ref = json!({"name": "creds", "key": "token", "namespace": other});
    apply(&stores, "cross-secret", store("cross-secret", json!({"auth": {"secretRef": secret_ref}, "request": {"secretKey": secret_ref}, "responses": {"db": {"from": "secretKey"}}}))).await;
    let sa_ref = json!({"name": "workload", "namespace": other, "audiences": ["lockstep-probe"]});
    apply(&stores, "cross-sa", store("cross-sa", json!({"auth": {"serviceAccountRef": sa_ref},
        "request": {"token": {"serviceAccount": {"name": "workload", "namespace": other}, "audiences": ["lockstep-probe"]}}, "responses": {"db": {"from": "token"}}}))).await;
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for s in ["cross-secret", "cross-sa"] {
        apply(&es_api, s, external_secret(&ns, s, json!({"refreshInterval": "1h", "secretStoreRef": {"name": s}, "data": [{"secretKey": "v", "remoteRef": {"key": "db"}}]}))).await;
    }
    for s in ["cross-secret", "cross-sa"] {
        let r = wait_ready(&es_api, s, "a refusal", Duration::from_secs(30), |r| r.0 == "False" && !r.2.contains("not been validated")).await;
        eprintln!("refusal ({s}): {} / {}", r.1, r.2);
        assert_eq!(r.1, "CapabilityDenied", "{s}: {r:?}");
        assert!(r.2.contains("denied") && r.2.contains(&other), "{s}: the message names the refused namespace: {r:?}");
        assert!(!r.2.contains("refuse-T0ken-value"));
        assert!(Api::<Secret>::namespaced(client.clone(), &ns).get_opt(s).await.unwrap().is_none());
    }
    assert_not_logged(&["refuse-T0ken-value"]);
    for n in [&ns, &other] {
        Api::<Namespace>::all(client.clone()).delete(n, &DeleteParams::default()).await.ok();
    }
}

// ---------------------------------------------------------------------------------
// --namespace mode: one namespace, a Role instead of the ClusterRole.

const NS_MODE_ID: Identity = Identity { namespace: "lockstep-nsmode-system", service_account: "lockstep-nsmode", tag: "lifecycle-nsmode" };

/// The ClusterRole's rules on namespaced resources, as a Role for one namespace.
fn namespaced_role(name: &str) -> Role {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rbac/clusterrole.yaml")).unwrap();
    let cluster_role: ClusterRole = serde::Deserialize::deserialize(serde_yaml::Deserializer::from_str(&text).next().unwrap()).unwrap();
    let cluster_scoped = ["namespaces", "clustersecretstores", "clustersecretstores/status", "clusterexternalsecrets", "clusterexternalsecrets/status"];
    let rules = cluster_role
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mut r: PolicyRule| {
            r.resources = Some(r.resources.unwrap_or_default().into_iter().filter(|res| !cluster_scoped.contains(&res.as_str())).collect());
            (!r.resources.as_ref().unwrap().is_empty()).then_some(r)
        })
        .collect();
    Role { metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() }, rules: Some(rules) }
}

/// `--namespace`: the engine runs with only a Role in the watched namespace (its
/// ClusterRoleBinding removed), syncs there, leaves other namespaces alone, refuses
/// ClusterSecretStores with a clear condition, and gets no 403 from the apiserver.
#[tokio::test]
async fn namespace_mode_works_with_a_role() {
    let _engine = engine().await;
    let env = TestEnv::shared().await;
    let client = admin().await;
    let id = suffix();
    let (watched, other) = (format!("nsmode-{id}"), format!("nsmode-other-{id}"));
    namespace(&client, &watched, json!({})).await;
    namespace(&client, &other, json!({})).await;
    let class = format!("nsmode-{id}");
    let mut config = common::config(env, &NS_MODE_ID, vec![("fake".into(), component("lockstep_provider_fake"))]).await;
    // Only a Role in the watched namespace: the cluster-wide binding goes.
    Api::<ClusterRoleBinding>::all(client.clone()).delete(&format!("lockstep-controller-{}", NS_MODE_ID.tag), &DeleteParams::default()).await.expect("drop the ClusterRoleBinding");
    let role = namespaced_role("lockstep-nsmode");
    Api::<Role>::namespaced(client.clone(), &watched).create(&PostParams::default(), &role).await.unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &watched)
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "lockstep-nsmode"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lockstep-nsmode"},
            "subjects": [{"kind": "ServiceAccount", "name": NS_MODE_ID.service_account, "namespace": NS_MODE_ID.namespace}],
        })).unwrap())
        .await
        .unwrap();
    config.namespace = Some(watched.clone());
    // Its own class, so this binary's cluster-wide engine leaves these objects alone.
    config.controller_class = class.clone();
    let started = common::start(config).await;
    eprintln!("nsmode: engine serving at {}", started.metrics_url);

    let store = |ns: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": ns},
               "spec": {"controller": class, "provider": {"fake": {"data": [{"key": "k", "value": "nsmode-value"}]}}}})
    };
    let es = |ns: &str, name: &str, store_ref: Value| {
        external_secret(ns, name, json!({"refreshInterval": "1h", "secretStoreRef": store_ref, "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}))
    };
    for ns in [&watched, &other] {
        apply(&Api::<v1::SecretStore>::namespaced(client.clone(), ns), "fake", store(ns)).await;
        apply(&Api::<v1::ExternalSecret>::namespaced(client.clone(), ns), "app", es(ns, "app", json!({"name": "fake"}))).await;
    }
    let css = format!("nsmode-css-{id}");
    apply(&Api::<v1::ClusterSecretStore>::all(client.clone()), &css, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": css},
        "spec": {"controller": class, "provider": {"fake": {"data": [{"key": "k", "value": "nsmode-value"}]}}},
    }))
    .await;
    let watched_es: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &watched);
    apply(&watched_es, "cluster", es(&watched, "cluster", json!({"name": css, "kind": "ClusterSecretStore"}))).await;

    let took = wait_value(&Api::namespaced(client.clone(), &watched), "app", "v", "nsmode-value", Duration::from_secs(30)).await;
    eprintln!("nsmode: synced in the watched namespace in {took:?}");
    let r = wait_ready(&watched_es, "cluster", "the ClusterSecretStore refusal", Duration::from_secs(20), |r| r.0 == "False").await;
    eprintln!("nsmode: ClusterSecretStore: {} / {}", r.1, r.2);
    assert_eq!(r.1, "StoreNotAllowed");
    assert!(r.2.contains("--namespace"), "{r:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let other_es = Api::<v1::ExternalSecret>::namespaced(client.clone(), &other).get("app").await.unwrap();
    assert!(other_es.status.is_none(), "an ExternalSecret outside the watched namespace must not be touched: {:?}", other_es.status);
    assert!(Api::<Secret>::namespaced(client.clone(), &other).get_opt("app").await.unwrap().is_none());

    // Every request of this engine was allowed by the Role (cluster-wide ones would be 403).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let user = TestEnv::subject(NS_MODE_ID.namespace, NS_MODE_ID.service_account);
    let requests = audit_requests(env, &user);
    assert!(!requests.is_empty(), "no audit entries for {user}");
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(refused.is_empty(), "the --namespace engine was refused: {refused:#?}");
    let outside: Vec<_> = requests.iter().filter(|r| r.namespace.as_deref().is_some_and(|n| n != watched && n != NS_MODE_ID.namespace)).collect();
    assert!(outside.is_empty(), "the --namespace engine reached other namespaces: {outside:#?}");
    assert_not_logged(&["nsmode-value"]);
    for ns in [&watched, &other] {
        Api::<Namespace>::all(client.clone()).delete(ns, &DeleteParams::default()).await.ok();
    }
    Api::<v1::ClusterSecretStore>::all(client).delete(&css, &DeleteParams::default()).await.ok();
}

// ---------------------------------------------------------------------------------
// Least privilege, from the audit log.

/// One request of the engine, from the apiserver's audit log.
#[derive(Debug, Clone)]
#[allow(dead_code)] // fields read through Debug in failure messages
struct Request {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    code: u16,
}

/// Requests by `user` in the audit log (Metadata level, JSON lines), one per request.
fn audit_requests(env: &TestEnv, user: &str) -> Vec<Request> {
    let text = std::fs::read_to_string(env.audit_log_path()).expect("audit log");
    // A watch logs ResponseStarted (and ResponseComplete when it ends): one per auditID.
    let mut seen = BTreeSet::new();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == user && seen.insert(e["auditID"].as_str().unwrap_or_default().to_owned()))
        .filter_map(|e| {
            let obj = &e["objectRef"];
            let resource = obj["resource"].as_str()?;
            let resource = match obj["subresource"].as_str() {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_owned(),
            };
            Some(Request {
                verb: e["verb"].as_str()?.to_owned(),
                group: obj["apiGroup"].as_str().unwrap_or_default().to_owned(),
                resource,
                namespace: obj["namespace"].as_str().map(str::to_owned),
                name: obj["name"].as_str().map(str::to_owned),
                code: e["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            })
        })
        .collect()
}

/// (group, resource, verb) triples granted by the RBAC file (ClusterRole and Role).
fn granted() -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rbac/clusterrole.yaml")).unwrap();
    let mut out = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        for rule in v["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let s = |v: &Value| v.as_str().unwrap().to_owned();
                        assert!(s(verb) != "*" && s(r) != "*" && s(g) != "*", "wildcards are not least privilege");
                        out.insert((s(g), s(r), s(verb)));
                    }
                }
            }
        }
    }
    out
}

/// Grants this binary's engine cannot use, and where they are proven instead.
const USED_ELSEWHERE: &[(&str, &str, &str, &str)] = &[
    ("coordination.k8s.io", "leases", "get", "leader election: engine/cli/tests/leader.rs checks the Lease verbs of two `lockstep run --leader-elect` replicas"),
    ("coordination.k8s.io", "leases", "create", "leader election: engine/cli/tests/leader.rs"),
    ("coordination.k8s.io", "leases", "update", "leader election: engine/cli/tests/leader.rs"),
];

/// Drives the engine through every code path that needs a grant (the other scenarios
/// of this binary may run at the same time and add their own requests), then reads
/// the audit log: every request of the engine's ServiceAccount is granted and none
/// was refused, and every grant was used (or is listed in `USED_ELSEWHERE`).
#[tokio::test]
async fn engine_requests_match_the_cluster_role() {
    let _engine = engine().await;
    let env = TestEnv::shared().await;
    let client = admin().await;
    let id = suffix();
    let ns = format!("audit-{id}");
    let select = format!("audit-{id}");
    let ces_name = format!("audit-{id}");
    let ns_finalizer = format!("externalsecrets.external-secrets.io/ces-{ces_name}");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns, "labels": { &select: "yes" }, "finalizers": [ns_finalizer]}})).unwrap())
        .await
        .unwrap();
    // serviceaccounts get + serviceaccounts/token create (probe store), configmaps get (templateFrom).
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "workload", "annotations": {"example.com/role": "reader"}}})).unwrap())
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "tpl"}, "data": {"greeting": "hello {{ .v }}"}})).unwrap())
        .await
        .unwrap();
    let stores: Api<v1::SecretStore> = Api::namespaced(client.clone(), &ns);
    apply(&stores, "probe", json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "probe", "namespace": ns},
        "spec": {"provider": {"probe": {"auth": {"serviceAccountRef": {"name": "workload", "audiences": ["lockstep-probe"]}},
            "request": {"serviceAccountAnnotations": {"name": "workload"}, "token": {"serviceAccount": {"name": "workload"}, "audiences": ["lockstep-probe"]}},
            "responses": {"token": {"from": "token"}, "annotations": {"from": "annotations"}}}}},
    }))
    .await;
    apply(&stores, "fake", json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": ns},
        "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "audit-value"}]}}},
    }))
    .await;
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let (es_api, secrets, ns, ns_finalizer) = (&es_api, &secrets, &ns, &ns_finalizer);
    apply(&es_api, "creds", external_secret(&ns, "creds", json!({"refreshInterval": "1h", "secretStoreRef": {"name": "probe"},
        "data": [{"secretKey": "token", "remoteRef": {"key": "token"}}, {"secretKey": "annotations", "remoteRef": {"key": "annotations"}}]}))).await;
    apply(&es_api, "templated", external_secret(&ns, "templated", json!({"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
        "target": {"template": {"templateFrom": [{"configMap": {"name": "tpl", "items": [{"key": "greeting"}]}}]}},
        "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}))).await;
    wait_for("the token Secret", Duration::from_secs(30), || async move { value_of(&secrets, "creds", "token").await.filter(|t| t.split('.').count() == 3) }).await;
    wait_value(&secrets, "templated", "greeting", "hello audit-value", Duration::from_secs(30)).await;
    // secrets update (drift repair, twice: the second "Updated" event is a patch),
    // secrets delete (target rename).
    for n in 0..2 {
        secrets.patch("templated", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"greeting": format!("drift {n}")}}))).await.unwrap();
        wait_value(&secrets, "templated", "greeting", "hello audit-value", Duration::from_secs(10)).await;
    }
    apply(&es_api, "renamed", external_secret(&ns, "renamed", json!({"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
        "target": {"name": "before"}, "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}))).await;
    wait_value(&secrets, "before", "v", "audit-value", Duration::from_secs(20)).await;
    apply(&es_api, "renamed", external_secret(&ns, "renamed", json!({"refreshInterval": "1h", "secretStoreRef": {"name": "fake"},
        "target": {"name": "after"}, "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}))).await;
    wait_for("the renamed target's old Secret removed", Duration::from_secs(15), || async move { secrets.get_opt("before").await.ok()?.is_none().then_some(()) }).await;
    // externalsecrets patch: ESO's finalizer removed on deletion.
    let mut eso = external_secret(&ns, "eso", json!({"refreshInterval": "1h", "secretStoreRef": {"name": "fake"}, "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}));
    eso["metadata"]["finalizers"] = json!(["externalsecrets.external-secrets.io/externalsecret-cleanup"]);
    apply(&es_api, "eso", eso).await;
    wait_value(&secrets, "eso", "v", "audit-value", Duration::from_secs(20)).await;
    es_api.delete("eso", &DeleteParams::default()).await.unwrap();
    wait_for("the ExternalSecret with ESO's finalizer deleted", Duration::from_secs(15), || async move { es_api.get_opt("eso").await.ok()?.is_none().then_some(()) }).await;

    // ClusterSecretStore + ClusterExternalSecret: externalsecrets create/update/delete,
    // namespaces patch (ESO's namespace finalizer), clusterexternalsecrets patch (ESO's
    // finalizer), the cluster kinds' status.
    let css = format!("audit-{id}");
    apply(&Api::<v1::ClusterSecretStore>::all(client.clone()), &css, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": css},
        "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "audit-value"}, {"key": "k2", "value": "audit-value-2"}]}}},
    }))
    .await;
    let ces_api: Api<v1::ClusterExternalSecret> = Api::all(client.clone());
    let (ces_api, ces_name) = (&ces_api, &ces_name);
    let ces = |key: &str| {
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
               "metadata": {"name": ces_name, "finalizers": ["externalsecrets.external-secrets.io/clusterexternalsecret-cleanup"]},
               "spec": {"externalSecretName": "fanned", "namespaceSelectors": [{"matchLabels": { &select: "yes" }}],
                        "externalSecretSpec": {"refreshInterval": "1h", "secretStoreRef": {"name": css, "kind": "ClusterSecretStore"},
                                               "data": [{"secretKey": "v", "remoteRef": {"key": key}}]}}})
    };
    apply(&ces_api, &ces_name, ces("k")).await;
    wait_value(&secrets, "fanned", "v", "audit-value", Duration::from_secs(30)).await;
    apply(&ces_api, &ces_name, ces("k2")).await;
    wait_value(&secrets, "fanned", "v", "audit-value-2", Duration::from_secs(20)).await;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns_api = &ns_api;
    wait_for("ESO's namespace finalizer removed", Duration::from_secs(10), || async move {
        (!ns_api.get(&ns).await.ok()?.metadata.finalizers.unwrap_or_default().contains(&ns_finalizer)).then_some(())
    })
    .await;
    ns_api.patch(&ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": { &select: null }}}))).await.unwrap();
    wait_for("the fanned-out ExternalSecret removed", Duration::from_secs(10), || async move { es_api.get_opt("fanned").await.ok()?.is_none().then_some(()) }).await;
    ces_api.delete(&ces_name, &DeleteParams::default()).await.unwrap();
    wait_for("the CES with ESO's finalizer deleted", Duration::from_secs(15), || async move { ces_api.get_opt(&ces_name).await.ok()?.is_none().then_some(()) }).await;

    // The apiserver writes an audit entry when the response completes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let user = TestEnv::subject(ID.namespace, ID.service_account);
    let requests = audit_requests(env, &user);
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(refused.is_empty(), "the engine was refused (a grant is missing): {refused:#?}");
    let granted = granted();
    let used: BTreeSet<(String, String, String)> = requests.iter().map(|r| (r.group.clone(), r.resource.clone(), r.verb.clone())).collect();
    let ungranted: Vec<_> = used.difference(&granted).collect();
    assert!(ungranted.is_empty(), "the engine used verbs the RBAC file does not grant: {ungranted:?}");
    let elsewhere: BTreeSet<(String, String, String)> = USED_ELSEWHERE.iter().map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string())).collect();
    let unused: Vec<_> = granted.difference(&used).filter(|g| !elsewhere.contains(*g)).collect();
    let per_resource: BTreeMap<String, BTreeSet<String>> = used.iter().fold(BTreeMap::new(), |mut m, (g, r, v)| {
        m.entry(format!("{g}/{r}")).or_default().insert(v.clone());
        m
    });
    eprintln!("audit: {} requests by {user}; verbs used: {per_resource:?}", requests.len());
    assert!(unused.is_empty(), "grants in rbac/clusterrole.yaml the engine never used (drop them or say where they are used): {unused:?}");
    assert_not_logged(&["audit-value", "audit-value-2"]);
    ns_api.delete(&ns, &DeleteParams::default()).await.ok();
    Api::<v1::ClusterSecretStore>::all(client).delete(&css, &DeleteParams::default()).await.ok();
}
