//! The Azure Key Vault provider through the controllers, on the real local control
//! plane (`lockstep-testenv`): the real apiserver and TokenRequest, the fake Entra ID
//! that verifies service-account JWTs against the apiserver's JWKS and counts
//! exchanges, and the verifying vault gateway that counts requests and injects faults.
//! The real hostnames (`*.vault.azure.net`, `login.microsoftonline.com`,
//! `169.254.169.254`) are pointed at the fakes by `--resolve`-style overrides plus the
//! test CA, as an operator would configure a private endpoint.
//!
//! One engine serves this binary, as the engine's own ServiceAccount (never admin),
//! with one operator grant: namespaced SecretStores of `spec.controller: default` may
//! reach private addresses, plain http and the metadata address. Stores without
//! `spec.controller` get no grant, so the same engine shows both refusal and grant.
//! Every scenario holds `SERIAL`: Entra settings, gateway faults and counters and the
//! engine's metrics are global.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use lockstep_api::v1;
use lockstep_testenv::{Fault, SecretOptions, TestEnv, env::DEFAULT_TENANT, gateway::FaultFilter};
use serde_json::{Value, json};

use common::{Engine, Identity, component, namespace, ready_of, suffix, wait_for};

const ID: Identity = Identity { namespace: "lockstep-azure-system", service_account: "lockstep-azure-e2e", tag: "azure-e2e" };
const VAULT: &str = "kv-lockstep-azure-e2e";
/// The private vault address of the grant scenario; connections to it go to the gateway.
const PRIVATE_VAULT: &str = "10.0.0.1";
const IMDS_HOST: &str = "169.254.169.254";
/// Stores with this `spec.controller` are granted private, plain-http and metadata destinations.
const GRANTED_CLASS: &str = "default";

static ENGINE: tokio::sync::OnceCell<Engine> = tokio::sync::OnceCell::const_new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn engine() -> &'static Engine {
    ENGINE
        .get_or_init(|| async {
            let env = TestEnv::shared().await;
            // The vault must exist first: the overrides list the vaults created so far.
            env.vault(VAULT).await;
            let mut config = common::config(env, &ID, vec![("azurekv".into(), component("lockstep_provider_azure_keyvault"))]).await;
            let mut resolve: Vec<String> = env.host_overrides().await.into_iter().map(|(host, addr)| format!("{host}={addr}")).collect();
            let imds = env.imds_url();
            resolve.push(format!("{IMDS_HOST}={}", imds.trim_start_matches("http://")));
            let gateway = env.address_of(&format!("{VAULT}.vault.azure.net")).expect("gateway address");
            resolve.push(format!("{PRIVATE_VAULT}={gateway}"));
            config.resolve = resolve;
            config.extra_ca_files = vec![env.ca_path().to_path_buf()];
            config.grants = vec![format!("class:{GRANTED_CLASS}/kind:SecretStore=private,metadata,http")];
            common::start(config).await
        })
        .await
}

/// A fresh GUID-shaped client ID (Entra counts exchanges per client ID).
fn guid() -> String {
    use sha2::Digest;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let s = hex::encode(&sha2::Sha256::digest(format!("{nanos}/{n}/{}", std::process::id()))[..16]);
    format!("{}-{}-{}-{}-{}", &s[..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

/// An app registration federated with a new annotated ServiceAccount `wi` in a new namespace.
struct WorkloadIdentity {
    ns: String,
    sa: &'static str,
    client: String,
}

async fn workload_identity(env: &TestEnv, client: &Client, prefix: &str) -> WorkloadIdentity {
    let ns = format!("{prefix}-{}", suffix());
    namespace(client, &ns, json!({})).await;
    let client_id = guid();
    env.service_account(&ns, "wi", &client_id, DEFAULT_TENANT).await;
    env.entra().federate(DEFAULT_TENANT, &client_id, env.issuer(), &TestEnv::subject(&ns, "wi")).await.expect("federate");
    WorkloadIdentity { ns, sa: "wi", client: client_id }
}

fn wi_provider(vault_url: &str, sa: &str, sa_ns: Option<&str>) -> Value {
    let mut sa_ref = json!({"name": sa});
    if let Some(ns) = sa_ns {
        sa_ref["namespace"] = ns.into();
    }
    json!({"azurekv": {"authType": "WorkloadIdentity", "vaultUrl": vault_url, "serviceAccountRef": sa_ref}})
}

async fn apply_cluster_store(client: &Client, name: &str, provider: Value) {
    let store = json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": name}, "spec": {"provider": provider}});
    Api::<v1::ClusterSecretStore>::all(client.clone())
        .patch(name, &PatchParams::apply("lockstep-azure-test").force(), &Patch::Apply(store))
        .await
        .expect("apply ClusterSecretStore");
}

async fn apply_store(client: &Client, ns: &str, name: &str, controller: Option<&str>, provider: Value) {
    let mut spec = json!({"provider": provider});
    if let Some(c) = controller {
        spec["controller"] = c.into();
    }
    let store = json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name, "namespace": ns}, "spec": spec});
    Api::<v1::SecretStore>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("lockstep-azure-test").force(), &Patch::Apply(store))
        .await
        .expect("apply SecretStore");
}

