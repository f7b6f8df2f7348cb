//! A fake Microsoft Entra ID token endpoint.
//!
//! The validation is real: a workload-identity assertion is a Kubernetes
//! service-account JWT, verified (RS256) against the keys the issuer publishes
//! at `{iss}/.well-known/openid-configuration` → `jwks_uri`, then matched
//! against registered federated identity credentials exactly as Entra does
//! (issuer, subject, audience; case-sensitive). Only the app registry is ours.
//!
//! Error codes follow what Entra returns for the same cases (see
//! shared/reference/testinfra.md §3.2): 90002 unknown tenant, 700016 unknown
//! client, 700211 no FIC for the issuer, 700213 none for the subject, 700212
//! none for the audience, 700024 assertion outside its time range, 700027 bad
//! signature, 7000215 bad secret, 70011 bad scope.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use crate::Error;
use crate::time::{entra_timestamp, unix_now};

pub const AUTHORITY_HOST: &str = "login.microsoftonline.com";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Resources the fake issues tokens for.
const RESOURCES: &[&str] = &["https://vault.azure.net", "https://management.azure.com"];
/// Clock skew Entra tolerates on assertion times.
const SKEW: i64 = 300;

/// The fake's own token-signing key (shared with the gateway, which verifies with it).
pub struct Signer {
    encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub kid: String,
    n: String,
    e: String,
}

impl Signer {
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| Error::Pki(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = hex::encode(&sha2::Sha256::digest(n.as_bytes())[..8]);
        Ok(Self {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| Error::Pki(e.to_string()))?,
            decoding: DecodingKey::from_rsa_components(&n, &e).map_err(|e| Error::Pki(e.to_string()))?,
            kid,
            n,
            e,
        })
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e}]})
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(self.kid.clone());
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, claims, &self.encoding).expect("RSA signing of a JSON claim set cannot fail")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_audience")]
    pub audience: String,
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_string()
}

#[derive(Clone)]
struct CertCredential {
    x5t: String,
    x5t_s256: String,
    key: Arc<DecodingKey>,
}

