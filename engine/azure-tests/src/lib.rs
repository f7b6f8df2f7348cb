//! Test support for the Azure Key Vault provider component
//! (`lockstep_provider_azure_keyvault.wasm`, built by `make components`).
//!
//! The component runs in the real [`PluginHost`]; the seed's real hostnames
//! (`https://<vault>.vault.azure.net`, `https://login.microsoftonline.com`,
//! and `169.254.169.254` for IMDS) are pointed at the local control plane's
//! vault gateway, fake Entra ID and IMDS endpoint by the host's overrides and
//! extra CA, exactly as an operator would configure them. Credentials come
//! from [`KubeBackend`], a small test backend over the real apiserver (the
//! product's kube backend belongs to the controllers) that counts TokenRequests.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::authentication::v1::{TokenRequest as KubeTokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};
use lockstep_credentials::{CredentialBackend, CredentialError, IssuedToken, StoreKind, StoreScope, TokenRequest};
use lockstep_plugin_host::{
    CallLimits, HostConfig, HostOverride, HttpConfig, OperatorGrants, PluginHost, PluginSource, StoreBinding, wit,
};
use lockstep_testenv::TestEnv;
use sha2::{Digest, Sha256};

pub const COMPONENT: &str = "lockstep_provider_azure_keyvault";
/// The seed's vault, unchanged.
pub const SEED_VAULT: &str = "kv-aap-vault-dev";
pub const IMDS_HOST: &str = "169.254.169.254";

/// Credentials from the real apiserver: Secrets, ServiceAccount annotations
/// and TokenRequest, with a count of TokenRequests per `ns/name`.
#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
    token_requests: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl KubeBackend {
    pub fn new(client: Client) -> Self {
        Self { client, token_requests: Arc::default() }
    }

    pub fn token_requests(&self, ns: &str, name: &str) -> u64 {
        self.token_requests.lock().unwrap().get(&format!("{ns}/{name}")).copied().unwrap_or(0)
    }
}

fn missing(what: String, e: kube::Error) -> CredentialError {
    match e {
        kube::Error::Api(s) if s.code == 404 => CredentialError::InvalidConfig { field: what, reason: "not found".into() },
        other => CredentialError::Unavailable(format!("{what}: {other}")),
    }
}

#[async_trait::async_trait]
impl CredentialBackend for KubeBackend {
    async fn secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, CredentialError> {
        let what = format!("secret {namespace}/{name}");
        let s = Api::<Secret>::namespaced(self.client.clone(), namespace).get(name).await.map_err(|e| missing(what.clone(), e))?;
        s.data
            .and_then(|mut d| d.remove(key))
            .map(|b| b.0)
            .ok_or_else(|| CredentialError::InvalidConfig { field: what, reason: format!("key {key} not found") })
    }

    async fn service_account_annotations(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, String>, CredentialError> {
        let what = format!("serviceaccount {namespace}/{name}");
        let sa = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace).get(name).await.map_err(|e| missing(what, e))?;
        Ok(sa.metadata.annotations.unwrap_or_default())
    }

    async fn service_account_token(&self, namespace: &str, name: &str, request: &TokenRequest) -> Result<IssuedToken, CredentialError> {
        *self.token_requests.lock().unwrap().entry(format!("{namespace}/{name}")).or_default() += 1;
        let tr = KubeTokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(request.audiences.clone()),
                expiration_seconds: Some(request.expiration_seconds),
                ..Default::default()
            }),
            ..Default::default()
        };
        let what = format!("serviceaccount {namespace}/{name}");
        let out = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_token_request(name, &PostParams::default(), &tr)
            .await
            .map_err(|e| missing(what, e))?;
        let status = out.status.ok_or_else(|| CredentialError::Unavailable("TokenRequest without status".into()))?;
        let token = status.token.ok_or_else(|| CredentialError::Unavailable("TokenRequest without a token".into()))?;
        let expires_at = status.expiration_timestamp.map_or(0, |t| t.0.as_second().max(0) as u64);
        Ok(IssuedToken { token, expires_at })
    }
}

/// Where `make components` put the component.
pub fn component_path() -> PathBuf {
    let dir = std::env::var_os("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("LOCKSTEP_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lockstep"));
        cache.join("components")
    });
    let path = dir.join(format!("{COMPONENT}.wasm"));
    assert!(path.is_file(), "{} is missing: run `make components` first", path.display());
    path
}

