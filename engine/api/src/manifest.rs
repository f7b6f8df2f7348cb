//! Multi-document YAML into typed objects, for `lockstep render` and tests.
//! ESO kinds at `external-secrets.io/v1` or `v1beta1` both become the [`v1`]
//! types (the schemas are identical). Errors name the document and object,
//! never a value: a Secret document that does not parse is reported without
//! the parser's text, which could quote its data.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use serde::de::DeserializeOwned;

use crate::{GROUP, v1};

/// One object of a manifest stream.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    SecretStore(v1::SecretStore),
    ClusterSecretStore(v1::ClusterSecretStore),
    ExternalSecret(v1::ExternalSecret),
    ClusterExternalSecret(v1::ClusterExternalSecret),
    Namespace(Namespace),
    Secret(Secret),
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    /// An ESO kind or version Lockstep does not support (PushSecret,
    /// generators, `external-secrets.io/v1alpha1`, ...): reported, not ignored.
    Unsupported(ObjectId),
    /// Anything else (not ESO, not a kind render reads).
    Other(ObjectId),
}

/// apiVersion, kind and name of an object, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.api_version, self.kind, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index}: not YAML: {reason}")]
    Yaml { index: usize, reason: String },
    #[error("document {index}: missing apiVersion or kind")]
    NoKind { index: usize },
    #[error("document {index} ({object}): {reason}")]
    Invalid { index: usize, object: ObjectId, reason: String },
}

/// The ESO API versions Lockstep serves.
pub fn is_served_eso_version(api_version: &str) -> bool {
    api_version == format!("{GROUP}/v1") || api_version == format!("{GROUP}/v1beta1")
}

/// Parses every document of `text` (empty documents are skipped).
pub fn parse(text: &str) -> Result<Vec<Manifest>, ManifestError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| ManifestError::Yaml {
            index,
            // Location only: the parser's message may quote content.
            reason: e.location().map_or_else(|| "syntax error".to_string(), |l| format!("syntax error at line {}, column {}", l.line(), l.column())),
        })?;
        if value.is_null() {
            continue;
        }
        out.push(parse_one(index, value)?);
    }
    Ok(out)
}

fn parse_one(index: usize, value: serde_yaml::Value) -> Result<Manifest, ManifestError> {
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return Err(ManifestError::NoKind { index });
    };
    let name = value.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).unwrap_or_default().to_string();
    let id = ObjectId { api_version: api_version.clone(), kind: kind.clone(), name };
    let group = api_version.split_once('/').map_or("", |(g, _)| g);

    if group == GROUP || group.ends_with(&format!(".{GROUP}")) {
        if !is_served_eso_version(&api_version) {
            return Ok(Manifest::Unsupported(id));
        }
        return Ok(match kind.as_str() {
            "SecretStore" => Manifest::SecretStore(typed(index, &id, value)?),
            "ClusterSecretStore" => Manifest::ClusterSecretStore(typed(index, &id, value)?),
            "ExternalSecret" => Manifest::ExternalSecret(typed(index, &id, value)?),
            "ClusterExternalSecret" => Manifest::ClusterExternalSecret(typed(index, &id, value)?),
            _ => Manifest::Unsupported(id),
        });
    }
    if api_version != "v1" {
        return Ok(Manifest::Other(id));
    }
    Ok(match kind.as_str() {
        "Namespace" => Manifest::Namespace(typed(index, &id, value)?),
        "ConfigMap" => Manifest::ConfigMap(typed(index, &id, value)?),
        "ServiceAccount" => Manifest::ServiceAccount(typed(index, &id, value)?),
        "Secret" => Manifest::Secret(serde_yaml::from_value(value).map_err(|_| ManifestError::Invalid {
            index,
            object: id.clone(),
            reason: "not a valid Secret (details withheld: they could quote secret data)".into(),
        })?),
        _ => Manifest::Other(id),
    })
}

fn typed<T: DeserializeOwned>(index: usize, id: &ObjectId, value: serde_yaml::Value) -> Result<T, ManifestError> {
    serde_yaml::from_value(value).map_err(|e| ManifestError::Invalid { index, object: id.clone(), reason: without_values(&e.to_string()) })
}

/// serde's "invalid type/value" messages quote the offending scalar, which
/// may be a secret (a template literal, a provider config value): keep the
/// field path and the expectation, drop the quote.
fn without_values(message: &str) -> String {
    for marker in ["invalid type: ", "invalid value: "] {
        if let Some(at) = message.find(marker) {
            let expected = message[at..].find(", expected").map_or("", |e| &message[at + e + 2..]);
            return format!("{}{}<withheld>, {expected}", &message[..at], marker).trim_end_matches(", ").to_string();
        }
    }
    message.to_string()
}