#[derive(Default)]
struct App {
    tenant: String,
    secrets: Vec<String>,
    certs: Vec<CertCredential>,
    fics: Vec<FederatedCredential>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagedIdentity {
    pub tenant: String,
    pub client_id: String,
    #[serde(default)]
    pub mi_res_id: Option<String>,
}

#[derive(Default)]
struct Registry {
    tenants: BTreeSet<String>,
    apps: HashMap<String, App>,
    identities: Vec<ManagedIdentity>,
    expires_in: i64,
    clock_offset: i64,
    exchanges: BTreeMap<String, u64>,
}

/// Shared state of the fake; cheap to clone.
#[derive(Clone)]
pub struct Entra {
    reg: Arc<Mutex<Registry>>,
    pub signer: Arc<Signer>,
    keys: IssuerKeys,
}

impl Entra {
    /// `http` must trust the issuers' TLS (the test CA).
    pub fn new(signer: Arc<Signer>, http: reqwest::Client) -> Self {
        let reg = Registry { expires_in: 3599, ..Default::default() };
        Self { reg: Arc::new(Mutex::new(reg)), signer, keys: IssuerKeys::new(http) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current time as the fake sees it (real time + clock offset).
    pub fn now(&self) -> i64 {
        unix_now() + self.lock().clock_offset
    }

    pub fn add_tenant(&self, tenant: &str) {
        self.lock().tenants.insert(tenant.to_string());
    }

    pub fn add_app(&self, tenant: &str, client_id: &str) {
        let mut r = self.lock();
        r.tenants.insert(tenant.to_string());
        r.apps.entry(client_id.to_string()).or_insert_with(|| App { tenant: tenant.to_string(), ..Default::default() });
    }

    fn with_app(&self, tenant: &str, client_id: &str, f: impl FnOnce(&mut App)) {
        self.add_app(tenant, client_id);
        let mut r = self.lock();
        f(r.apps.get_mut(client_id).expect("app was just added"));
    }

    pub fn federate(&self, tenant: &str, client_id: &str, fic: FederatedCredential) {
        self.with_app(tenant, client_id, |a| {
            if !a.fics.contains(&fic) {
                a.fics.push(fic)
            }
        });
    }

    pub fn unfederate(&self, client_id: &str, fic: &FederatedCredential) {
        if let Some(a) = self.lock().apps.get_mut(client_id) {
            a.fics.retain(|f| f != fic);
        }
    }

    pub fn add_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        self.with_app(tenant, client_id, |a| a.secrets.push(secret.to_string()));
    }

    /// Registers a certificate credential (PEM) by its SHA-1 and SHA-256 thumbprints.
    pub fn add_certificate(&self, tenant: &str, client_id: &str, cert_pem: &str) -> Result<(), Error> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| Error::Pki(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| Error::Pki(e.to_string()))?;
        let spki = cert.public_key();
        let key = match spki.parsed() {
            // DER integers carry a leading zero byte when the high bit is set; JWK-style components do not.
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                let unsigned = |b: &[u8]| b.iter().position(|&x| x != 0).map_or(Vec::new(), |i| b[i..].to_vec());
                DecodingKey::from_rsa_raw_components(&unsigned(rsa.modulus), &unsigned(rsa.exponent))
            }
            _ => return Err(Error::Pki("certificate credentials must carry an RSA key".into())),
        };
        let cred = CertCredential {
            x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&pem.contents)),
            x5t_s256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&pem.contents)),
            key: Arc::new(key),
        };
        self.with_app(tenant, client_id, |a| a.certs.push(cred));
        Ok(())
    }

    pub fn add_managed_identity(&self, mi: ManagedIdentity) {
        let mut r = self.lock();
        r.tenants.insert(mi.tenant.clone());
        r.identities.retain(|m| m.client_id != mi.client_id);
        r.identities.push(mi);
    }

    pub fn set_expires_in(&self, secs: i64) {
        self.lock().expires_in = secs;
    }

    pub fn set_clock_offset(&self, secs: i64) {
        self.lock().clock_offset = secs;
    }

    pub fn exchanges(&self) -> BTreeMap<String, u64> {
        self.lock().exchanges.clone()
    }

    /// An access token as the token endpoint would issue it (for seeding and negative tests).
    pub fn mint(&self, tenant: &str, client_id: &str, resource: &str, expires_in: Option<i64>) -> (String, i64) {
        let now = self.now();
        let exp = now + expires_in.unwrap_or_else(|| self.lock().expires_in);
        let claims = json!({
            "aud": resource,
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now, "nbf": now, "exp": exp,
            "tid": tenant, "appid": client_id, "azp": client_id,
            "oid": client_id, "sub": client_id, "ver": "1.0",
        });
        (self.signer.sign(&claims), exp - now)
    }

    fn count(&self, client_id: &str) {
        *self.lock().exchanges.entry(client_id.to_string()).or_default() += 1;
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{tenant}/v2.0/.well-known/openid-configuration", get(openid_configuration))
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .with_state(self.clone())
    }

    pub fn imds_router(&self) -> Router {
        Router::new().route("/metadata/identity/oauth2/token", get(imds_token)).with_state(self.clone())
    }
}

/// Issuers' signing keys, fetched OIDC-style (`{iss}/.well-known/openid-configuration`
/// → `jwks_uri`) and cached; refetched when a `kid` is unknown. Cheap to clone.
#[derive(Clone)]
pub struct IssuerKeys {
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

impl IssuerKeys {
    /// `http` must trust the issuers' TLS (the test CA).
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, cache: Arc::default() }
    }

    async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Option<DecodingKey>, String> {
        let find = |keys: &[Value]| {
            keys.iter()
                .find(|k| kid.is_none() || k["kid"].as_str() == kid)
                .and_then(|k| DecodingKey::from_rsa_components(k["n"].as_str()?, k["e"].as_str()?).ok())
        };
        if let Some(keys) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(issuer)
            && let Some(k) = find(keys)
        {
            return Ok(Some(k));
        }
        let discovery: Value = self.get_json(&format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))).await?;
        let jwks_uri = discovery["jwks_uri"].as_str().ok_or("discovery document has no jwks_uri")?;
        let jwks: Value = self.get_json(jwks_uri).await?;
        let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        let found = find(&keys);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(issuer.to_string(), keys);
        Ok(found)
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let r = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("GET {url}: {}", r.status()));
        }
        r.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

