/// Why a credential request was not answered. Messages name Secrets, keys,
/// ServiceAccounts and config paths, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Refused by policy (WIT `denied`).
    #[error("credential request denied: {0}")]
    Denied(String),
    /// The store's config is wrong, or references something that does not
    /// exist (WIT `invalid-config`). `field` is the config path.
    #[error("invalid store config at {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
    /// The backend could not answer now (WIT `unavailable`).
    #[error("credential backend unavailable: {0}")]
    Unavailable(String),
}

impl CredentialError {
    pub(crate) fn denied(msg: impl Into<String>) -> Self {
        Self::Denied(msg.into())
    }
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig { field: field.into(), reason: reason.into() }
    }
}
