//! The SDK's HTTP path through the real host: the `webkv` example provider
//! replays its own conformance fixtures (providers/testing/webkv/conformance)
//! and passes them; its deliberately broken twin fails the cases it breaks.
//! This checks the fixtures' outcomes (value, entries, validation, egress,
//! error variant, retry-after, field), not the runner's request and
//! authority checks, which `lockstep plugin test` adds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockstep_credentials::StoreKind;
use lockstep_plugin_host::wit;
use lockstep_provider_tests::{Harness, Store, variant};
use serde_yaml::Value;
use sha2::Digest;

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../providers/testing/webkv/conformance");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let case: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (case["name"].as_str().unwrap().to_owned(), case)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Runs one case; `Err` is a finding.
async fn run(component: &str, case: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("replay.json");
    let exchanges: serde_json::Value = serde_json::to_value(&case["exchanges"]).unwrap();
    let exchanges = if exchanges.is_null() { serde_json::json!([]) } else { exchanges };
    std::fs::write(&recording, serde_json::json!({"version": 1, "exchanges": exchanges}).to_string()).unwrap();
    let deadline = Duration::from_millis(case["deadlineMs"].as_u64().unwrap_or(5000));
    let h = Harness::with_replay(deadline, Some(recording)).unwrap();
    h.load(component).await.unwrap();

    let store = &case["store"];
    let kind = match store["kind"].as_str() {
        Some("ClusterSecretStore") => StoreKind::ClusterSecretStore,
        _ => StoreKind::SecretStore,
    };
    let namespace = store["namespace"].as_str();
    let consumer = case["namespace"].as_str().or(namespace);
    let manifests: Vec<String> = case["objects"]
        .as_sequence()
        .map(|objs| objs.iter().map(|o| serde_yaml::to_string(o).unwrap()).collect())
        .unwrap_or_default();
    let binding = Store {
        provider_key: "webkv",
        kind,
        name: store["name"].as_str().unwrap(),
        namespace,
        consumer_namespace: consumer,
        generation: 1,
        config: serde_json::to_value(&store["provider"]["webkv"]).unwrap(),
    };
    let expect = &case["expect"];
    let call = &case["call"];
    let r = &call["ref"];
    let sref = wit::SecretRef {
        key: text(&r["key"]).unwrap_or_default(),
        version: text(&r["version"]),
        property: text(&r["property"]),
        metadata_policy: if r["metadataPolicy"].as_str() == Some("Fetch") {
            wit::MetadataPolicy::Fetch
        } else {
            wit::MetadataPolicy::None
        },
    };
    let started = Instant::now();
    let outcome: Result<Value, wit::ProviderError> = async {
        let bound = h.bind(binding, &manifests.join("---\n"))?;
        Ok(match call["op"].as_str().unwrap() {
            "egress" => {
                let rules = bound.egress().await?;
                let mut m = serde_yaml::Sequence::new();
                for rule in rules {
                    let mut e = serde_yaml::Mapping::new();
                    e.insert("scheme".into(), rule.scheme.into());
                    e.insert("host".into(), rule.host.into());
                    if let Some(p) = rule.port {
                        e.insert("port".into(), u64::from(p).into());
                    }
                    m.push(e.into());
                }
                Value::Sequence(m)
            }
            "validate" => match bound.validate().await? {
                wit::Validation::Ready => "ready".into(),
                wit::Validation::Unknown => "unknown".into(),
            },
            "get-secret" => {
                let v = bound.get_secret(&sref).await?;
                let mut m = serde_yaml::Mapping::new();
                m.insert("sha256".into(), sha(&v.value).into());
                if expect["value"]["version"].is_string() {
                    m.insert("version".into(), v.version.unwrap_or_default().into());
                }
                m.into()
            }
            "find-secrets" => {
                let f = &call["find"];
                let find = wit::FindRequest { path: text(&f["path"]), name_regexp: text(&f["nameRegexp"]), tags: vec![] };
                let entries: BTreeMap<String, String> =
                    bound.find_secrets(&find).await?.into_iter().map(|e| (e.key, sha(&e.value))).collect();
                serde_yaml::to_value(entries).unwrap()
            }
            other => panic!("op {other} not covered here"),
        })
    }
    .await;
    let elapsed = started.elapsed();
    let within = Duration::from_millis(expect["withinMs"].as_u64().unwrap_or(deadline.as_millis() as u64 + 1000));
    if elapsed > within {
        return Err(format!("took {elapsed:?}, more than {within:?}"));
    }
    match (outcome, expect["error"].as_mapping()) {
        (Err(e), Some(want)) => {
            let want_variant = want.get("variant").and_then(Value::as_str).unwrap();
            if variant(&e) != want_variant {
                return Err(format!("expected {want_variant}, got {e:?}"));
            }
            match (&e, want.get("retryAfterMs").and_then(Value::as_u64), want.get("field").and_then(Value::as_str)) {
                (wit::ProviderError::Throttled(t), Some(ms), _) if t.retry_after_ms != Some(ms) => {
                    Err(format!("expected retry-after {ms} ms, got {:?}", t.retry_after_ms))
                }
                (wit::ProviderError::InvalidConfig(c), _, Some(field)) if c.field != field => {
                    Err(format!("expected field {field}, got {}", c.field))
                }
                _ => Ok(()),
            }
        }
        (Ok(got), None) => {
            let key = ["value", "entries", "validation", "egress"].into_iter().find(|k| !expect[*k].is_null()).unwrap();
            if &got == &expect[key] { Ok(()) } else { Err(format!("expected {key} {:?}, got {got:?}", expect[key])) }
        }
        (Ok(_), Some(want)) => Err(format!("expected error {want:?}, got a value")),
        (Err(e), None) => Err(format!("expected success, got {e:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webkv_passes_its_fixtures() {
    let mut findings = Vec::new();
    for (name, case) in fixtures() {
        if let Err(f) = run("webkv", &case).await {
            findings.push(format!("{name}: {f}"));
        }
    }
    assert!(findings.is_empty(), "{findings:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_twin_fails_the_cases_it_breaks() {
    let mut failed = Vec::new();
    for (name, case) in fixtures() {
        if let Err(f) = run("broken", &case).await {
            assert!(!f.contains("from-"), "{f}");
            failed.push(name);
        }
    }
    // Exactly the cases whose error mapping is broken; the telemetry ping
    // after a success is for the runner's `contacted` check, not seen here.
    assert_eq!(failed, ["forbidden", "not-found", "throttled"]);
}
