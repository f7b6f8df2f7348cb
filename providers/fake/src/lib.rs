//! ESO's `fake` provider (`spec.provider.fake`): static `data[]` entries served
//! with the exact semantics of ESO's `providers/v1/fake`. No egress, no
//! credentials; the embedded, no-cloud default for the demo and the tests.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use lockstep_provider_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub data: Vec<Entry>,
    /// 0 Ready, 1 Unknown, 2 Error.
    #[serde(default)]
    pub validation_result: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
    /// Legacy (v1beta1) form: served as the JSON object of the map when `value` is empty.
    #[serde(default)]
    pub value_map: BTreeMap<String, String>,
    #[serde(default)]
    pub version: String,
}

struct Stored {
    value: Vec<u8>,
    version: String,
}

/// ESO keys its map by `key + version` (plain concatenation, quirks included);
/// a later entry with the same concatenation replaces an earlier one.
fn database(config: &Config) -> Result<HashMap<String, Stored>> {
    let mut db = HashMap::new();
    for (n, entry) in config.data.iter().enumerate() {
        if entry.key.is_empty() {
            return Err(ProviderError::invalid_config(format!("data[{n}].key"), format!("key must be set in data {n}")));
        }
        let value = if !entry.value.is_empty() {
            entry.value.clone().into_bytes()
        } else if !entry.value_map.is_empty() {
            json::to_vec(&entry.value_map)?
        } else {
            return Err(ProviderError::invalid_config(
                format!("data[{n}].value"),
                format!("at least one value must be set in data {n}"),
            ));
        };
        db.insert(format!("{}{}", entry.key, entry.version), Stored { value, version: entry.version.clone() });
    }
    Ok(db)
}

fn lookup<'a>(db: &'a HashMap<String, Stored>, r: &SecretRef) -> Result<&'a Stored> {
    let version = r.version.as_deref().unwrap_or_default();
    db.get(&format!("{}{version}", r.key))
        .filter(|s| s.version == version)
        .ok_or_else(|| ProviderError::not_found("Secret does not exist"))
}

pub struct Fake;

impl Provider for Fake {
    type Config = Config;

    fn metadata() -> PluginMetadata {
        PluginMetadata::new("fake", env!("CARGO_PKG_VERSION"), "fake")
            .description("ESO's fake provider: static data[] entries from the store spec")
    }

    fn validate(store: &Store<Config>) -> Result<Validation> {
        database(&store.config)?;
        match store.config.validation_result.unwrap_or(0) {
            0 => Ok(Validation::Ready),
            1 => Ok(Validation::Unknown),
            _ => Err(ProviderError::unavailable("unable to validate")),
        }
    }

    fn get_secret(store: &Store<Config>, r: &SecretRef) -> Result<SecretValue> {
        let db = database(&store.config)?;
        let stored = lookup(&db, r)?;
        let version = (!stored.version.is_empty()).then(|| stored.version.clone());
        match r.property.as_deref() {
            None | Some("") => Ok(SecretValue { value: stored.value.clone(), version }),
            Some(path) => json::property(&stored.value, path)
                .map(|value| SecretValue { value, version })
                .ok_or_else(|| ProviderError::not_found("Secret does not exist")),
        }
    }

    fn find_secrets(store: &Store<Config>, find: &FindRequest) -> Result<Vec<SecretEntry>> {
        let Some(pattern) = find.name_regexp.as_deref() else {
            return Err(ProviderError::internal("unsupported find operator: only find.name is supported"));
        };
        let matcher = regex_lite::Regex::new(pattern)
            .map_err(|e| ProviderError::internal(format!("invalid find.name.regexp: {e}")))?;
        let db = database(&store.config)?;
        // Several versions of one key: the lexicographically greatest version wins.
        let mut latest: BTreeMap<&str, &Stored> = BTreeMap::new();
        for (map_key, stored) in &db {
            let key = map_key.strip_suffix(stored.version.as_str()).unwrap_or(map_key);
            if !matcher.is_match(key) {
                continue;
            }
            match latest.get(key) {
                Some(seen) if seen.version >= stored.version => {}
                _ => {
                    latest.insert(key, stored);
                }
            }
        }
        Ok(latest.into_iter().map(|(key, s)| SecretEntry { key: key.to_owned(), value: s.value.clone() }).collect())
    }
}

export_provider!(Fake);

#[cfg(test)]
mod tests {
    use super::*;

    fn store(config: serde_json::Value) -> Store<Config> {
        Store {
            config: serde_json::from_value(config).unwrap(),
            kind: StoreKind::SecretStore,
            name: "s".into(),
            namespace: Some("ns".into()),
            provider_key: "fake".into(),
        }
    }

