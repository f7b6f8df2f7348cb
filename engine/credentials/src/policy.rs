use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{
    AmbientGrants, CredentialBackend, CredentialError, DeclaredRef, IsolationUnit, IssuedToken, StoreReferences,
    StoreScope, TokenRequest,
};

/// Engine-wide credential settings (operator configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialPolicy {
    /// The apiserver's own audiences (`--api-audiences`); a token for them
    /// would let a plugin act as the ServiceAccount against the cluster.
    pub apiserver_audiences: Vec<String>,
    /// The lifetime of issued tokens; Kubernetes' minimum is 600 s.
    pub token_expiration_seconds: i64,
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        Self {
            apiserver_audiences: vec!["https://kubernetes.default.svc.cluster.local".into(), "https://kubernetes.default.svc".into()],
            token_expiration_seconds: 600,
        }
    }
}

/// What the plugin's metadata declares (WIT `plugin-metadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginDeclarations {
    pub credential_refs: Vec<DeclaredRef>,
    pub token_audiences: Vec<String>,
    pub ambient: Vec<String>,
}

/// WIT `secret-key-selector` as the plugin sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyRequest {
    pub name: String,
    pub key: String,
    pub namespace: Option<String>,
}

/// WIT `service-account-selector` as the plugin sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRequest {
    pub name: String,
    pub namespace: Option<String>,
}

/// The credential capability of one isolation unit: any backend behind the
/// shared reference policy.
pub struct ScopedCredentials {
    backend: Arc<dyn CredentialBackend>,
    store: StoreScope,
    refs: StoreReferences,
    plugin: PluginDeclarations,
    policy: Arc<CredentialPolicy>,
    ambient: AmbientGrants,
    unit: IsolationUnit,
}

impl std::fmt::Debug for ScopedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedCredentials").field("unit", &self.unit).field("refs", &self.refs).finish_non_exhaustive()
    }
}

impl ScopedCredentials {
    /// Collects the store's references at the declared paths (an ill-shaped
    /// reference is an invalid config). `ambient` is what the operator granted
    /// this store; only names the plugin also declares are served.
    pub fn new(
        backend: Arc<dyn CredentialBackend>,
        store: StoreScope,
        plugin: PluginDeclarations,
        policy: Arc<CredentialPolicy>,
        ambient: AmbientGrants,
    ) -> Result<Self, CredentialError> {
        let refs = StoreReferences::collect(&store.provider_config, &plugin.credential_refs)?;
        let unit = IsolationUnit::compute(&store, &refs);
        let ambient = ambient.restricted_to(plugin.ambient.iter().map(String::as_str));
        Ok(Self { backend, store, refs, plugin, policy, ambient, unit })
    }

    pub fn isolation_unit(&self) -> &IsolationUnit {
        &self.unit
    }

    pub fn references(&self) -> &StoreReferences {
        &self.refs
    }

    pub fn store(&self) -> &StoreScope {
        &self.store
    }

    fn store_label(&self) -> String {
        match &self.store.namespace {
            Some(ns) => format!("{} {}/{}", self.store.kind.as_str(), ns, self.store.name),
            None => format!("{} {}", self.store.kind.as_str(), self.store.name),
        }
    }

    /// One key of a Secret that the store's spec references at a declared path.
    pub async fn secret_key(&self, req: &SecretKeyRequest) -> Result<Vec<u8>, CredentialError> {
        let mut refusal = None;
        for r in self.refs.secret_keys.iter().filter(|r| r.name == req.name && r.key == req.key) {
            match self.store.resolve_namespace(r.namespace.as_deref(), &r.path) {
                Ok(ns) if req.namespace.as_deref().is_none_or(|want| want == ns) => {
                    return self.backend.secret_key(&ns, &r.name, &r.key).await.map_err(|e| at_path(e, &r.path));
                }
                Ok(_) => {}
                Err(e) => refusal = Some(e),
            }
        }
        Err(refusal.unwrap_or_else(|| {
            CredentialError::denied(format!(
                "key {:?} of Secret {} is not referenced by {} at a path the plugin declares",
                req.key,
                qualified(req.namespace.as_deref(), &req.name),
                self.store_label()
            ))
        }))
    }

    fn service_account(&self, req: &ServiceAccountRequest) -> Result<(String, &crate::ServiceAccountRef), CredentialError> {
        let mut refusal = None;
        for r in self.refs.service_accounts.iter().filter(|r| r.name == req.name) {
            match self.store.resolve_namespace(r.namespace.as_deref(), &r.path) {
                Ok(ns) if req.namespace.as_deref().is_none_or(|want| want == ns) => return Ok((ns, r)),
                Ok(_) => {}
                Err(e) => refusal = Some(e),
            }
        }
        Err(refusal.unwrap_or_else(|| {
            CredentialError::denied(format!(
                "ServiceAccount {} is not referenced by {} at a path the plugin declares",
                qualified(req.namespace.as_deref(), &req.name),
                self.store_label()
            ))
        }))
    }

    /// Annotations of a referenced ServiceAccount.
    pub async fn service_account_annotations(&self, req: &ServiceAccountRequest) -> Result<BTreeMap<String, String>, CredentialError> {
        let (ns, r) = self.service_account(req)?;
        self.backend.service_account_annotations(&ns, &r.name).await.map_err(|e| at_path(e, &r.path))
    }

    /// A token for a referenced ServiceAccount, for audiences the plugin's
    /// metadata or that reference's `audiences` name, never the apiserver's.
    pub async fn service_account_token(
        &self,
        req: &ServiceAccountRequest,
        audiences: &[String],
    ) -> Result<IssuedToken, CredentialError> {
        let (ns, r) = self.service_account(req)?;
        if audiences.is_empty() {
            // An empty list means "the apiserver's audiences" to TokenRequest.
            return Err(CredentialError::denied("a token request must name at least one audience"));
        }
        for aud in audiences {
            if self.policy.apiserver_audiences.contains(aud) {
                return Err(CredentialError::denied(format!("audience {aud:?} is the apiserver's own; tokens for it are never issued to plugins")));
            }
            if !self.plugin.token_audiences.contains(aud) && !r.audiences.contains(aud) {
                return Err(CredentialError::denied(format!(
                    "audience {aud:?} is declared neither by the plugin's metadata nor by {}.audiences",
                    r.path
                )));
            }
        }
        let request = TokenRequest { audiences: audiences.to_vec(), expiration_seconds: self.policy.token_expiration_seconds };
        self.backend.service_account_token(&ns, &r.name, &request).await.map_err(|e| at_path(e, &r.path))
    }

    /// An operator-granted ambient credential that the plugin declares.
    pub async fn ambient(&self, name: &str) -> Result<String, CredentialError> {
        if !self.plugin.ambient.iter().any(|n| n == name) {
            return Err(CredentialError::denied(format!("ambient credential {name:?} is not declared in the plugin's metadata")));
        }
        self.ambient.read(name).await
    }
}

fn qualified(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Backends describe missing objects; the store author needs the config path.
fn at_path(err: CredentialError, path: &str) -> CredentialError {
    match err {
        CredentialError::InvalidConfig { reason, field } => {
            CredentialError::InvalidConfig { field: path.to_string(), reason: format!("{field}: {reason}") }
        }
        other => other,
    }
}
