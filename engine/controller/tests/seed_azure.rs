//! The seed, end to end through the controllers with the Azure Key Vault provider:
//! the manifests of `examples/seed/` applied unchanged, first as written (two slips),
//! then fixed, on the real local control plane (`lockstep-testenv`). The real
//! hostnames (`kv-aap-vault-dev.vault.azure.net`, `login.microsoftonline.com`) are
//! pointed at the verifying gateway and the fake Entra by `--resolve`-style overrides
//! plus the test CA, as an operator would configure a private endpoint.
//!
//! The engine runs with a TokenRequest token of a ServiceAccount bound to
//! `rbac/clusterrole.yaml`, never as admin. The engine-start helper is a trimmed
//! copy of the one in `tests/e2e.rs` (Azure component instead of the fake).

mod common;

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use lockstep_api::{v1, v1beta1};
use lockstep_testenv::{SecretOptions, TestEnv};
use serde_json::{Value, json};

use common::{Identity, component, ready_of, wait_for};

const ID: Identity = Identity { namespace: "lockstep-seed-system", service_account: "lockstep-seed", tag: "seed-e2e" };
const VAULT: &str = "kv-aap-vault-dev";
const REMOTE_KEY: &str = "grafana-admin-password";

/// One YAML document of the seed, read from disk unchanged.
fn manifest(variant: &str, file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed").join(variant).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().expect("metadata.name").to_string()
}

/// `kubectl apply --server-side`, as the seed's user would (as admin).
async fn apply_manifest(client: &Client, variant: &str, file: &str) -> String {
    let doc = manifest(variant, file);
    let name = name_of(&doc);
    let pp = PatchParams::apply("seed-user").force();
    match doc["kind"].as_str() {
        Some("ClusterSecretStore") => {
            Api::<v1beta1::ClusterSecretStore>::all(client.clone()).patch(&name, &pp, &Patch::Apply(&doc)).await.map(drop)
        }
        Some("ClusterExternalSecret") => {
            Api::<v1beta1::ClusterExternalSecret>::all(client.clone()).patch(&name, &pp, &Patch::Apply(&doc)).await.map(drop)
        }
        Some("ServiceAccount") => {
            let ns = doc["metadata"]["namespace"].as_str().expect("namespace");
            Api::<ServiceAccount>::namespaced(client.clone(), ns).patch(&name, &pp, &Patch::Apply(&doc)).await.map(drop)
        }
        other => panic!("unexpected kind {other:?} in {variant}/{file}"),
    }
    .unwrap_or_else(|e| panic!("apply {variant}/{file}: {e}"));
    name
}

/// The engine with the Azure component, the real hostnames pointed at the fakes.
async fn start_engine(env: &'static TestEnv) {
    let mut config = common::config(env, &ID, vec![("azurekv".into(), component("lockstep_provider_azure_keyvault"))]).await;
    // The vault must exist before this: overrides list the vaults created so far.
    let resolve: Vec<String> = env.host_overrides().await.into_iter().map(|(host, addr)| format!("{host}={addr}")).collect();
    assert!(resolve.iter().any(|r| r.starts_with(&format!("{VAULT}."))), "no override for the seed vault: {resolve:?}");
    config.concurrency = 4;
    config.extra_ca_files = vec![env.ca_path().to_path_buf()];
    config.resolve = resolve;
    common::start(config).await;
}

async fn ensure_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply("seed-user").force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})))
        .await
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
}

