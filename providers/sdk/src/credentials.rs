//! Credentials resolved by the host.
//!
//! The plugin never talks to Kubernetes. It names a reference that appears in
//! its own store config (at a path its metadata declares) and the host
//! resolves it, applying ESO's namespace rules; anything else is refused with
//! [`ProviderError::Denied`]. Embed [`SecretKeyRef`] / [`ServiceAccountRef`] in
//! the provider's config type so the shapes match what the host looks for.

use serde::{Deserialize, Serialize};

use crate::bindings::lockstep::provider::credentials as host;
use crate::{Result, SecretKeySelector, ServiceAccountSelector, ServiceAccountToken};

/// `{name, key, namespace?}`: one key of a Kubernetes Secret (ESO's SecretKeySelector).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl SecretKeyRef {
    pub fn selector(&self) -> SecretKeySelector {
        SecretKeySelector { name: self.name.clone(), key: self.key.clone(), namespace: self.namespace.clone() }
    }

    /// Reads the referenced key through the host.
    pub fn fetch(&self) -> Result<Vec<u8>> {
        secret_key(&self.selector())
    }
}

/// `{name, namespace?, audiences?}`: a Kubernetes ServiceAccount (ESO's serviceAccountRef).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

impl ServiceAccountRef {
    pub fn selector(&self) -> ServiceAccountSelector {
        ServiceAccountSelector { name: self.name.clone(), namespace: self.namespace.clone() }
    }

    /// A token for `audiences` (or, when empty, the audiences the ref names).
    pub fn token(&self, audiences: &[&str]) -> Result<ServiceAccountToken> {
        let audiences: Vec<String> = if audiences.is_empty() {
            self.audiences.clone()
        } else {
            audiences.iter().map(|a| (*a).to_owned()).collect()
        };
        service_account_token(&self.selector(), &audiences)
    }

    pub fn annotations(&self) -> Result<Vec<(String, String)>> {
        service_account_annotations(&self.selector())
    }
}

/// One key of a Secret the store's spec references.
pub fn secret_key(selector: &SecretKeySelector) -> Result<Vec<u8>> {
    host::secret_key(selector)
}

/// The annotations of a ServiceAccount the store's spec references.
pub fn service_account_annotations(selector: &ServiceAccountSelector) -> Result<Vec<(String, String)>> {
    host::service_account_annotations(selector)
}

/// A TokenRequest token; the host bounds its lifetime and checks the audiences.
pub fn service_account_token(selector: &ServiceAccountSelector, audiences: &[String]) -> Result<ServiceAccountToken> {
    host::service_account_token(selector, audiences)
}

/// An ambient credential of the engine's pod, if the operator granted it by name.
pub fn ambient(name: &str) -> Result<String> {
    host::ambient(name)
}
