//! End-to-end tests of the controllers on the real local control plane
//! (`lockstep-testenv`: etcd + kube-apiserver + kube-controller-manager).
//!
//! One engine serves this whole test binary. It runs with a TokenRequest token of a
//! ServiceAccount bound to `rbac/clusterrole.yaml` — never as admin — so every test
//! also checks the ClusterRole. Each scenario uses its own namespaces and store names.
//! Every scenario holds `SERIAL`: provider-call counters are global to the engine.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use lockstep_api::{v1, v1beta1};
use lockstep_testenv::TestEnv;
use serde_json::json;

use common::{Engine, Identity, component, metric, namespace, ready_of, suffix, wait_for};

const ID: Identity = Identity { namespace: "lockstep-e2e-system", service_account: "lockstep-e2e", tag: "e2e" };

static ENGINE: tokio::sync::OnceCell<Engine> = tokio::sync::OnceCell::const_new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn engine() -> &'static Engine {
    ENGINE
        .get_or_init(|| async {
            let env = TestEnv::shared().await;
            let plugins = vec![
                ("fake".into(), component("lockstep_provider_fake")),
                ("probe".into(), component("lockstep_provider_probe")),
            ];
            common::start(common::config(env, &ID, plugins).await).await
        })
        .await
}

/// The seed topology: a v1beta1 ClusterSecretStore (fake) and ClusterExternalSecret;
/// every matching namespace gets the Opaque Secret with 2 keys; labelling adds a
/// namespace, unlabelling removes it within seconds; no namespace finalizer remains.
#[tokio::test]
async fn seed_topology_follows_namespace_labels() {
    let engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let label = format!("e2e-seed-{id}");
    let (ns_a, ns_b) = (format!("seed-a-{id}"), format!("seed-b-{id}"));
    namespace(&client, &ns_a, json!({ &label: "yes" })).await;
    namespace(&client, &ns_b, json!({})).await;

    let store: v1beta1::ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1beta1", "kind": "ClusterSecretStore",
        "metadata": {"name": format!("seed-{id}")},
        "spec": {"provider": {"fake": {"data": [{"key": "grafana-admin-password", "value": "e2e-Adm1n-pw"}]}}},
    }))
    .unwrap();
    Api::<v1beta1::ClusterSecretStore>::all(client.clone()).create(&PostParams::default(), &store).await.expect("store");
    let ces: v1beta1::ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1beta1", "kind": "ClusterExternalSecret",
        "metadata": {"name": format!("grafana-{id}")},
        "spec": {
            "externalSecretName": "grafana-admin-credentials",
            "namespaceSelector": {"matchLabels": { &label: "yes" }},
            "refreshTime": "1m",
            "externalSecretSpec": {
                "refreshInterval": "1m",
                "secretStoreRef": {"name": format!("seed-{id}"), "kind": "ClusterSecretStore"},
                "target": {"name": "grafana-admin-credentials", "template": {"type": "Opaque", "data": {
                    "admin-password": "{{ .admin_password }}", "admin-user": "admin"}}},
                "data": [{"secretKey": "admin_password", "remoteRef": {"key": "grafana-admin-password"}}],
            },
        },
    }))
    .unwrap();
    Api::<v1beta1::ClusterExternalSecret>::all(client.clone()).create(&PostParams::default(), &ces).await.expect("ces");

    let secret_in = |ns: String| {
        let client = client.clone();
        async move { Api::<Secret>::namespaced(client, &ns).get_opt("grafana-admin-credentials").await.ok().flatten() }
    };
    let (secret, took) = wait_for("the Secret in the labelled namespace", Duration::from_secs(30), || secret_in(ns_a.clone())).await;
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let data = secret.data.clone().unwrap_or_default();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), BTreeSet::from(["admin-password".to_string(), "admin-user".to_string()]));
    assert_eq!(data["admin-password"].0, b"e2e-Adm1n-pw");
    assert_eq!(data["admin-user"].0, b"admin");
    eprintln!("seed: Secret synced {took:?} after the ClusterExternalSecret was created");
    assert!(secret_in(ns_b.clone()).await.is_none(), "an unlabelled namespace must not get the Secret");

    // Label the second namespace: added.
    let ns_api: Api<Namespace> = Api::all(client.clone());
    ns_api.patch(&ns_b, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": { &label: "yes" }}}))).await.unwrap();
    let (_, took) = wait_for("the Secret in the newly labelled namespace", Duration::from_secs(15), || secret_in(ns_b.clone())).await;
    eprintln!("seed: labelled namespace served in {took:?}");

    // Unlabel the first: its ExternalSecret goes at once (and the Secret with it, by GC).
    ns_api.patch(&ns_a, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": { &label: null }}}))).await.unwrap();
    let es_gone = || {
        let client = client.clone();
        let ns = ns_a.clone();
        async move {
            Api::<v1::ExternalSecret>::namespaced(client, &ns).get_opt("grafana-admin-credentials").await.ok().flatten().is_none().then_some(())
        }
    };
    let (_, took) = wait_for("removal of the ExternalSecret from the unlabelled namespace", Duration::from_secs(10), es_gone).await;
    eprintln!("seed: unlabelled namespace cleaned in {took:?}");
    wait_for("garbage collection of the Secret", Duration::from_secs(30), || {
        let f = secret_in(ns_a.clone());
        async move { f.await.is_none().then_some(()) }
    })
    .await;

    // Status of the ClusterExternalSecret, and no finalizer on any namespace.
    let ces_api = Api::<v1::ClusterExternalSecret>::all(client.clone());
    let (status, _) = wait_for("CES status", Duration::from_secs(10), || {
        let ces_api = ces_api.clone();
        let name = format!("grafana-{id}");
        let ns_b = ns_b.clone();
        async move {
            let s = ces_api.get(&name).await.ok()?.status?;
            (s.provisioned_namespaces == vec![ns_b] && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")).then_some(s)
        }
    })
    .await;
    assert!(status.failed_namespaces.is_empty());
    for ns in [&ns_a, &ns_b] {
        let n = ns_api.get(ns).await.unwrap();
        assert!(n.metadata.finalizers.unwrap_or_default().is_empty(), "namespace {ns} carries a finalizer");
    }
    let _ = engine;
    Api::<v1::ClusterExternalSecret>::all(client.clone()).delete(&format!("grafana-{id}"), &DeleteParams::default()).await.ok();
    Api::<v1::ClusterSecretStore>::all(client.clone()).delete(&format!("seed-{id}"), &DeleteParams::default()).await.ok();
}

/// The seed's own slip: a secretStoreRef naming a store that does not exist gives a
/// clear condition, and creating the store heals the ExternalSecret within seconds.
#[tokio::test]
async fn missing_store_heals_within_seconds() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let ns = format!("heal-{id}");
    namespace(&client, &ns, json!({})).await;
    let es: v1::ExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "late-store", "kind": "SecretStore"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "db"}}],
        },
    }))
    .unwrap();
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    es_api.create(&PostParams::default(), &es).await.expect("es");
    let (ready, _) = wait_for("a StoreNotFound condition", Duration::from_secs(30), || {
        let es_api = es_api.clone();
        async move { ready_of(es_api.get("app").await.ok()?.status.as_ref()).filter(|r| r.1 == "StoreNotFound") }
    })
    .await;
    assert_eq!(ready.0, "False");
    assert!(ready.2.contains("late-store"), "the condition must name the missing store: {}", ready.2);

    let store: v1::SecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "late-store", "namespace": ns},
        "spec": {"provider": {"fake": {"data": [{"key": "db", "value": "heal-pw-1"}]}}},
    }))
    .unwrap();
    let created = Instant::now();
    Api::<v1::SecretStore>::namespaced(client.clone(), &ns).create(&PostParams::default(), &store).await.expect("store");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    wait_for("the Secret after the store was created", Duration::from_secs(10), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("app").await.ok().flatten() }
    })
    .await;
    let healed = created.elapsed();
    eprintln!("heal: Secret written {healed:?} after the store was created");
    let (ready, _) = wait_for("Ready=True", Duration::from_secs(10), || {
        let es_api = es_api.clone();
        async move { ready_of(es_api.get("app").await.ok()?.status.as_ref()).filter(|r| r.0 == "True") }
    })
    .await;
    assert_eq!(ready.1, "SecretSynced");
}