/// (status, reason, message) of the ExternalSecret's Ready condition.
async fn ready(es: &Api<v1::ExternalSecret>, name: &str) -> Option<(String, String, String)> {
    ready_of(es.get_opt(name).await.ok()??.status.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_as_written_then_fixed_with_azure_key_vault() {
    let env = TestEnv::shared().await;
    let admin = env.client().await;

    // Step 5: the operator's namespace and the annotated service account, as written.
    ensure_namespace(&admin, "external-secrets").await;
    let sa_doc = manifest("as-written", "01-serviceaccount.yaml");
    let annotations = &sa_doc["metadata"]["annotations"];
    let client_id = annotations["azure.workload.identity/client-id"].as_str().expect("client-id annotation").to_string();
    let tenant_id = annotations["azure.workload.identity/tenant-id"].as_str().expect("tenant-id annotation").to_string();
    let sa_ns = sa_doc["metadata"]["namespace"].as_str().unwrap().to_string();
    let sa_name = apply_manifest(&admin, "as-written", "01-serviceaccount.yaml").await;
    assert_eq!((sa_ns.as_str(), sa_name.as_str()), ("external-secrets", "external-secrets"));

    // Azure side: the app registration with its federated credential, the vault in that tenant.
    env.entra().federate(&tenant_id, &client_id, env.issuer(), &TestEnv::subject(&sa_ns, &sa_name)).await.expect("federate");
    let vault = env.vault_in(VAULT, &tenant_id).await;
    vault.set_secret(REMOTE_KEY, "seed-Adm1n-pw-1", &SecretOptions::default()).await.expect("seed the vault");
    ensure_namespace(&admin, "grafana").await;

    start_engine(env).await;

    let es_api: Api<v1::ExternalSecret> = Api::namespaced(admin.clone(), "grafana");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "grafana");
    let es_name = name_of(&manifest("as-written", "03-clusterexternalsecret.yaml"));

    // As written: the ExternalSecret names a store that does not exist.
    apply_manifest(&admin, "as-written", "02-clustersecretstore.yaml").await;
    apply_manifest(&admin, "as-written", "03-clusterexternalsecret.yaml").await;
    let ((status, reason, message), took) = wait_for("a condition naming the missing store", Duration::from_secs(30), || async {
        ready(&es_api, &es_name).await.filter(|r| r.2.contains("cluster-secret-store"))
    })
    .await;
    eprintln!("seed: missing store reported in {took:?}: {reason}: {message}");
    assert_eq!(status, "False");
    assert_eq!(reason, "StoreNotFound");
    assert!(secrets.get_opt("grafana-admin-credentials").await.unwrap().is_none(), "no Secret from a missing store");

    // Fixed store name: now the store's service account slip shows.
    apply_manifest(&admin, "fixed", "03-clusterexternalsecret.yaml").await;
    let ((status, reason, message), took) = wait_for("a condition naming the service account slip", Duration::from_secs(30), || async {
        ready(&es_api, &es_name).await.filter(|r| r.2.contains("cluster-external-secrets"))
    })
    .await;
    eprintln!("seed: service-account slip reported in {took:?}: {reason}: {message}");
    assert_eq!(status, "False");
    let lower = message.to_lowercase();
    assert!(
        lower.contains("not found") || lower.contains("does not exist") || message.contains("AADSTS700213"),
        "the condition must say why: {message}"
    );
    assert!(!message.contains("seed-Adm1n-pw"), "no secret value in a condition");
    assert!(secrets.get_opt("grafana-admin-credentials").await.unwrap().is_none());

    // Fixed store: the Secret appears within seconds.
    let fixed_at = Instant::now();
    apply_manifest(&admin, "fixed", "02-clustersecretstore.yaml").await;
    let (secret, _) = wait_for("Secret grafana-admin-credentials", Duration::from_secs(15), || async {
        secrets.get_opt("grafana-admin-credentials").await.ok().flatten()
    })
    .await;
    eprintln!("seed: Secret written {:?} after the fixed store was applied", fixed_at.elapsed());
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let data = secret.data.unwrap_or_default();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), BTreeSet::from(["admin-password".to_string(), "admin-user".to_string()]));
    assert_eq!(data["admin-password"].0, b"seed-Adm1n-pw-1");
    assert_eq!(data["admin-user"].0, b"admin");
    let (r, _) = wait_for("Ready=True", Duration::from_secs(10), || async { ready(&es_api, &es_name).await.filter(|r| r.0 == "True") }).await;
    assert_eq!(r.1, "SecretSynced");

    // Rotation: refreshInterval is 1m in the manifests; the force-sync annotation,
    // written as ESO's FAQ writes it, asks for it now.
    vault.set_secret(REMOTE_KEY, "seed-Adm1n-pw-2", &SecretOptions::default()).await.expect("rotate");
    let rotated_at = Instant::now();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    es_api
        .patch(&es_name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"force-sync": stamp}}})))
        .await
        .expect("annotate force-sync");
    wait_for("the Secret to follow the rotated value", Duration::from_secs(15), || async {
        let s = secrets.get_opt("grafana-admin-credentials").await.ok()??;
        (s.data?.get("admin-password")?.0 == b"seed-Adm1n-pw-2").then_some(())
    })
    .await;
    eprintln!("seed: rotation followed {:?} after force-sync", rotated_at.elapsed());
    let data = secrets.get("grafana-admin-credentials").await.unwrap().data.unwrap_or_default();
    assert_eq!(data.len(), 2);
    assert_eq!(data["admin-user"].0, b"admin");
}
