//! The verifying front of the Key Vault endpoint. Everything a client sends
//! to a vault host passes here first: counted per `METHOD /path`, the bearer
//! token checked (signature by the fake Entra's key, audience, expiry, tenant)
//! and answered with Key Vault's challenge when missing or bad, then faults
//! injected on demand; only then does the request reach the vault data plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::entra::{AUTHORITY_HOST, Entra};
use crate::tls::ConnControl;
use crate::vault::{Vaults, vault_name};

pub const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// A fault for matching requests. `count: None` keeps it until cleared;
/// `path_contains`/`method` narrow which requests match (all when absent).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (429, 503, ...) and `Retry-After` seconds.
    Status { status: u16, retry_after: Option<u64>, #[serde(flatten)] filter: FaultFilter },
    /// Hold the request this long, then serve it.
    Delay { millis: u64, #[serde(flatten)] filter: FaultFilter },
    /// Drop the connection with a TCP reset, no response.
    Reset { #[serde(flatten)] filter: FaultFilter },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FaultFilter {
    pub count: Option<u32>,
    pub path_contains: Option<String>,
    pub method: Option<String>,
}

impl Fault {
    /// `status` with `Retry-After` for the next `count` requests.
    pub fn throttle(status: u16, retry_after: u64, count: u32) -> Self {
        Fault::Status { status, retry_after: Some(retry_after), filter: FaultFilter { count: Some(count), ..Default::default() } }
    }

    fn filter(&self) -> &FaultFilter {
        match self {
            Fault::Status { filter, .. } | Fault::Delay { filter, .. } | Fault::Reset { filter } => filter,
        }
    }

    fn filter_mut(&mut self) -> &mut FaultFilter {
        match self {
            Fault::Status { filter, .. } | Fault::Delay { filter, .. } | Fault::Reset { filter } => filter,
        }
    }
}

#[derive(Default)]
struct Book {
    faults: Vec<Fault>,
    requests: BTreeMap<String, u64>,
}

#[derive(Clone)]
pub struct Gateway {
    book: Arc<Mutex<Book>>,
    entra: Entra,
    vaults: Vaults,
}

impl Gateway {
    pub fn new(entra: Entra, vaults: Vaults) -> Self {
        Self { book: Arc::default(), entra, vaults }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_fault(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.lock().requests.clone()
    }

    pub fn reset_requests(&self) {
        self.lock().requests.clear();
    }

    /// The vault data plane wrapped in this gateway.
    pub fn wrap(&self, vault: Router) -> Router {
        vault.layer(axum::middleware::from_fn_with_state(self.clone(), gate))
    }

    /// Takes one use of the first fault matching this request.
    fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut book = self.lock();
        let i = book.faults.iter().position(|f| {
            let m = f.filter();
            m.count != Some(0)
                && m.method.as_deref().is_none_or(|x| x.eq_ignore_ascii_case(method))
                && m.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        let f = book.faults[i].clone();
        if let Some(c) = book.faults[i].filter_mut().count.as_mut() {
            *c -= 1;
            if *c == 0 {
                book.faults.remove(i);
            }
        }
        Some(f)
    }

    fn check_token(&self, token: &str, tenant: &str) -> Result<(), &'static str> {
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(token, &self.entra.signer.decoding, &v)
            .map_err(|_| "AKV10013: Token validation failed: the signature is invalid or the token is malformed.")?
            .claims;
        let aud = claims["aud"].as_str().unwrap_or_default();
        if aud.trim_end_matches('/') != VAULT_RESOURCE {
            return Err("AKV10022: Invalid audience.");
        }
        if claims["exp"].as_i64().is_none_or(|exp| exp <= self.entra.now()) {
            return Err("AKV10013: Token validation failed: the token has expired.");
        }
        if claims["tid"].as_str() != Some(tenant) {
            return Err("AKV10032: Invalid issuer.");
        }
        Ok(())
    }
}

/// Key Vault's 401: the challenge names the vault's tenant and the resource.
fn challenge(tenant: &str, message: &str) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "Unauthorized", "message": message}}))).into_response();
    let value = format!("Bearer authorization=\"https://{AUTHORITY_HOST}/{tenant}\", resource=\"{VAULT_RESOURCE}\"");
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

async fn gate(State(g): State<Gateway>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    *g.lock().requests.entry(format!("{method} {path}")).or_default() += 1;

    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let Some(tenant) = vault_name(host).and_then(|n| g.vaults.tenant_of(n)) else {
        return next.run(req).await; // the data plane answers unknown hosts with 404
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = bearer else { return challenge(&tenant, "AKV10000: Request is missing a Bearer or PoP token.") };
    if let Err(msg) = g.check_token(token, &tenant) {
        return challenge(&tenant, msg);
    }

    match g.take_fault(&method, &path) {
        Some(Fault::Status { status, retry_after, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let code = if status == StatusCode::TOO_MANY_REQUESTS { "Throttled" } else { "ServiceUnavailable" };
            let mut r = (status, Json(json!({"error": {"code": code, "message": "Injected fault."}}))).into_response();
            if let Some(s) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            r
        }
        Some(Fault::Delay { millis, .. }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(req).await
        }
        Some(Fault::Reset { .. }) => {
            if let Some(ctl) = req.extensions().get::<ConnControl>() {
                ctl.reset();
            }
            std::future::pending().await
        }
        None => next.run(req).await,
    }
}
