//! The Azure Key Vault component through the real plugin host, against the
//! real apiserver (TokenRequest, ServiceAccounts, Secrets), the fake Entra ID
//! that verifies service-account JWTs against the apiserver's JWKS, and the
//! verifying vault gateway. Hostnames are the real ones.

use std::sync::Arc;

use base64::Engine;
use lockstep_azure_tests::*;
use lockstep_plugin_host::wit::{self, ProviderError};
use lockstep_testenv::env::DEFAULT_TENANT;
use lockstep_testenv::gateway::FaultFilter;
use lockstep_testenv::{Fault, SecretOptions, TestEnv};
use serde_json::{Value, json};
use tokio::sync::RwLock;

/// Tests that change the fake Entra's global settings run alone.
static GLOBAL: RwLock<()> = RwLock::const_new(());

/// A namespace with a federated, annotated service account `wi` for a fresh client ID.
struct Identity {
    ns: String,
    client: String,
}

async fn federated_identity(env: &TestEnv, prefix: &str) -> Identity {
    let ns = env.namespace(prefix).await;
    let client = guid();
    env.service_account(&ns, "wi", &client, DEFAULT_TENANT).await;
    env.entra().federate(DEFAULT_TENANT, &client, env.issuer(), &TestEnv::subject(&ns, "wi")).await.unwrap();
    Identity { ns, client }
}

