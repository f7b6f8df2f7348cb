//! The AWS Secrets Manager component end to end through the controllers, on the
//! real local control plane, against moto (PyPI, IAM authentication and SigV4
//! checks enforced) behind the TLS front of `lockstep_testenv::aws`. The engine
//! reaches the real hostnames (`secretsmanager.us-east-1.amazonaws.com`,
//! `sts.us-east-1.amazonaws.com`) through `resolve` overrides and the front's CA,
//! as an operator would configure a private endpoint; nothing in the engine or
//! the component knows it is a test.
//!
//! One engine for the binary (a TokenRequest identity bound to
//! `rbac/clusterrole.yaml`, never admin); each scenario uses its own namespace,
//! IAM principals and secret names, and holds `SERIAL`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use lockstep_api::v1;
use lockstep_testenv::TestEnv;
use lockstep_testenv::aws::{AccessKey, Aws, Throttle};
use serde_json::{Value, json};

use common::{Engine, Identity, component, namespace, ready_of, suffix, wait_for};

const ID: Identity = Identity { namespace: "lockstep-aws-system", service_account: "lockstep-aws-e2e", tag: "aws-e2e" };
const READ: &[&str] = &["secretsmanager:GetSecretValue", "secretsmanager:ListSecrets", "secretsmanager:DescribeSecret"];

static ENGINE: tokio::sync::OnceCell<Engine> = tokio::sync::OnceCell::const_new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn aws() -> &'static Aws {
    Aws::shared(Some(TestEnv::shared().await.ca_pem())).await
}

async fn engine() -> &'static Engine {
    ENGINE
        .get_or_init(|| async {
            let env = TestEnv::shared().await;
            let aws = aws().await;
            let mut config = common::config(env, &ID, vec![("aws".into(), component("lockstep_provider_aws_secretsmanager"))]).await;
            config.extra_ca_files = vec![aws.ca_file().to_path_buf()];
            config.resolve = aws.resolve();
            common::start(config).await
        })
        .await
}

/// Engine, serial lock, admin client and a fresh namespace.
async fn scenario(prefix: &str) -> (tokio::sync::MutexGuard<'static, ()>, Client, String) {
    engine().await;
    let serial = SERIAL.lock().await;
    let client = TestEnv::shared().await.client().await;
    let ns = format!("{prefix}-{}", suffix());
    namespace(&client, &ns, json!({})).await;
    (serial, client, ns)
}

/// Stops the scenario's ExternalSecrets from refreshing after it ends.
async fn delete_namespace(client: &Client, ns: &str) {
    Api::<Namespace>::all(client.clone()).delete(ns, &DeleteParams::default()).await.ok();
}

async fn credentials_secret(client: &Client, ns: &str, name: &str, key: &AccessKey, secret_access_key: &str) {
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"access-key-id": key.access_key_id, "secret-access-key": secret_access_key},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &s).await.expect("credentials Secret");
}

async fn apply_store(client: &Client, ns: &str, name: &str, aws: Value) {
    let store = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"provider": {"aws": aws}},
    });
    Api::<v1::SecretStore>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("lockstep-aws-test").force(), &Patch::Apply(store))
        .await
        .expect("apply store");
}

fn static_store(secret: &str) -> Value {
    json!({
        "service": "SecretsManager", "region": "us-east-1",
        "auth": {"secretRef": {
            "accessKeyIDSecretRef": {"name": secret, "key": "access-key-id"},
            "secretAccessKeySecretRef": {"name": secret, "key": "secret-access-key"},
        }},
    })
}

/// An IAM user allowed to read, its key in Secret `aws-creds` and a static-key SecretStore `aws`.
async fn reader_store(client: &Client, aws: &Aws, ns: &str) -> AccessKey {
    let key = aws.user(&format!("{ns}-reader"), READ).await.expect("IAM user");
    credentials_secret(client, ns, "aws-creds", &key, &key.secret_access_key).await;
    apply_store(client, ns, "aws", static_store("aws-creds")).await;
    key
}

