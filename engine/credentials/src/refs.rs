use serde_json::Value;

use crate::CredentialError;

/// The shape of a credential reference in a provider config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// `{name, key, namespace?}`
    SecretKeySelector,
    /// `{name, namespace?, audiences?}`
    ServiceAccountRef,
}

/// A config path the plugin's metadata declares as holding a credential
/// reference: dotted, where a `*` segment matches every element of a list or
/// map (`auth.secretRef.clientSecret`, `keys.*.ref`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeclaredRef {
    pub path: String,
    pub kind: RefKind,
}

impl DeclaredRef {
    pub fn secret_key(path: impl Into<String>) -> Self {
        Self { path: path.into(), kind: RefKind::SecretKeySelector }
    }
    pub fn service_account(path: impl Into<String>) -> Self {
        Self { path: path.into(), kind: RefKind::ServiceAccountRef }
    }
}

/// A SecretKeySelector as written in the store spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// The concrete path where it was found (`*` expanded).
    pub path: String,
    pub name: String,
    pub key: String,
    pub namespace: Option<String>,
}

/// A serviceAccountRef as written in the store spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub path: String,
    pub name: String,
    pub namespace: Option<String>,
    pub audiences: Vec<String>,
}

/// Every credential reference of one store config, found at the declared
/// paths only. Anything elsewhere in the config is not a reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReferences {
    pub secret_keys: Vec<SecretKeyRef>,
    pub service_accounts: Vec<ServiceAccountRef>,
}

impl StoreReferences {
    /// Walks `config` (the JSON of `spec.provider.<key>`) at each declared
    /// path. Absent paths are fine (optional auth blocks); a value of the
    /// wrong shape at a declared path is an invalid config.
    pub fn collect(config: &Value, declared: &[DeclaredRef]) -> Result<Self, CredentialError> {
        let mut refs = Self::default();
        for decl in declared {
            let segments: Vec<&str> = decl.path.split('.').filter(|s| !s.is_empty()).collect();
            if segments.is_empty() {
                return Err(CredentialError::invalid(&decl.path, "empty credential reference path in plugin metadata"));
            }
            let mut found = Vec::new();
            walk(config, &segments, String::new(), &mut found);
            for (path, value) in found {
                match decl.kind {
                    RefKind::SecretKeySelector => refs.secret_keys.push(secret_key_ref(path, value)?),
                    RefKind::ServiceAccountRef => refs.service_accounts.push(service_account_ref(path, value)?),
                }
            }
        }
        Ok(refs)
    }

    /// True when every reference names its namespace — also when there are
    /// none: then no consumer's credentials can reach the instance either.
    pub fn all_name_namespace(&self) -> bool {
        self.secret_keys.iter().all(|r| r.namespace.is_some())
            && self.service_accounts.iter().all(|r| r.namespace.is_some())
    }
}

fn walk<'a>(value: &'a Value, segments: &[&str], prefix: String, out: &mut Vec<(String, &'a Value)>) {
    let Some((head, rest)) = segments.split_first() else {
        if !value.is_null() {
            out.push((prefix, value));
        }
        return;
    };
    let join = |seg: &str| if prefix.is_empty() { seg.to_string() } else { format!("{prefix}.{seg}") };
    match (*head, value) {
        ("*", Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, rest, join(&i.to_string()), out);
            }
        }
        ("*", Value::Object(map)) => {
            for (k, v) in map {
                walk(v, rest, join(k), out);
            }
        }
        (seg, Value::Object(map)) => {
            if let Some(v) = map.get(seg) {
                walk(v, rest, join(seg), out);
            }
        }
        (seg, Value::Array(items)) => {
            if let Some(v) = seg.parse::<usize>().ok().and_then(|i| items.get(i)) {
                walk(v, rest, join(seg), out);
            }
        }
        _ => {}
    }
}

fn string_field(obj: &serde_json::Map<String, Value>, path: &str, field: &str, required: bool) -> Result<Option<String>, CredentialError> {
    match obj.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(CredentialError::invalid(format!("{path}.{field}"), "required")),
        Some(Value::String(s)) if s.is_empty() && required => {
            Err(CredentialError::invalid(format!("{path}.{field}"), "must not be empty"))
        }
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CredentialError::invalid(format!("{path}.{field}"), "must be a string")),
    }
}

fn object<'a>(path: &str, value: &'a Value, what: &str) -> Result<&'a serde_json::Map<String, Value>, CredentialError> {
    value.as_object().ok_or_else(|| CredentialError::invalid(path, format!("must be a {what} object")))
}

fn secret_key_ref(path: String, value: &Value) -> Result<SecretKeyRef, CredentialError> {
    let obj = object(&path, value, "SecretKeySelector {name, key, namespace?}")?;
    Ok(SecretKeyRef {
        name: string_field(obj, &path, "name", true)?.unwrap_or_default(),
        key: string_field(obj, &path, "key", true)?.unwrap_or_default(),
        namespace: string_field(obj, &path, "namespace", false)?,
        path,
    })
}

fn service_account_ref(path: String, value: &Value) -> Result<ServiceAccountRef, CredentialError> {
    let obj = object(&path, value, "serviceAccountRef {name, namespace?, audiences?}")?;
    let audiences = match obj.get("audiences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| {
                a.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| CredentialError::invalid(format!("{path}.audiences"), "must be a list of non-empty strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(CredentialError::invalid(format!("{path}.audiences"), "must be a list of strings")),
    };
    Ok(ServiceAccountRef {
        name: string_field(obj, &path, "name", true)?.unwrap_or_default(),
        namespace: string_field(obj, &path, "namespace", false)?,
        audiences,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_only_declared_paths_with_wildcards() {
        let config = json!({
            "auth": {"clientSecret": {"name": "azure", "key": "secret"}, "other": {"name": "x", "key": "y"}},
            "keys": [{"ref": {"name": "a", "key": "k", "namespace": "ns1"}}, {"ref": {"name": "b", "key": "k"}}],
            "sa": {"name": "wi", "audiences": ["api://AzureADTokenExchange"]}
        });
        let refs = StoreReferences::collect(
            &config,
            &[DeclaredRef::secret_key("auth.clientSecret"), DeclaredRef::secret_key("keys.*.ref"), DeclaredRef::service_account("sa"), DeclaredRef::secret_key("missing.path")],
        )
        .unwrap();
        let names: Vec<_> = refs.secret_keys.iter().map(|r| (r.path.as_str(), r.name.as_str())).collect();
        assert_eq!(names, vec![("auth.clientSecret", "azure"), ("keys.0.ref", "a"), ("keys.1.ref", "b")]);
        assert_eq!(refs.service_accounts[0].audiences, vec!["api://AzureADTokenExchange"]);
        assert!(!refs.all_name_namespace());
    }

    #[test]
    fn wrong_shape_is_invalid_config_with_path() {
        let err = StoreReferences::collect(&json!({"auth": {"name": "x"}}), &[DeclaredRef::secret_key("auth")]).unwrap_err();
        assert_eq!(err, CredentialError::invalid("auth.key", "required"));
        let err = StoreReferences::collect(&json!({"auth": "x"}), &[DeclaredRef::secret_key("auth")]).unwrap_err();
        assert!(matches!(err, CredentialError::InvalidConfig { field, .. } if field == "auth"));
    }
}