fn wi_config(vault: &str, ns: &str, sa: &str) -> Value {
    json!({
        "authType": "WorkloadIdentity",
        "vaultUrl": format!("https://{vault}.vault.azure.net"),
        "serviceAccountRef": {"name": sa, "namespace": ns},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_fetches_and_reuses_one_token() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    let name = format!("grafana-{}", &guid()[..8]);
    vault.set_secret(&name, r#"{"admin_user":"admin","admin_password":"p4ss","foo.json":"dotted"}"#, &Default::default()).await.unwrap();
    let id = federated_identity(env, "wi-ok").await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-ok", wi_config(SEED_VAULT, &id.ns, "wi"), "consumer-a", backend.clone())).unwrap();

    assert_eq!(store.validate().await.unwrap(), wit::Validation::Ready);
    for _ in 0..5 {
        let mut r = secret_ref(&name);
        r.property = Some("admin_password".into());
        let v = store.get_secret(&r).await.unwrap();
        assert_eq!(v.value, b"p4ss");
        assert!(v.version.as_deref().is_some_and(|v| !v.is_empty()));
    }
    // ESO's dotted-key fallback, the whole value, and extract.
    let mut r = secret_ref(&format!("secret/{name}"));
    r.property = Some("foo.json".into());
    assert_eq!(store.get_secret(&r).await.unwrap().value, b"dotted");
    let whole = store.get_secret(&secret_ref(&name)).await.unwrap().value;
    assert_eq!(serde_json::from_slice::<Value>(&whole).unwrap()["admin_user"], "admin");
    let map = store.get_secret_map(&secret_ref(&name)).await.unwrap();
    let keys: Vec<&str> = map.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["admin_password", "admin_user", "foo.json"]);

    // Eight calls, one Entra exchange, one TokenRequest.
    assert_eq!(env.entra().exchange_count(&id.client).await.unwrap(), 1);
    assert_eq!(backend.token_requests(&id.ns, "wi"), 1);

    // Missing secrets are not-found (drives deletionPolicy).
    match store.get_secret(&secret_ref("does-not-exist")).await {
        Err(ProviderError::NotFound(m)) => assert!(m.contains("does-not-exist"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfederated_service_account_is_aadsts700213() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    env.vault(SEED_VAULT).await;
    let id = federated_identity(env, "wi-sub").await;
    // Same client, but a service account that is not the federated subject.
    env.service_account(&id.ns, "cluster-external-secrets", &id.client, DEFAULT_TENANT).await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-sub", wi_config(SEED_VAULT, &id.ns, "cluster-external-secrets"), "c", backend)).unwrap();
    let f = unauthorized(store.get_secret(&secret_ref("anything")).await);
    assert_eq!(f.code.as_deref(), Some("AADSTS700213"));
    assert!(f.message.contains("cluster-external-secrets"), "{}", f.message);
    assert!(!f.message.contains("Trace ID"), "{}", f.message);
    assert_eq!(env.entra().exchange_count(&id.client).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_is_aadsts90002() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    env.vault(SEED_VAULT).await;
    let ns = env.namespace("wi-tenant").await;
    let client = guid();
    env.service_account(&ns, "wi", &client, &guid()).await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-tenant", wi_config(SEED_VAULT, &ns, "wi"), "c", backend)).unwrap();
    let f = unauthorized(store.get_secret(&secret_ref("anything")).await);
    assert_eq!(f.code.as_deref(), Some("AADSTS90002"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_client_id_annotation_names_it() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    env.vault(SEED_VAULT).await;
    let ns = env.namespace("wi-noanno").await;
    let client = env.client().await;
    let sa = k8s_openapi::api::core::v1::ServiceAccount {
        metadata: kube::api::ObjectMeta { name: Some("bare".into()), namespace: Some(ns.clone()), ..Default::default() },
        ..Default::default()
    };
    kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &sa)
        .await
        .unwrap();
    let backend = Arc::new(KubeBackend::new(client));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-noanno", wi_config(SEED_VAULT, &ns, "bare"), "c", backend.clone())).unwrap();
    let f = unauthorized(store.get_secret(&secret_ref("anything")).await);
    assert!(f.message.contains("azure.workload.identity/client-id"), "{}", f.message);
    assert!(f.message.contains(&format!("{ns}/bare")), "{}", f.message);
    assert_eq!(backend.token_requests(&ns, "bare"), 0, "no token is requested without a client ID");

    // The client ID from authSecretRef works instead; the tenant from the spec.
    let id = guid();
    env.entra().federate(DEFAULT_TENANT, &id, env.issuer(), &TestEnv::subject(&ns, "bare")).await.unwrap();
    secret(&env.client().await, &ns, "azure-ids", &[("client-id", &id)]).await;
    let mut cfg = wi_config(SEED_VAULT, &ns, "bare");
    cfg["tenantId"] = DEFAULT_TENANT.into();
    cfg["authSecretRef"] = json!({"clientId": {"name": "azure-ids", "key": "client-id", "namespace": ns}});
    let store = host.bind(cluster_store("wi-noanno-2", cfg, "c", backend)).unwrap();
    match store.get_secret(&secret_ref("absent-secret")).await {
        Err(ProviderError::NotFound(_)) => {}
        other => panic!("expected the vault's not-found after a good exchange, got {other:?}"),
    }
    assert_eq!(env.entra().exchange_count(&id).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_client_ids_are_invalid_config_but_equal_ones_are_fine() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    vault.set_secret("same-id", "v", &Default::default()).await.unwrap();
    let id = federated_identity(env, "wi-ids").await;
    let client = env.client().await;
    secret(&client, &id.ns, "ids", &[("same", &id.client), ("other", &guid())]).await;
    let backend = Arc::new(KubeBackend::new(client));
    let host = host(env, HostOptions::default()).await;
    let mut cfg = wi_config(SEED_VAULT, &id.ns, "wi");
    cfg["authSecretRef"] = json!({"clientId": {"name": "ids", "key": "same", "namespace": id.ns}});
    cfg["tenantId"] = DEFAULT_TENANT.into(); // equal to the annotation: not a conflict
    let store = host.bind(cluster_store("wi-ids", cfg.clone(), "c", backend.clone())).unwrap();
    assert_eq!(store.get_secret(&secret_ref("same-id")).await.unwrap().value, b"v");
    cfg["authSecretRef"]["clientId"]["key"] = "other".into();
    let store = host.bind(cluster_store("wi-ids-2", cfg, "c", backend)).unwrap();
    match store.get_secret(&secret_ref("same-id")).await {
        Err(ProviderError::InvalidConfig(c)) => {
            assert_eq!(c.field, "authSecretRef.clientId");
            assert!(c.reason.contains("different client IDs"), "{}", c.reason);
        }
        other => panic!("{other:?}"),
    }
}

/// A namespace with a Secret `sp` holding `client-id` and the given credential keys.
async fn sp_namespace(env: &TestEnv, prefix: &str, data: &[(&str, &str)]) -> String {
    let ns = env.namespace(prefix).await;
    secret(&env.client().await, &ns, "sp", data).await;
    ns
}

fn sp_config(cred: &str, key: &str) -> Value {
    json!({
        "vaultUrl": format!("https://{SEED_VAULT}.vault.azure.net"),
        "tenantId": DEFAULT_TENANT,
        "authSecretRef": {"clientId": {"name": "sp", "key": "client-id"}, cred: {"name": "sp", "key": key}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_with_client_secret() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    vault.set_secret("sp-value", "from-sp", &Default::default()).await.unwrap();
    let client = guid();
    env.entra().add_client_secret(DEFAULT_TENANT, &client, "s3cret-value").await.unwrap();
    let ns = sp_namespace(env, "sp", &[("client-id", &client), ("client-secret", "s3cret-value"), ("wrong", "nope")]).await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(namespaced_store("sp-secret", sp_config("clientSecret", "client-secret"), &ns, backend.clone())).unwrap();
    for _ in 0..3 {
        assert_eq!(store.get_secret(&secret_ref("sp-value")).await.unwrap().value, b"from-sp");
    }
    assert_eq!(env.entra().exchange_count(&client).await.unwrap(), 1);
    let wrong = host.bind(namespaced_store("sp-wrong", sp_config("clientSecret", "wrong"), &ns, backend)).unwrap();
    let f = unauthorized(wrong.get_secret(&secret_ref("sp-value")).await);
    assert_eq!(f.code.as_deref(), Some("AADSTS7000215"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_with_client_certificate() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    vault.set_secret("sp-value", "from-sp", &Default::default()).await.unwrap();
    let client = guid();
    let (cert, key) = client_certificate();
    env.entra().add_certificate(DEFAULT_TENANT, &client, &cert).await.unwrap();
    let bundle = format!("{cert}{key}");
    let ns = sp_namespace(env, "sp-cert", &[("client-id", &client), ("client-cert", &bundle)]).await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(namespaced_store("sp-cert", sp_config("clientCertificate", "client-cert"), &ns, backend)).unwrap();
    assert_eq!(store.get_secret(&secret_ref("sp-value")).await.unwrap().value, b"from-sp");
    assert_eq!(store.get_secret(&secret_ref("sp-value")).await.unwrap().value, b"from-sp");
    assert_eq!(env.entra().exchange_count(&client).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_only_where_the_operator_granted_it() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    vault.set_secret("mi-value", "from-mi", &Default::default()).await.unwrap();
    let mi = guid();
    env.entra().add_managed_identity(DEFAULT_TENANT, &mi, None).await.unwrap();
    let cfg = json!({"authType": "ManagedIdentity", "vaultUrl": format!("https://{SEED_VAULT}.vault.azure.net"), "identityId": mi});
    let backend = Arc::new(KubeBackend::new(env.client().await));

    let plain = host(env, HostOptions::default()).await;
    let store = plain.bind(cluster_store("mi-denied", cfg.clone(), "c", backend.clone())).unwrap();
    match store.get_secret(&secret_ref("mi-value")).await {
        Err(ProviderError::Denied(m)) => assert!(m.contains(IMDS_HOST), "{m}"),
        other => panic!("expected denied, got {other:?}"),
    }
    assert_eq!(env.entra().exchange_count(&mi).await.unwrap(), 0);

    let granted = host(env, HostOptions { grants: &["kind:ClusterSecretStore=metadata,link-local,http"], ..Default::default() }).await;
    let store = granted.bind(cluster_store("mi-granted", cfg.clone(), "c", backend.clone())).unwrap();
    assert_eq!(store.get_secret(&secret_ref("mi-value")).await.unwrap().value, b"from-mi");
    assert_eq!(store.get_secret(&secret_ref("mi-value")).await.unwrap().value, b"from-mi");
    assert_eq!(env.entra().exchange_count(&mi).await.unwrap(), 1);

    // A tenant's namespaced store does not inherit the cluster-store grant.
    let ns = env.namespace("mi-ns").await;
    let store = granted.bind(namespaced_store("mi-ns", cfg, &ns, backend)).unwrap();
    assert!(matches!(store.get_secret(&secret_ref("mi-value")).await, Err(ProviderError::Denied(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_renewed_before_expiry() {
    let _exclusive = GLOBAL.write().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    vault.set_secret("short-lived", "v", &Default::default()).await.unwrap();
    let id = federated_identity(env, "wi-short").await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-short", wi_config(SEED_VAULT, &id.ns, "wi"), "c", backend.clone())).unwrap();
    env.entra().set_expires_in(4).await.unwrap();
    let result = async {
        // Renewal is due halfway (2 s); every call succeeds, none uses an expired token.
        for _ in 0..6 {
            assert_eq!(store.get_secret(&secret_ref("short-lived")).await.unwrap().value, b"v");
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        env.entra().exchange_count(&id.client).await.unwrap()
    }
    .await;
    env.entra().set_expires_in(3599).await.unwrap();
    assert!((2..=4).contains(&result), "{result} exchanges for 6 calls over ~6.6 s with 4 s tokens");
    // The service-account token (an hour) is reused across renewals.
    assert_eq!(backend.token_requests(&id.ns, "wi"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_comes_back_with_retry_after_and_no_sleep() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    let vault = env.vault(SEED_VAULT).await;
    let name = format!("throttled-{}", &guid()[..8]);
    vault.set_secret(&name, "v", &Default::default()).await.unwrap();
    let id = federated_identity(env, "wi-429").await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-429", wi_config(SEED_VAULT, &id.ns, "wi"), "c", backend)).unwrap();
    for (status, retry_after) in [(429u16, 120u64), (503, 7)] {
        let filter = FaultFilter { count: Some(1), path_contains: Some(name.clone()), method: None };
        env.gateway().inject(Fault::Status { status, retry_after: Some(retry_after), filter }).await.unwrap();
        // A 120 s Retry-After inside the call would trip the 20 s deadline instead.
        match store.get_secret(&secret_ref(&name)).await {
            Err(ProviderError::Throttled(t)) => assert_eq!(t.retry_after_ms, Some(retry_after * 1000), "{}", t.message),
            other => panic!("HTTP {status}: expected throttled, got {other:?}"),
        }
        // No internal retry: the next call (the engine's decision) succeeds.
        assert_eq!(store.get_secret(&secret_ref(&name)).await.unwrap().value, b"v");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_keys_versions_tags_and_find() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    // A vault of its own, so find sees only these secrets.
    let vname = format!("kv-find-{}", &guid()[..8]);
    let vault = env.vault(&vname).await;
    let opts = |tags: &[(&str, &str)], enabled: Option<bool>| SecretOptions {
        tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        enabled,
        ..Default::default()
    };
    let v1 = vault.set_secret("db", "one", &opts(&[("env", "dev")], None)).await.unwrap();
    let v2 = vault.set_secret("db", "two", &opts(&[("env", "dev"), ("owner", r#"{"team":"a","mail":"t@x"}"#)], None)).await.unwrap();
    for i in 0..30 {
        let tags: &[(&str, &str)] = if i % 2 == 0 { &[("env", "dev")] } else { &[("env", "prod")] };
        vault.set_secret(&format!("app-{i:02}"), &format!("value-{i}"), &opts(tags, None)).await.unwrap();
    }
    vault.set_secret("app-disabled", "x", &opts(&[("env", "dev")], Some(false))).await.unwrap();
    let (cert_pem, key_pem) = client_certificate();
    vault.import_certificate_pem("tls", &format!("{cert_pem}{key_pem}")).await.unwrap();
    let jwk = vault.create_rsa_key("signing").await.unwrap();

    let id = federated_identity(env, "wi-objects").await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let store = host.bind(cluster_store("wi-objects", wi_config(&vname, &id.ns, "wi"), "c", backend)).unwrap();

    // Versions.
    let latest = store.get_secret(&secret_ref("db")).await.unwrap();
    assert_eq!((latest.value.as_slice(), latest.version.as_deref()), (b"two".as_slice(), Some(v2.as_str())));
    let mut old = secret_ref("secret/db");
    old.version = Some(v1.clone());
    assert_eq!(store.get_secret(&old).await.unwrap().value, b"one");

    // Tags (metadataPolicy Fetch): all as JSON, one tag, a path inside a JSON tag.
    let mut fetch = secret_ref("db");
    fetch.metadata_policy = wit::MetadataPolicy::Fetch;
    let all: Value = serde_json::from_slice(&store.get_secret(&fetch).await.unwrap().value).unwrap();
    assert_eq!(all["env"], "dev");
    assert!(all["attribute.created"].as_str().is_some_and(|t| t.ends_with('Z')), "{all}");
    fetch.property = Some("owner.team".into());
    assert_eq!(store.get_secret(&fetch).await.unwrap().value, b"a");
    fetch.property = None;
    let tag_map = store.get_secret_map(&fetch).await.unwrap();
    let keys: Vec<&str> = tag_map.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"db_env") && keys.contains(&"db_owner_team") && keys.contains(&"db_owner_mail"), "{keys:?}");

    // cert/ is the certificate's DER; secret/ of the same name is its PEM bundle.
    let der = store.get_secret(&secret_ref("cert/tls")).await.unwrap().value;
    let body: String = cert_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(der, base64::engine::general_purpose::STANDARD.decode(body).unwrap());
    let pem = store.get_secret(&secret_ref("secret/tls")).await.unwrap().value;
    assert!(String::from_utf8(pem).unwrap().contains("BEGIN CERTIFICATE"));
    match store.get_secret_map(&secret_ref("cert/tls")).await {
        Err(e) => assert!(format!("{e:?}").contains("certificate"), "{e:?}"),
        Ok(_) => panic!("extract of a certificate must fail"),
    }

    // key/ is the JWK as JSON (public part), kid first as in ESO's output.
    let out = store.get_secret(&secret_ref("key/signing")).await.unwrap().value;
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(r#"{"kid":"#), "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    for field in ["kid", "kty", "n", "e"] {
        assert_eq!(got[field], jwk[field], "{field}");
    }
    assert!(got.get("d").is_none());

    // find: by name (31 candidates over two pages), by tags; disabled skipped.
    let find = |re: Option<&str>, tags: &[(&str, &str)]| wit::FindRequest {
        path: None,
        name_regexp: re.map(str::to_owned),
        tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    let by_name = store.find_secrets(&find(Some("^app-"), &[])).await.unwrap();
    assert_eq!(by_name.len(), 30, "{:?}", by_name.iter().map(|e| &e.key).collect::<Vec<_>>());
    assert_eq!(by_name[7].key, "app-07");
    assert_eq!(by_name[7].value, b"value-7");
    let dev = store.find_secrets(&find(Some("^app-"), &[("env", "dev")])).await.unwrap();
    assert_eq!(dev.len(), 15);
    assert!(dev.iter().all(|e| e.key.trim_start_matches("app-").parse::<u32>().unwrap() % 2 == 0));
    let tagged = store.find_secrets(&find(None, &[("env", "dev")])).await.unwrap();
    assert_eq!(tagged.iter().filter(|e| e.key == "db").count(), 1);
    assert!(store.find_secrets(&find(Some("^nothing-"), &[])).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_outside_the_grant_are_refused() {
    let _shared = GLOBAL.read().await;
    let env = TestEnv::shared().await;
    env.vault(SEED_VAULT).await;
    let ns = env.namespace("egress").await;
    let client = guid();
    env.entra().add_client_secret(DEFAULT_TENANT, &client, "pw").await.unwrap();
    secret(&env.client().await, &ns, "sp", &[("id", &client), ("pw", "pw")]).await;
    let backend = Arc::new(KubeBackend::new(env.client().await));
    let host = host(env, HostOptions::default()).await;
    let cfg = json!({
        "vaultUrl": "https://10.0.0.1",
        "tenantId": DEFAULT_TENANT,
        "authSecretRef": {"clientId": {"name": "sp", "key": "id"}, "clientSecret": {"name": "sp", "key": "pw"}},
    });
    // Refused when bound (egress derived from the spec) or at the request; either way by name.
    let refusal = match host.bind(namespaced_store("egress", cfg, &ns, backend)) {
        Err(e) => Err(e),
        Ok(store) => store.get_secret(&secret_ref("x")).await,
    };
    match refusal {
        Err(ProviderError::Denied(m)) => assert!(m.contains("10.0.0.1"), "{m}"),
        other => panic!("expected denied, got {other:?}"),
    }
}