async fn apply_es(client: &Client, ns: &str, name: &str, spec: Value) -> Api<v1::ExternalSecret> {
    let es = json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name, "namespace": ns}, "spec": spec});
    let api: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::apply("lockstep-aws-test").force(), &Patch::Apply(es)).await.expect("apply ExternalSecret");
    api
}

async fn wait_ready(api: &Api<v1::ExternalSecret>, name: &str, what: &str, want: impl Fn(&(String, String, String)) -> bool) -> (String, String, String) {
    wait_for(what, Duration::from_secs(40), || {
        let api = api.clone();
        let want = &want;
        async move { ready_of(api.get(name).await.ok()?.status.as_ref()).filter(want) }
    })
    .await
    .0
}

async fn secret_data(client: &Client, ns: &str, name: &str) -> Option<std::collections::BTreeMap<String, Vec<u8>>> {
    let s = Api::<Secret>::namespaced(client.clone(), ns).get_opt(name).await.ok()??;
    Some(s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect())
}

async fn wait_secret(client: &Client, ns: &str, name: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    wait_for(&format!("Secret {ns}/{name}"), Duration::from_secs(40), || secret_data(client, ns, name)).await.0
}

/// Static keys: the Secret appears with the selected properties; the same store
/// with a wrong secret key is refused by moto's signature check, and the
/// condition says so without any value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_credentials_sync_and_a_wrong_key_is_refused() {
    let (_serial, client, ns) = scenario("aws-static").await;
    let aws = aws().await;
    let key = reader_store(&client, aws, &ns).await;
    let remote = format!("{ns}/db");
    aws.call("secretsmanager", "CreateSecret", json!({"Name": remote, "SecretString": json!({"username": "app", "password": "st4tic-Pw"}).to_string()}))
        .await
        .expect("CreateSecret");

    let es = apply_es(&client, &ns, "db", json!({
        "refreshInterval": "1h", "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
        "data": [{"secretKey": "password", "remoteRef": {"key": remote, "property": "password"}},
                 {"secretKey": "username", "remoteRef": {"key": remote, "property": "username"}}],
    }))
    .await;
    let data = wait_secret(&client, &ns, "db").await;
    assert_eq!(data.get("password").map(Vec::as_slice), Some(&b"st4tic-Pw"[..]));
    assert_eq!(data.get("username").map(Vec::as_slice), Some(&b"app"[..]));
    wait_ready(&es, "db", "Ready=True", |r| r.0 == "True").await;

    credentials_secret(&client, &ns, "aws-bad", &key, "wrong-secret-access-key").await;
    apply_store(&client, &ns, "aws-bad", static_store("aws-bad")).await;
    let bad = apply_es(&client, &ns, "bad", json!({
        "refreshInterval": "1h", "secretStoreRef": {"name": "aws-bad", "kind": "SecretStore"},
        "data": [{"secretKey": "password", "remoteRef": {"key": remote, "property": "password"}}],
    }))
    .await;
    let (_, reason, message) = wait_ready(&bad, "bad", "Ready=False for the wrong key", |r| r.0 == "False" && r.2.contains("SignatureDoesNotMatch")).await;
    eprintln!("static: wrong key: {reason}: {message}");
    assert!(message.contains("did not accept the credentials"), "{message}");
    for leaked in ["st4tic-Pw", "wrong-secret-access-key", key.secret_access_key.as_str()] {
        assert!(!message.contains(leaked), "the condition must not carry a secret");
    }
    assert!(secret_data(&client, &ns, "bad").await.is_none(), "no Secret from refused credentials");
    delete_namespace(&client, &ns).await;
}

