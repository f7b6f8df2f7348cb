//! The handle Rust tests use.
//!
//! One control plane per test binary: the first `TestEnv::shared()` starts it
//! on a dedicated thread that lives as long as the process (children are tied
//! to that thread with PDEATHSIG, so they die with the test binary, even on a
//! crash). If `LOCKSTEP_TESTENV_STATE` names a state directory written by
//! `lockstep-testenv up`, that control plane is reused instead.
//!
//! Nothing here caches a kube `Client` or reqwest `Client`: both are bound to
//! the tokio runtime that created them, and every `#[tokio::test]` has its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cluster::AZURE_TOKEN_EXCHANGE_AUDIENCE;
use crate::entra::AUTHORITY_HOST;
use crate::gateway::Fault;
use crate::proc::Lifetime;
use crate::state::{self, EnvState};
use crate::vault::VAULT_DOMAIN;
use crate::Error;

/// Tenant of vaults created without one, and of the demo's identities.
pub const DEFAULT_TENANT: &str = "7e1c4d2a-5b8f-4c3e-9a6d-10c4057e5e11";
pub const STATE_ENV: &str = "LOCKSTEP_TESTENV_STATE";

/// A running control plane.
pub struct TestEnv {
    state: EnvState,
}

static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();

impl TestEnv {
    /// The control plane of this test binary; starts it on first use.
    /// Panics with the reason (and the log directory) if it cannot start.
    pub async fn shared() -> &'static TestEnv {
        let r = tokio::task::spawn_blocking(|| SHARED.get_or_init(init)).await.expect("testenv init thread");
        match r {
            Ok(env) => env,
            Err(e) => panic!("local control plane unavailable: {e}"),
        }
    }

    /// Attaches to a control plane started by `lockstep-testenv up`.
    pub fn attach(dir: &Path) -> Result<Self, Error> {
        Ok(Self { state: EnvState::load(dir)? })
    }

    pub fn state(&self) -> &EnvState {
        &self.state
    }

    pub fn state_dir(&self) -> &Path {
        &self.state.dir
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.state.cluster.kubeconfig
    }

    /// The apiserver's JSON audit log (Metadata level: verb, user, objectRef; no bodies).
    pub fn audit_log_path(&self) -> &Path {
        &self.state.cluster.audit_log
    }

    pub fn api_url(&self) -> &str {
        &self.state.cluster.api_url
    }

    /// The service-account issuer (the apiserver's own https URL).
    pub fn issuer(&self) -> &str {
        &self.state.cluster.issuer
    }

    pub fn admin_token(&self) -> &str {
        &self.state.cluster.admin_token
    }

    pub fn ca_path(&self) -> &Path {
        &self.state.cluster.ca_cert
    }

    /// The test CA (PEM) that signed every serving certificate.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_path()).expect("CA written at start")
    }

    /// `https://login.microsoftonline.com/` — reach it through [`Self::host_overrides`].
    pub fn authority_host(&self) -> String {
        format!("https://{AUTHORITY_HOST}/")
    }

    /// Base URL of the IMDS-shaped endpoint (plain HTTP, like 169.254.169.254).
    pub fn imds_url(&self) -> String {
        format!("http://{}", self.state.fakes.imds)
    }

    /// Base URL of the fakes' admin API (for other processes and benchmarks).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.state.fakes.admin)
    }

    /// Where a host name must connect: the fake Entra or the vault gateway.
    pub fn address_of(&self, host: &str) -> Option<SocketAddr> {
        if host == AUTHORITY_HOST {
            Some(self.state.fakes.entra)
        } else if crate::vault::vault_name(host).is_some() {
            Some(self.state.fakes.vault)
        } else {
            None
        }
    }

    /// Host → address overrides for the engine's outbound HTTP: the authority
    /// plus every vault created so far (`*.vault.azure.net` all map to the gateway).
    pub async fn host_overrides(&self) -> BTreeMap<String, SocketAddr> {
        let mut m = BTreeMap::from([(AUTHORITY_HOST.to_string(), self.state.fakes.entra)]);
        let names: Vec<String> = self.admin_get("/vaults").await.ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        for n in names {
            m.insert(format!("{n}.{VAULT_DOMAIN}"), self.state.fakes.vault);
        }
        m
    }

    /// An HTTPS client trusting only the test CA, with `hosts` resolved to the fakes.
    pub fn https_client(&self, hosts: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).expect("CA PEM"))
            .timeout(Duration::from_secs(30));
        for h in hosts {
            if let Some(a) = self.address_of(h) {
                b = b.resolve(h, a);
            }
        }
        b.build().expect("reqwest client")
    }

    /// A kube client authenticated as cluster admin (system:masters).
    pub async fn client(&self) -> Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig_path()).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kube config");
        Client::try_from(cfg).expect("kube client")
    }

    /// A fresh namespace `<prefix>-<random>`.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", &crate::cluster::random_token()[..8]);
        let ns = Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        Api::<Namespace>::all(self.client().await).create(&PostParams::default(), &ns).await.expect("create namespace");
        name
    }

    /// A ServiceAccount carrying the Azure workload-identity annotations.
    pub async fn service_account(&self, ns: &str, name: &str, client_id: &str, tenant_id: &str) -> ServiceAccount {
        let mut annotations = BTreeMap::new();
        annotations.insert("azure.workload.identity/client-id".to_string(), client_id.to_string());
        annotations.insert("azure.workload.identity/tenant-id".to_string(), tenant_id.to_string());
        let sa = ServiceAccount {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), annotations: Some(annotations), ..Default::default() },
            ..Default::default()
        };
        Api::<ServiceAccount>::namespaced(self.client().await, ns).create(&PostParams::default(), &sa).await.expect("create service account")
    }

    /// TokenRequest for a ServiceAccount (what the workload-identity webhook's
    /// projected token would contain); audience `api://AzureADTokenExchange` by default.
    pub async fn token_request(&self, ns: &str, sa: &str, audience: Option<&str>) -> Result<String, Error> {
        let tr = TokenRequest {
            spec: Some(k8s_openapi::api::authentication::v1::TokenRequestSpec {
                audiences: Some(vec![audience.unwrap_or(AZURE_TOKEN_EXCHANGE_AUDIENCE).to_string()]),
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api = Api::<ServiceAccount>::namespaced(self.client().await, ns);
        let out = api.create_token_request(sa, &PostParams::default(), &tr).await?;
        out.status.and_then(|s| s.token).ok_or_else(|| Error::Other("TokenRequest returned no status".into()))
    }

    /// `system:serviceaccount:<ns>:<name>`, the subject a federated credential names.
    pub fn subject(ns: &str, sa: &str) -> String {
        format!("system:serviceaccount:{ns}:{sa}")
    }

    /// The vault `<name>.vault.azure.net` in [`DEFAULT_TENANT`], created if absent.
    pub async fn vault(&self, name: &str) -> VaultHandle {
        self.vault_in(name, DEFAULT_TENANT).await
    }

    pub async fn vault_in(&self, name: &str, tenant: &str) -> VaultHandle {
        self.admin_post("/vaults", json!({"name": name, "tenant": tenant})).await.expect("create vault");
        VaultHandle { env_admin: self.admin_url(), name: name.into(), tenant: tenant.into(), client: self.https_client(&[&format!("{name}.{VAULT_DOMAIN}")]) }
    }

    pub fn entra(&self) -> EntraHandle {
        EntraHandle { admin: self.admin_url() }
    }

    pub fn gateway(&self) -> GatewayHandle {
        GatewayHandle { admin: self.admin_url() }
    }

    /// `kubectl` (from the harness build) with this cluster's kubeconfig.
    pub fn kubectl(&self) -> std::process::Command {
        let tools = crate::tools::Tools::from_cache().expect("tools installed");
        let mut c = std::process::Command::new(tools.kubectl);
        c.env("KUBECONFIG", self.kubeconfig_path());
        c
    }

    async fn admin_get(&self, path: &str) -> Result<Value, Error> {
        admin_call(&self.admin_url(), reqwest::Method::GET, path, None).await
    }

    async fn admin_post(&self, path: &str, body: Value) -> Result<Value, Error> {
        admin_call(&self.admin_url(), reqwest::Method::POST, path, Some(body)).await
    }
}

async fn admin_call(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.map_err(Error::http)?;
    let status = r.status();
    let text = r.text().await.map_err(Error::http)?;
    if !status.is_success() {
        return Err(Error::Http(format!("{path}: {status}: {text}")));
    }
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

fn init() -> Result<TestEnv, String> {
    if let Some(dir) = std::env::var_os(STATE_ENV) {
        return TestEnv::attach(Path::new(&dir)).map_err(|e| format!("{STATE_ENV}={}: {e}", PathBuf::from(&dir).display()));
    }
    let root = crate::cluster::default_state_root();
    state::sweep(&root);
    let dir = root.join(format!("run-{}", std::process::id()));
    let state = on_lasting_thread("lockstep-testenv", move || async move {
        let r = state::start(&dir, Lifetime::TiedToParent, None).await;
        r.map_err(|e| format!("{e} (logs in {})", dir.join("logs").display()))
    })?;
    Ok(TestEnv { state })
}

/// Runs `start` on a new thread with its own runtime, which then lives as long
/// as the process: children spawned there are tied to it, servers keep
/// serving. Returns what `start` returned.
pub(crate) fn on_lasting_thread<T, F>(name: &str, start: impl FnOnce() -> F + Send + 'static) -> Result<T, String>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let _ = tx.send(start().await);
                std::future::pending::<()>().await
            })
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// Drives the fake Entra ID through the admin API.
#[derive(Clone)]
pub struct EntraHandle {
    admin: String,
}

impl EntraHandle {
    async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        admin_call(&self.admin, reqwest::Method::POST, path, Some(body)).await
    }

    /// Registers a federated identity credential: tokens from `issuer` for
    /// `subject` (audience `api://AzureADTokenExchange`) may act as `client_id`.
    pub async fn federate(&self, tenant: &str, client_id: &str, issuer: &str, subject: &str) -> Result<(), Error> {
        self.post("/entra/federated", json!({"tenant": tenant, "client_id": client_id, "issuer": issuer, "subject": subject})).await.map(drop)
    }

    pub async fn unfederate(&self, tenant: &str, client_id: &str, issuer: &str, subject: &str) -> Result<(), Error> {
        self.post("/entra/federated/remove", json!({"tenant": tenant, "client_id": client_id, "issuer": issuer, "subject": subject})).await.map(drop)
    }

    /// An app registration with no credentials (so the client id is known).
    pub async fn add_app(&self, tenant: &str, client_id: &str) -> Result<(), Error> {
        self.post("/entra/apps", json!({"tenant": tenant, "client_id": client_id})).await.map(drop)
    }

    pub async fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) -> Result<(), Error> {
        self.post("/entra/secrets", json!({"tenant": tenant, "client_id": client_id, "secret": secret})).await.map(drop)
    }

    /// Registers a certificate credential (PEM, RSA key) matched by x5t / x5t#S256.
    pub async fn add_certificate(&self, tenant: &str, client_id: &str, cert_pem: &str) -> Result<(), Error> {
        self.post("/entra/certificates", json!({"tenant": tenant, "client_id": client_id, "cert_pem": cert_pem})).await.map(drop)
    }

    /// A managed identity the IMDS endpoint will issue tokens for.
    pub async fn add_managed_identity(&self, tenant: &str, client_id: &str, mi_res_id: Option<&str>) -> Result<(), Error> {
        self.post("/entra/managed-identities", json!({"tenant": tenant, "client_id": client_id, "mi_res_id": mi_res_id})).await.map(drop)
    }

    /// Lifetime of issued access tokens (negative issues already-expired tokens).
    pub async fn set_expires_in(&self, secs: i64) -> Result<(), Error> {
        admin_call(&self.admin, reqwest::Method::PUT, "/entra/settings", Some(json!({"expires_in": secs}))).await.map(drop)
    }

    /// Shifts the fake's clock (and the gateway's expiry checks) by `secs`.
    pub async fn set_clock_offset(&self, secs: i64) -> Result<(), Error> {
        admin_call(&self.admin, reqwest::Method::PUT, "/entra/settings", Some(json!({"clock_offset": secs}))).await.map(drop)
    }

    /// Successful token issuances per client id (token endpoint and IMDS).
    pub async fn exchanges(&self) -> Result<BTreeMap<String, u64>, Error> {
        let v = admin_call(&self.admin, reqwest::Method::GET, "/entra/exchanges", None).await?;
        serde_json::from_value(v).map_err(|e| Error::Other(e.to_string()))
    }

    pub async fn exchange_count(&self, client_id: &str) -> Result<u64, Error> {
        Ok(self.exchanges().await?.get(client_id).copied().unwrap_or(0))
    }

    /// An access token for `https://vault.azure.net` as the token endpoint would
    /// issue it, bypassing the exchange (seeding, expiry tests).
    pub async fn mint_access_token(&self, tenant: &str, client_id: &str, expires_in: Option<i64>) -> Result<String, Error> {
        let v = self.post("/entra/mint", json!({"tenant": tenant, "client_id": client_id, "expires_in": expires_in})).await?;
        v["access_token"].as_str().map(String::from).ok_or_else(|| Error::Other("mint: no token".into()))
    }

    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub fn token_url(tenant: &str) -> String {
        format!("https://{AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token")
    }
}

