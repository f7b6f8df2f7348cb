//! An in-memory Azure Key Vault data plane: secrets (versions, tags, content
//! type, enabled/nbf/exp, delete, list with paging), keys (RSA create, get) and
//! certificates (PEM import, get; the backing secret is readable through the
//! secrets API like in Key Vault). Vaults are chosen by the Host header
//! (`<name>.vault.azure.net`), like the real service.
//!
//! It sits behind the gateway (`gateway.rs`), which does authentication; this
//! module only speaks the REST shapes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use crate::time::unix_now;

pub const VAULT_DOMAIN: &str = "vault.azure.net";
const API_VERSIONS: &[&str] = &["7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"];
const PAGE: usize = 25;
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";

#[derive(Clone, Debug)]
struct SecretVersion {
    version: String,
    value: String,
    content_type: Option<String>,
    tags: BTreeMap<String, String>,
    attrs: Attrs,
    /// Set for a certificate's backing secret.
    kid: Option<String>,
}

#[derive(Clone, Debug)]
struct Attrs {
    enabled: bool,
    nbf: Option<i64>,
    exp: Option<i64>,
    created: i64,
    updated: i64,
}

impl Attrs {
    fn json(&self) -> Value {
        let mut v = json!({"enabled": self.enabled, "created": self.created, "updated": self.updated,
            "recoveryLevel": RECOVERY_LEVEL, "recoverableDays": 90});
        if let Some(n) = self.nbf {
            v["nbf"] = n.into();
        }
        if let Some(e) = self.exp {
            v["exp"] = e.into();
        }
        v
    }
}

#[derive(Clone, Debug)]
struct KeyVersion {
    version: String,
    jwk: Value,
    tags: BTreeMap<String, String>,
    attrs: Attrs,
}

#[derive(Clone, Debug)]
struct CertVersion {
    version: String,
    der: Vec<u8>,
    content_type: String,
    tags: BTreeMap<String, String>,
    attrs: Attrs,
}

#[derive(Default)]
struct VaultData {
    tenant: String,
    secrets: BTreeMap<String, Vec<SecretVersion>>,
    deleted: BTreeMap<String, Vec<SecretVersion>>,
    keys: BTreeMap<String, Vec<KeyVersion>>,
    certs: BTreeMap<String, Vec<CertVersion>>,
}

/// All vaults, keyed by name (`kv-aap-vault-dev` for `kv-aap-vault-dev.vault.azure.net`).
#[derive(Clone, Default)]
pub struct Vaults(Arc<Mutex<BTreeMap<String, VaultData>>>);

impl Vaults {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VaultData>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a vault (idempotent); `tenant` is the directory its challenge names.
    pub fn create(&self, name: &str, tenant: &str) {
        self.lock().entry(name.to_string()).or_insert_with(|| VaultData { tenant: tenant.to_string(), ..Default::default() });
    }

    pub fn tenant_of(&self, name: &str) -> Option<String> {
        self.lock().get(name).map(|v| v.tenant.clone())
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }
}

/// The vault name a Host header addresses, if it is a Key Vault host.
pub fn vault_name(host: &str) -> Option<&str> {
    let host = host.split(':').next()?;
    host.strip_suffix(VAULT_DOMAIN)?.strip_suffix('.').filter(|n| !n.is_empty() && !n.contains('.'))
}

fn kv_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

/// Key Vault's 403 for disabled or not-yet/no-longer valid secrets, with `innererror.code`.
fn forbidden(message: &str, inner: &str) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": inner}}}))).into_response()
}

fn new_version() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SetSecret {
    value: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    attributes: Option<AttrsIn>,
}