/// Web identity: the host's TokenRequest token (audience sts.amazonaws.com) is
/// exchanged for the store's role; the front checks it against the apiserver's
/// JWKS and the role's trusted subject. A token of another service account is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_works_and_another_service_account_is_refused() {
    let (_serial, client, ns) = scenario("aws-wi").await;
    let env = TestEnv::shared().await;
    let aws = aws().await;
    let role = aws.role(&format!("{ns}-reader"), READ).await.expect("IAM role");
    aws.trust_web_identity(&role, env.issuer(), &TestEnv::subject(&ns, "app-reader"));
    let remote = format!("{ns}/api-key");
    aws.call("secretsmanager", "CreateSecret", json!({"Name": remote, "SecretString": "w3b-Identity-key"})).await.expect("CreateSecret");
    for sa in ["app-reader", "intruder"] {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": sa, "namespace": ns}})).unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), &ns).create(&PostParams::default(), &sa).await.expect("ServiceAccount");
    }
    let store = |sa: &str| json!({"service": "SecretsManager", "region": "us-east-1", "role": role, "auth": {"jwt": {"serviceAccountRef": {"name": sa}}}});
    let es_spec = |store: &str| json!({
        "refreshInterval": "1h", "secretStoreRef": {"name": store, "kind": "SecretStore"},
        "data": [{"secretKey": "key", "remoteRef": {"key": remote}}],
    });
    let exchanges_before = aws.requests("sts.AssumeRoleWithWebIdentity").len();

    apply_store(&client, &ns, "aws-wi", store("app-reader")).await;
    let es = apply_es(&client, &ns, "api", es_spec("aws-wi")).await;
    let data = wait_secret(&client, &ns, "api").await;
    assert_eq!(data.get("key").map(Vec::as_slice), Some(&b"w3b-Identity-key"[..]));
    wait_ready(&es, "api", "Ready=True", |r| r.0 == "True").await;
    assert!(aws.requests("sts.AssumeRoleWithWebIdentity").len() > exchanges_before, "the token went through STS");

    apply_store(&client, &ns, "aws-intruder", store("intruder")).await;
    let bad = apply_es(&client, &ns, "intruder", es_spec("aws-intruder")).await;
    let (_, reason, message) = wait_ready(&bad, "intruder", "Ready=False for another service account", |r| r.0 == "False" && r.2.contains("AccessDenied")).await;
    eprintln!("web identity: other service account: {reason}: {message}");
    assert!(message.contains("AssumeRoleWithWebIdentity"), "{message}");
    assert!(!message.contains("w3b-Identity-key"), "no value in the condition");
    assert!(secret_data(&client, &ns, "intruder").await.is_none());
    delete_namespace(&client, &ns).await;
}

/// dataFrom.find by tags: exactly the secrets carrying every tag with that exact
/// value (AWS's tag filters match prefixes; `production` must not count as `prod`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_by_tags_returns_exactly_the_tagged_secrets() {
    let (_serial, client, ns) = scenario("aws-find").await;
    let aws = aws().await;
    reader_store(&client, aws, &ns).await;
    let tagged = |name: &str, team: &str, env: &str| {
        json!({"Name": format!("{ns}-{name}"), "SecretString": format!("value-{name}"), "Tags": [{"Key": "team", "Value": team}, {"Key": "env", "Value": env}]})
    };
    for params in [tagged("a", &ns, "prod"), tagged("b", &ns, "prod"), tagged("c", &ns, "production"), tagged("d", &ns, "dev"), tagged("e", "other", "prod")] {
        aws.call("secretsmanager", "CreateSecret", params).await.expect("CreateSecret");
    }
    let es = apply_es(&client, &ns, "found", json!({
        "refreshInterval": "1h", "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
        "dataFrom": [{"find": {"tags": {"team": ns, "env": "prod"}}}],
    }))
    .await;
    let data = wait_secret(&client, &ns, "found").await;
    let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    let (a, b) = (format!("{ns}-a"), format!("{ns}-b"));
    assert_eq!(keys, BTreeSet::from([a.as_str(), b.as_str()]));
    assert_eq!(data[&a], b"value-a");
    assert_eq!(data[&b], b"value-b");
    wait_ready(&es, "found", "Ready=True", |r| r.0 == "True").await;
    delete_namespace(&client, &ns).await;
}