/// Drives the vault gateway: faults and request counts.
#[derive(Clone)]
pub struct GatewayHandle {
    admin: String,
}

impl GatewayHandle {
    pub async fn inject(&self, fault: Fault) -> Result<(), Error> {
        admin_call(&self.admin, reqwest::Method::POST, "/gateway/faults", Some(serde_json::to_value(fault).expect("fault json"))).await.map(drop)
    }

    pub async fn clear_faults(&self) -> Result<(), Error> {
        admin_call(&self.admin, reqwest::Method::DELETE, "/gateway/faults", None).await.map(drop)
    }

    /// Requests seen per `METHOD /path` (query excluded), across all vaults.
    pub async fn requests(&self) -> Result<BTreeMap<String, u64>, Error> {
        let v = admin_call(&self.admin, reqwest::Method::GET, "/gateway/requests", None).await?;
        serde_json::from_value(v).map_err(|e| Error::Other(e.to_string()))
    }

    pub async fn reset_requests(&self) -> Result<(), Error> {
        admin_call(&self.admin, reqwest::Method::DELETE, "/gateway/requests", None).await.map(drop)
    }
}

/// Options for a seeded secret version.
#[derive(Clone, Debug, Default)]
pub struct SecretOptions {
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `Some(false)` seeds a disabled version.
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
}

