//! Access tokens for Key Vault: Workload Identity (referenced service account
//! or the engine's mounted token), Service Principal (secret or certificate),
//! Managed Identity (IMDS). Tokens are cached in the instance, which the host
//! keeps per isolation unit (store generation, credential scope).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use lockstep_provider_sdk::credentials::{self, SecretKeyRef};
use lockstep_provider_sdk::http::Request;
use lockstep_provider_sdk::{ProviderError, Result};
use sha2::{Digest, Sha256};

use crate::assertion::ClientCertificate;
use crate::config::{AuthType, Checked, TOKEN_EXCHANGE_AUDIENCE, check_tenant_id};
use crate::entra::{AccessToken, parse_token, token_error};

pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
/// The IMDS address; the host reaches it only where the operator granted it.
pub const IMDS_HOST: &str = "169.254.169.254";
/// The ambient credentials of the mounted-token mode (the names the Azure
/// workload identity webhook injects; the token file's content for the first).
pub const AMBIENT: [&str; 4] = [
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
];

/// Identity of a cached access token. The fingerprint is a hash of the
/// credential (secret, certificate, service account): a rotated credential
/// gets a fresh token, and no credential is kept in the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    tenant: String,
    client: String,
    scope: String,
    fingerprint: String,
}

#[derive(Debug, Clone)]
struct Cached {
    value: String,
    refresh_at: u64,
}

/// Bounded: a unit serves one store, so a handful of identities at most.
const CACHE_CAP: usize = 32;

