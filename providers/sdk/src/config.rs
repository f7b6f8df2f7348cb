//! Typed store-config parsing that reports `invalid-config{field, reason}`.

use serde::de::DeserializeOwned;

use crate::{ProviderError, Result};

/// Parses the provider config JSON into `T`. A mismatch names the field by
/// its path inside the provider config (`data[2].key`), so the store's
/// condition points at what to fix.
pub fn parse<T: DeserializeOwned>(config_json: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(config_json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut field = e.path().to_string();
        if field == "." {
            field.clear();
        }
        let inner = e.into_inner();
        let reason = inner.to_string();
        // serde reports a missing field at its parent; point at the field itself.
        if let Some(name) = reason.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
        }
        let reason = match reason.rfind(" at line ") {
            Some(i) => reason[..i].to_owned(),
            None => reason,
        };
        ProviderError::invalid_config(field, reason)
    })
}

/// `Err(invalid-config)` unless `value` is non-empty.
pub fn require<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        Err(ProviderError::invalid_config(field, format!("{field} must be set")))
    } else {
        Ok(value)
    }
}

/// `Err(invalid-config)` unless `value` is an absolute `https` URL.
pub fn https_url(field: &str, value: &str) -> Result<crate::http::Target> {
    let target = crate::http::Target::parse(value)
        .map_err(|_| ProviderError::invalid_config(field, format!("{field} must be an absolute https URL")))?;
    if target.scheme != "https" {
        return Err(ProviderError::invalid_config(field, format!("{field} must use https")));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        vault_url: String,
        #[serde(default)]
        data: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        key: String,
        version: Option<u32>,
    }

    fn issue(json: &str) -> (String, String) {
        match parse::<Cfg>(json).unwrap_err() {
            ProviderError::InvalidConfig(c) => (c.field, c.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_field() {
        assert_eq!(issue(r#"{"data":[]}"#).0, "vaultUrl");
        assert_eq!(issue(r#"{"vaultUrl":"x","data":[{"key":"a"},{}]}"#).0, "data[1].key");
        let (field, reason) = issue(r#"{"vaultUrl":"x","data":[{"key":"a","version":"v"}]}"#);
        assert_eq!(field, "data[0].version");
        assert!(reason.starts_with("invalid type: string"), "{reason}");
        assert!(!reason.contains("line"), "{reason}");
        assert_eq!(issue(r#"{"vaultUrl":"x","extra":1}"#).0, "extra");
        assert!(parse::<Cfg>(r#"{"vaultUrl":"x"}"#).is_ok());
    }

    #[test]
    fn require_and_url() {
        assert!(require("tenantId", "").is_err());
        assert_eq!(require("tenantId", "t").unwrap(), "t");
        assert!(https_url("vaultUrl", "http://v/").is_err());
        assert_eq!(https_url("vaultUrl", "https://v.example.com/").unwrap().host, "v.example.com");
    }
}