/// Dedupe: 50 ExternalSecrets in 10 namespaces on the same remote key, created at
/// different moments, cost one provider call per refresh window.
#[tokio::test]
async fn fifty_external_secrets_cost_one_provider_call() {
    let engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let store_name = format!("dedupe-{id}");
    let store: v1::ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": store_name},
        "spec": {"provider": {"fake": {"data": [{"key": "shared", "value": "dedupe-value"}]}}},
    }))
    .unwrap();
    Api::<v1::ClusterSecretStore>::all(client.clone()).create(&PostParams::default(), &store).await.expect("store");
    let calls_before = metric(engine, "lockstep_provider_calls_total{provider=\"fake\",call=\"GetSecret\"").await;
    let hits_before = metric(engine, "lockstep_fetch_dedupe_hits_total{provider=\"fake\"}").await;
    let mut namespaces = Vec::new();
    for n in 0..10 {
        let ns = format!("dedupe-{id}-{n}");
        namespace(&client, &ns, json!({})).await;
        namespaces.push(ns);
    }
    for i in 0..50 {
        let ns = &namespaces[i % 10];
        let es: v1::ExternalSecret = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": format!("es-{i}"), "namespace": ns},
            "spec": {
                "refreshInterval": "24h",
                "secretStoreRef": {"name": store_name, "kind": "ClusterSecretStore"},
                "data": [{"secretKey": "value", "remoteRef": {"key": "shared"}}],
            },
        }))
        .unwrap();
        Api::<v1::ExternalSecret>::namespaced(client.clone(), ns).create(&PostParams::default(), &es).await.expect("es");
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let (_, took) = wait_for("all 50 Secrets", Duration::from_secs(60), || {
        let client = client.clone();
        let namespaces = namespaces.clone();
        async move {
            for i in 0..50 {
                let s = Api::<Secret>::namespaced(client.clone(), &namespaces[i % 10]).get_opt(&format!("es-{i}")).await.ok()??;
                if s.data?.get("value")?.0 != b"dedupe-value" {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    eprintln!("dedupe: 50 Secrets in {took:?}");
    let calls = metric(engine, "lockstep_provider_calls_total{provider=\"fake\",call=\"GetSecret\"").await - calls_before;
    let hits = metric(engine, "lockstep_fetch_dedupe_hits_total{provider=\"fake\"}").await - hits_before;
    eprintln!("dedupe: {calls} provider calls, {hits} dedupe hits");
    assert_eq!(calls, 1.0, "50 ExternalSecrets on one remote key must cost one provider call");
    assert!(hits >= 49.0, "expected at least 49 dedupe hits, got {hits}");
    Api::<v1::ClusterSecretStore>::all(client.clone()).delete(&store_name, &DeleteParams::default()).await.ok();
}

/// Creation and deletion policies, drift repair and takeover without a write.
#[tokio::test]
async fn policies_drift_and_takeover() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let ns = format!("policy-{id}");
    namespace(&client, &ns, json!({})).await;
    Api::<v1::SecretStore>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "fake", "namespace": ns},
            "spec": {"provider": {"fake": {"data": [{"key": "k", "value": "policy-value"}]}}},
        })).unwrap())
        .await
        .expect("store");
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let es = |name: &str, target: serde_json::Value| -> v1::ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "fake"}, "target": target,
                     "data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]},
        }))
        .unwrap()
    };
    let get = |name: &'static str| {
        let secrets = secrets.clone();
        move || {
            let secrets = secrets.clone();
            async move { secrets.get_opt(name).await.ok().flatten() }
        }
    };

    // Owner: ownerReference to the ExternalSecret; drift (edit, delete) repaired at once.
    es_api.create(&PostParams::default(), &es("owner", json!({"creationPolicy": "Owner"}))).await.unwrap();
    let (s, _) = wait_for("Owner secret", Duration::from_secs(20), get("owner")).await;
    assert!(s.metadata.owner_references.unwrap_or_default().iter().any(|o| o.kind == "ExternalSecret" && o.name == "owner"));
    secrets.patch("owner", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "ZHJpZnQ="}}))).await.unwrap();
    let (_, took) = wait_for("drift repair after an edit", Duration::from_secs(10), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("owner").await.ok()?.and_then(|s| s.data).filter(|d| d["v"].0 == b"policy-value") }
    })
    .await;
    eprintln!("drift: edit repaired in {took:?}");
    secrets.delete("owner", &DeleteParams::default()).await.unwrap();
    let (_, took) = wait_for("drift repair after a delete", Duration::from_secs(10), get("owner")).await;
    eprintln!("drift: delete repaired in {took:?}");

    // Orphan: no ownerReference.
    es_api.create(&PostParams::default(), &es("orphan", json!({"creationPolicy": "Orphan"}))).await.unwrap();
    let (s, _) = wait_for("Orphan secret", Duration::from_secs(20), get("orphan")).await;
    assert!(s.metadata.owner_references.unwrap_or_default().is_empty());

    // Merge: never creates; merges into an existing Secret keeping foreign keys.
    es_api.create(&PostParams::default(), &es("merge", json!({"creationPolicy": "Merge"}))).await.unwrap();
    let (ready, _) = wait_for("SecretMissing", Duration::from_secs(20), || {
        let es_api = es_api.clone();
        async move { ready_of(es_api.get("merge").await.ok()?.status.as_ref()).filter(|r| r.1 == "SecretMissing") }
    })
    .await;
    assert_eq!(ready.0, "True");
    assert!(secrets.get_opt("merge").await.unwrap().is_none());
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "merge"}, "stringData": {"foreign": "kept"}})).unwrap())
        .await
        .unwrap();
    let (s, _) = wait_for("merged keys", Duration::from_secs(10), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("merge").await.ok()?.filter(|s| s.data.as_ref().is_some_and(|d| d.contains_key("v"))) }
    })
    .await;
    assert_eq!(s.data.unwrap()["foreign"].0, b"kept");

    // None: fetches, writes nothing.
    es_api.create(&PostParams::default(), &es("none", json!({"creationPolicy": "None"}))).await.unwrap();
    wait_for("None synced", Duration::from_secs(20), || {
        let es_api = es_api.clone();
        async move { ready_of(es_api.get("none").await.ok()?.status.as_ref()).filter(|r| r.0 == "True") }
    })
    .await;
    assert!(secrets.get_opt("none").await.unwrap().is_none());

    // Takeover of a Secret ESO manages: same data-hash, no write.
    let taken = es("taken", json!({"creationPolicy": "Orphan"}));
    let data = BTreeMap::from([("v".to_string(), b"policy-value".to_vec())]);
    let hash = lockstep_sync::hash::data_hash(&data);
    secrets
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "taken", "labels": {"reconcile.external-secrets.io/managed": "true"},
                         "annotations": {"reconcile.external-secrets.io/data-hash": hash}},
            "data": {"v": "cG9saWN5LXZhbHVl"},
        })).unwrap())
        .await
        .unwrap();
    let rv = secrets.get("taken").await.unwrap().metadata.resource_version;
    es_api.create(&PostParams::default(), &taken).await.unwrap();
    wait_for("takeover synced", Duration::from_secs(20), || {
        let es_api = es_api.clone();
        async move { ready_of(es_api.get("taken").await.ok()?.status.as_ref()).filter(|r| r.0 == "True") }
    })
    .await;
    assert_eq!(secrets.get("taken").await.unwrap().metadata.resource_version, rv, "takeover must not rewrite an unchanged Secret");

    // ESO's finalizer on an ExternalSecret does not block its deletion.
    let mut eso = es("eso-final", json!({}));
    eso.metadata.finalizers = Some(vec!["externalsecrets.external-secrets.io/externalsecret-cleanup".into()]);
    es_api.create(&PostParams::default(), &eso).await.unwrap();
    es_api.delete("eso-final", &DeleteParams::default()).await.unwrap();
    wait_for("deletion despite ESO's finalizer", Duration::from_secs(15), || {
        let es_api = es_api.clone();
        async move { es_api.get_opt("eso-final").await.ok()?.is_none().then_some(()) }
    })
    .await;
}