thread_local! {
    static ACCESS_TOKENS: RefCell<HashMap<TokenKey, Cached>> = RefCell::new(HashMap::new());
    static SA_TOKENS: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    static JTI_COUNTER: RefCell<u64> = const { RefCell::new(0) };
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When to stop using a token that lives `lifetime` seconds from `issued`:
/// 5 minutes before expiry, or halfway for short-lived tokens.
pub fn refresh_at(issued: u64, lifetime: u64) -> u64 {
    issued + lifetime - (lifetime / 2).min(300)
}

fn get_cached<K: std::hash::Hash + Eq>(map: &RefCell<HashMap<K, Cached>>, key: &K, now: u64) -> Option<String> {
    map.borrow()
        .get(key)
        .filter(|c| now < c.refresh_at)
        .map(|c| c.value.clone())
}

fn put_cached<K: std::hash::Hash + Eq>(map: &RefCell<HashMap<K, Cached>>, key: K, value: Cached) {
    let mut map = map.borrow_mut();
    if map.len() >= CACHE_CAP {
        map.clear();
    }
    map.insert(key, value);
}

/// Forgets the token behind `bearer` (Key Vault rejected it), so the next call exchanges again.
pub fn forget(bearer: &str) {
    ACCESS_TOKENS.with(|m| m.borrow_mut().retain(|_, c| c.value != bearer));
}

pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The first ID that is set, per ESO's precedence; a conflict only when two
/// set sources disagree (ESO also errors when they agree).
pub fn pick_id(sources: &[(&str, Option<&str>)], what: &str, missing: &str) -> Result<String> {
    let mut found: Option<(&str, &str)> = None;
    for (source, value) in sources {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        match found {
            None => found = Some((source, value)),
            Some((first, chosen)) if chosen != value => {
                return Err(ProviderError::invalid_config(
                    first.to_string(),
                    format!("{first} and {source} name different {what}s; remove one or make them equal"),
                ));
            }
            Some(_) => {}
        }
    }
    found
        .map(|(_, v)| v.to_owned())
        .ok_or_else(|| ProviderError::unauthorized(None, missing.to_owned()))
}

/// A bearer token for the vault of `store`.
pub fn vault_token(store: &Checked) -> Result<String> {
    match store.spec.auth_type {
        AuthType::WorkloadIdentity => workload_identity(store),
        AuthType::ServicePrincipal => service_principal(store),
        AuthType::ManagedIdentity => managed_identity(store),
    }
}

fn read_id(r: &Option<SecretKeyRef>, field: &str) -> Result<Option<String>> {
    let Some(r) = r else { return Ok(None) };
    let bytes = r.fetch()?;
    let id = String::from_utf8(bytes)
        .map_err(|_| ProviderError::invalid_config(field, format!("the Secret key {field} names is not text")))?;
    Ok(Some(id.trim().to_owned()))
}

/// An ambient credential; an operator who did not grant it is the same as unset.
fn ambient(name: &str) -> Result<Option<String>> {
    match credentials::ambient(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(ProviderError::Denied(_)) | Err(ProviderError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The tenant ID per ESO's precedence: `authSecretRef.tenantId` (which hides
/// `tenantId`), else `tenantId`, then the service account's annotation; the
/// engine's `AZURE_TENANT_ID` is read only when none of those is set.
fn tenant_id(secret: Option<&str>, spec: Option<&str>, annotation: Option<&str>, missing: &str) -> Result<String> {
    let env = if secret.is_none() && spec.is_none() && annotation.is_none() {
        ambient("AZURE_TENANT_ID")?
    } else {
        None
    };
    let tenant = pick_id(
        &[
            ("authSecretRef.tenantId", secret),
            ("tenantId", if secret.is_none() { spec } else { None }),
            ("serviceAccountRef", annotation),
            ("AZURE_TENANT_ID", env.as_deref()),
        ],
        "tenant ID",
        missing,
    )?;
    check_tenant_id("tenantId", &tenant)?;
    Ok(tenant)
}

fn workload_identity(store: &Checked) -> Result<String> {
    let refs = store.spec.auth_secret_ref.clone().unwrap_or_default();
    let secret_client = read_id(&refs.client_id, "authSecretRef.clientId")?;
    let secret_tenant = read_id(&refs.tenant_id, "authSecretRef.tenantId")?;
    let spec_tenant = store.spec.tenant_id.clone();
    let scope = store.cloud.scope();

    let Some(sa) = &store.spec.service_account_ref else {
        return mounted_token(store, secret_client, secret_tenant, spec_tenant, &scope);
    };
    let sa_name = match &sa.namespace {
        Some(ns) => format!("{ns}/{}", sa.name),
        None => sa.name.clone(),
    };
    let annotations = sa.annotations()?;
    let annotation = |k: &str| annotations.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (ann_client, ann_tenant) = (annotation(CLIENT_ID_ANNOTATION), annotation(TENANT_ID_ANNOTATION));
    let client = pick_id(
        &[
            ("authSecretRef.clientId", secret_client.as_deref()),
            ("serviceAccountRef", ann_client.as_deref()),
        ],
        "client ID",
        &format!(
            "missing client ID: service account {sa_name} has no {CLIENT_ID_ANNOTATION} annotation and authSecretRef.clientId is not set"
        ),
    )?;
    let tenant = tenant_id(
        secret_tenant.as_deref(),
        spec_tenant.as_deref(),
        ann_tenant.as_deref(),
        &format!(
            "missing tenant ID: set tenantId, authSecretRef.tenantId or the {TENANT_ID_ANNOTATION} annotation on service account {sa_name}"
        ),
    )?;
    let mut audiences = vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()];
    audiences.extend(
        sa.audiences
            .iter()
            .filter(|a| a.as_str() != TOKEN_EXCHANGE_AUDIENCE)
            .cloned(),
    );
    let sa_key = format!("{sa_name}|{}", audiences.join(","));
    let key = TokenKey {
        tenant: tenant.clone(),
        client: client.clone(),
        scope: scope.clone(),
        fingerprint: fingerprint(&[b"wi", sa_key.as_bytes()]),
    };
    token(key, |t| {
        let assertion = sa_token(&sa_key, || {
            sa.token(&audiences.iter().map(String::as_str).collect::<Vec<_>>())
        })?;
        federated_exchange(store, t, &assertion)
    })
}

/// The service-account token, reused until shortly before it expires.
fn sa_token(key: &str, fetch: impl FnOnce() -> Result<lockstep_provider_sdk::ServiceAccountToken>) -> Result<String> {
    let now = now();
    if let Some(t) = SA_TOKENS.with(|m| get_cached(m, &key.to_owned(), now)) {
        return Ok(t);
    }
    let t = fetch()?;
    let lifetime = t.expires_at.saturating_sub(now);
    SA_TOKENS.with(|m| {
        put_cached(
            m,
            key.to_owned(),
            Cached {
                value: t.token.clone(),
                refresh_at: refresh_at(now, lifetime),
            },
        )
    });
    Ok(t.token)
}

/// ESO's "mounted service account" mode: the engine pod's own projected token,
/// available only where the operator granted these ambient credentials.
fn mounted_token(
    store: &Checked,
    secret_client: Option<String>,
    secret_tenant: Option<String>,
    spec_tenant: Option<String>,
    scope: &str,
) -> Result<String> {
    let env_client = if secret_client.is_none() {
        ambient("AZURE_CLIENT_ID")?
    } else {
        None
    };
    let client = pick_id(
        &[
            ("authSecretRef.clientId", secret_client.as_deref()),
            ("AZURE_CLIENT_ID", env_client.as_deref()),
        ],
        "client ID",
        "WorkloadIdentity without serviceAccountRef uses the engine's own mounted token, which the operator has not granted \
         (AZURE_CLIENT_ID unavailable); set serviceAccountRef",
    )?;
    let tenant = tenant_id(
        secret_tenant.as_deref(),
        spec_tenant.as_deref(),
        None,
        "missing tenant ID: set tenantId or authSecretRef.tenantId (AZURE_TENANT_ID is not granted)",
    )?;
    if let Some(host) = ambient("AZURE_AUTHORITY_HOST")? {
        let host = host.trim_end_matches('/');
        if host != store.cloud.authority {
            return Err(ProviderError::invalid_config(
                "environmentType",
                format!(
                    "the engine's AZURE_AUTHORITY_HOST ({host}) is not the authority of this store's cloud ({}); set environmentType or customCloudConfig to match",
                    store.cloud.authority
                ),
            ));
        }
    }
    let key = TokenKey {
        tenant: tenant.clone(),
        client: client.clone(),
        scope: scope.to_owned(),
        fingerprint: fingerprint(&[b"mounted"]),
    };
    token(key, |t| {
        let assertion = ambient("AZURE_FEDERATED_TOKEN_FILE")?.ok_or_else(|| {
            ProviderError::denied("the operator has not granted the engine's mounted token (AZURE_FEDERATED_TOKEN_FILE); set serviceAccountRef")
        })?;
        federated_exchange(store, t, &assertion)
    })
}

fn service_principal(store: &Checked) -> Result<String> {
    let refs = store.spec.auth_secret_ref.clone().unwrap_or_default();
    let client = read_id(&refs.client_id, "authSecretRef.clientId")?.unwrap_or_default();
    lockstep_provider_sdk::config::require("authSecretRef.clientId", &client)?;
    let secret_tenant = read_id(&refs.tenant_id, "authSecretRef.tenantId")?;
    let tenant = secret_tenant.or(store.spec.tenant_id.clone()).unwrap_or_default();
    lockstep_provider_sdk::config::require("tenantId", &tenant)?;
    check_tenant_id("tenantId", &tenant)?;
    let scope = store.cloud.scope();
    if let Some(r) = &refs.client_secret {
        let secret = String::from_utf8(r.fetch()?).map_err(|_| {
            ProviderError::invalid_config("authSecretRef.clientSecret", "the client secret is not text")
        })?;
        let key = TokenKey {
            tenant: tenant.clone(),
            client: client.clone(),
            scope: scope.clone(),
            fingerprint: fingerprint(&[b"secret", secret.as_bytes()]),
        };
        return token(key, |t| {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", t.client.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", t.scope.as_str()),
            ];
            post_token(store, t, &form)
        });
    }
    let r = refs.client_certificate.as_ref().ok_or_else(|| {
        ProviderError::invalid_config(
            "authSecretRef.clientSecret",
            "ServicePrincipal needs clientSecret or clientCertificate",
        )
    })?;
    let pem = r.fetch()?;
    let key = TokenKey {
        tenant,
        client,
        scope,
        fingerprint: fingerprint(&[b"cert", &pem]),
    };
    token(key, |t| {
        let cert = ClientCertificate::from_pem(&pem)?;
        let url = token_url(store, &t.tenant);
        let assertion = cert.assertion(&t.client, &url, now(), &jti(&t.client));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", t.client.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", t.scope.as_str()),
        ];
        post_token(store, t, &form)
    })
}