/// An ExternalSecret with one `data` item per (secretKey, remote key).
async fn apply_es(client: &Client, ns: &str, name: &str, store: (&str, &str), refresh: &str, deletion: &str, data: &[(&str, &str)]) -> Api<v1::ExternalSecret> {
    let data: Vec<Value> = data.iter().map(|(k, r)| json!({"secretKey": k, "remoteRef": {"key": r}})).collect();
    let es = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": refresh,
            "secretStoreRef": {"name": store.0, "kind": store.1},
            "target": {"name": name, "deletionPolicy": deletion},
            "data": data,
        },
    });
    let api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::apply("lockstep-azure-test").force(), &Patch::Apply(es)).await.expect("apply ExternalSecret");
    api
}

async fn ready(api: &Api<v1::ExternalSecret>, name: &str) -> Option<(String, String, String)> {
    ready_of(api.get_opt(name).await.ok()??.status.as_ref())
}

async fn wait_ready(api: &Api<v1::ExternalSecret>, name: &str, what: &str, timeout: Duration, want: impl Fn(&(String, String, String)) -> bool) -> (String, String, String) {
    wait_for(what, timeout, || async { ready(api, name).await.filter(&want) }).await.0
}

async fn secret_data(secrets: &Api<Secret>, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    Some(secrets.get_opt(name).await.ok()??.data?.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// GETs the gateway saw for the remote secret `name` (any version path).
async fn gets_of(env: &TestEnv, name: &str) -> u64 {
    let prefix = format!("GET /secrets/{name}");
    env.gateway()
        .requests()
        .await
        .expect("gateway requests")
        .into_iter()
        .filter(|(k, _)| k == &prefix || k.starts_with(&format!("{prefix}/")))
        .map(|(_, n)| n)
        .sum()
}

/// TokenRequests the apiserver served for `ns/sa` (audit log: create serviceaccounts/token).
fn token_requests(env: &TestEnv, ns: &str, sa: &str) -> usize {
    let text = std::fs::read_to_string(env.audit_log_path()).expect("audit log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            let o = &e["objectRef"];
            e["verb"] == "create"
                && e["stage"] == "ResponseComplete"
                && o["resource"] == "serviceaccounts"
                && o["subresource"] == "token"
                && o["namespace"] == ns
                && o["name"] == sa
                && e["responseStatus"]["code"].as_u64().is_some_and(|c| c < 300)
        })
        .count()
}

/// Warning events in `ns` (each failed cycle of an ExternalSecret records one).
async fn warnings(client: &Client, ns: &str) -> Vec<(Option<String>, Option<String>)> {
    let events = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("events");
    events.items.into_iter().filter(|e| e.type_.as_deref() == Some("Warning")).map(|e| (e.reason, e.message)).collect()
}

async fn delete_namespace(client: &Client, name: &str) {
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone()).delete(name, &DeleteParams::default()).await.ok();
}

