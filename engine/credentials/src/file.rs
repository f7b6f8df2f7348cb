use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::Deserialize;

use crate::{CredentialBackend, CredentialError, IssuedToken, TokenRequest};

/// A credential backend over parsed Kubernetes manifests (Secrets and
/// ServiceAccounts), for `lockstep plugin run` and `lockstep render`. There is
/// no apiserver to mint tokens: TokenRequest fails with "not available
/// offline" unless a token was supplied with [`FileBackend::supply_token`].
#[derive(Default)]
pub struct FileBackend {
    secrets: HashMap<(String, String), BTreeMap<String, Vec<u8>>>,
    service_accounts: HashMap<(String, String), BTreeMap<String, String>>,
    tokens: HashMap<(String, String), IssuedToken>,
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("service_accounts", &self.service_accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default, rename = "stringData")]
    string_data: BTreeMap<String, String>,
    #[serde(default)]
    items: Vec<serde_yaml::Value>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: String,
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl FileBackend {
    /// Reads every Secret and ServiceAccount (also inside `kind: List`) of a
    /// multi-document YAML stream; other kinds are ignored. Objects without a
    /// namespace are in `default`.
    pub fn from_yaml(text: &str) -> Result<Self, CredentialError> {
        let mut backend = Self::default();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value = serde_yaml::Value::deserialize(doc)
                .map_err(|e| CredentialError::invalid("manifests", format!("not YAML: {e}")))?;
            backend.add(value)?;
        }
        Ok(backend)
    }

    fn add(&mut self, value: serde_yaml::Value) -> Result<(), CredentialError> {
        if value.is_null() {
            return Ok(());
        }
        let obj: Object = serde_yaml::from_value(value).map_err(|e| CredentialError::invalid("manifests", e.to_string()))?;
        let id = || (obj.metadata.namespace.clone().unwrap_or_else(|| "default".into()), obj.metadata.name.clone());
        match obj.kind.as_str() {
            "List" => {
                for item in obj.items {
                    self.add(item)?;
                }
            }
            "Secret" => {
                let (ns, name) = id();
                let mut data = BTreeMap::new();
                for (k, v) in &obj.data {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(v.trim()).map_err(|_| {
                        CredentialError::invalid(format!("Secret {ns}/{name} data.{k}"), "not valid base64")
                    })?;
                    data.insert(k.clone(), bytes);
                }
                for (k, v) in obj.string_data {
                    data.insert(k, v.into_bytes());
                }
                self.secrets.insert((ns, name), data);
            }
            "ServiceAccount" => {
                let id = id();
                self.service_accounts.insert(id, obj.metadata.annotations);
            }
            _ => {}
        }
        Ok(())
    }

    /// Makes `service_account_token` answer with `token` for this
    /// ServiceAccount (e.g. a `--token` flag of `lockstep plugin run`).
    pub fn supply_token(&mut self, namespace: &str, name: &str, token: String, expires_at: u64) {
        self.tokens.insert((namespace.to_string(), name.to_string()), IssuedToken { token, expires_at });
    }
}

#[async_trait::async_trait]
impl CredentialBackend for FileBackend {
    async fn secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, CredentialError> {
        let data = self
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .ok_or_else(|| CredentialError::invalid(format!("Secret {namespace}/{name}"), "not found"))?;
        data.get(key)
            .cloned()
            .ok_or_else(|| CredentialError::invalid(format!("Secret {namespace}/{name}"), format!("has no key {key:?}")))
    }