    fn sref(key: &str, version: Option<&str>, property: Option<&str>) -> SecretRef {
        SecretRef {
            key: key.into(),
            version: version.map(Into::into),
            property: property.map(Into::into),
            metadata_policy: MetadataPolicy::None,
        }
    }

    fn value(r: Result<SecretValue>) -> String {
        String::from_utf8(r.unwrap().value).unwrap()
    }

    #[test]
    fn key_and_version_must_match_exactly() {
        let s = store(serde_json::json!({"data": [
            {"key": "/foo", "value": "plain"},
            {"key": "/foo", "value": "one", "version": "v1"},
            {"key": "/ab", "value": "x", "version": "c"},
        ]}));
        assert_eq!(value(Fake::get_secret(&s, &sref("/foo", None, None))), "plain");
        assert_eq!(value(Fake::get_secret(&s, &sref("/foo", Some("v1"), None))), "one");
        assert_eq!(Fake::get_secret(&s, &sref("/foo", Some("v2"), None)).unwrap_err().variant(), "not-found");
        // `key+version` concatenation: "/a"+"bc" hits the map entry of "/ab"+"c" but the version differs.
        assert_eq!(Fake::get_secret(&s, &sref("/a", Some("bc"), None)).unwrap_err().variant(), "not-found");
        assert_eq!(Fake::get_secret(&s, &sref("/ab", Some("c"), None)).unwrap().version.as_deref(), Some("c"));
    }

    #[test]
    fn property_and_extract() {
        let s = store(serde_json::json!({"data": [
            {"key": "j", "value": "{\"user\": \"admin\", \"port\": 5432, \"tls\": {\"on\": true}}"},
            {"key": "text", "value": "HELLO"},
            {"key": "legacy", "valueMap": {"b": "2", "a": "1"}},
        ]}));
        assert_eq!(value(Fake::get_secret(&s, &sref("j", None, Some("user")))), "admin");
        assert_eq!(value(Fake::get_secret(&s, &sref("j", None, Some("tls")))), "{\"on\": true}");
        assert_eq!(Fake::get_secret(&s, &sref("j", None, Some("nope"))).unwrap_err().variant(), "not-found");
        assert_eq!(Fake::get_secret(&s, &sref("text", None, Some("a"))).unwrap_err().variant(), "not-found");
        let map = Fake::get_secret_map(&s, &sref("j", None, None)).unwrap();
        let got: Vec<_> = map.iter().map(|e| (e.key.as_str(), String::from_utf8_lossy(&e.value).into_owned())).collect();
        assert_eq!(got, [("port", "5432".into()), ("tls", "{\"on\": true}".into()), ("user", "admin".into())]);
        assert_eq!(Fake::get_secret_map(&s, &sref("text", None, None)).unwrap_err().variant(), "internal");
        assert_eq!(Fake::get_secret_map(&s, &sref("missing", None, None)).unwrap_err().variant(), "not-found");
        assert_eq!(value(Fake::get_secret(&s, &sref("legacy", None, None))), "{\"a\":\"1\",\"b\":\"2\"}");
        assert_eq!(Fake::get_secret_map(&s, &sref("legacy", None, None)).unwrap().len(), 2);
    }

    #[test]
    fn find_by_name_latest_version_wins() {
        let s = store(serde_json::json!({"data": [
            {"key": "db-user", "value": "old", "version": "v1"},
            {"key": "db-user", "value": "new", "version": "v2"},
            {"key": "db-pass", "value": "p"},
            {"key": "api", "value": "a"},
        ]}));
        let find = |re: Option<&str>| FindRequest { path: None, name_regexp: re.map(Into::into), tags: vec![] };
        let got = Fake::find_secrets(&s, &find(Some("^db-"))).unwrap();
        let got: Vec<_> = got.iter().map(|e| (e.key.as_str(), e.value.as_slice())).collect();
        assert_eq!(got, [("db-pass", &b"p"[..]), ("db-user", &b"new"[..])]);
        assert_eq!(Fake::find_secrets(&s, &find(Some("p"))).unwrap().len(), 2);
        let err = Fake::find_secrets(&s, &find(None)).unwrap_err();
        assert!(matches!(&err, ProviderError::Internal(m) if m.contains("unsupported find operator")), "{err:?}");
    }

