//! End-to-end tests of provider failures through the test-only `probe` plugin
//! (docs/plugin-authoring.md §4) on the real local control plane. Same engine set-up
//! as `e2e.rs` (a TokenRequest token of a ServiceAccount bound to `rbac/clusterrole.yaml`),
//! with only the probe loaded, as a file source pinned by sha256. Each scenario uses its
//! own namespace and holds `SERIAL`: provider-call counters are global to the engine.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use lockstep_api::v1;
use lockstep_testenv::TestEnv;
use serde_json::json;

use common::{Engine, Identity, component, metric, namespace, ready_of, suffix, wait_for};

const ID: Identity = Identity { namespace: "lockstep-probe-system", service_account: "lockstep-probe-e2e", tag: "probe-e2e" };

static ENGINE: tokio::sync::OnceCell<Engine> = tokio::sync::OnceCell::const_new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn engine() -> &'static Engine {
    ENGINE
        .get_or_init(|| async {
            let env = TestEnv::shared().await;
            common::start(common::config(env, &ID, vec![("probe".into(), component("lockstep_provider_probe"))]).await).await
        })
        .await
}

/// Stops the scenario's ExternalSecrets from refreshing (and calling the probe) after it ends.
async fn delete_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::default()).await.ok();
}

/// Creates or replaces (server-side apply, whole spec) a namespaced probe SecretStore.
async fn apply_store(client: &Client, ns: &str, name: &str, probe: serde_json::Value) {
    let store = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"provider": {"probe": probe}},
    });
    Api::<v1::SecretStore>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("lockstep-probe-test").force(), &Patch::Apply(store))
        .await
        .expect("apply store");
}

async fn create_es(client: &Client, ns: &str, name: &str, store: &str, key: &str, refresh: &str) -> Api<v1::ExternalSecret> {
    let es: v1::ExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": refresh,
            "secretStoreRef": {"name": store, "kind": "SecretStore"},
            "data": [{"secretKey": "password", "remoteRef": {"key": key}}],
        },
    }))
    .unwrap();
    let api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &es).await.expect("create ExternalSecret");
    api
}

/// Waits for the ExternalSecret's Ready condition to match.
async fn wait_ready(
    api: &Api<v1::ExternalSecret>,
    name: &str,
    what: &str,
    timeout: Duration,
    want: impl Fn(&(String, String, String)) -> bool,
) -> (String, String, String) {
    wait_for(what, timeout, || {
        let api = api.clone();
        let want = &want;
        async move { ready_of(api.get(name).await.ok()?.status.as_ref()).filter(want) }
    })
    .await
    .0
}

/// The probe fails `unavailable`: the Secret keeps its data byte for byte, Ready goes
/// False with the cause and a Warning event is recorded; restoring the store heals it.
#[tokio::test]
async fn provider_failure_keeps_secret_and_recovers() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let client = TestEnv::shared().await.client().await;
    let ns = format!("probe-fail-{}", suffix());
    namespace(&client, &ns, json!({})).await;
    let good = |v: &str| json!({"responses": {"db": {"value": v, "version": "1"}}});
    apply_store(&client, &ns, "probe", good("fail-pw-1")).await;
    let es_api = create_es(&client, &ns, "app", "probe", "db", "2s").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let (before, took) = wait_for("the first sync", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("app").await.ok()??.data.filter(|d| d.get("password").is_some_and(|v| v.0 == b"fail-pw-1")) }
    })
    .await;
    eprintln!("failure: first sync in {took:?}");
    wait_ready(&es_api, "app", "Ready=True", Duration::from_secs(10), |r| r.0 == "True").await;

    apply_store(&client, &ns, "probe", json!({"responses": {"db": {"error": {"kind": "unavailable", "message": "probe backend down"}}}})).await;
    let (ready, took) = {
        let start = Instant::now();
        let r = wait_ready(&es_api, "app", "Ready=False after unavailable", Duration::from_secs(30), |r| r.0 == "False").await;
        (r, start.elapsed())
    };
    eprintln!("failure: Ready=False {took:?} after the store edit: {} / {}", ready.1, ready.2);
    assert!(
        ready.2.contains("unavailable") || ready.2.contains("probe backend down"),
        "the condition must carry the cause: {ready:?}"
    );
    // Two more refresh windows: the Secret must not be blanked or rewritten.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = secrets.get("app").await.expect("Secret still there").data.unwrap_or_default();
    assert_eq!(during, before, "a provider error must leave the Secret's data byte for byte");
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.expect("events");
    let warning = events
        .items
        .iter()
        .find(|e| e.type_.as_deref() == Some("Warning") && e.involved_object.kind.as_deref() == Some("ExternalSecret") && e.involved_object.name.as_deref() == Some("app"));
    let warning = warning.unwrap_or_else(|| panic!("no Warning event for the ExternalSecret; events: {:?}", events.items.iter().map(|e| (&e.type_, &e.reason, &e.message)).collect::<Vec<_>>()));
    assert!(!warning.message.as_deref().unwrap_or_default().contains("fail-pw"), "events must not carry secret values");

    apply_store(&client, &ns, "probe", good("fail-pw-2")).await;
    let start = Instant::now();
    wait_for("the Secret synced again", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("app").await.ok()??.data.filter(|d| d.get("password").is_some_and(|v| v.0 == b"fail-pw-2")) }
    })
    .await;
    let ready = wait_ready(&es_api, "app", "Ready=True after recovery", Duration::from_secs(10), |r| r.0 == "True").await;
    eprintln!("failure: recovered {:?} after the store was restored ({})", start.elapsed(), ready.1);
    delete_namespace(&client, &ns).await;
}