/// Why a service-account JWT does not match a federated credential, in the
/// order the checks run (Entra's order, also used by the AWS STS front).
#[derive(Debug)]
pub enum FederationError {
    Malformed,
    /// No trusted credential names the token's issuer.
    UntrustedIssuer(String),
    Algorithm(Algorithm),
    /// The issuer's JWKS could not be fetched.
    Keys(String),
    KeyNotFound,
    Signature(jsonwebtoken::errors::Error),
    /// `now` is outside [nbf, exp] (with the skew).
    Time { now: i64, nbf: i64, exp: i64 },
    Subject(String),
    Audience(Vec<String>),
}

/// Verifies a workload-identity JWT the way a federating identity provider
/// does: a credential trusting its issuer, RS256 by a key of that issuer's
/// JWKS, within its validity at `now`, then subject and audience matched
/// exactly against the trusted credentials. Returns the claims.
pub async fn verify_federated(keys: &IssuerKeys, token: &str, trusted: &[FederatedCredential], now: i64) -> Result<Value, FederationError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| FederationError::Malformed)?;
    let claims = unverified_claims(token).ok_or(FederationError::Malformed)?;
    let iss = claims["iss"].as_str().unwrap_or_default().to_string();
    let sub = claims["sub"].as_str().unwrap_or_default().to_string();
    let auds: Vec<String> = match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => vec![],
    };
    let trusted: Vec<&FederatedCredential> = trusted.iter().filter(|f| f.issuer == iss).collect();
    // Only issuers a credential trusts are ever fetched.
    if trusted.is_empty() {
        return Err(FederationError::UntrustedIssuer(iss));
    }
    if header.alg != Algorithm::RS256 {
        return Err(FederationError::Algorithm(header.alg));
    }
    let key = keys.key(&iss, header.kid.as_deref()).await.map_err(FederationError::Keys)?.ok_or(FederationError::KeyNotFound)?;
    verify(token, &key, Algorithm::RS256).map_err(FederationError::Signature)?;
    if let Some((nbf, exp)) = outside_validity(&claims, now) {
        return Err(FederationError::Time { now, nbf, exp });
    }
    let by_subject: Vec<_> = trusted.iter().filter(|f| f.subject == sub).collect();
    if by_subject.is_empty() {
        return Err(FederationError::Subject(sub));
    }
    if !by_subject.iter().any(|f| auds.contains(&f.audience)) {
        return Err(FederationError::Audience(auds));
    }
    Ok(claims)
}

/// An Entra error response.
struct Aad {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
    now: i64,
}

fn aad(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Aad {
    Aad { status, error, code, description: description.into(), now: unix_now() }
}

impl IntoResponse for Aad {
    fn into_response(self) -> Response {
        let trace = uuid();
        let correlation = uuid();
        let ts = entra_timestamp(self.now);
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://{AUTHORITY_HOST}/error?code={}", self.code),
        });
        (self.status, Json(body)).into_response()
    }
}

fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