/// One vault, seeded through the Key Vault REST API (via the gateway, with a
/// minted token for the client id `lockstep-seeder`).
pub struct VaultHandle {
    env_admin: String,
    pub name: String,
    pub tenant: String,
    client: reqwest::Client,
}

pub const API_VERSION: &str = "7.6";

impl VaultHandle {
    /// `https://<name>.vault.azure.net`
    pub fn url(&self) -> String {
        format!("https://{}.{VAULT_DOMAIN}", self.name)
    }

    pub fn host(&self) -> String {
        format!("{}.{VAULT_DOMAIN}", self.name)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let token = EntraHandle { admin: self.env_admin.clone() }.mint_access_token(&self.tenant, "lockstep-seeder", Some(600)).await?;
        let mut req = self.client.request(method, format!("{}{path}?api-version={API_VERSION}", self.url())).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.map_err(Error::http)?;
        let status = r.status();
        let v: Value = r.json().await.map_err(Error::http)?;
        if !status.is_success() {
            return Err(Error::Http(format!("{path}: {status}: {}", v["error"]["message"])));
        }
        Ok(v)
    }

    /// Sets a new version; returns its version id.
    pub async fn set_secret(&self, name: &str, value: &str, opts: &SecretOptions) -> Result<String, Error> {
        let mut attrs = json!({});
        if let Some(e) = opts.enabled {
            attrs["enabled"] = e.into();
        }
        if let Some(n) = opts.not_before {
            attrs["nbf"] = n.into();
        }
        if let Some(x) = opts.expires {
            attrs["exp"] = x.into();
        }
        let mut body = json!({"value": value, "tags": opts.tags, "attributes": attrs});
        if let Some(ct) = &opts.content_type {
            body["contentType"] = ct.clone().into();
        }
        let v = self.call(reqwest::Method::PUT, &format!("/secrets/{name}"), Some(body)).await?;
        version_of(&v["id"])
    }

