//! The kube-backed [`CredentialBackend`]: Secret key reads, ServiceAccount annotations
//! and TokenRequest against the apiserver. It does no policy of its own — every call
//! reaches it through `lockstep_credentials::ScopedCredentials`, which has already
//! checked the reference against the store's spec and ESO's namespace rules.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    authentication::v1::{TokenRequest as KubeTokenRequest, TokenRequestSpec},
    core::v1::{Secret, ServiceAccount},
};
use kube::{Api, Client, api::PostParams};
use lockstep_credentials::{CredentialBackend, CredentialError, IssuedToken, TokenRequest};

/// Reads credentials with the engine's own client (its RBAC: `get` Secrets and
/// ServiceAccounts, `create` serviceaccounts/token).
#[derive(Clone)]
pub struct KubeCredentials {
    client: Client,
}

impl KubeCredentials {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn transport(what: String, error: kube::Error) -> CredentialError {
    match error {
        kube::Error::Api(status) if status.code == 403 => {
            CredentialError::Denied(format!("the engine may not read {what}: {}", status.message))
        }
        other => CredentialError::Unavailable(format!("reading {what}: {other}")),
    }
}

#[async_trait::async_trait]
impl CredentialBackend for KubeCredentials {
    async fn secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, CredentialError> {
        let what = format!("Secret {namespace}/{name}");
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api
            .get_opt(name)
            .await
            .map_err(|e| transport(what.clone(), e))?
            .ok_or_else(|| CredentialError::InvalidConfig { field: what.clone(), reason: "the Secret does not exist".into() })?;
        secret
            .data
            .and_then(|mut data| data.remove(key))
            .map(|bytes| bytes.0)
            .ok_or_else(|| CredentialError::InvalidConfig { field: what, reason: format!("the Secret has no key {key:?}") })
    }

    async fn service_account_annotations(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, String>, CredentialError> {
        let what = format!("ServiceAccount {namespace}/{name}");
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let account = api
            .get_opt(name)
            .await
            .map_err(|e| transport(what.clone(), e))?
            .ok_or_else(|| CredentialError::InvalidConfig { field: what, reason: "the ServiceAccount does not exist".into() })?;
        Ok(account.metadata.annotations.unwrap_or_default())
    }

    async fn service_account_token(&self, namespace: &str, name: &str, request: &TokenRequest) -> Result<IssuedToken, CredentialError> {
        let what = format!("a token of ServiceAccount {namespace}/{name}");
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let body = KubeTokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(request.audiences.clone()),
                expiration_seconds: Some(request.expiration_seconds),
                ..Default::default()
            }),
            ..Default::default()
        };
        let issued = api.create_token_request(name, &PostParams::default(), &body).await.map_err(|e| match e {
            kube::Error::Api(status) if status.code == 404 => {
                CredentialError::InvalidConfig { field: format!("ServiceAccount {namespace}/{name}"), reason: "the ServiceAccount does not exist".into() }
            }
            other => transport(what.clone(), other),
        })?;
        let status = issued.status.ok_or_else(|| CredentialError::Unavailable(format!("{what}: the apiserver returned no token")))?;
        let token = status.token.ok_or_else(|| CredentialError::Unavailable(format!("{what}: the apiserver returned no token")))?;
        let expires_at = status.expiration_timestamp.map_or(0, |t| u64::try_from(t.0.as_second()).unwrap_or(0));
        Ok(IssuedToken { token, expires_at })
    }
}