/// The seed topology at scale: one ClusterSecretStore naming its service account's
/// namespace, one ClusterExternalSecret over 20 namespaces, 2 keys. Over 5 refresh
/// cycles: one Entra exchange and one TokenRequest in all, one GET per key per cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exchange_and_two_gets_per_cycle_for_twenty_namespaces() {
    const NAMESPACES: usize = 20;
    const CYCLES: u32 = 5;
    const INTERVAL: Duration = Duration::from_secs(3);
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let wi = workload_identity(env, &client, "az-reuse-sa").await;
    let vault = env.vault(VAULT).await;
    let (pw_key, user_key) = (format!("reuse-{id}-password"), format!("reuse-{id}-user"));
    vault.set_secret(&pw_key, "reuse-Pw-1", &SecretOptions::default()).await.unwrap();
    vault.set_secret(&user_key, "grafana-admin", &SecretOptions::default()).await.unwrap();

    let label = format!("az-reuse-{id}");
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("az-reuse-{id}-{i:02}")).collect();
    for ns in &namespaces {
        namespace(&client, ns, json!({ &label: "yes" })).await;
    }
    let store = format!("reuse-{id}");
    apply_cluster_store(&client, &store, wi_provider(&vault.url(), wi.sa, Some(&wi.ns))).await;
    let ces = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": store},
        "spec": {
            "externalSecretName": "grafana-admin-credentials",
            "namespaceSelector": {"matchLabels": { &label: "yes" }},
            "refreshTime": "1m",
            "externalSecretSpec": {
                "refreshInterval": format!("{}s", INTERVAL.as_secs()),
                "secretStoreRef": {"name": store, "kind": "ClusterSecretStore"},
                "target": {"name": "grafana-admin-credentials"},
                "data": [
                    {"secretKey": "admin-password", "remoteRef": {"key": pw_key}},
                    {"secretKey": "admin-user", "remoteRef": {"key": user_key}},
                ],
            },
        },
    });
    let started = Instant::now();
    Api::<v1::ClusterExternalSecret>::all(client.clone())
        .patch(&store, &PatchParams::apply("lockstep-azure-test").force(), &Patch::Apply(ces))
        .await
        .expect("ClusterExternalSecret");

    let all_have = |want: &'static [u8]| {
        let client = client.clone();
        let namespaces = namespaces.clone();
        async move {
            for ns in &namespaces {
                let d = secret_data(&Api::namespaced(client.clone(), ns), "grafana-admin-credentials").await?;
                if d.get("admin-password").map(Vec::as_slice) != Some(want) || d.len() != 2 {
                    return None;
                }
            }
            Some(())
        }
    };
    wait_for("the Secret in all 20 namespaces", Duration::from_secs(120), || all_have(b"reuse-Pw-1")).await;
    let first_sync = started.elapsed();
    eprintln!("reuse: {NAMESPACES} namespaces synced in {first_sync:?}");

    // Five refresh cycles: record when each key is fetched.
    let mut seen = [gets_of(env, &pw_key).await, gets_of(env, &user_key).await];
    let initial = seen;
    let mut times: [Vec<Instant>; 2] = [Vec::new(), Vec::new()];
    let observe = Instant::now();
    while observe.elapsed() < INTERVAL * CYCLES {
        for (i, key) in [&pw_key, &user_key].into_iter().enumerate() {
            let n = gets_of(env, key).await;
            for _ in seen[i]..n {
                times[i].push(Instant::now());
            }
            seen[i] = n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let observed = observe.elapsed();
    let gets: Vec<u64> = (0..2).map(|i| seen[i] - initial[i]).collect();
    let exchanges = env.entra().exchange_count(&wi.client).await.unwrap();
    let token_requests = token_requests(env, &wi.ns, wi.sa);
    let per_cycle = (gets[0] + gets[1]) as f64 / (observed.as_secs_f64() / INTERVAL.as_secs_f64());
    eprintln!(
        "reuse: over {observed:?} ({CYCLES} cycles of {INTERVAL:?}): GETs per key {gets:?} ({per_cycle:.2} per cycle), \
         initial sync GETs {initial:?}, Entra exchanges {exchanges}, TokenRequests {token_requests}"
    );
    for (i, t) in times.iter().enumerate() {
        let gaps: Vec<Duration> = t.windows(2).map(|w| w[1] - w[0]).collect();
        eprintln!("reuse: key {i} fetched at gaps {gaps:?}");
        // One fetch per key per refresh window: the fetch lands when the window's first
        // consumer wakes, so gaps vary around the interval, never near zero.
        for g in &gaps {
            assert!(*g >= INTERVAL / 2, "key {i} fetched twice in one window (gap {g:?})");
        }
    }
    for (i, n) in gets.iter().enumerate() {
        assert!((CYCLES as u64..=CYCLES as u64 + 1).contains(n), "key {i}: {n} GETs in {CYCLES} cycles (one per cycle expected)");
    }
    // A value serves the refresh window it was fetched in: the first sync fetches each
    // key once per window it spans, not once per namespace.
    let windows = 1 + (first_sync.as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as u64;
    for (i, n) in initial.iter().enumerate() {
        assert!((1..=windows).contains(n), "key {i}: {n} GETs for the first sync of {NAMESPACES} namespaces over {windows} windows");
    }
    assert_eq!(exchanges, 1, "one Entra exchange for the whole unit");
    assert_eq!(token_requests, 1, "one TokenRequest per service-account token lifetime");
    for ns in &namespaces {
        assert!(warnings(&client, ns).await.is_empty(), "no failed cycle in {ns}");
    }

    // Rotation reaches every namespace within one refresh.
    vault.set_secret(&pw_key, "reuse-Pw-2", &SecretOptions::default()).await.unwrap();
    let (_, took) = wait_for("the rotated value in all 20 namespaces", INTERVAL * 2 + Duration::from_secs(5), || all_have(b"reuse-Pw-2")).await;
    eprintln!("reuse: rotation reached {NAMESPACES} namespaces in {took:?}");
    assert_eq!(env.entra().exchange_count(&wi.client).await.unwrap(), 1);

    Api::<v1::ClusterExternalSecret>::all(client.clone()).delete(&store, &DeleteParams::default()).await.ok();
    for ns in &namespaces {
        delete_namespace(&client, ns).await;
    }
}

/// With the fake Entra's `expires_in` short, the access token is renewed before it
/// expires: every cycle succeeds, and exchanges follow the token lifetime, not the calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_renewed_without_a_failed_cycle() {
    const LIFETIME: i64 = 6;
    const INTERVAL: Duration = Duration::from_secs(2);
    const OBSERVE: Duration = Duration::from_secs(20);
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let wi = workload_identity(env, &client, "az-short-sa").await;
    let vault = env.vault(VAULT).await;
    let key = format!("short-{id}");
    vault.set_secret(&key, "short-Pw-1", &SecretOptions::default()).await.unwrap();
    let ns = format!("az-short-{id}");
    namespace(&client, &ns, json!({})).await;
    let store = format!("short-{id}");
    apply_cluster_store(&client, &store, wi_provider(&vault.url(), wi.sa, Some(&wi.ns))).await;

    env.entra().set_expires_in(LIFETIME).await.unwrap();
    let outcome = async {
        let es = apply_es(&client, &ns, "app", (&store, "ClusterSecretStore"), &format!("{}s", INTERVAL.as_secs()), "Retain", &[("password", &key)]).await;
        wait_ready(&es, "app", "the first sync", Duration::from_secs(60), |r| r.0 == "True").await;
        let gets_before = gets_of(env, &key).await;
        let exchanges_before = env.entra().exchange_count(&wi.client).await.unwrap();
        let start = Instant::now();
        let mut not_ready = Vec::new();
        while start.elapsed() < OBSERVE {
            if let Some(r) = ready(&es, "app").await.filter(|r| r.0 != "True") {
                not_ready.push(r);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let gets = gets_of(env, &key).await - gets_before;
        let exchanges = env.entra().exchange_count(&wi.client).await.unwrap() - exchanges_before;
        (gets, exchanges, not_ready, start.elapsed())
    }
    .await;
    env.entra().set_expires_in(3599).await.unwrap();
    let (gets, exchanges, not_ready, took) = outcome;
    eprintln!("short tokens ({LIFETIME} s): over {took:?}, {gets} GETs, {exchanges} Entra exchanges, not-ready samples {not_ready:?}");
    assert!(not_ready.is_empty(), "a cycle failed while tokens were renewed: {not_ready:?}");
    let warnings = warnings(&client, &ns).await;
    assert!(warnings.is_empty(), "a cycle failed while tokens were renewed: {warnings:?}");
    let cycles = (took.as_secs_f64() / INTERVAL.as_secs_f64()) as u64;
    assert!(gets + 1 >= cycles, "{gets} GETs in {cycles} cycles: refreshes stalled");
    // Renewal is due halfway through the lifetime, so at most one exchange per half lifetime.
    let max = (took.as_secs_f64() / (LIFETIME as f64 / 2.0)).ceil() as u64 + 1;
    assert!((2..=max).contains(&exchanges), "{exchanges} exchanges in {took:?} with {LIFETIME} s tokens (expected 2..={max})");
    assert!(exchanges < gets, "tokens must be reused between calls ({exchanges} exchanges, {gets} GETs)");
    assert_eq!(token_requests(env, &wi.ns, wi.sa), 1, "the service-account token is reused across access-token renewals");
    delete_namespace(&client, &ns).await;
}

/// The vault secret is deleted: with deletionPolicy Retain the Secret stays and the
/// condition says it does not exist; with Delete the Secret is removed (ESO's rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_follows_the_deletion_policy() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let vault = env.vault(VAULT).await;
    let key = format!("gone-{id}");
    vault.set_secret(&key, "gone-Pw-1", &SecretOptions::default()).await.unwrap();
    // A namespaced store whose service account lives beside it.
    let wi = workload_identity(env, &client, "az-gone").await;
    let ns = wi.ns.clone();
    apply_store(&client, &ns, "kv", None, wi_provider(&vault.url(), wi.sa, None)).await;
    let retain = apply_es(&client, &ns, "keep", ("kv", "SecretStore"), "2s", "Retain", &[("password", &key)]).await;
    let delete = apply_es(&client, &ns, "drop", ("kv", "SecretStore"), "2s", "Delete", &[("password", &key)]).await;
    // Merge: the missing key is dropped, the rest of the Secret stays.
    let stay = format!("stay-{id}");
    vault.set_secret(&stay, "stay-Pw-1", &SecretOptions::default()).await.unwrap();
    apply_es(&client, &ns, "merge", ("kv", "SecretStore"), "2s", "Merge", &[("password", &key), ("user", &stay)]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let (kept_before, _) = wait_for("all three Secrets", Duration::from_secs(60), || async {
        let keep = secret_data(&secrets, "keep").await?;
        secret_data(&secrets, "drop").await?;
        (secret_data(&secrets, "merge").await?.len() == 2).then_some(keep)
    })
    .await;
    assert_eq!(kept_before["password"], b"gone-Pw-1");

    vault.delete_secret(&key).await.expect("delete the vault secret");
    let deleted_at = Instant::now();
    let r = wait_ready(&delete, "drop", "SecretDeleted for deletionPolicy Delete", Duration::from_secs(30), |r| r.1 == "SecretDeleted").await;
    eprintln!("not found (Delete): {:?} after the vault delete: {} / {}", deleted_at.elapsed(), r.1, r.2);
    wait_for("the Delete target removed", Duration::from_secs(10), || async { secrets.get_opt("drop").await.ok()?.is_none().then_some(()) }).await;
    let r = wait_ready(&retain, "keep", "Ready=False for deletionPolicy Retain", Duration::from_secs(30), |r| r.0 == "False").await;
    eprintln!("not found (Retain): {} / {}", r.1, r.2);
    assert!(r.2.contains("does not exist") && r.2.contains(&key), "the condition must say the remote secret does not exist: {r:?}");
    assert!(!r.2.contains("gone-Pw"), "no secret value in a condition");
    // Two more refresh windows: the Retain target keeps its data byte for byte.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(secret_data(&secrets, "keep").await.expect("the Retain target stays"), kept_before);
    assert!(secrets.get_opt("drop").await.unwrap().is_none(), "the Delete target must stay deleted");
    let (merged, _) = wait_for("the Merge target without the missing key", Duration::from_secs(10), || async {
        let data = secret_data(&secrets, "merge").await?;
        (!data.contains_key("password")).then_some(data)
    })
    .await;
    assert_eq!(merged.get("user").map(|v| v.as_slice()), Some(&b"stay-Pw-1"[..]), "deletionPolicy Merge keeps the other keys");
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.reason.as_deref() == Some("MissingProviderSecret") && e.involved_object.name.as_deref() == Some("drop")),
        "deletionPolicy Delete records MissingProviderSecret"
    );
    delete_namespace(&client, &ns).await;
}

/// A tenant's namespaced store cannot reach a private vault address or borrow the
/// node identity (IMDS) unless the operator granted it; granted, Managed Identity works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_and_managed_identity_need_an_operator_grant() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let vault = env.vault(VAULT).await;
    let key = format!("granted-{id}");
    vault.set_secret(&key, "granted-Pw-1", &SecretOptions::default()).await.unwrap();
    let wi = workload_identity(env, &client, "az-grant").await;
    let ns = wi.ns.clone();
    let mi = guid();
    env.entra().add_managed_identity(DEFAULT_TENANT, &mi, None).await.unwrap();
    let mi_provider = json!({"azurekv": {"authType": "ManagedIdentity", "vaultUrl": vault.url(), "identityId": mi}});
    let private = wi_provider(&format!("https://{PRIVATE_VAULT}"), wi.sa, None);
    apply_store(&client, &ns, "private", None, private.clone()).await;
    apply_store(&client, &ns, "private-granted", Some(GRANTED_CLASS), private).await;
    apply_store(&client, &ns, "mi", None, mi_provider.clone()).await;
    apply_store(&client, &ns, "mi-granted", Some(GRANTED_CLASS), mi_provider).await;
    let es = apply_es(&client, &ns, "private", ("private", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "private-granted", ("private-granted", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "mi", ("mi", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "mi-granted", ("mi-granted", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    let settled = |r: &(String, String, String)| r.0 == "False" && !r.2.contains("not been validated");

    let r = wait_ready(&es, "private", "a refusal of the private vault address", Duration::from_secs(30), settled).await;
    eprintln!("grant: private vault, not granted: {} / {}", r.1, r.2);
    assert!(r.2.contains("denied") && r.2.contains(PRIVATE_VAULT) && r.2.contains("private address"), "the condition must say the private address is refused: {r:?}");
    let r = wait_ready(&es, "mi", "a refusal of the metadata address", Duration::from_secs(30), settled).await;
    eprintln!("grant: ManagedIdentity, not granted: {} / {}", r.1, r.2);
    assert!(
        r.2.contains("denied") && r.2.contains(IMDS_HOST) && r.2.contains("metadata address"),
        "the condition must say the metadata address is refused: {r:?}"
    );

    // Granted: Managed Identity fetches through IMDS; the private address is reached
    // (the gateway behind it knows no vault named 10.0.0.1 and answers 404).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let (data, took) = wait_for("the Secret of the granted ManagedIdentity store", Duration::from_secs(30), || secret_data(&secrets, "mi-granted")).await;
    eprintln!("grant: ManagedIdentity, granted: synced in {took:?}");
    assert_eq!(data["password"], b"granted-Pw-1");
    assert_eq!(env.entra().exchange_count(&mi).await.unwrap(), 1, "one IMDS token for the granted store, none for the refused one");
    let r = wait_ready(&es, "private-granted", "the granted private store past the policy", Duration::from_secs(30), settled).await;
    eprintln!("grant: private vault, granted: {} / {}", r.1, r.2);
    assert!(!r.2.contains("denied") && r.2.contains("does not exist"), "a granted private address must be reached: {r:?}");
    for name in ["private", "mi", "private-granted"] {
        assert!(secrets.get_opt(name).await.unwrap().is_none(), "no Secret from store {name}");
    }
    delete_namespace(&client, &ns).await;
}

/// The gateway answers 429 with Retry-After: the engine does not call again before it,
/// the Secret keeps its data, the condition and a Warning event say throttled, and
/// syncing recovers once the vault stops throttling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_for_retry_after_and_keeps_the_secret() {
    const RETRY_AFTER: Duration = Duration::from_secs(3);
    const THROTTLED: u32 = 3;
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let vault = env.vault(VAULT).await;
    let key = format!("busy-{id}");
    vault.set_secret(&key, "busy-Pw-1", &SecretOptions::default()).await.unwrap();
    let wi = workload_identity(env, &client, "az-busy").await;
    let ns = wi.ns.clone();
    apply_store(&client, &ns, "kv", None, wi_provider(&vault.url(), wi.sa, None)).await;
    // A refresh interval far below Retry-After: only the throttle can space the calls.
    let es = apply_es(&client, &ns, "app", ("kv", "SecretStore"), "1s", "Retain", &[("password", &key)]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let (before, _) = wait_for("the first sync", Duration::from_secs(60), || secret_data(&secrets, "app")).await;

    let fault = Fault::Status {
        status: 429,
        retry_after: Some(RETRY_AFTER.as_secs()),
        filter: FaultFilter { count: Some(THROTTLED), path_contains: Some(format!("/secrets/{key}")), method: Some("GET".into()) },
    };
    env.gateway().inject(fault).await.unwrap();
    vault.set_secret(&key, "busy-Pw-2", &SecretOptions::default()).await.unwrap();
    let mut seen = gets_of(env, &key).await;
    let mut times = Vec::new();
    let mut throttled_condition = None;
    let start = Instant::now();
    // THROTTLED answers, then the call that succeeds.
    while times.len() < THROTTLED as usize + 1 && start.elapsed() < RETRY_AFTER * (THROTTLED + 3) {
        // Read before counting: if no successful GET is counted yet, none preceded these reads.
        let data = secret_data(&secrets, "app").await.expect("the Secret stays while throttled");
        let condition = ready(&es, "app").await;
        let n = gets_of(env, &key).await;
        for _ in seen..n {
            times.push(Instant::now());
        }
        seen = n;
        if times.len() <= THROTTLED as usize {
            assert_eq!(data, before, "a throttled vault must leave the Secret's data byte for byte");
            if throttled_condition.is_none() && !times.is_empty() {
                throttled_condition = condition.filter(|r| r.0 == "False");
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    env.gateway().clear_faults().await.unwrap();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("throttle: {} GETs in {:?}, gaps {gaps:?}", times.len(), start.elapsed());
    assert_eq!(times.len(), THROTTLED as usize + 1, "the engine must call again after Retry-After until it succeeds");
    // Polling every 25 ms plus the call's own duration stay well under 300 ms.
    for gap in &gaps {
        assert!(*gap + Duration::from_millis(300) >= RETRY_AFTER, "a GET came {gap:?} after a 429, before Retry-After {RETRY_AFTER:?}");
    }
    let r = throttled_condition.expect("Ready=False while throttled");
    eprintln!("throttle: condition {} / {}", r.1, r.2);
    assert!(r.2.contains("throttled"), "the condition must say throttled: {r:?}");
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.unwrap();
    assert!(
        events.items.iter().any(|e| e.type_.as_deref() == Some("Warning") && e.message.as_deref().is_some_and(|m| m.contains("throttled"))),
        "a Warning event must say throttled"
    );

    let (_, took) = wait_for("the Secret synced after the throttle", Duration::from_secs(15), || async {
        (secret_data(&secrets, "app").await?.get("password")? == b"busy-Pw-2").then_some(())
    })
    .await;
    wait_ready(&es, "app", "Ready=True after the throttle", Duration::from_secs(10), |r| r.0 == "True").await;
    eprintln!("throttle: recovered {took:?} after the fault ended");
    delete_namespace(&client, &ns).await;
}

/// Consumers of one unit asking for its keys in different orders call the provider
/// concurrently: the unit still does one Entra exchange and one TokenRequest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_of_one_unit_share_one_token() {
    const PER_ORDER: usize = 8;
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let wi = workload_identity(env, &client, "az-order-sa").await;
    let vault = env.vault(VAULT).await;
    let keys: Vec<String> = (0..4).map(|i| format!("order-{id}-{i}")).collect();
    for k in &keys {
        vault.set_secret(k, "order-Pw", &SecretOptions::default()).await.unwrap();
    }
    let store = format!("order-{id}");
    apply_cluster_store(&client, &store, wi_provider(&vault.url(), wi.sa, Some(&wi.ns))).await;
    let started = Instant::now();
    let mut namespaces = Vec::new();
    for i in 0..PER_ORDER * 2 {
        let ns = format!("az-order-{id}-{i:02}");
        namespace(&client, &ns, json!({})).await;
        // Each namespace starts with a different key.
        let mut order: Vec<(String, String)> = keys.iter().enumerate().map(|(j, k)| (format!("k{j}"), k.clone())).collect();
        order.rotate_left(i % keys.len());
        let data: Vec<(&str, &str)> = order.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        apply_es(&client, &ns, "app", (&store, "ClusterSecretStore"), "1h", "Retain", &data).await;
        namespaces.push(ns);
    }
    wait_for("every Secret", Duration::from_secs(120), || {
        let client = client.clone();
        let namespaces = namespaces.clone();
        async move {
            for ns in &namespaces {
                if secret_data(&Api::namespaced(client.clone(), ns), "app").await?.len() != 4 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let exchanges = env.entra().exchange_count(&wi.client).await.unwrap();
    let token_requests = token_requests(env, &wi.ns, wi.sa);
    let mut gets = Vec::new();
    for k in &keys {
        gets.push(gets_of(env, k).await);
    }
    eprintln!("order: {} namespaces synced in {:?}; GETs per key {gets:?}, Entra exchanges {exchanges}, TokenRequests {token_requests}", namespaces.len(), started.elapsed());
    assert_eq!(exchanges, 1, "one Entra exchange for the unit");
    assert_eq!(token_requests, 1, "one TokenRequest for the unit");
    for ns in &namespaces {
        delete_namespace(&client, ns).await;
    }
}

/// Workload Identity slips a store author makes, each with a clear condition and no
/// Secret: an unknown tenant (AADSTS90002), a service account without the client-id
/// annotation, and a namespaced store whose serviceAccountRef names another namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_slips_give_clear_conditions() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let vault = env.vault(VAULT).await;
    let key = format!("slip-{id}");
    vault.set_secret(&key, "slip-Pw-1", &SecretOptions::default()).await.unwrap();
    let wi = workload_identity(env, &client, "az-slip").await;
    let ns = wi.ns.clone();
    let other = workload_identity(env, &client, "az-slip-other").await;
    let unknown_tenant = guid();
    let sas = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &ns);
    let pp = PatchParams::apply("lockstep-azure-test").force();
    for (name, annotations) in [
        ("wrong-tenant", json!({"azure.workload.identity/client-id": wi.client, "azure.workload.identity/tenant-id": unknown_tenant})),
        ("no-client-id", json!({"azure.workload.identity/tenant-id": DEFAULT_TENANT})),
    ] {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns, "annotations": annotations}});
        sas.patch(name, &pp, &Patch::Apply(sa)).await.expect("service account");
    }
    apply_store(&client, &ns, "wrong-tenant", None, wi_provider(&vault.url(), "wrong-tenant", None)).await;
    apply_store(&client, &ns, "no-client-id", None, wi_provider(&vault.url(), "no-client-id", None)).await;
    apply_store(&client, &ns, "other-ns", None, wi_provider(&vault.url(), other.sa, Some(&other.ns))).await;
    let es = apply_es(&client, &ns, "wrong-tenant", ("wrong-tenant", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "no-client-id", ("no-client-id", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "other-ns", ("other-ns", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;
    let settled = |r: &(String, String, String)| r.0 == "False" && !r.2.contains("not been validated");

    let r = wait_ready(&es, "wrong-tenant", "the unknown tenant's condition", Duration::from_secs(30), settled).await;
    eprintln!("slip (unknown tenant): {} / {}", r.1, r.2);
    assert!(r.2.contains("AADSTS90002") && r.2.contains(&unknown_tenant), "the condition must carry Entra's code and the tenant: {r:?}");
    let r = wait_ready(&es, "no-client-id", "the missing client-id condition", Duration::from_secs(30), settled).await;
    eprintln!("slip (no client-id annotation): {} / {}", r.1, r.2);
    assert!(r.2.contains("azure.workload.identity/client-id") && r.2.contains("no-client-id"), "the condition must name the annotation and the service account: {r:?}");
    let r = wait_ready(&es, "other-ns", "the cross-namespace serviceAccountRef condition", Duration::from_secs(30), settled).await;
    eprintln!("slip (serviceAccountRef in another namespace): {} / {}", r.1, r.2);
    assert!(r.2.contains("serviceAccountRef") && r.2.contains(&other.ns), "the condition must name the field and the other namespace: {r:?}");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in ["wrong-tenant", "no-client-id", "other-ns"] {
        assert!(secrets.get_opt(name).await.unwrap().is_none(), "no Secret from store {name}");
    }
    assert_eq!(env.entra().exchange_count(&other.client).await.unwrap(), 0, "the other namespace's identity is never used");
    assert_eq!(token_requests(env, &other.ns, other.sa), 0, "no token of the other namespace's service account is issued");
    delete_namespace(&client, &ns).await;
    delete_namespace(&client, &other.ns).await;
}

/// ServicePrincipal through the controllers: a client secret and a client certificate
/// (from a Secret beside the store) each sync with one exchange; a wrong secret gives
/// Entra's AADSTS7000215 in the condition, never the secret itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_with_secret_and_certificate() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let env = TestEnv::shared().await;
    let client = env.client().await;
    let id = suffix();
    let vault = env.vault(VAULT).await;
    let key = format!("sp-{id}");
    vault.set_secret(&key, "sp-Pw-1", &SecretOptions::default()).await.unwrap();
    let (secret_client, cert_client) = (guid(), guid());
    const CLIENT_SECRET: &str = "sp-Cl1ent-s3cret";
    env.entra().add_client_secret(DEFAULT_TENANT, &secret_client, CLIENT_SECRET).await.unwrap();
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../providers/azure-keyvault/testdata");
    let cert = std::fs::read_to_string(testdata.join("client.crt")).expect("test certificate");
    let cert_key = std::fs::read_to_string(testdata.join("client.key")).expect("test key");
    env.entra().add_certificate(DEFAULT_TENANT, &cert_client, &cert).await.unwrap();

    let ns = format!("az-sp-{id}");
    namespace(&client, &ns, json!({})).await;
    let creds = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sp", "namespace": ns},
        "stringData": {"secret-client": secret_client, "cert-client": cert_client, "client-secret": CLIENT_SECRET,
                       "wrong-secret": "sp-Wr0ng-s3cret", "client-cert": format!("{cert}{cert_key}")},
    });
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch("sp", &PatchParams::apply("lockstep-azure-test").force(), &Patch::Apply(creds))
        .await
        .expect("credentials Secret");
    let sp = |client_key: &str, cred: &str, cred_key: &str| {
        json!({"azurekv": {"authType": "ServicePrincipal", "vaultUrl": vault.url(), "tenantId": DEFAULT_TENANT, "authSecretRef": {
            "clientId": {"name": "sp", "key": client_key}, cred: {"name": "sp", "key": cred_key}}}})
    };
    apply_store(&client, &ns, "sp-secret", None, sp("secret-client", "clientSecret", "client-secret")).await;
    apply_store(&client, &ns, "sp-cert", None, sp("cert-client", "clientCertificate", "client-cert")).await;
    apply_store(&client, &ns, "sp-wrong", None, sp("secret-client", "clientSecret", "wrong-secret")).await;
    let es = apply_es(&client, &ns, "sp-secret", ("sp-secret", "SecretStore"), "2s", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "sp-cert", ("sp-cert", "SecretStore"), "2s", "Retain", &[("password", &key)]).await;
    apply_es(&client, &ns, "sp-wrong", ("sp-wrong", "SecretStore"), "1h", "Retain", &[("password", &key)]).await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in ["sp-secret", "sp-cert"] {
        let (data, took) = wait_for(&format!("the Secret of store {name}"), Duration::from_secs(30), || secret_data(&secrets, name)).await;
        eprintln!("service principal ({name}): synced in {took:?}");
        assert_eq!(data["password"], b"sp-Pw-1");
    }
    let r = wait_ready(&es, "sp-wrong", "the wrong client secret's condition", Duration::from_secs(30), |r| r.0 == "False" && !r.2.contains("not been validated")).await;
    eprintln!("service principal (wrong secret): {} / {}", r.1, r.2);
    assert!(r.2.contains("AADSTS7000215"), "the condition must carry Entra's code: {r:?}");
    assert!(!r.2.contains("s3cret"), "no client secret in a condition");
    assert!(secrets.get_opt("sp-wrong").await.unwrap().is_none());
    // A few refresh cycles on the good stores: the token of each is reused.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (a, b) = (env.entra().exchange_count(&secret_client).await.unwrap(), env.entra().exchange_count(&cert_client).await.unwrap());
    eprintln!("service principal: exchanges (secret, certificate) = ({a}, {b})");
    assert_eq!((a, b), (1, 1), "one exchange per service principal");
    delete_namespace(&client, &ns).await;
}
