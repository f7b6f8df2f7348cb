//! Plain-HTTP admin API on loopback, so tests, the demo and benchmarks in
//! other processes can drive the fakes. Every route takes/returns JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::entra::{Entra, FederatedCredential, ManagedIdentity};
use crate::gateway::{Fault, Gateway, VAULT_RESOURCE};
use crate::vault::Vaults;

#[derive(Clone)]
struct Admin {
    entra: Entra,
    gateway: Gateway,
    vaults: Vaults,
}

#[derive(Serialize, Deserialize)]
pub struct AppReq {
    pub tenant: String,
    pub client_id: String,
}

#[derive(Serialize, Deserialize)]
pub struct FederateReq {
    pub tenant: String,
    pub client_id: String,
    #[serde(flatten)]
    pub credential: FederatedCredential,
}

#[derive(Serialize, Deserialize)]
pub struct SecretReq {
    pub tenant: String,
    pub client_id: String,
    pub secret: String,
}

#[derive(Serialize, Deserialize)]
pub struct CertificateReq {
    pub tenant: String,
    pub client_id: String,
    pub cert_pem: String,
}

#[derive(Serialize, Deserialize, Default)]
pub struct SettingsReq {
    pub expires_in: Option<i64>,
    pub clock_offset: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub struct MintReq {
    pub tenant: String,
    pub client_id: String,
    pub resource: Option<String>,
    pub expires_in: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub struct VaultReq {
    pub name: String,
    pub tenant: String,
}

pub fn router(entra: Entra, gateway: Gateway, vaults: Vaults) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/entra/apps", post(add_app))
        .route("/entra/federated", post(federate))
        .route("/entra/federated/remove", post(unfederate))
        .route("/entra/secrets", post(add_secret))
        .route("/entra/certificates", post(add_certificate))
        .route("/entra/managed-identities", post(add_identity))
        .route("/entra/settings", put(settings))
        .route("/entra/exchanges", get(exchanges))
        .route("/entra/mint", post(mint))
        .route("/vaults", post(create_vault).get(list_vaults))
        .route("/gateway/faults", post(add_fault).delete(clear_faults))
        .route("/gateway/requests", get(requests).delete(reset_requests))
        .with_state(Admin { entra, gateway, vaults })
}

async fn add_app(State(a): State<Admin>, Json(r): Json<AppReq>) -> StatusCode {
    a.entra.add_app(&r.tenant, &r.client_id);
    StatusCode::NO_CONTENT
}

async fn federate(State(a): State<Admin>, Json(r): Json<FederateReq>) -> StatusCode {
    a.entra.federate(&r.tenant, &r.client_id, r.credential);
    StatusCode::NO_CONTENT
}

async fn unfederate(State(a): State<Admin>, Json(r): Json<FederateReq>) -> StatusCode {
    a.entra.unfederate(&r.client_id, &r.credential);
    StatusCode::NO_CONTENT
}

async fn add_secret(State(a): State<Admin>, Json(r): Json<SecretReq>) -> StatusCode {
    a.entra.add_secret(&r.tenant, &r.client_id, &r.secret);
    StatusCode::NO_CONTENT
}

async fn add_certificate(State(a): State<Admin>, Json(r): Json<CertificateReq>) -> Response {
    match a.entra.add_certificate(&r.tenant, &r.client_id, &r.cert_pem) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn add_identity(State(a): State<Admin>, Json(r): Json<ManagedIdentity>) -> StatusCode {
    a.entra.add_managed_identity(r);
    StatusCode::NO_CONTENT
}

async fn settings(State(a): State<Admin>, Json(r): Json<SettingsReq>) -> StatusCode {
    if let Some(e) = r.expires_in {
        a.entra.set_expires_in(e);
    }
    if let Some(o) = r.clock_offset {
        a.entra.set_clock_offset(o);
    }
    StatusCode::NO_CONTENT
}

async fn exchanges(State(a): State<Admin>) -> Response {
    Json(a.entra.exchanges()).into_response()
}

async fn mint(State(a): State<Admin>, Json(r): Json<MintReq>) -> Response {
    let resource = r.resource.unwrap_or_else(|| VAULT_RESOURCE.to_string());
    let (token, expires_in) = a.entra.mint(&r.tenant, &r.client_id, &resource, r.expires_in);
    Json(json!({"access_token": token, "expires_in": expires_in})).into_response()
}

async fn create_vault(State(a): State<Admin>, Json(r): Json<VaultReq>) -> StatusCode {
    a.entra.add_tenant(&r.tenant);
    a.vaults.create(&r.name, &r.tenant);
    StatusCode::NO_CONTENT
}

async fn list_vaults(State(a): State<Admin>) -> Response {
    Json(a.vaults.names()).into_response()
}

async fn add_fault(State(a): State<Admin>, Json(f): Json<Fault>) -> StatusCode {
    a.gateway.add_fault(f);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(a): State<Admin>) -> StatusCode {
    a.gateway.clear_faults();
    StatusCode::NO_CONTENT
}

async fn requests(State(a): State<Admin>) -> Response {
    Json(a.gateway.requests()).into_response()
}

async fn reset_requests(State(a): State<Admin>) -> StatusCode {
    a.gateway.reset_requests();
    StatusCode::NO_CONTENT
}