/// Invariants CEL cannot check (docs/crds.md "Validation at reconcile time"), each
/// applied to the real apiserver: accepted there, then Ready=False with a reason and
/// a message naming the field or feature, on the object (ExternalSecret or store).
#[tokio::test]
async fn reconcile_time_violations_are_clear_conditions() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let ns = format!("invalid-{id}");
    namespace(&client, &ns, json!({})).await;
    let store = |name: &str, provider: serde_json::Value| -> v1::SecretStore {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": name, "namespace": ns}, "spec": {"provider": provider},
        }))
        .unwrap()
    };
    let stores: Api<v1::SecretStore> = Api::namespaced(client.clone(), &ns);
    stores.create(&PostParams::default(), &store("fake", json!({"fake": {"data": [{"key": "db", "value": "invalid-pw"}]}}))).await.expect("fake store");
    stores.create(&PostParams::default(), &store("nowhere", json!({"nosuchbackend": {"region": "x"}}))).await.expect("a store whose key no plugin serves is accepted");
    let css_name = format!("bad-regex-{id}");
    let css: v1::ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": css_name},
        "spec": {"provider": {"fake": {"data": [{"key": "db", "value": "invalid-pw"}]}}, "conditions": [{"namespaceRegexes": ["(unclosed"]}]},
    }))
    .unwrap();
    let css_api: Api<v1::ClusterSecretStore> = Api::all(client.clone());
    css_api.create(&PostParams::default(), &css).await.expect("a ClusterSecretStore with a bad regex is accepted");

    let data = json!([{"secretKey": "password", "remoteRef": {"key": "db"}}]);
    let cases: Vec<(&str, serde_json::Value, Option<&str>, &str)> = vec![
        ("find-regex", json!({"dataFrom": [{"find": {"name": {"regexp": "(["}}}]}), Some("InvalidSpec"), "spec.dataFrom[0].find.name.regexp"),
        ("rewrite-regex", json!({"dataFrom": [{"extract": {"key": "db"}, "rewrite": [{"regexp": {"source": "(", "target": "x"}}]}]}), Some("InvalidSpec"), "invalid regular expression"),
        ("duplicate-key", json!({"data": [{"secretKey": "a", "remoteRef": {"key": "db"}}, {"secretKey": "a", "remoteRef": {"key": "db"}}]}), Some("InvalidSpec"), "duplicate secretKey a"),
        ("generator", json!({"dataFrom": [{"sourceRef": {"generatorRef": {"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Password", "name": "p"}}}]}), Some("Unsupported"), "generatorRef"),
        ("manifest", json!({"data": data, "target": {"manifest": {"apiVersion": "v1", "kind": "ConfigMap"}}}), Some("Unsupported"), "manifest"),
        ("engine-v1", json!({"data": data, "target": {"template": {"engineVersion": "v1"}}}), Some("Unsupported"), "engineVersion"),
        ("template-syntax", json!({"data": data, "target": {"template": {"data": {"dsn": "{{ .password "}}}}), None, "dsn"),
        ("template-function", json!({"data": data, "target": {"template": {"data": {"dsn": "{{ .password | nosuchfn }}"}}}}), None, "nosuchfn"),
        ("no-plugin", json!({"data": data, "secretStoreRef": {"name": "nowhere", "kind": "SecretStore"}}), Some("StoreNotReady"), "no plugin serves spec.provider.nosuchbackend"),
        ("css-regex", json!({"data": data, "secretStoreRef": {"name": css_name, "kind": "ClusterSecretStore"}}), Some("InvalidStoreConfiguration"), "spec.conditions[0].namespaceRegexes[0]"),
    ];
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    for (name, extra, _, _) in &cases {
        let mut spec = json!({"refreshInterval": "1h", "secretStoreRef": {"name": "fake", "kind": "SecretStore"}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let es: v1::ExternalSecret = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
        }))
        .unwrap();
        es_api.create(&PostParams::default(), &es).await.unwrap_or_else(|e| panic!("{name}: the apiserver must accept it (reconcile-time check): {e}"));
    }
    for (name, _, reason, needle) in &cases {
        let (ready, _) = wait_for(&format!("{name}: Ready=False"), Duration::from_secs(30), || {
            let es_api = es_api.clone();
            async move { ready_of(es_api.get(name).await.ok()?.status.as_ref()).filter(|r| r.0 == "False") }
        })
        .await;
        eprintln!("{name}: {} / {}", ready.1, ready.2);
        if let Some(reason) = reason {
            assert_eq!(&ready.1, reason, "{name}: {ready:?}");
        }
        assert!(ready.2.contains(needle), "{name}: the message must name {needle:?}: {ready:?}");
        assert!(!ready.2.contains("invalid-pw"), "{name}: no value in a condition");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for (name, ..) in &cases {
        assert!(secrets.get_opt(name).await.unwrap().is_none(), "{name}: an invalid ExternalSecret writes no Secret");
    }

    // The stores themselves say what is wrong.
    let store_ready = |conditions: Option<Vec<lockstep_api::types::Condition>>| {
        conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Ready" && c.status == "False").map(|c| (c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    };
    let (nowhere, _) = wait_for("the store without a plugin Ready=False", Duration::from_secs(30), || {
        let stores = stores.clone();
        async move { store_ready(stores.get("nowhere").await.ok()?.status.map(|s| s.conditions)) }
    })
    .await;
    assert_eq!(nowhere.0, "UnsupportedProvider", "{nowhere:?}");
    assert!(nowhere.1.contains("nosuchbackend"), "{nowhere:?}");
    let (bad_css, _) = wait_for("the ClusterSecretStore with a bad regex Ready=False", Duration::from_secs(30), || {
        let css_api = css_api.clone();
        let css_name = css_name.clone();
        async move { store_ready(css_api.get(&css_name).await.ok()?.status.map(|s| s.conditions)) }
    })
    .await;
    assert!(bad_css.1.contains("namespaceRegexes[0]: invalid regular expression"), "{bad_css:?}");
    css_api.delete(&css_name, &DeleteParams::default()).await.expect("delete the ClusterSecretStore");
    Api::<Namespace>::all(client.clone()).delete(&ns, &DeleteParams::default()).await.expect("delete the namespace");
}
