//! Reading Kubernetes manifests from files, for the offline commands.

use std::path::Path;

use anyhow::{bail, Context as _};
use lockstep_credentials::{StoreKind, StoreScope};
use serde::Deserialize as _;
use serde_json::Value;

/// Every object of a multi-document YAML file (empty documents skipped).
pub fn read_objects(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_objects(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn parse_objects(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).with_context(|| format!("document {}", i + 1))?;
        match value {
            Value::Null => {}
            Value::Object(_) => objects.push(value),
            _ => bail!("document {} is not a Kubernetes object", i + 1),
        }
    }
    Ok(objects)
}

pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(object: &Value) -> Option<&str> {
    object["metadata"]["namespace"].as_str()
}

/// A SecretStore or ClusterSecretStore manifest, as the plugin host needs it.
#[derive(Debug, Clone)]
pub struct Store {
    pub provider_key: String,
    pub controller_class: Option<String>,
    pub scope: StoreScope,
}

impl Store {
    /// `consumer_namespace` is the namespace of the ExternalSecret using the
    /// store (None for validation).
    pub fn from_manifest(object: &Value, consumer_namespace: Option<&str>) -> anyhow::Result<Self> {
        let kind = match kind(object) {
            "SecretStore" => StoreKind::SecretStore,
            "ClusterSecretStore" => StoreKind::ClusterSecretStore,
            other => bail!("expected a SecretStore or ClusterSecretStore, found kind {other:?}"),
        };
        let name = name(object);
        let provider = object["spec"]["provider"].as_object().filter(|p| p.len() == 1).with_context(|| {
            format!("{} {name}: spec.provider must have exactly one key (the provider)", kind.as_str())
        })?;
        let (provider_key, provider_config) = provider.iter().next().expect("one key");
        // A cluster-scoped object has no namespace, whatever the manifest says.
        let store_namespace = match kind {
            StoreKind::SecretStore => Some(namespace(object).unwrap_or("default").to_string()),
            StoreKind::ClusterSecretStore => None,
        };
        let uid = object["metadata"]["uid"].as_str().map(str::to_string).unwrap_or_else(|| {
            format!("offline/{}/{}/{name}", kind.as_str(), store_namespace.as_deref().unwrap_or(""))
        });
        Ok(Self {
            provider_key: provider_key.clone(),
            controller_class: object["spec"]["controller"].as_str().filter(|c| !c.is_empty()).map(str::to_string),
            scope: StoreScope {
                kind,
                name: name.to_string(),
                namespace: store_namespace,
                uid,
                generation: object["metadata"]["generation"].as_i64().unwrap_or(1),
                provider_config: provider_config.clone(),
                consumer_namespace: consumer_namespace.map(str::to_string),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cluster_store_without_its_stray_namespace() {
        let objects = parse_objects(
            "apiVersion: external-secrets.io/v1beta1\nkind: ClusterSecretStore\nmetadata: {name: css, namespace: external-secrets}\n\
             spec: {provider: {fake: {data: []}}}\n---\n",
        )
        .unwrap();
        let store = Store::from_manifest(&objects[0], Some("grafana")).unwrap();
        assert_eq!(store.provider_key, "fake");
        assert_eq!(store.scope.namespace, None);
        assert_eq!(store.scope.consumer_namespace.as_deref(), Some("grafana"));
    }

    #[test]
    fn refuses_two_providers() {
        let objects = parse_objects("kind: SecretStore\nmetadata: {name: s}\nspec: {provider: {fake: {}, azurekv: {}}}\n").unwrap();
        let err = Store::from_manifest(&objects[0], None).unwrap_err().to_string();
        assert!(err.contains("exactly one key"), "{err}");
    }
}
