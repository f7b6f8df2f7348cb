//! End-to-end smoke tests of the local control plane: the workload-identity
//! chain against the real apiserver, the fake Entra's refusals, the vault
//! gateway's challenge and faults, kubectl, and the controller-manager.
//!
//! All tests share one control plane (`TestEnv::shared`); each uses its own
//! namespace, client ids and secret names, and never changes global settings
//! (clock offset, default token lifetime).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use lockstep_testenv::env::{DEFAULT_TENANT, EntraHandle};
use lockstep_testenv::gateway::FaultFilter;
use lockstep_testenv::{Fault, SecretOptions, TestEnv};
use serde_json::Value;

const SCOPE: &str = "https://vault.azure.net/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const VAULT: &str = "kv-aap-vault-dev";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

async fn exchange(env: &TestEnv, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let http = env.https_client(&["login.microsoftonline.com"]);
    let r = http.post(EntraHandle::token_url(tenant)).form(form).send().await.expect("token endpoint reachable");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

async fn federated_exchange(env: &TestEnv, client_id: &str, assertion: &str) -> (u16, Value) {
    exchange(
        env,
        DEFAULT_TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", SCOPE),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn aadsts(body: &Value) -> i64 {
    body["error_codes"][0].as_i64().unwrap_or_default()
}

/// A namespace with SA `app` federated to a fresh client id.
async fn federated_app(env: &TestEnv) -> (String, String) {
    let ns = env.namespace("smoke").await;
    let client_id = unique("app");
    env.service_account(&ns, "app", &client_id, DEFAULT_TENANT).await;
    env.entra().federate(DEFAULT_TENANT, &client_id, env.issuer(), &TestEnv::subject(&ns, "app")).await.unwrap();
    (ns, client_id)
}

#[tokio::test]
async fn workload_identity_chain_reads_a_secret_through_the_gateway() {
    let env = TestEnv::shared().await;
    let (ns, client_id) = federated_app(env).await;
    let vault = env.vault(VAULT).await;
    let name = unique("db-password");
    let opts = SecretOptions { content_type: Some("text/plain".into()), tags: [("team".to_string(), "a".to_string())].into(), ..Default::default() };
    let version = vault.set_secret(&name, "value-from-the-vault", &opts).await.unwrap();

    let sa_token = env.token_request(&ns, "app", None).await.unwrap();
    let (status, body) = federated_exchange(env, &client_id, &sa_token).await;
    assert_eq!(status, 200, "exchange failed: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(env.entra().exchange_count(&client_id).await.unwrap(), 1);
    let access = body["access_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://vault.azure.net");
    assert_eq!(claims["appid"], client_id.as_str());

    let http = env.https_client(&[&vault.host()]);
    let r = http.get(format!("{}/secrets/{name}?api-version=7.6", vault.url())).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let secret: Value = r.json().await.unwrap();
    assert_eq!(secret["value"], "value-from-the-vault");
    assert_eq!(secret["contentType"], "text/plain");
    assert_eq!(secret["tags"]["team"], "a");
    assert_eq!(secret["id"], format!("https://{VAULT}.vault.azure.net/secrets/{name}/{version}"));
    assert_eq!(env.gateway().requests().await.unwrap().get(&format!("GET /secrets/{name}")), Some(&1));
}

#[tokio::test]
async fn token_of_another_service_account_gets_700213() {
    let env = TestEnv::shared().await;
    let (ns, client_id) = federated_app(env).await;
    env.service_account(&ns, "other", "unused", DEFAULT_TENANT).await;
    let token = env.token_request(&ns, "other", None).await.unwrap();
    let (status, body) = federated_exchange(env, &client_id, &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700213), "{body}");
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS700213: "));
    assert_eq!(env.entra().exchange_count(&client_id).await.unwrap(), 0);
}

#[tokio::test]
async fn tampered_signature_is_refused() {
    let env = TestEnv::shared().await;
    let (ns, client_id) = federated_app(env).await;
    let token = env.token_request(&ns, "app", None).await.unwrap();
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    sig[10] ^= 0x01;
    parts[2] = URL_SAFE_NO_PAD.encode(sig);
    let (status, body) = federated_exchange(env, &client_id, &parts.join(".")).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");

    // A forged payload under the original signature fails the same way.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["exp"] = (claims["exp"].as_i64().unwrap() + 86_400).into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let (status, body) = federated_exchange(env, &client_id, &parts.join(".")).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
    assert_eq!(env.entra().exchange_count(&client_id).await.unwrap(), 0);
}

#[tokio::test]
async fn entra_refusals_carry_their_aadsts_codes() {
    let env = TestEnv::shared().await;
    let (ns, client_id) = federated_app(env).await;
    let token = env.token_request(&ns, "app", None).await.unwrap();

    // Issuer must match exactly: a trailing slash is another issuer.
    let other = unique("app");
    env.entra().federate(DEFAULT_TENANT, &other, &format!("{}/", env.issuer()), &TestEnv::subject(&ns, "app")).await.unwrap();
    let (status, body) = federated_exchange(env, &other, &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700211), "{body}");

    // Wrong audience on the SA token.
    let wrong_aud = env.token_request(&ns, "app", Some("api://SomethingElse")).await.unwrap();
    let (_, body) = federated_exchange(env, &client_id, &wrong_aud).await;
    assert_eq!(aadsts(&body), 700212, "{body}");

    // Unknown client, unknown tenant.
    let (status, body) = federated_exchange(env, "no-such-client", &token).await;
    assert_eq!((status, aadsts(&body)), (400, 700016), "{body}");
    let (status, body) = exchange(env, "no-such-tenant", &[("grant_type", "client_credentials"), ("client_id", client_id.as_str()), ("scope", SCOPE)]).await;
    assert_eq!((status, aadsts(&body)), (400, 90002), "{body}");

    // Removing the federated credential at run time takes effect.
    env.entra().unfederate(DEFAULT_TENANT, &client_id, env.issuer(), &TestEnv::subject(&ns, "app")).await.unwrap();
    let (_, body) = federated_exchange(env, &client_id, &token).await;
    assert_eq!(aadsts(&body), 700211, "{body}");
}

#[tokio::test]
async fn client_secret_and_certificate_credentials() {
    let env = TestEnv::shared().await;
    let client_id = unique("sp");
    env.entra().add_client_secret(DEFAULT_TENANT, &client_id, "right-secret").await.unwrap();
    let base = [("grant_type", "client_credentials"), ("client_id", client_id.as_str()), ("scope", SCOPE)];
    let (status, body) = exchange(env, DEFAULT_TENANT, &[&base[..], &[("client_secret", "wrong-secret")]].concat()).await;
    assert_eq!((status, aadsts(&body)), (401, 7000215), "{body}");
    let (status, body) = exchange(env, DEFAULT_TENANT, &[&base[..], &[("client_secret", "right-secret")]].concat()).await;
    assert_eq!(status, 200, "{body}");

    let (cert, key) = lockstep_testenv::pki::client_certificate("lockstep-sp").unwrap();
    env.entra().add_certificate(DEFAULT_TENANT, &client_id, &cert.cert_pem).await.unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.cert_pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(URL_SAFE_NO_PAD.encode(<sha1::Sha1 as sha2::Digest>::digest(&pem.contents)));
    let now = lockstep_testenv::time::unix_now();
    let claims = serde_json::json!({"iss": client_id, "sub": client_id, "aud": EntraHandle::token_url(DEFAULT_TENANT),
        "iat": now, "nbf": now, "exp": now + 600, "jti": unique("jti")});
    let assertion = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap()).unwrap();
    let (status, body) = exchange(env, DEFAULT_TENANT, &[&base[..], &[("client_assertion_type", JWT_BEARER), ("client_assertion", assertion.as_str())]].concat()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.entra().exchange_count(&client_id).await.unwrap(), 2);

    // Signed by another key under the same thumbprint: refused.
    let other = lockstep_testenv::pki::rsa_key().unwrap();
    let forged = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(other.private_pem.as_bytes()).unwrap()).unwrap();
    let (status, body) = exchange(env, DEFAULT_TENANT, &[&base[..], &[("client_assertion_type", JWT_BEARER), ("client_assertion", forged.as_str())]].concat()).await;
    assert_eq!((status, aadsts(&body)), (401, 700027), "{body}");
}