/// The remote secret is deleted: with deletionPolicy Delete the Secret is removed;
/// with Retain it keeps its data and Ready turns False naming the missing key
/// (ESO's semantics for a provider not-found in `spec.data`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_follows_deletion_policy() {
    let (_serial, client, ns) = scenario("aws-gone").await;
    let aws = aws().await;
    reader_store(&client, aws, &ns).await;
    let remote = format!("{ns}/soon-gone");
    aws.call("secretsmanager", "CreateSecret", json!({"Name": remote, "SecretString": "g0ne-Soon"})).await.expect("CreateSecret");
    for (name, policy) in [("retained", "Retain"), ("deleted", "Delete")] {
        apply_es(&client, &ns, name, json!({
            "refreshInterval": "2s", "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
            "target": {"deletionPolicy": policy},
            "data": [{"secretKey": "value", "remoteRef": {"key": remote}}],
        }))
        .await;
        assert_eq!(wait_secret(&client, &ns, name).await.get("value").map(Vec::as_slice), Some(&b"g0ne-Soon"[..]));
    }

    aws.call("secretsmanager", "DeleteSecret", json!({"SecretId": remote, "ForceDeleteWithoutRecovery": true})).await.expect("DeleteSecret");
    let (_, took) = wait_for("the Delete-policy Secret to go", Duration::from_secs(30), || async {
        secret_data(&client, &ns, "deleted").await.is_none().then_some(())
    })
    .await;
    eprintln!("not-found: Delete removed the Secret {took:?} after the remote deletion");
    let es: Api<v1::ExternalSecret> = Api::namespaced(client.clone(), &ns);
    let (_, reason, _) = wait_ready(&es, "deleted", "SecretDeleted", |r| r.1 == "SecretDeleted").await;
    assert_eq!(reason, "SecretDeleted");
    // As ESO: with Retain, a missing spec.data key is an error, not an empty result.
    let (_, reason, message) = wait_ready(&es, "retained", "the Retain error", |r| r.0 == "False" && r.2.contains("does not exist")).await;
    eprintln!("not-found: Retain: {reason}: {message}");
    assert!(!message.contains("g0ne-Soon"), "no value in the condition");
    // Two more refreshes: the retained Secret is neither blanked nor removed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(secret_data(&client, &ns, "retained").await.and_then(|d| d.get("value").cloned()), Some(b"g0ne-Soon".to_vec()));
    delete_namespace(&client, &ns).await;
}

/// Throttling (429 with Retry-After) injected in front of moto: the Secret still
/// arrives, and the next call for that secret is not made before Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_honours_retry_after() {
    let (_serial, client, ns) = scenario("aws-throttle").await;
    let aws = aws().await;
    reader_store(&client, aws, &ns).await;
    let remote = format!("{ns}/busy");
    aws.call("secretsmanager", "CreateSecret", json!({"Name": remote, "SecretString": "thr0ttled-Pw"})).await.expect("CreateSecret");
    let retry_after = 3;
    aws.throttle(Throttle { action: "secretsmanager.GetSecretValue".into(), secret_id: Some(remote.clone()), status: 429, retry_after: Some(retry_after), count: 1 });
    let es = apply_es(&client, &ns, "busy", json!({
        "refreshInterval": "1h", "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
        "data": [{"secretKey": "password", "remoteRef": {"key": remote}}],
    }))
    .await;
    let (_, _, message) = wait_ready(&es, "busy", "a throttled condition", |r| r.0 == "False").await;
    eprintln!("throttled: {message}");
    let data = wait_secret(&client, &ns, "busy").await;
    assert_eq!(data.get("password").map(Vec::as_slice), Some(&b"thr0ttled-Pw"[..]));
    let calls = aws.requests_for("secretsmanager.GetSecretValue", &remote);
    assert!(calls.len() >= 2, "a throttled call, then the successful one: {calls:?}");
    let gap = calls[1].duration_since(calls[0]).unwrap_or_default();
    eprintln!("throttled: next call {gap:?} after the 429 (Retry-After {retry_after} s)");
    assert!(gap >= Duration::from_secs(retry_after), "the next call came {gap:?} after the 429, before Retry-After");
    delete_namespace(&client, &ns).await;
}