#[derive(Deserialize, Default, Clone)]
struct AttrsIn {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

async fn handle(State(vaults): State<Vaults>, req: Request) -> Response {
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let Some(name) = vault_name(&host).map(str::to_string) else {
        return kv_error(StatusCode::NOT_FOUND, "VaultNotFound", format!("No vault serves host '{host}'."));
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: BTreeMap<String, String> = serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    match query.get("api-version") {
        Some(v) if API_VERSIONS.contains(&v.as_str()) => {}
        Some(v) => return kv_error(StatusCode::BAD_REQUEST, "BadParameter", format!("The specified version ({v}) is not recognized. Consider using the latest supported version (2025-07-01).")),
        None => return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "The request URI must contain an 'api-version' parameter."),
    }
    let body = match axum::body::to_bytes(req.into_body(), 4 << 20).await {
        Ok(b) => b,
        Err(_) => return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "Request body too large or unreadable."),
    };
    let base = format!("https://{}", host.split(':').next().unwrap_or_default());
    let mut all = vaults.lock();
    let Some(vault) = all.get_mut(&name) else {
        return kv_error(StatusCode::NOT_FOUND, "VaultNotFound", format!("Vault '{name}' does not exist."));
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ctx = Ctx { base: &base, query: &query };
    match (&method, segs.as_slice()) {
        (&Method::PUT, ["secrets", n]) => set_secret(vault, &ctx, n, &body),
        (&Method::GET, ["secrets"] | ["secrets", ""]) => list_secrets(vault, &ctx),
        (&Method::GET, ["secrets", n] | ["secrets", n, ""]) => get_secret(vault, &ctx, n, None),
        (&Method::GET, ["secrets", n, "versions"]) => list_versions(vault, &ctx, n),
        (&Method::GET, ["secrets", n, v]) => get_secret(vault, &ctx, n, Some(*v)),
        (&Method::PATCH, ["secrets", n, v]) => update_secret(vault, &ctx, n, v, &body),
        (&Method::DELETE, ["secrets", n]) => delete_secret(vault, &ctx, n),
        (&Method::POST, ["keys", n, "create"]) => create_key(vault, &ctx, n, &body),
        (&Method::GET, ["keys", n] | ["keys", n, ""]) => get_key(vault, &ctx, n, None),
        (&Method::GET, ["keys", n, v]) => get_key(vault, &ctx, n, Some(*v)),
        (&Method::POST, ["certificates", n, "import"]) => import_certificate(vault, &ctx, n, &body),
        (&Method::GET, ["certificates", n] | ["certificates", n, ""]) => get_certificate(vault, &ctx, n, None),
        (&Method::GET, ["certificates", n, v]) => get_certificate(vault, &ctx, n, Some(*v)),
        _ => kv_error(StatusCode::BAD_REQUEST, "BadParameter", format!("Unsupported operation {method} {path} on this Key Vault emulator.")),
    }
}

struct Ctx<'a> {
    base: &'a str,
    query: &'a BTreeMap<String, String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| kv_error(StatusCode::BAD_REQUEST, "BadParameter", format!("Invalid request body: {e}")))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 127 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn secret_bundle(ctx: &Ctx, name: &str, s: &SecretVersion, with_value: bool) -> Value {
    let mut v = json!({
        "id": format!("{}/secrets/{name}/{}", ctx.base, s.version),
        "attributes": s.attrs.json(),
        "tags": s.tags,
    });
    if with_value {
        v["value"] = s.value.clone().into();
    }
    if let Some(ct) = &s.content_type {
        v["contentType"] = ct.clone().into();
    }
    if let Some(kid) = &s.kid {
        v["kid"] = kid.clone().into();
        v["managed"] = true.into();
    }
    v
}

fn set_secret(vault: &mut VaultData, ctx: &Ctx, name: &str, body: &Bytes) -> Response {
    if !valid_name(name) {
        return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "The request URI contains an invalid name: secret names may only contain alphanumeric characters and dashes.");
    }
    let req: SetSecret = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(value) = req.value else { return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "Property 'value' is required.") };
    let now = unix_now();
    let a = req.attributes.unwrap_or_default();
    let s = SecretVersion {
        version: new_version(),
        value,
        content_type: req.content_type,
        tags: req.tags.unwrap_or_default(),
        attrs: Attrs { enabled: a.enabled.unwrap_or(true), nbf: a.nbf, exp: a.exp, created: now, updated: now },
        kid: None,
    };
    vault.deleted.remove(name);
    let out = secret_bundle(ctx, name, &s, true);
    vault.secrets.entry(name.to_string()).or_default().push(s);
    Json(out).into_response()
}

fn not_found(kind: &str, name: &str) -> Response {
    let code = match kind {
        "secret" => "SecretNotFound",
        "key" => "KeyNotFound",
        _ => "CertificateNotFound",
    };
    kv_error(StatusCode::NOT_FOUND, code, format!("A {kind} with (name/id) {name} was not found in this key vault. If you recently deleted this {kind} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"))
}

fn pick<'a, T>(versions: &'a [T], version: Option<&str>, id: impl Fn(&T) -> &str) -> Option<&'a T> {
    match version {
        None | Some("") => versions.last(),
        Some(v) => versions.iter().find(|x| id(*x) == v),
    }
}