    /// Enables or disables one version.
    pub async fn set_enabled(&self, name: &str, version: &str, enabled: bool) -> Result<(), Error> {
        self.call(reqwest::Method::PATCH, &format!("/secrets/{name}/{version}"), Some(json!({"attributes": {"enabled": enabled}}))).await.map(drop)
    }

    pub async fn delete_secret(&self, name: &str) -> Result<(), Error> {
        self.call(reqwest::Method::DELETE, &format!("/secrets/{name}"), None).await.map(drop)
    }

    /// Creates an RSA key; returns the JSON Web Key Key Vault reports.
    pub async fn create_rsa_key(&self, name: &str) -> Result<Value, Error> {
        let v = self.call(reqwest::Method::POST, &format!("/keys/{name}/create"), Some(json!({"kty": "RSA", "key_size": 2048}))).await?;
        Ok(v["key"].clone())
    }

    /// Imports a certificate from PEM (certificate + private key); its backing
    /// secret (the PEM) becomes readable as secret `name`. Returns the version.
    pub async fn import_certificate_pem(&self, name: &str, pem: &str) -> Result<String, Error> {
        let body = json!({"value": pem, "policy": {"secret_props": {"contentType": "application/x-pem-file"}}});
        let v = self.call(reqwest::Method::POST, &format!("/certificates/{name}/import"), Some(body)).await?;
        version_of(&v["id"])
    }
}

fn version_of(id: &Value) -> Result<String, Error> {
    id.as_str().and_then(|s| s.rsplit('/').next()).map(String::from).ok_or_else(|| Error::Other(format!("no id in {id}")))
}