fn managed_identity(store: &Checked) -> Result<String> {
    let identity = store.spec.identity_id.clone().unwrap_or_default();
    let resource = store.cloud.vault_resource.clone();
    let key = TokenKey {
        tenant: String::new(),
        client: identity.clone(),
        scope: resource.clone(),
        fingerprint: fingerprint(&[b"imds"]),
    };
    token(key, |_| {
        let mut req = Request::get(format!("http://{IMDS_HOST}/metadata/identity/oauth2/token"))
            .query("api-version", "2018-02-01")
            .query("resource", &resource)
            .header("metadata", "true");
        // ESO's identityId is a client ID, or an ARM resource ID of a user-assigned identity.
        if identity.starts_with('/') {
            req = req.query("mi_res_id", &identity);
        } else if !identity.is_empty() {
            req = req.query("client_id", &identity);
        }
        let who = if identity.is_empty() {
            "managed identity".to_owned()
        } else {
            format!("managed identity {identity}")
        };
        let resp = req.send().map_err(|e| match e {
            ProviderError::Denied(m) => ProviderError::denied(format!(
                "ManagedIdentity needs the instance metadata address {IMDS_HOST}, which the operator has not granted ({m})"
            )),
            other => other,
        })?;
        if !resp.is_success() {
            return Err(token_error(resp.status(), resp.retry_after(), resp.body(), &who));
        }
        parse_token(resp.body())
    })
}

fn token_url(store: &Checked, tenant: &str) -> String {
    format!("{}/{}/oauth2/v2.0/token", store.cloud.authority, tenant)
}

/// The client-credentials grant with a federated (service account) assertion.
fn federated_exchange(store: &Checked, t: &TokenKey, assertion: &str) -> Result<AccessToken> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", t.client.as_str()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", t.scope.as_str()),
    ];
    post_token(store, t, &form)
}