#[tokio::test]
async fn imds_requires_the_metadata_header() {
    let env = TestEnv::shared().await;
    let client_id = unique("mi");
    env.entra().add_managed_identity(DEFAULT_TENANT, &client_id, None).await.unwrap();
    let url = format!("{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id={client_id}", env.imds_url());
    let http = reqwest::Client::new();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http.get(&url).header("Metadata", "true").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert_eq!(body["client_id"], client_id.as_str());
}

#[tokio::test]
async fn gateway_answers_missing_expired_and_foreign_tokens_with_the_challenge() {
    let env = TestEnv::shared().await;
    let vault = env.vault(VAULT).await;
    let name = unique("gw");
    vault.set_secret(&name, "v", &SecretOptions::default()).await.unwrap();
    let http = env.https_client(&[&vault.host()]);
    let url = format!("{}/secrets/{name}?api-version=7.6", vault.url());
    let challenge = format!("Bearer authorization=\"https://login.microsoftonline.com/{DEFAULT_TENANT}\", resource=\"https://vault.azure.net\"");

    let expired = env.entra().mint_access_token(DEFAULT_TENANT, "c", Some(-60)).await.unwrap();
    let other_tenant = env.entra().mint_access_token("0b1e2c3d-0000-4000-8000-000000000000", "c", None).await.unwrap();
    let foreign_key = lockstep_testenv::pki::rsa_key().unwrap();
    let now = lockstep_testenv::time::unix_now();
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &serde_json::json!({"aud": "https://vault.azure.net", "tid": DEFAULT_TENANT, "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(foreign_key.private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    for (what, token) in [("missing", None), ("expired", Some(expired)), ("foreign key", Some(foreign)), ("other tenant", Some(other_tenant))] {
        let mut req = http.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.headers()["www-authenticate"].to_str().unwrap(), challenge, "{what}");
    }
    let good = env.entra().mint_access_token(DEFAULT_TENANT, "c", None).await.unwrap();
    assert_eq!(http.get(&url).bearer_auth(good).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn gateway_injects_throttling_and_resets_on_demand() {
    let env = TestEnv::shared().await;
    let vault = env.vault(VAULT).await;
    let name = unique("throttled");
    vault.set_secret(&name, "v", &SecretOptions::default()).await.unwrap();
    let token = env.entra().mint_access_token(DEFAULT_TENANT, "c", None).await.unwrap();
    let http = env.https_client(&[&vault.host()]);
    let url = format!("{}/secrets/{name}?api-version=7.6", vault.url());
    let only_this = FaultFilter { count: Some(1), path_contains: Some(name.clone()), method: None };

    env.gateway().inject(Fault::Status { status: 429, retry_after: Some(7), filter: only_this.clone() }).await.unwrap();
    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200, "fault applies once");

    env.gateway().inject(Fault::Reset { filter: only_this }).await.unwrap();
    assert!(http.get(&url).bearer_auth(&token).send().await.is_err(), "connection reset");
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(env.gateway().requests().await.unwrap()[&format!("GET /secrets/{name}")], 4);
}

#[tokio::test]
async fn disabled_secrets_are_forbidden_and_versions_are_kept() {
    let env = TestEnv::shared().await;
    let vault = env.vault(VAULT).await;
    let name = unique("versions");
    let v1 = vault.set_secret(&name, "one", &SecretOptions::default()).await.unwrap();
    let v2 = vault.set_secret(&name, "two", &SecretOptions { enabled: Some(false), ..Default::default() }).await.unwrap();
    let token = env.entra().mint_access_token(DEFAULT_TENANT, "c", None).await.unwrap();
    let http = env.https_client(&[&vault.host()]);
    let get = |path: String| http.get(format!("{}{path}?api-version=7.6", vault.url())).bearer_auth(&token).send();
    let r = get(format!("/secrets/{name}")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["innererror"]["code"], "SecretDisabled");
    let r: Value = get(format!("/secrets/{name}/{v1}")).await.unwrap().json().await.unwrap();
    assert_eq!(r["value"], "one");
    vault.set_enabled(&name, &v2, true).await.unwrap();
    let r: Value = get(format!("/secrets/{name}/")).await.unwrap().json().await.unwrap();
    assert_eq!(r["value"], "two");
    let r: Value = get(format!("/secrets/{name}/versions")).await.unwrap().json().await.unwrap();
    assert_eq!(r["value"].as_array().unwrap().len(), 2);
    assert_eq!(get(format!("/secrets/{}", unique("absent"))).await.unwrap().status(), 404);
}

#[tokio::test]
async fn kubectl_get_ns_works_with_the_written_kubeconfig() {
    let env = TestEnv::shared().await;
    let out = env.kubectl().args(["get", "ns", "-o", "name"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("namespace/default") && stdout.contains("namespace/kube-system"), "{stdout}");
    let version = env.kubectl().args(["version", "-o", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&version.stdout).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], v["clientVersion"]["gitVersion"]);
}

#[tokio::test]
async fn controller_manager_publishes_root_ca_and_deletes_namespaces() {
    let env = TestEnv::shared().await;
    let ns = env.namespace("kcm").await;
    let client = env.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut found = false;
    for _ in 0..150 {
        if cms.get_opt("kube-root-ca.crt").await.unwrap().is_some() {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "root-ca publisher did not create kube-root-ca.crt");
    let nss: Api<Namespace> = Api::all(client);
    nss.delete(&ns, &Default::default()).await.unwrap();
    let mut gone = false;
    for _ in 0..300 {
        if nss.get_opt(&ns).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "namespace controller did not finish deleting {ns}");
}

#[tokio::test]
async fn audit_log_records_token_requests() {
    let env = TestEnv::shared().await;
    let (ns, _) = federated_app(env).await;
    env.token_request(&ns, "app", None).await.unwrap();
    let log = std::fs::read_to_string(env.audit_log_path()).unwrap();
    let hit = log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|e| {
        e["verb"] == "create" && e["objectRef"]["subresource"] == "token" && e["objectRef"]["namespace"] == ns.as_str()
    });
    assert!(hit, "no audit event for the TokenRequest in {ns}");
}
