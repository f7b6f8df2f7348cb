//! The objects the scenarios create, the Ready tracker (one watch from the bench)
//! and the bare-client baseline.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::{ByteString, api::core::v1::{Namespace, Secret}};
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use lockstep_api::v1::{ExternalSecret, SecretStore};
use lockstep_sync::hash::{DATA_HASH_ANNOTATION, MANAGED_LABEL, data_hash};
use serde_json::json;

/// Requests in flight while setting up (not measured).
const SETUP_CONCURRENCY: usize = 32;

pub fn ns_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:02}")
}

pub async fn namespaces(admin: &Client, names: &[String], labels: serde_json::Value) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(admin.clone());
    stream::iter(names.iter().cloned())
        .map(|n| {
            let (api, labels) = (api.clone(), labels.clone());
            async move {
                let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": n, "labels": labels}}))?;
                api.create(&PostParams::default(), &ns).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// One `fake` SecretStore per namespace holding the two keys every ExternalSecret reads.
pub async fn fake_stores(admin: &Client, namespaces: &[String]) -> anyhow::Result<()> {
    for ns in namespaces {
        let store: SecretStore = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "fake", "namespace": ns},
            "spec": {"provider": {"fake": {"data": [
                {"key": "db-user", "value": "app"},
                {"key": "db-password", "value": format!("pw-{ns}")},
            ]}}},
        }))?;
        Api::<SecretStore>::namespaced(admin.clone(), ns).create(&PostParams::default(), &store).await?;
    }
    Ok(())
}

/// The scenarios' ExternalSecret: 2 keys + a template.
pub fn external_secret(ns: &str, name: &str, refresh: &str) -> anyhow::Result<ExternalSecret> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": refresh,
            "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
            "target": {"name": name, "template": {"type": "Opaque", "data": {
                "dsn": format!("postgres://{{{{ .user }}}}:{{{{ .password }}}}@{name}.db:5432/app"),
            }}},
            "data": [
                {"secretKey": "user", "remoteRef": {"key": "db-user"}},
                {"secretKey": "password", "remoteRef": {"key": "db-password"}},
            ],
        },
    }))?)
}

/// `n` ExternalSecrets `es-<i>` spread round-robin over `namespaces`; returns (ns, name, uid).
pub async fn external_secrets(admin: &Client, namespaces: &[String], n: usize, refresh: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    stream::iter(0..n)
        .map(|i| {
            let ns = namespaces[i % namespaces.len()].clone();
            let admin = admin.clone();
            let refresh = refresh.to_string();
            async move {
                let name = format!("es-{i}");
                let es = external_secret(&ns, &name, &refresh)?;
                let created = Api::<ExternalSecret>::namespaced(admin, &ns).create(&PostParams::default(), &es).await?;
                anyhow::Ok((ns, name, created.uid().unwrap_or_default()))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// `n` unrelated Opaque Secrets of `bytes` each (no labels), spread over `namespaces`.
pub async fn unrelated_secrets(admin: &Client, namespaces: &[String], n: usize, bytes: usize) -> anyhow::Result<()> {
    let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    stream::iter(0..n)
        .map(|i| {
            let ns = namespaces[i % namespaces.len()].clone();
            let api: Api<Secret> = Api::namespaced(admin.clone(), &ns);
            let data = BTreeMap::from([("blob".to_string(), ByteString(payload.clone()))]);
            async move {
                let s = Secret { metadata: ObjectMeta { name: Some(format!("unrelated-{i}")), ..Default::default() }, data: Some(data), ..Default::default() };
                api.create(&PostParams::default(), &s).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// First moment each ExternalSecret (`ns/name`) was seen Ready=True by one watch.
#[derive(Clone, Default)]
pub struct ReadyTracker {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

impl ReadyTracker {
    /// Starts watching all ExternalSecrets as admin; returns once the initial list is in.
    pub async fn start(admin: &Client) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let tracker = Self::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let seen = tracker.seen.clone();
        let api: Api<ExternalSecret> = Api::all(admin.clone());
        let task = tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default().any_semantic()).default_backoff());
            while let Some(ev) = events.next().await {
                let objs = match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    _ => continue,
                };
                let now = Instant::now();
                for o in objs {
                    if is_ready(&o) {
                        let key = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
                        seen.lock().expect("tracker").entry(key).or_insert(now);
                    }
                }
            }
        });
        rx.await?;
        Ok((tracker, task))
    }

    pub fn count_in(&self, prefix: &str) -> usize {
        self.seen.lock().expect("tracker").keys().filter(|k| k.starts_with(prefix)).count()
    }

    pub fn ready_at(&self, key: &str) -> Option<Instant> {
        self.seen.lock().expect("tracker").get(key).copied()
    }

    /// Waits until `want` ExternalSecrets in namespaces starting with `prefix` are Ready.
    pub async fn wait(&self, prefix: &str, want: usize, timeout: Duration, alive: impl Fn() -> anyhow::Result<()>) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.count_in(prefix);
            if have >= want {
                let last = self.seen.lock().expect("tracker").iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, t)| *t).max();
                return Ok(last.unwrap_or_else(Instant::now));
            }
            alive()?;
            anyhow::ensure!(Instant::now() < deadline, "only {have}/{want} ExternalSecrets in {prefix}* Ready after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn is_ready(es: &ExternalSecret) -> bool {
    es.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The physical limit: the same writes the engine makes for each ExternalSecret
/// (create its Secret, server-side-apply its status), from a bare kube client, as fast
/// as the apiserver takes them. Returns the wall time of all writes.
pub async fn bare_writes(client: &Client, objects: &[(String, String, String)], concurrency: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    stream::iter(objects.iter().cloned())
        .map(|(ns, name, uid)| {
            let client = client.clone();
            async move {
                let dsn = format!("postgres://app:pw-{ns}@{name}.db:5432/app").into_bytes();
                let data = BTreeMap::from([("dsn".to_string(), dsn)]);
                let secret: Secret = serde_json::from_value(json!({
                    "metadata": {
                        "name": name, "namespace": ns,
                        "labels": {MANAGED_LABEL: "true"},
                        "annotations": {DATA_HASH_ANNOTATION: data_hash(&data)},
                        "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}],
                    },
                    "type": "Opaque",
                }))
                .map(|mut s: Secret| {
                    s.data = Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect());
                    s
                })?;
                let pp = PostParams { field_manager: Some(format!("externalsecrets.external-secrets.io/{name}")), ..Default::default() };
                Api::<Secret>::namespaced(client.clone(), &ns).create(&pp, &secret).await?;
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = json!({
                    "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                    "status": {
                        "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced", "message": "secret synced", "lastTransitionTime": now}],
                        "refreshTime": now, "syncedResourceVersion": "1-bare", "binding": {"name": name},
                    },
                });
                Api::<ExternalSecret>::namespaced(client, &ns)
                    .patch_status(&name, &PatchParams::apply("lockstep-bare").force(), &Patch::Apply(&status))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(started.elapsed())
}