fn compile_cache() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path().join("compiled")
}

/// Options of a test host.
#[derive(Default)]
pub struct HostOptions<'a> {
    /// `--grant` rules.
    pub grants: &'a [&'a str],
    /// `--ambient-source` definitions.
    pub ambient_sources: &'a [&'a str],
}

/// A plugin host with the Azure component registered for `azurekv`, whose
/// outbound client reaches the local fakes under the real hostnames.
pub async fn host(env: &TestEnv, opts: HostOptions<'_>) -> PluginHost {
    let mut http = HttpConfig::default();
    http.extra_ca_pem.push(env.ca_pem().into_bytes());
    for (name, addr) in env.host_overrides().await {
        http.overrides.push(HostOverride { host: name, addr });
    }
    let imds: std::net::SocketAddr = env.imds_url().trim_start_matches("http://").parse().expect("IMDS address");
    http.overrides.push(HostOverride { host: IMDS_HOST.into(), addr: imds });
    let mut cfg = HostConfig::new(compile_cache());
    cfg.limits = CallLimits { deadline: Duration::from_secs(20), ..CallLimits::default() };
    cfg.http = http;
    cfg.grants = OperatorGrants::from_flags(opts.grants, opts.ambient_sources).expect("grants");
    let host = PluginHost::new(cfg).expect("plugin host");
    let path = component_path();
    let sha256 = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    host.load_and_register(&PluginSource::File { path, sha256 }).await.expect("load the Azure component");
    host
}

/// A ClusterSecretStore (uid fixed per test name, fresh generation) of `spec.provider.azurekv`, consumed from `consumer`.
pub fn cluster_store(uid: &str, config: serde_json::Value, consumer: &str, backend: Arc<dyn CredentialBackend>) -> StoreBinding {
    binding(StoreKind::ClusterSecretStore, None, uid, config, consumer, backend)
}

/// A namespaced SecretStore in `ns`.
pub fn namespaced_store(uid: &str, config: serde_json::Value, ns: &str, backend: Arc<dyn CredentialBackend>) -> StoreBinding {
    binding(StoreKind::SecretStore, Some(ns), uid, config, ns, backend)
}

fn binding(
    kind: StoreKind,
    ns: Option<&str>,
    uid: &str,
    config: serde_json::Value,
    consumer: &str,
    backend: Arc<dyn CredentialBackend>,
) -> StoreBinding {
    static GENERATION: AtomicI64 = AtomicI64::new(1);
    StoreBinding {
        provider_key: "azurekv".into(),
        store: StoreScope {
            kind,
            name: uid.into(),
            namespace: ns.map(str::to_owned),
            uid: uid.into(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            provider_config: config,
            consumer_namespace: Some(consumer.into()),
        },
        controller_class: None,
        credentials: backend,
    }
}

pub fn secret_ref(key: &str) -> wit::SecretRef {
    wit::SecretRef { key: key.into(), version: None, property: None, metadata_policy: wit::MetadataPolicy::None }
}

/// A random GUID-shaped ID (client IDs, tenants) so tests never share counters.
pub fn guid() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    static N: AtomicI64 = AtomicI64::new(0);
    let h = Sha256::digest(format!("{nanos}-{}-{}", N.fetch_add(1, Ordering::Relaxed), std::process::id()));
    let x = hex::encode(&h[..16]);
    format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// Creates a Secret with string data.
pub async fn secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let s = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        string_data: Some(data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &s).await.expect("create secret");
}

/// The test client certificate of the component's unit tests (PEM cert, PEM PKCS#8 key).
pub fn client_certificate() -> (String, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../providers/azure-keyvault/testdata");
    (std::fs::read_to_string(dir.join("client.crt")).unwrap(), std::fs::read_to_string(dir.join("client.key")).unwrap())
}

/// The auth failure inside an `unauthorized` error, or a panic naming what came instead.
pub fn unauthorized(r: Result<impl std::fmt::Debug, wit::ProviderError>) -> wit::AuthFailure {
    match r {
        Err(wit::ProviderError::Unauthorized(f)) => f,
        other => panic!("expected unauthorized, got {other:?}"),
    }
}