    #[test]
    fn validation() {
        let ok = |v: serde_json::Value| Fake::validate(&store(v));
        assert_eq!(ok(serde_json::json!({"data": []})).unwrap(), Validation::Ready);
        assert_eq!(ok(serde_json::json!({"data": [], "validationResult": 0})).unwrap(), Validation::Ready);
        assert_eq!(ok(serde_json::json!({"data": [], "validationResult": 1})).unwrap(), Validation::Unknown);
        assert_eq!(ok(serde_json::json!({"data": [], "validationResult": 2})).unwrap_err().variant(), "unavailable");
        let err = ok(serde_json::json!({"data": [{"key": "a", "value": "1"}, {"value": "x"}]})).unwrap_err();
        assert_eq!(err, ProviderError::invalid_config("data[1].key", "key must be set in data 1"));
        let err = ok(serde_json::json!({"data": [{"key": "a"}]})).unwrap_err();
        assert_eq!(err, ProviderError::invalid_config("data[0].value", "at least one value must be set in data 0"));
    }

    /// The shipped conformance fixtures, checked against the provider itself
    /// (the host-side runner checks them through the sandbox as well).
    #[test]
    fn conformance_fixtures_hold() {
        use sha2::Digest;
        let sha = |b: &[u8]| format!("{:x}", sha2::Sha256::digest(b));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance");
        let mut cases = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let case: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let name = path.display().to_string();
            let config = serde_json::to_string(&case["store"]["provider"]["fake"]).unwrap();
            let store = match config::parse::<Config>(&config) {
                Ok(config) => store_of(config),
                Err(e) => panic!("{name}: {e:?}"),
            };
            let call = &case["call"];
            let r = &call["ref"];
            let text = |v: &serde_yaml::Value| v.as_str().map(str::to_owned);
            let sref = SecretRef {
                key: text(&r["key"]).unwrap_or_default(),
                version: text(&r["version"]),
                property: text(&r["property"]),
                metadata_policy: MetadataPolicy::None,
            };
            let expect = &case["expect"];
            let outcome: Result<serde_yaml::Value> = match call["op"].as_str().unwrap() {
                "egress" => Fake::egress(&store).map(|rules| rules.iter().map(|r| serde_yaml::Value::from(r.host.clone())).collect()),
                "validate" => Fake::validate(&store).map(|v| match v {
                    Validation::Ready => "ready".into(),
                    Validation::Unknown => "unknown".into(),
                }),
                "get-secret" => Fake::get_secret(&store, &sref).map(|v| {
                    let mut m = serde_yaml::Mapping::new();
                    m.insert("sha256".into(), sha(&v.value).into());
                    if let Some(version) = v.version {
                        m.insert("version".into(), version.into());
                    }
                    m.into()
                }),
                op @ ("get-secret-map" | "find-secrets") => {
                    let entries = if op == "get-secret-map" {
                        Fake::get_secret_map(&store, &sref)
                    } else {
                        let f = &call["find"];
                        let tags = f["tags"].as_mapping().map(|m| {
                            m.iter().map(|(k, v)| (text(k).unwrap(), text(v).unwrap())).collect()
                        });
                        Fake::find_secrets(
                            &store,
                            &FindRequest { path: text(&f["path"]), name_regexp: text(&f["nameRegexp"]), tags: tags.unwrap_or_default() },
                        )
                    };
                    entries.map(|es| {
                        es.iter().map(|e| (e.key.clone().into(), sha(&e.value).into())).collect::<serde_yaml::Mapping>().into()
                    })
                }
                other => panic!("{name}: unknown op {other}"),
            };
            match (outcome, expect["error"].as_mapping()) {
                (Err(e), Some(want)) => {
                    assert_eq!(e.variant(), want[&serde_yaml::Value::from("variant")].as_str().unwrap(), "{name}");
                    let message = format!("{e:?}");
                    if let Some(s) = want.get("messageContains").and_then(|v| v.as_str()) {
                        assert!(message.contains(s), "{name}: {message}");
                    }
                    if let (Some(field), ProviderError::InvalidConfig(c)) = (want.get("field"), &e) {
                        assert_eq!(field.as_str().unwrap(), c.field, "{name}");
                    }
                }
                (Ok(got), None) => {
                    let key = ["value", "entries", "validation", "egress"].into_iter().find(|k| !expect[*k].is_null());
                    let want = &expect[key.unwrap_or_else(|| panic!("{name}: no expectation"))];
                    assert_eq!(&got, want, "{name}");
                }
                (got, want) => panic!("{name}: got {got:?}, want error {want:?}"),
            }
            cases += 1;
        }
        assert!(cases >= 15, "only {cases} fixtures");
    }

    fn store_of(config: Config) -> Store<Config> {
        Store { config, kind: StoreKind::SecretStore, name: "fake".into(), namespace: Some("team-a".into()), provider_key: "fake".into() }
    }
}