fn post_token(store: &Checked, t: &TokenKey, form: &[(&str, &str)]) -> Result<AccessToken> {
    let resp = Request::post(token_url(store, &t.tenant)).form(form).send()?;
    if !resp.is_success() {
        let who = format!("client {} in tenant {}", t.client, t.tenant);
        return Err(token_error(resp.status(), resp.retry_after(), resp.body(), &who));
    }
    parse_token(resp.body())
}

/// The cached token for `key`, or a fresh one from `fetch`.
fn token(key: TokenKey, fetch: impl FnOnce(&TokenKey) -> Result<AccessToken>) -> Result<String> {
    let now = now();
    if let Some(t) = ACCESS_TOKENS.with(|m| get_cached(m, &key, now)) {
        return Ok(t);
    }
    let fresh = fetch(&key)?;
    let value = fresh.token.clone();
    ACCESS_TOKENS.with(|m| {
        put_cached(
            m,
            key,
            Cached {
                value: fresh.token,
                refresh_at: refresh_at(now, fresh.expires_in),
            },
        )
    });
    Ok(value)
}

/// A unique assertion ID without an RNG: hash of time, a counter and the client.
fn jti(client: &str) -> String {
    let n = JTI_COUNTER.with(|c| {
        *c.borrow_mut() += 1;
        *c.borrow()
    });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    fingerprint(&[&nanos.to_be_bytes(), &n.to_be_bytes(), client.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_before_expiry() {
        assert_eq!(refresh_at(1000, 3599), 1000 + 3599 - 300);
        assert_eq!(refresh_at(1000, 10), 1005);
        assert_eq!(refresh_at(1000, 1), 1001);
        assert_eq!(refresh_at(1000, 0), 1000);
    }

    #[test]
    fn cache_honours_refresh_time() {
        let map = RefCell::new(HashMap::new());
        put_cached(
            &map,
            "k",
            Cached {
                value: "t".into(),
                refresh_at: 100,
            },
        );
        assert_eq!(get_cached(&map, &"k", 99).as_deref(), Some("t"));
        assert_eq!(get_cached(&map, &"k", 100), None);
        for i in 0..CACHE_CAP + 1 {
            put_cached(
                &map,
                if i == 0 { "a" } else { "b" },
                Cached {
                    value: "t".into(),
                    refresh_at: 1,
                },
            );
        }
        assert!(map.borrow().len() <= CACHE_CAP);
    }

    #[test]
    fn id_precedence_and_conflicts() {
        let missing = "none";
        assert_eq!(
            pick_id(&[("a", Some("x")), ("b", None)], "client ID", missing).unwrap(),
            "x"
        );
        assert_eq!(
            pick_id(&[("a", None), ("b", Some(" y\n"))], "client ID", missing).unwrap(),
            "y"
        );
        // The same ID from two sources is not a conflict (ESO's fault fixed).
        assert_eq!(
            pick_id(&[("a", Some("x")), ("b", Some("x"))], "client ID", missing).unwrap(),
            "x"
        );
        match pick_id(
            &[("authSecretRef.clientId", Some("x")), ("serviceAccountRef", Some("z"))],
            "client ID",
            missing,
        ) {
            Err(ProviderError::InvalidConfig(c)) => {
                assert_eq!(c.field, "authSecretRef.clientId");
                assert!(c.reason.contains("different client IDs"), "{}", c.reason);
                assert!(!c.reason.contains('z'));
            }
            other => panic!("{other:?}"),
        }
        match pick_id(&[("a", None), ("b", Some(""))], "client ID", missing) {
            Err(ProviderError::Unauthorized(f)) => assert_eq!(f.message, missing),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tenant_precedence_is_shared_by_both_workload_identity_modes() {
        let m = "missing";
        // authSecretRef.tenantId hides tenantId, so they never conflict.
        assert_eq!(tenant_id(Some("a"), Some("b"), None, m).unwrap(), "a");
        assert_eq!(tenant_id(None, Some("b"), Some("b"), m).unwrap(), "b");
        assert_eq!(tenant_id(None, None, Some("c"), m).unwrap(), "c");
        match tenant_id(None, Some("b"), Some("c"), m) {
            Err(ProviderError::InvalidConfig(c)) => assert_eq!(c.field, "tenantId"),
            other => panic!("{other:?}"),
        }
        match tenant_id(Some("a b"), None, None, m) {
            Err(ProviderError::InvalidConfig(c)) => assert!(c.reason.contains("GUID"), "{}", c.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fingerprints_differ_by_credential() {
        assert_ne!(fingerprint(&[b"secret", b"a"]), fingerprint(&[b"secret", b"b"]));
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"x"]).len(), 32);
        assert_ne!(jti("c"), jti("c"));
    }
}