fn get_secret(vault: &VaultData, ctx: &Ctx, name: &str, version: Option<&str>) -> Response {
    let found = vault.secrets.get(name).and_then(|vs| pick(vs, version, |s| &s.version));
    let Some(s) = found else {
        return not_found("secret", &match version { Some(v) if !v.is_empty() => format!("{name}/{v}"), _ => name.to_string() });
    };
    let now = unix_now();
    if !s.attrs.enabled {
        return forbidden("Operation get is not allowed on a disabled secret.", "SecretDisabled");
    }
    if s.attrs.nbf.is_some_and(|n| n > now) || s.attrs.exp.is_some_and(|e| e <= now) {
        return forbidden("Operation get is not allowed on a secret outside its validity period.", "SecretNotValid");
    }
    Json(secret_bundle(ctx, name, s, true)).into_response()
}

fn paged(ctx: &Ctx, path: &str, items: Vec<Value>) -> Response {
    let max = ctx.query.get("maxresults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(PAGE).clamp(1, PAGE);
    let start = ctx
        .query
        .get("$skiptoken")
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + max).min(items.len());
    let page: Vec<Value> = items.get(start..end).map(<[Value]>::to_vec).unwrap_or_default();
    let api = ctx.query.get("api-version").cloned().unwrap_or_default();
    let next = (end < items.len()).then(|| {
        format!("{}{path}?api-version={api}&maxresults={max}&$skiptoken={}", ctx.base, URL_SAFE_NO_PAD.encode(end.to_string()))
    });
    Json(json!({"value": page, "nextLink": next})).into_response()
}

fn list_secrets(vault: &VaultData, ctx: &Ctx) -> Response {
    let items = vault
        .secrets
        .iter()
        .filter_map(|(n, vs)| vs.last().map(|s| (n, s)))
        .map(|(n, s)| {
            let mut v = secret_bundle(ctx, n, s, false);
            v["id"] = format!("{}/secrets/{n}", ctx.base).into();
            v
        })
        .collect();
    paged(ctx, "/secrets", items)
}

fn list_versions(vault: &VaultData, ctx: &Ctx, name: &str) -> Response {
    let Some(vs) = vault.secrets.get(name) else { return not_found("secret", name) };
    let items = vs.iter().map(|s| secret_bundle(ctx, name, s, false)).collect();
    paged(ctx, &format!("/secrets/{name}/versions"), items)
}

fn update_secret(vault: &mut VaultData, ctx: &Ctx, name: &str, version: &str, body: &Bytes) -> Response {
    let req: SetSecret = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(s) = vault.secrets.get_mut(name).and_then(|vs| vs.iter_mut().find(|s| s.version == version)) else {
        return not_found("secret", &format!("{name}/{version}"));
    };
    if let Some(ct) = req.content_type {
        s.content_type = Some(ct);
    }
    if let Some(t) = req.tags {
        s.tags = t;
    }
    if let Some(a) = req.attributes {
        if let Some(e) = a.enabled {
            s.attrs.enabled = e;
        }
        s.attrs.nbf = a.nbf.or(s.attrs.nbf);
        s.attrs.exp = a.exp.or(s.attrs.exp);
    }
    s.attrs.updated = unix_now();
    Json(secret_bundle(ctx, name, s, false)).into_response()
}

fn delete_secret(vault: &mut VaultData, ctx: &Ctx, name: &str) -> Response {
    let Some(vs) = vault.secrets.remove(name) else { return not_found("secret", name) };
    let mut out = vs.last().map(|s| secret_bundle(ctx, name, s, false)).unwrap_or_default();
    out["recoveryId"] = format!("{}/deletedsecrets/{name}", ctx.base).into();
    out["deletedDate"] = unix_now().into();
    vault.deleted.insert(name.to_string(), vs);
    Json(out).into_response()
}

#[derive(Deserialize)]
struct CreateKey {
    kty: String,
    key_size: Option<usize>,
    key_ops: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
}

fn key_bundle(ctx: &Ctx, name: &str, k: &KeyVersion) -> Value {
    let mut jwk = k.jwk.clone();
    jwk["kid"] = format!("{}/keys/{name}/{}", ctx.base, k.version).into();
    json!({"key": jwk, "attributes": k.attrs.json(), "tags": k.tags})
}

