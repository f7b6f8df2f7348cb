//! The CRDs on a real kube-apiserver: they install (structural, CEL within
//! the cost budget), accept the seed and the all-fields fixture, and refuse
//! one violating manifest per CEL rule with the rule's message.


use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use lockstep_api::{crds, rules};
use lockstep_testenv::TestEnv;
use serde_json::{Value, json};

async fn install(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("lockstep-api-tests").force();
    for crd in crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(&name, &pp, &Patch::Apply(&crd)).await.unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    }
    for crd in crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = api.get(&name).await.unwrap();
            let established = got.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "CRD {name} not established");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn api_for(client: &Client, doc: &Value, ns: &str) -> Api<DynamicObject> {
    let (group, version) = doc["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let kind = doc["kind"].as_str().unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    if kind.starts_with("Cluster") { Api::all_with(client.clone(), &ar) } else { Api::namespaced_with(client.clone(), ns, &ar) }
}

async fn create(client: &Client, doc: &Value, ns: &str) -> Result<(), kube::Error> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    api_for(client, doc, ns).create(&PostParams::default(), &obj).await.map(|_| ())
}

fn es(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name}, "spec": spec})
}

fn store(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": name}, "spec": spec})
}

fn data() -> Value {
    json!([{"secretKey": "a", "remoteRef": {"key": "k"}}])
}

#[tokio::test]
async fn crds_install_and_cel_rules_refuse_violations() {
    let env = TestEnv::shared().await;
    let client = env.client().await;
    install(&client).await;
    let ns = env.namespace("cel").await;

    // Valid objects are accepted, at v1 and at v1beta1.
    for text in [include_str!("../fixtures/all-fields.yaml"), include_str!("../../../../examples/seed/fake.yaml")] {
        for doc in serde_yaml::Deserializer::from_str(text) {
            let mut doc: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !doc["apiVersion"].as_str().unwrap_or("").starts_with("external-secrets.io/") {
                continue;
            }
            let m = doc["metadata"].as_object_mut().unwrap();
            m.remove("namespace");
            // Cluster-scoped names are global: keep them unique per run.
            let name = format!("{}-{}", m["name"].as_str().unwrap(), ns);
            m.insert("name".into(), json!(name));
            doc.as_object_mut().unwrap().remove("status");
            create(&client, &doc, &ns).await.unwrap_or_else(|e| panic!("valid {} {name} refused: {e}", doc["kind"]));
        }
    }

    let violations: Vec<(&rules::CelRule, Value)> = vec![
        (&rules::PROVIDER_ONE_KEY, store("empty-provider", json!({"provider": {}}))),
        (&rules::STORE_REFRESH_INTERVAL, store("neg-interval", json!({"provider": {"fake": {}}, "refreshInterval": -5}))),
        (&rules::STORE_REFRESH_INTERVAL, store("bad-interval", json!({"provider": {"fake": {}}, "refreshInterval": "soon"}))),
        (&rules::DATA_OR_DATA_FROM, es("no-data", json!({"secretStoreRef": {"name": "s"}}))),
        (&rules::DELETE_NEEDS_OWNER, es("delete-merge", json!({"secretStoreRef": {"name": "s"}, "data": data(), "target": {"creationPolicy": "Merge", "deletionPolicy": "Delete"}}))),
        (&rules::DELETE_NEEDS_OWNER, es("delete-none", json!({"secretStoreRef": {"name": "s"}, "data": data(), "target": {"creationPolicy": "None", "deletionPolicy": "Delete"}}))),
        (&rules::MERGE_DELETION_NEEDS_SECRET, es("merge-none", json!({"secretStoreRef": {"name": "s"}, "data": data(), "target": {"creationPolicy": "None", "deletionPolicy": "Merge"}}))),
        (&rules::TEMPLATE_FROM_TARGET, es("tf-target", json!({"secretStoreRef": {"name": "s"}, "data": data(), "target": {"template": {"templateFrom": [{"literal": "a: b", "target": "spec.x"}]}}}))),
        (&rules::BOOTSTRAP_TOKEN_TYPE, es("bootstrap", json!({"secretStoreRef": {"name": "s"}, "data": data(), "target": {"template": {"type": "bootstrap.kubernetes.io/token"}}}))),
        (&rules::SOURCE_REF_ONE, es("source-both", json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}, "sourceRef": {"storeRef": {"name": "x"}, "generatorRef": {"kind": "Password", "name": "p"}}}]}))),
        (&rules::DATA_FROM_ONE_SOURCE, es("df-two", json!({"secretStoreRef": {"name": "s"}, "dataFrom": [{"extract": {"key": "k"}, "find": {"name": {"regexp": "x"}}}]}))),
        (&rules::DATA_FROM_ONE_SOURCE, es("df-none", json!({"secretStoreRef": {"name": "s"}, "dataFrom": [{"rewrite": [{"regexp": {"source": "a", "target": "b"}}]}]}))),
        (&rules::REWRITE_ONE_OP, es("rw-two", json!({"secretStoreRef": {"name": "s"}, "dataFrom": [{"extract": {"key": "k"}, "rewrite": [{"regexp": {"source": "a", "target": "b"}, "transform": {"template": "x"}}]}]}))),
    ];
    let mut covered = std::collections::BTreeSet::new();
    for (rule, doc) in &violations {
        let err = create(&client, doc, &ns).await.expect_err(&format!("{} accepted a violation of {}", doc["metadata"]["name"], rule.id));
        let text = err.to_string();
        assert!(text.contains(rule.message), "{}: expected {:?} in {text}", rule.id, rule.message);
        covered.insert(rule.id);
    }
    let all: std::collections::BTreeSet<_> = rules::ALL.iter().map(|r| r.id).collect();
    assert_eq!(covered, all, "every CEL rule has a violating manifest");

    // The same rules guard the ExternalSecret spec embedded in a ClusterExternalSecret.
    let ces = json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret", "metadata": {"name": format!("ces-no-data-{ns}")},
        "spec": {"externalSecretSpec": {"secretStoreRef": {"name": "s"}}}});
    let err = create(&client, &ces, &ns).await.unwrap_err().to_string();
    assert!(err.contains(rules::DATA_OR_DATA_FROM.message), "{err}");

    // Plain schema checks: two provider keys, an invalid secretKey, an unknown policy.
    let two = store("two-providers", json!({"provider": {"fake": {}, "azurekv": {}}}));
    assert!(create(&client, &two, &ns).await.is_err());
    let bad_key = es("bad-key", json!({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "a/b", "remoteRef": {"key": "k"}}]}));
    assert!(create(&client, &bad_key, &ns).await.is_err());
    let bad_policy = es("bad-policy", json!({"secretStoreRef": {"name": "s"}, "data": data(), "target": {"creationPolicy": "Sometimes"}}));
    assert!(create(&client, &bad_policy, &ns).await.is_err());
}
