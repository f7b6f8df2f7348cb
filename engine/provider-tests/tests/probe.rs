//! The probe provider through the real host: configurable answers, every WIT
//! error variant across the boundary, the credential capability and its
//! refusals, the deadline.

use std::time::{Duration, Instant};

use lockstep_credentials::FileBackend;
use lockstep_plugin_host::wit;
use lockstep_provider_tests::{Harness, Store, remote, variant};
use serde_json::json;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-a}
stringData: {token: from-team-a}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-b}
stringData: {token: from-team-b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa, namespace: team-a, annotations: {example.com/client-id: abc}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_metadata_declares_its_paths() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_secs(5))?;
    let md = h.load("probe").await?.metadata().clone();
    assert_eq!(md.provider_key, "probe");
    let paths: Vec<&str> = md.credential_refs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["auth.secretRef", "auth.secretRefs.*", "auth.serviceAccountRef"]);
    assert_eq!(md.token_audiences, ["lockstep-probe"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_values_and_every_error_variant() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_secs(5))?;
    h.load("probe").await?;
    let config = json!({"responses": {
        "db": {"value": "{\"user\":\"u1\"}", "version": "7"},
        "nf": {"error": {"kind": "not-found"}},
        "un": {"error": {"kind": "unauthorized", "code": "Bad"}},
        "fb": {"error": {"kind": "forbidden", "code": "AccessDenied"}},
        "th": {"error": {"kind": "throttled", "retryAfterMs": 1500}},
        "ic": {"error": {"kind": "invalid-config", "field": "x.y"}},
        "de": {"error": {"kind": "denied"}},
        "ua": {"error": {"kind": "unavailable"}},
        "in": {"error": {"kind": "internal"}},
    }});
    let store = h.bind(Store::namespaced("probe", "team-a", config), MANIFESTS).expect("bind");
    let v = store.get_secret(&remote("db", None, Some("user"))).await.expect("value");
    assert_eq!((v.value.as_slice(), v.version.as_deref()), (&b"u1"[..], Some("7")));
    for (key, want) in [
        ("nf", "not-found"),
        ("un", "unauthorized"),
        ("fb", "forbidden"),
        ("th", "throttled"),
        ("ic", "invalid-config"),
        ("de", "denied"),
        ("ua", "unavailable"),
        ("in", "internal"),
        ("unlisted", "not-found"),
    ] {
        let e = store.get_secret(&remote(key, None, None)).await.unwrap_err();
        assert_eq!(variant(&e), want, "{key}: {e:?}");
        match (key, &e) {
            ("th", wit::ProviderError::Throttled(t)) => assert_eq!(t.retry_after_ms, Some(1500)),
            ("fb", wit::ProviderError::Forbidden(f)) => assert_eq!(f.code.as_deref(), Some("AccessDenied")),
            ("ic", wit::ProviderError::InvalidConfig(c)) => assert_eq!(c.field, "x.y"),
            _ => {}
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_referenced_secrets_and_is_refused_the_rest() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_secs(5))?;
    h.load("probe").await?;
    let with_request = |request: serde_json::Value| {
        json!({
            "auth": {"secretRef": {"name": "creds", "key": "token"}, "serviceAccountRef": {"name": "sa"}},
            "request": request,
            "responses": {"k": {"from": "secretKey"}, "a": {"from": "annotations"}, "t": {"from": "token"}},
        })
    };
    let backend = || {
        let mut b = FileBackend::from_yaml(MANIFESTS).expect("manifests");
        b.supply_token("team-a", "sa", "jwt-for-sa".into(), 4_102_444_800);
        b
    };
    let call = |request: serde_json::Value, key: &'static str| {
        let bound = h.bind_with(Store::namespaced("probe", "team-a", with_request(request)), backend());
        async move {
            match bound {
                Ok(store) => store.get_secret(&remote(key, None, None)).await,
                Err(e) => Err(e),
            }
        }
    };
    // Declared and in the store's namespace: served.
    let v = call(json!({"secretKey": {"name": "creds", "key": "token"}}), "k").await.expect("secret");
    assert_eq!(v.value, b"from-team-a");
    let v = call(json!({"serviceAccountAnnotations": {"name": "sa"}}), "a").await.expect("annotations");
    assert_eq!(v.value, br#"{"example.com/client-id":"abc"}"#);
    let v = call(json!({"token": {"serviceAccount": {"name": "sa"}, "audiences": ["lockstep-probe"]}}), "t").await.expect("token");
    assert_eq!(v.value, b"jwt-for-sa");

    // Refused: a reference the store's declared paths do not hold, another
    // namespace's Secret from a SecretStore, a token for an undeclared
    // audience, a token for the apiserver's own audience.
    let refused = [
        json!({"secretKey": {"name": "other", "key": "token"}}),
        json!({"secretKey": {"name": "creds", "key": "token", "namespace": "team-b"}}),
        json!({"serviceAccountAnnotations": {"name": "sa", "namespace": "team-b"}}),
        json!({"token": {"serviceAccount": {"name": "sa"}, "audiences": ["https://attacker.example"]}}),
        json!({"token": {"serviceAccount": {"name": "sa"}, "audiences": ["https://kubernetes.default.svc"]}}),
    ];
    for request in refused {
        let e = call(request.clone(), "k").await.expect_err(&request.to_string());
        assert_eq!(variant(&e), "denied", "{request}: {e:?}");
        assert!(!format!("{e:?}").contains("from-team"), "{request}: a value leaked into {e:?}");
    }

    // A SecretStore whose declared reference names another namespace is refused too.
    let cross = json!({
        "auth": {"secretRef": {"name": "creds", "key": "token", "namespace": "team-b"}},
        "request": {"secretKey": {"name": "creds", "key": "token", "namespace": "team-b"}},
        "responses": {"k": {"from": "secretKey"}},
    });
    let outcome = match h.bind(Store::namespaced("probe", "team-a", cross), MANIFESTS) {
        Ok(store) => store.get_secret(&remote("k", None, None)).await,
        Err(e) => Err(e),
    };
    assert_eq!(variant(&outcome.unwrap_err()), "denied");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_past_the_deadline_is_unavailable_and_the_host_recovers() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_millis(500))?;
    h.load("probe").await?;
    let config = json!({"responses": {"slow": {"value": "x", "sleepMs": 5000}, "fast": {"value": "y"}}});
    let store = h.bind(Store::namespaced("probe", "team-a", config), "").expect("bind");
    let started = Instant::now();
    let e = store.get_secret(&remote("slow", None, None)).await.unwrap_err();
    assert_eq!(variant(&e), "unavailable", "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(store.get_secret(&remote("fast", None, None)).await.expect("next call").value, b"y");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_fails_then_recovers_when_the_store_is_edited() -> anyhow::Result<()> {
    let h = Harness::new(Duration::from_secs(5))?;
    h.load("probe").await?;
    let mut store = Store::namespaced("probe", "team-a", json!({"responses": {"db": {"error": {"kind": "unavailable"}}}}));
    let failing = h.bind(store, "").expect("bind");
    assert_eq!(variant(&failing.get_secret(&remote("db", None, None)).await.unwrap_err()), "unavailable");
    store = Store::namespaced("probe", "team-a", json!({"responses": {"db": {"value": "ok"}}}));
    store.generation = 2;
    let fixed = h.bind(store, "").expect("bind");
    assert_eq!(fixed.get_secret(&remote("db", None, None)).await.expect("recovered").value, b"ok");
    Ok(())
}
