use std::collections::BTreeMap;

use crate::CredentialError;

/// What a backend is asked to mint. The policy layer has already checked the
/// audiences and bounded the lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
}

/// A ServiceAccount token. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("token", &"<redacted>").field("expires_at", &self.expires_at).finish()
    }
}

/// The one interface of credential backends. Implementations read exactly
/// what they are asked for and do no policy: every call reaches them through
/// [`crate::ScopedCredentials`], which has already resolved the namespace and
/// checked the reference.
///
/// A missing Secret, key or ServiceAccount is reported as
/// [`CredentialError::InvalidConfig`] with `field` set to a description of
/// the object (the policy layer rewrites it to the config path); transport
/// failures as [`CredentialError::Unavailable`].
#[async_trait::async_trait]
pub trait CredentialBackend: Send + Sync + 'static {
    /// One key of a Secret (`data`, base64-decoded).
    async fn secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, CredentialError>;

    /// `metadata.annotations` of a ServiceAccount.
    async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, CredentialError>;

    /// A TokenRequest for a ServiceAccount.
    async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<IssuedToken, CredentialError>;
}