    async fn service_account_annotations(&self, namespace: &str, name: &str) -> Result<BTreeMap<String, String>, CredentialError> {
        self.service_accounts
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| CredentialError::invalid(format!("ServiceAccount {namespace}/{name}"), "not found"))
    }

    async fn service_account_token(&self, namespace: &str, name: &str, _request: &TokenRequest) -> Result<IssuedToken, CredentialError> {
        if !self.service_accounts.contains_key(&(namespace.to_string(), name.to_string())) {
            return Err(CredentialError::invalid(format!("ServiceAccount {namespace}/{name}"), "not found"));
        }
        self.tokens.get(&(namespace.to_string(), name.to_string())).cloned().ok_or_else(|| {
            CredentialError::Unavailable(format!(
                "TokenRequest for ServiceAccount {namespace}/{name} is not available offline; supply a token"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::*;

    const MANIFESTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: azure, namespace: team-a}
data: {client-secret: c2VjcmV0}
---
apiVersion: v1
kind: Secret
metadata: {name: azure, namespace: team-b}
stringData: {client-secret: other}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: wi
  namespace: team-a
  annotations: {azure.workload.identity/client-id: abc}
---
kind: ConfigMap
metadata: {name: ignored}
"#;

    fn scoped(kind: StoreKind, namespace: Option<&str>, config: serde_json::Value, backend: FileBackend) -> ScopedCredentials {
        let store = StoreScope {
            kind,
            name: "store".into(),
            namespace: namespace.map(str::to_string),
            uid: "uid".into(),
            generation: 1,
            provider_config: config,
            consumer_namespace: Some("team-a".into()),
        };
        let plugin = PluginDeclarations {
            credential_refs: vec![DeclaredRef::secret_key("auth.clientSecret"), DeclaredRef::service_account("auth.sa")],
            token_audiences: vec!["api://AzureADTokenExchange".into()],
            ambient: vec!["pod-token".into()],
        };
        let mut ambient = AmbientGrants::default();
        ambient.grant("pod-token", AmbientSource::Env("LOCKSTEP_TEST_NEVER_SET".into()));
        ScopedCredentials::new(Arc::new(backend), store, plugin, Arc::new(CredentialPolicy::default()), ambient).unwrap()
    }

    fn req(name: &str, key: &str, ns: Option<&str>) -> SecretKeyRequest {
        SecretKeyRequest { name: name.into(), key: key.into(), namespace: ns.map(str::to_string) }
    }

    #[tokio::test]
    async fn serves_referenced_keys_and_refuses_the_rest() {
        let config = json!({"auth": {"clientSecret": {"name": "azure", "key": "client-secret"}, "sa": {"name": "wi"}},
                            "elsewhere": {"name": "azure", "key": "other"}});
        let creds = scoped(StoreKind::SecretStore, Some("team-a"), config, FileBackend::from_yaml(MANIFESTS).unwrap());
        assert_eq!(creds.secret_key(&req("azure", "client-secret", None)).await.unwrap(), b"secret");
        assert_eq!(creds.secret_key(&req("azure", "client-secret", Some("team-a"))).await.unwrap(), b"secret");
        // Same name and key in another namespace: not what the store references.
        assert!(matches!(creds.secret_key(&req("azure", "client-secret", Some("team-b"))).await, Err(CredentialError::Denied(_))));
        // Not at a declared path.
        let err = creds.secret_key(&req("azure", "other", None)).await.unwrap_err();
        assert!(err.to_string().contains("not referenced"), "{err}");
        let ann = creds.service_account_annotations(&ServiceAccountRequest { name: "wi".into(), namespace: None }).await.unwrap();
        assert_eq!(ann["azure.workload.identity/client-id"], "abc");
    }

    #[tokio::test]
    async fn secret_store_cross_namespace_reference_is_denied() {
        let config = json!({"auth": {"clientSecret": {"name": "azure", "key": "client-secret", "namespace": "team-b"}}});
        let creds = scoped(StoreKind::SecretStore, Some("team-a"), config, FileBackend::from_yaml(MANIFESTS).unwrap());
        let err = creds.secret_key(&req("azure", "client-secret", None)).await.unwrap_err();
        assert!(matches!(&err, CredentialError::Denied(m) if m.contains("own namespace")), "{err}");
    }

    #[tokio::test]
    async fn cluster_store_resolves_namespaces_like_eso() {
        let relative = json!({"auth": {"clientSecret": {"name": "azure", "key": "client-secret"}}});
        let creds = scoped(StoreKind::ClusterSecretStore, None, relative, FileBackend::from_yaml(MANIFESTS).unwrap());
        assert_eq!(creds.secret_key(&req("azure", "client-secret", None)).await.unwrap(), b"secret");
        let named = json!({"auth": {"clientSecret": {"name": "azure", "key": "client-secret", "namespace": "team-b"}}});
        let creds = scoped(StoreKind::ClusterSecretStore, None, named, FileBackend::from_yaml(MANIFESTS).unwrap());
        assert_eq!(creds.secret_key(&req("azure", "client-secret", None)).await.unwrap(), b"other");
        assert_eq!(creds.isolation_unit().scope, CredentialScope::Store);
    }

    #[tokio::test]
    async fn tokens_only_for_declared_audiences_and_offline_is_explicit() {
        let config = json!({"auth": {"sa": {"name": "wi", "audiences": ["https://store.example"]}}});
        let mut backend = FileBackend::from_yaml(MANIFESTS).unwrap();
        let sa = ServiceAccountRequest { name: "wi".into(), namespace: None };
        let creds = scoped(StoreKind::SecretStore, Some("team-a"), config.clone(), FileBackend::from_yaml(MANIFESTS).unwrap());
        let offline = creds.service_account_token(&sa, &["api://AzureADTokenExchange".into()]).await.unwrap_err();
        assert!(offline.to_string().contains("not available offline"), "{offline}");
        for bad in [vec![], vec!["https://kubernetes.default.svc".to_string()], vec!["https://evil.example".to_string()]] {
            assert!(matches!(creds.service_account_token(&sa, &bad).await, Err(CredentialError::Denied(_))), "{bad:?}");
        }
        backend.supply_token("team-a", "wi", "jwt".into(), 42);
        let creds = scoped(StoreKind::SecretStore, Some("team-a"), config, backend);
        let token = creds.service_account_token(&sa, &["https://store.example".into()]).await.unwrap();
        assert_eq!((token.token.as_str(), token.expires_at), ("jwt", 42));
        let other = ServiceAccountRequest { name: "default".into(), namespace: None };
        assert!(matches!(creds.service_account_token(&other, &["api://AzureADTokenExchange".into()]).await, Err(CredentialError::Denied(_))));
    }

    #[tokio::test]
    async fn missing_objects_name_the_config_path() {
        let config = json!({"auth": {"clientSecret": {"name": "absent", "key": "k"}}});
        let creds = scoped(StoreKind::SecretStore, Some("team-a"), config, FileBackend::from_yaml(MANIFESTS).unwrap());
        let err = creds.secret_key(&req("absent", "k", None)).await.unwrap_err();
        assert!(matches!(&err, CredentialError::InvalidConfig { field, .. } if field == "auth.clientSecret"), "{err}");
    }

    #[tokio::test]
    async fn ambient_only_when_granted_and_declared() {
        let creds = scoped(StoreKind::SecretStore, Some("team-a"), json!({}), FileBackend::default());
        // Granted and declared, but the variable is unset: unavailable, not denied.
        assert!(matches!(creds.ambient("pod-token").await, Err(CredentialError::Unavailable(_))));
        assert!(matches!(creds.ambient("HOME").await, Err(CredentialError::Denied(_))));
    }
}