/// Credential requests the host refuses: a namespaced SecretStore reaching for a
/// Secret in another namespace, and a request for a reference the store never
/// declared. Both surface as a clear denial on the ExternalSecret; no Secret is written.
#[tokio::test]
async fn capability_refusals_give_clear_conditions() {
    let _engine = engine().await;
    let _serial = SERIAL.lock().await;
    let client = TestEnv::shared().await.client().await;
    let id = suffix();
    let (ns, other) = (format!("probe-deny-{id}"), format!("probe-deny-other-{id}"));
    namespace(&client, &ns, json!({})).await;
    namespace(&client, &other, json!({})).await;
    // The referenced Secrets exist in both namespaces: only policy can refuse them.
    for n in [&ns, &other] {
        Api::<Secret>::namespaced(client.clone(), n)
            .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"token": "deny-T0ken-value"}})).unwrap())
            .await
            .expect("creds Secret");
    }
    let answer = json!({"db": {"from": "secretKey"}});
    let cross = json!({"name": "creds", "key": "token", "namespace": other});
    apply_store(&client, &ns, "cross-ns", json!({"auth": {"secretRef": cross}, "request": {"secretKey": cross}, "responses": answer})).await;
    apply_store(&client, &ns, "undeclared", json!({"request": {"secretKey": {"name": "creds", "key": "token"}}, "responses": answer})).await;
    let es_api = create_es(&client, &ns, "cross", "cross-ns", "db", "1h").await;
    create_es(&client, &ns, "undeclared", "undeclared", "db", "1h").await;

    let cross = wait_ready(&es_api, "cross", "a refusal of the cross-namespace reference", Duration::from_secs(30), |r| r.0 == "False" && !r.2.contains("not been validated")).await;
    eprintln!("refusal (cross-namespace): {} / {}", cross.1, cross.2);
    assert!(cross.2.contains("denied"), "the condition must say denied: {cross:?}");
    assert!(
        cross.2.contains(&other) && cross.2.contains("only reference its own namespace"),
        "the condition must name the other namespace and why it is refused: {cross:?}"
    );
    let undeclared = wait_ready(&es_api, "undeclared", "a refusal of the undeclared reference", Duration::from_secs(30), |r| r.0 == "False" && !r.2.contains("not been validated")).await;
    eprintln!("refusal (undeclared): {} / {}", undeclared.1, undeclared.2);
    assert!(undeclared.2.contains("denied"), "the condition must say denied: {undeclared:?}");
    assert!(undeclared.2.contains("not referenced"), "the condition must say the reference is not declared: {undeclared:?}");
    for r in [&cross, &undeclared] {
        assert!(!r.2.contains("deny-T0ken-value"), "a condition must not carry a secret value");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in ["cross", "undeclared"] {
        assert!(secrets.get_opt(name).await.unwrap().is_none(), "a refused store must not produce Secret {name}");
    }
}

/// `throttled` with Retry-After: the condition says throttled, and the engine's next
/// provider call for that key waits at least Retry-After (seen on the calls metric).
#[tokio::test]
async fn throttled_waits_for_retry_after() {
    const RETRY_AFTER: Duration = Duration::from_millis(2500);
    let engine = engine().await;
    let _serial = SERIAL.lock().await;
    let client = TestEnv::shared().await.client().await;
    let ns = format!("probe-throttle-{}", suffix());
    namespace(&client, &ns, json!({})).await;
    apply_store(&client, &ns, "probe", json!({"responses": {"busy": {"error": {
        "kind": "throttled", "retryAfterMs": RETRY_AFTER.as_millis() as u64, "message": "slow down"}}}}))
    .await;
    // Only throttled answers: ExternalSecrets of earlier scenarios keep refreshing.
    let calls = r#"lockstep_provider_calls_total{provider="probe",call="GetSecret",status="Throttled"}"#;
    let mut seen = metric(engine, calls).await;
    // A refresh interval far below Retry-After: only the throttle can space the calls.
    let es_api = create_es(&client, &ns, "app", "probe", "busy", "1s").await;
    let mut call_times = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) && call_times.len() < 4 {
        let now = metric(engine, calls).await;
        if now > seen {
            call_times.push(Instant::now());
            seen = now;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let gaps: Vec<Duration> = call_times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("throttle: {} GetSecret calls in {:?}, gaps {gaps:?}", call_times.len(), start.elapsed());
    assert!(call_times.len() >= 2, "the engine must retry after Retry-After ({} calls seen)", call_times.len());
    // Observation jitter (metric polling every 25 ms, the call's own duration) stays well under 300 ms.
    for gap in &gaps {
        assert!(*gap + Duration::from_millis(300) >= RETRY_AFTER, "a provider call came {gap:?} after the previous one, before Retry-After {RETRY_AFTER:?}");
    }
    let ready = wait_ready(&es_api, "app", "Ready=False throttled", Duration::from_secs(10), |r| r.0 == "False").await;
    eprintln!("throttle: {} / {}", ready.1, ready.2);
    assert!(ready.2.contains("throttled"), "the condition must say throttled: {ready:?}");

    apply_store(&client, &ns, "probe", json!({"responses": {"busy": {"value": "throttle-ok"}}})).await;
    wait_ready(&es_api, "app", "Ready=True once the backend stops throttling", Duration::from_secs(30), |r| r.0 == "True").await;
    delete_namespace(&client, &ns).await;
}
