//! The fake provider through the real host: ESO's semantics end to end.

use std::time::Duration;

use lockstep_plugin_host::wit::{self, FindRequest, Validation};
use lockstep_provider_tests::{Harness, Store, entries, remote, variant};
use serde_json::json;

fn data() -> serde_json::Value {
    json!({"data": [
        {"key": "/foo/bar", "value": "HELLO1", "version": "v1"},
        {"key": "/foo/bar", "value": "HELLO2", "version": "v2"},
        {"key": "/foo/baz", "value": "{\"user\": \"admin\", \"port\": 5432, \"tls\": {\"on\": true}}"},
        {"key": "db-user", "value": "old", "version": "v1"},
        {"key": "db-user", "value": "new", "version": "v2"},
        {"key": "db-pass", "value": "p"},
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_serves_eso_semantics() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_secs(5))?;
    let plugin = h.load("fake").await?;
    let md = plugin.metadata();
    assert_eq!((md.provider_key.as_str(), md.name.as_str()), ("fake", "fake"));
    assert!(md.credential_refs.is_empty() && md.token_audiences.is_empty());

    let store = h.bind(Store::namespaced("fake", "team-a", data()), "").expect("bind");
    assert_eq!(store.validate().await.expect("validate"), Validation::Ready);

    let v = store.get_secret(&remote("/foo/bar", Some("v2"), None)).await.expect("v2");
    assert_eq!((v.value.as_slice(), v.version.as_deref()), (&b"HELLO2"[..], Some("v2")));
    // The version must match exactly, empty included.
    for r in [remote("/foo/bar", None, None), remote("/foo/bar", Some("v9"), None), remote("/nope", None, None)] {
        let e = store.get_secret(&r).await.unwrap_err();
        assert_eq!(variant(&e), "not-found", "{}", r.key);
    }

    let v = store.get_secret(&remote("/foo/baz", None, Some("user"))).await.expect("property");
    assert_eq!(v.value, b"admin");
    let v = store.get_secret(&remote("/foo/baz", None, Some("tls"))).await.expect("object property");
    assert_eq!(v.value, br#"{"on": true}"#);
    let e = store.get_secret(&remote("/foo/baz", None, Some("password"))).await.unwrap_err();
    assert_eq!(variant(&e), "not-found");

    let map = store.get_secret_map(&remote("/foo/baz", None, None)).await.expect("extract");
    assert_eq!(
        entries(map),
        [("port".into(), "5432".into()), ("tls".into(), r#"{"on": true}"#.into()), ("user".into(), "admin".into())]
    );
    let e = store.get_secret_map(&remote("/foo/bar", Some("v1"), None)).await.unwrap_err();
    assert!(matches!(&e, wit::ProviderError::Internal(m) if m.contains("unable to unmarshal secret")), "{e:?}");

    let find = FindRequest { path: None, name_regexp: Some("^db-".into()), tags: vec![] };
    let found = store.find_secrets(&find).await.expect("find");
    assert_eq!(entries(found), [("db-pass".into(), "p".into()), ("db-user".into(), "new".into())]);
    let e = store.find_secrets(&FindRequest { path: None, name_regexp: None, tags: vec![("a".into(), "b".into())] }).await.unwrap_err();
    assert!(matches!(&e, wit::ProviderError::Internal(m) if m.contains("unsupported find operator")), "{e:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_validation_results_and_config_errors() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_secs(5))?;
    h.load("fake").await?;
    let validate = |config: serde_json::Value| {
        let store = h.bind(Store::cluster("fake", "team-b", config), "").expect("bind");
        async move { store.validate().await }
    };
    assert_eq!(validate(json!({"data": [], "validationResult": 1})).await.expect("unknown"), Validation::Unknown);
    let e = validate(json!({"data": [], "validationResult": 2})).await.unwrap_err();
    assert_eq!(variant(&e), "unavailable");
    let e = validate(json!({"data": [{"key": "a", "value": "1"}, {"value": "x"}]})).await.unwrap_err();
    assert!(
        matches!(&e, wit::ProviderError::InvalidConfig(c) if c.field == "data[1].key" && c.reason == "key must be set in data 1"),
        "{e:?}"
    );
    let e = validate(json!({"data": "not-a-list"})).await.unwrap_err();
    assert!(matches!(&e, wit::ProviderError::InvalidConfig(c) if c.field == "data"), "{e:?}");
    Ok(())
}