async fn token(State(entra): State<Entra>, Path(tenant): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    match exchange(&entra, &tenant, &form).await {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn exchange(entra: &Entra, tenant: &str, form: &HashMap<String, String>) -> Result<Value, Aad> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if !entra.lock().tenants.contains(tenant) {
        return Err(aad(StatusCode::BAD_REQUEST, "invalid_request", 90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")));
    }
    if field("grant_type") != "client_credentials" {
        return Err(aad(StatusCode::BAD_REQUEST, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."));
    }
    let scope = field("scope");
    let resource = scope.strip_suffix("/.default").filter(|r| !scope.contains(' ') && RESOURCES.contains(r));
    let Some(resource) = resource else {
        return Err(aad(StatusCode::BAD_REQUEST, "invalid_scope", 70011, format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid: '{scope}'.")));
    };
    let client_id = field("client_id");
    let known = entra.lock().apps.get(client_id).is_some_and(|a| a.tenant == tenant);
    if !known {
        return Err(aad(StatusCode::BAD_REQUEST, "unauthorized_client", 700016, format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'.")));
    }

    if let Some(secret) = form.get("client_secret") {
        let ok = entra.lock().apps.get(client_id).is_some_and(|a| a.secrets.iter().any(|s| s == secret));
        if !ok {
            return Err(aad(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app."));
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if field("client_assertion_type") != JWT_BEARER {
            return Err(aad(StatusCode::BAD_REQUEST, "invalid_request", 50027, "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer."));
        }
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|e| aad(StatusCode::BAD_REQUEST, "invalid_request", 50027, format!("JWT token is invalid or malformed: {e}.")))?;
        if header.x5t.is_some() || header.x5t_s256.is_some() {
            certificate_assertion(entra, tenant, client_id, assertion, &header)?;
        } else {
            federated_assertion(entra, client_id, assertion).await?;
        }
    } else {
        return Err(aad(StatusCode::BAD_REQUEST, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."));
    }

    entra.count(client_id);
    let (access_token, expires_in) = entra.mint(tenant, client_id, resource, None);
    Ok(json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": access_token}))
}

/// Verifies a signature only; claims are checked by the caller against the fake's clock.
fn verify(assertion: &str, key: &DecodingKey, alg: Algorithm) -> Result<Value, jsonwebtoken::errors::Error> {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    Ok(jsonwebtoken::decode::<Value>(assertion, key, &v)?.claims)
}

fn unverified_claims(assertion: &str) -> Option<Value> {
    let payload = assertion.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// `(nbf, exp)` of a JWT whose validity (± the skew) does not include `now`.
fn outside_validity(claims: &Value, now: i64) -> Option<(i64, i64)> {
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let nbf = claims["nbf"].as_i64().or_else(|| claims["iat"].as_i64()).unwrap_or(0);
    (exp + SKEW <= now || nbf - SKEW > now).then_some((nbf, exp))
}

fn time_error(now: i64, nbf: i64, exp: i64) -> Aad {
    aad(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700024,
        format!(
            "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
            iso(now),
            iso(nbf),
            iso(exp)
        ),
    )
}

fn check_times(entra: &Entra, claims: &Value) -> Result<(), Aad> {
    let now = entra.now();
    outside_validity(claims, now).map_or(Ok(()), |(nbf, exp)| Err(time_error(now, nbf, exp)))
}

fn iso(t: i64) -> String {
    entra_timestamp(t).replace(' ', "T")
}

async fn federated_assertion(entra: &Entra, client_id: &str, assertion: &str) -> Result<(), Aad> {
    let fics: Vec<FederatedCredential> = entra.lock().apps.get(client_id).map(|a| a.fics.clone()).unwrap_or_default();
    let bad_signature = |why: String| aad(StatusCode::UNAUTHORIZED, "invalid_client", 700027, format!("Client assertion failed signature validation: {why}."));
    const CHECK: &str = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.";
    verify_federated(&entra.keys, assertion, &fics, entra.now()).await.map(drop).map_err(|e| match e {
        FederationError::Malformed => aad(StatusCode::BAD_REQUEST, "invalid_request", 50027, "JWT token is invalid or malformed."),
        FederationError::UntrustedIssuer(iss) => aad(StatusCode::BAD_REQUEST, "invalid_request", 700211, format!("No matching federated identity record found for presented assertion issuer '{iss}'. {CHECK}")),
        FederationError::Algorithm(alg) => bad_signature(format!("unsupported algorithm {alg:?}")),
        FederationError::Keys(e) => bad_signature(format!("unable to obtain the issuer's signing keys ({e})")),
        FederationError::KeyNotFound => bad_signature("signing key not found in the issuer's JWKS".into()),
        FederationError::Signature(e) => bad_signature(e.to_string()),
        FederationError::Time { now, nbf, exp } => time_error(now, nbf, exp),
        FederationError::Subject(sub) => aad(StatusCode::BAD_REQUEST, "invalid_request", 700213, format!("No matching federated identity record found for presented assertion subject '{sub}'. {CHECK}")),
        FederationError::Audience(auds) => aad(StatusCode::BAD_REQUEST, "invalid_request", 700212, format!("No matching federated identity record found for presented assertion audience '{}'. {CHECK}", auds.join(","))),
    })
}

fn certificate_assertion(entra: &Entra, tenant: &str, client_id: &str, assertion: &str, header: &Header) -> Result<(), Aad> {
    let cred = entra.lock().apps.get(client_id).and_then(|a| {
        a.certs
            .iter()
            .find(|c| header.x5t.as_deref() == Some(&c.x5t) || header.x5t_s256.as_deref() == Some(&c.x5t_s256))
            .cloned()
    });
    let Some(cred) = cred else {
        return Err(aad(StatusCode::UNAUTHORIZED, "invalid_client", 700027, "Client assertion failed signature validation: the key was not found among the app's certificate credentials."));
    };
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(aad(StatusCode::UNAUTHORIZED, "invalid_client", 700027, "Client assertion failed signature validation: unsupported algorithm."));
    }
    let claims = verify(assertion, &cred.key, header.alg)
        .map_err(|e| aad(StatusCode::UNAUTHORIZED, "invalid_client", 700027, format!("Client assertion failed signature validation: {e}.")))?;
    // RFC 7523 client authentication: iss = sub = client_id, aud = the token endpoint.
    if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
        return Err(aad(StatusCode::UNAUTHORIZED, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter."));
    }
    let endpoint = format!("https://{AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token");
    let aud_ok = match &claims["aud"] {
        Value::String(s) => *s == endpoint,
        Value::Array(a) => a.iter().any(|v| v.as_str() == Some(&endpoint)),
        _ => false,
    };
    if !aud_ok {
        return Err(aad(StatusCode::UNAUTHORIZED, "invalid_client", 700212, format!("Client assertion audience claim does not match the token endpoint '{endpoint}'.")));
    }
    check_times(entra, &claims)
}

async fn openid_configuration(Path(tenant): Path<String>) -> Json<Value> {
    let base = format!("https://{AUTHORITY_HOST}/{tenant}");
    Json(json!({
        "issuer": format!("{base}/v2.0"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "jwks_uri": format!("https://{AUTHORITY_HOST}/{tenant}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "EU",
    }))
}

async fn keys(State(entra): State<Entra>) -> Json<Value> {
    Json(entra.signer.jwks())
}

#[derive(Deserialize)]
struct ImdsQuery {
    resource: Option<String>,
    client_id: Option<String>,
    mi_res_id: Option<String>,
    object_id: Option<String>,
}

/// IMDS: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`, header `Metadata: true`.
async fn imds_token(State(entra): State<Entra>, headers: HeaderMap, Query(q): Query<ImdsQuery>) -> Response {
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request", "error_description": msg}))).into_response();
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return bad("Required metadata header not specified");
    }
    let Some(resource) = q.resource.filter(|r| !r.is_empty()) else { return bad("Required query variable 'resource' is missing") };
    let resource = resource.trim_end_matches("/.default").trim_end_matches('/').to_string();
    if !RESOURCES.contains(&resource.as_str()) {
        return bad("Invalid resource");
    }
    let mi = {
        let r = entra.lock();
        match (&q.client_id, &q.mi_res_id, &q.object_id) {
            (Some(c), _, _) => r.identities.iter().find(|m| &m.client_id == c).cloned(),
            (_, Some(id), _) => r.identities.iter().find(|m| m.mi_res_id.as_deref() == Some(id)).cloned(),
            (_, _, Some(_)) => None,
            // Without a selector IMDS uses the only assigned identity.
            _ if r.identities.len() == 1 => r.identities.first().cloned(),
            _ => None,
        }
    };
    let Some(mi) = mi else { return bad("Identity not found") };
    entra.count(&mi.client_id);
    let (token, expires_in) = entra.mint(&mi.tenant, &mi.client_id, &resource, None);
    let now = entra.now();
    Json(json!({
        "access_token": token,
        "client_id": mi.client_id,
        "expires_in": expires_in.to_string(),
        "expires_on": (now + expires_in).to_string(),
        "ext_expires_in": expires_in.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
    .into_response()
}