fn create_key(vault: &mut VaultData, ctx: &Ctx, name: &str, body: &Bytes) -> Response {
    let req: CreateKey = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.kty != "RSA" {
        return kv_error(StatusCode::BAD_REQUEST, "BadParameter", format!("Key type '{}' is not supported by this emulator (RSA only).", req.kty));
    }
    let bits = req.key_size.unwrap_or(2048);
    let key = match rsa::RsaPrivateKey::new(&mut rand::thread_rng(), bits) {
        Ok(k) => k,
        Err(e) => return kv_error(StatusCode::BAD_REQUEST, "BadParameter", format!("Invalid key size: {e}")),
    };
    let ops = req.key_ops.unwrap_or_else(|| ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"].map(String::from).to_vec());
    let now = unix_now();
    let k = KeyVersion {
        version: new_version(),
        jwk: json!({"kty": "RSA", "key_ops": ops, "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be())}),
        tags: req.tags.unwrap_or_default(),
        attrs: Attrs { enabled: true, nbf: None, exp: None, created: now, updated: now },
    };
    let out = key_bundle(ctx, name, &k);
    vault.keys.entry(name.to_string()).or_default().push(k);
    Json(out).into_response()
}

fn get_key(vault: &VaultData, ctx: &Ctx, name: &str, version: Option<&str>) -> Response {
    match vault.keys.get(name).and_then(|vs| pick(vs, version, |k| &k.version)) {
        Some(k) => Json(key_bundle(ctx, name, k)).into_response(),
        None => not_found("key", name),
    }
}

#[derive(Deserialize)]
struct ImportCertificate {
    value: String,
    policy: Option<Value>,
    tags: Option<BTreeMap<String, String>>,
}

fn cert_bundle(ctx: &Ctx, name: &str, c: &CertVersion) -> Value {
    json!({
        "id": format!("{}/certificates/{name}/{}", ctx.base, c.version),
        "kid": format!("{}/keys/{name}/{}", ctx.base, c.version),
        "sid": format!("{}/secrets/{name}/{}", ctx.base, c.version),
        "x5t": URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&c.der)),
        "cer": STANDARD.encode(&c.der),
        "attributes": c.attrs.json(),
        "tags": c.tags,
        "policy": {"id": format!("{}/certificates/{name}/policy", ctx.base), "secret_props": {"contentType": c.content_type}},
    })
}

/// PEM import only (certificate + private key in one PEM, contentType
/// application/x-pem-file); PKCS#12 import is not emulated.
fn import_certificate(vault: &mut VaultData, ctx: &Ctx, name: &str, body: &Bytes) -> Response {
    let req: ImportCertificate = match parse(body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let content_type = req
        .policy
        .as_ref()
        .and_then(|p| p["secret_props"]["contentType"].as_str())
        .unwrap_or("application/x-pkcs12")
        .to_string();
    if content_type != "application/x-pem-file" {
        return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "This emulator imports PEM certificates only (policy.secret_props.contentType = application/x-pem-file).");
    }
    let der = match x509_parser::pem::parse_x509_pem(req.value.as_bytes()) {
        Ok((_, pem)) if pem.label == "CERTIFICATE" => pem.contents,
        _ => return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "The value does not contain a PEM certificate."),
    };
    if !req.value.contains("PRIVATE KEY-----") {
        return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "Private key is not specified in the specified X.509 PEM.");
    }
    let now = unix_now();
    let attrs = Attrs { enabled: true, nbf: None, exp: None, created: now, updated: now };
    let c = CertVersion { version: new_version(), der, content_type: content_type.clone(), tags: req.tags.clone().unwrap_or_default(), attrs: attrs.clone() };
    let backing = SecretVersion {
        version: c.version.clone(),
        value: req.value,
        content_type: Some(content_type),
        tags: req.tags.unwrap_or_default(),
        attrs,
        kid: Some(format!("{}/keys/{name}/{}", ctx.base, c.version)),
    };
    let out = cert_bundle(ctx, name, &c);
    vault.secrets.entry(name.to_string()).or_default().push(backing);
    vault.certs.entry(name.to_string()).or_default().push(c);
    Json(out).into_response()
}

fn get_certificate(vault: &VaultData, ctx: &Ctx, name: &str, version: Option<&str>) -> Response {
    match vault.certs.get(name).and_then(|vs| pick(vs, version, |c| &c.version)) {
        Some(c) => Json(cert_bundle(ctx, name, c)).into_response(),
        None => not_found("certificate", name),
    }
}

#[cfg(test)]
mod tests {
    use super::vault_name;

    #[test]
    fn vault_names_come_from_key_vault_hosts_only() {
        assert_eq!(vault_name("kv-aap-vault-dev.vault.azure.net"), Some("kv-aap-vault-dev"));
        assert_eq!(vault_name("kv1.vault.azure.net:443"), Some("kv1"));
        assert_eq!(vault_name("vault.azure.net"), None);
        assert_eq!(vault_name("a.b.vault.azure.net"), None);
        assert_eq!(vault_name("login.microsoftonline.com"), None);
    }
}
