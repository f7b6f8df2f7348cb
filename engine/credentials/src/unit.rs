use serde_json::Value;

use crate::{CredentialError, StoreReferences};

/// Which kind of store a configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    SecretStore,
    ClusterSecretStore,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretStore => "SecretStore",
            Self::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

/// The store a plugin works for, and the ExternalSecret namespace it works in.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreScope {
    pub kind: StoreKind,
    pub name: String,
    /// The store's namespace (SecretStore only).
    pub namespace: Option<String>,
    pub uid: String,
    pub generation: i64,
    /// The JSON of `spec.provider.<key>`.
    pub provider_config: Value,
    /// The namespace of the consuming ExternalSecret; `None` when no
    /// ExternalSecret is involved (store validation).
    pub consumer_namespace: Option<String>,
}

impl StoreScope {
    /// ESO's cross-namespace rule for one reference. A SecretStore reads its
    /// own namespace only; a ClusterSecretStore reads the namespace the
    /// reference names, else the consuming ExternalSecret's.
    pub fn resolve_namespace(&self, written: Option<&str>, path: &str) -> Result<String, CredentialError> {
        match self.kind {
            StoreKind::SecretStore => {
                let own = self.namespace.as_deref().ok_or_else(|| {
                    CredentialError::invalid("metadata.namespace", "a SecretStore must have a namespace")
                })?;
                match written {
                    Some(ns) if ns != own => Err(CredentialError::denied(format!(
                        "{path} names namespace {ns:?}, but SecretStore {}/{} may only reference its own namespace",
                        own, self.name
                    ))),
                    _ => Ok(own.to_string()),
                }
            }
            StoreKind::ClusterSecretStore => match written {
                Some(ns) => Ok(ns.to_string()),
                None => self.consumer_namespace.clone().ok_or_else(|| {
                    CredentialError::invalid(
                        format!("{path}.namespace"),
                        "a ClusterSecretStore reference without a namespace needs a consuming ExternalSecret",
                    )
                }),
            },
        }
    }
}

/// Whose credentials an instance may hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialScope {
    /// The consuming namespace: a SecretStore, or a ClusterSecretStore whose
    /// references resolve against the consumer's namespace.
    Namespace(String),
    /// The store itself: every reference of a ClusterSecretStore names its namespace,
    /// so every consumer gets the same credentials.
    Store,
}

/// Calls in the same unit may share a plugin instance (and whatever tokens
/// it caches); calls in different units never do. A spec change bumps the
/// generation and so starts a new unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsolationUnit {
    pub store_uid: String,
    pub generation: i64,
    pub scope: CredentialScope,
}

impl IsolationUnit {
    /// `(store UID + generation, credential scope)`. A ClusterSecretStore whose
    /// references all name a namespace (or that has none) is one unit for
    /// every consumer; otherwise the
    /// scope is the consuming namespace (the store's own for a SecretStore).
    /// A mixed ClusterSecretStore (some references with, some without a
    /// namespace) is scoped per consumer, the stricter of the two readings.
    pub fn compute(store: &StoreScope, refs: &StoreReferences) -> Self {
        let scope = match store.kind {
            StoreKind::SecretStore => CredentialScope::Namespace(store.namespace.clone().unwrap_or_default()),
            StoreKind::ClusterSecretStore if refs.all_name_namespace() => CredentialScope::Store,
            StoreKind::ClusterSecretStore => match &store.consumer_namespace {
                Some(ns) => CredentialScope::Namespace(ns.clone()),
                // Validation without a consumer: nothing namespace-relative resolves, so
                // the instance can hold no consumer's credentials.
                None => CredentialScope::Store,
            },
        };
        Self { store_uid: store.uid.clone(), generation: store.generation, scope }
    }
}

impl std::fmt::Display for IsolationUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.scope {
            CredentialScope::Namespace(ns) => write!(f, "{}@{}/ns:{}", self.store_uid, self.generation, ns),
            CredentialScope::Store => write!(f, "{}@{}/store", self.store_uid, self.generation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeclaredRef;
    use serde_json::json;

    fn css(config: Value, consumer: Option<&str>) -> StoreScope {
        StoreScope {
            kind: StoreKind::ClusterSecretStore,
            name: "global".into(),
            namespace: None,
            uid: "u".into(),
            generation: 1,
            provider_config: config,
            consumer_namespace: consumer.map(str::to_string),
        }
    }

    #[test]
    fn cluster_store_scope_follows_reference_namespaces() {
        let decl = [DeclaredRef::secret_key("auth")];
        let named = css(json!({"auth": {"name": "s", "key": "k", "namespace": "vault"}}), Some("team-a"));
        let refs = StoreReferences::collect(&named.provider_config, &decl).unwrap();
        assert_eq!(IsolationUnit::compute(&named, &refs).scope, CredentialScope::Store);

        let relative = css(json!({"auth": {"name": "s", "key": "k"}}), Some("team-a"));
        let refs = StoreReferences::collect(&relative.provider_config, &decl).unwrap();
        assert_eq!(IsolationUnit::compute(&relative, &refs).scope, CredentialScope::Namespace("team-a".into()));
        assert_eq!(relative.resolve_namespace(None, "auth").unwrap(), "team-a");
        assert_eq!(relative.resolve_namespace(Some("x"), "auth").unwrap(), "x");

        // No references at all (the fake provider): every consumer may share one unit.
        let bare = css(json!({"data": []}), Some("team-a"));
        let refs = StoreReferences::collect(&bare.provider_config, &decl).unwrap();
        assert_eq!(IsolationUnit::compute(&bare, &refs).scope, CredentialScope::Store);
    }

    #[test]
    fn secret_store_refuses_other_namespaces() {
        let store = StoreScope {
            kind: StoreKind::SecretStore,
            name: "s".into(),
            namespace: Some("team-a".into()),
            uid: "u".into(),
            generation: 2,
            provider_config: json!({}),
            consumer_namespace: Some("team-a".into()),
        };
        assert_eq!(store.resolve_namespace(None, "p").unwrap(), "team-a");
        assert_eq!(store.resolve_namespace(Some("team-a"), "p").unwrap(), "team-a");
        assert!(matches!(store.resolve_namespace(Some("kube-system"), "p"), Err(CredentialError::Denied(_))));
        let unit = IsolationUnit::compute(&store, &StoreReferences::default());
        assert_eq!(unit.to_string(), "u@2/ns:team-a");
    }
}
