//! Every ESO manifest we know of (eso.md §1/§4/§5 fields, the seed with its
//! placeholders filled) deserialises at v1 and at v1beta1, and serialises
//! back to the same JSON: no documented field is dropped.

use std::path::Path;

use lockstep_api::manifest::{self, Manifest};
use lockstep_api::{v1, v1beta1};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Deserialises `doc` into `T` and checks the JSON round trip (apiVersion and
/// kind are set by the type, so they are compared separately).
fn round_trip<T: DeserializeOwned + Serialize>(doc: &serde_json::Value, api_version: &str) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", doc["metadata"]["name"]));
    let mut back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back["apiVersion"], api_version);
    let mut want = doc.clone();
    for v in [&mut back, &mut want] {
        v.as_object_mut().unwrap().remove("apiVersion");
    }
    assert_eq!(back, want, "round trip changed {}", doc["metadata"]["name"]);
}

fn check_all_versions(text: &str) -> usize {
    let mut n = 0;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if doc.is_null() || !doc["apiVersion"].as_str().unwrap().starts_with("external-secrets.io/") {
            continue;
        }
        n += 1;
        match doc["kind"].as_str().unwrap() {
            "SecretStore" => {
                round_trip::<v1::SecretStore>(&doc, "external-secrets.io/v1");
                round_trip::<v1beta1::SecretStore>(&doc, "external-secrets.io/v1beta1");
            }
            "ClusterSecretStore" => {
                round_trip::<v1::ClusterSecretStore>(&doc, "external-secrets.io/v1");
                round_trip::<v1beta1::ClusterSecretStore>(&doc, "external-secrets.io/v1beta1");
            }
            "ExternalSecret" => {
                round_trip::<v1::ExternalSecret>(&doc, "external-secrets.io/v1");
                round_trip::<v1beta1::ExternalSecret>(&doc, "external-secrets.io/v1beta1");
            }
            "ClusterExternalSecret" => {
                round_trip::<v1::ClusterExternalSecret>(&doc, "external-secrets.io/v1");
                round_trip::<v1beta1::ClusterExternalSecret>(&doc, "external-secrets.io/v1beta1");
            }
            k => panic!("unexpected kind {k}"),
        }
    }
    n
}

#[test]
fn every_documented_field_round_trips() {
    assert_eq!(check_all_versions(include_str!("fixtures/all-fields.yaml")), 5);
}

#[test]
fn seed_manifests_round_trip() {
    let mut n = 0;
    for f in [
        "examples/seed/as-written/02-clustersecretstore.yaml",
        "examples/seed/as-written/03-clusterexternalsecret.yaml",
        "examples/seed/fixed/02-clustersecretstore.yaml",
        "examples/seed/fixed/03-clusterexternalsecret.yaml",
        "examples/seed/fake.yaml",
    ] {
        n += check_all_versions(&repo(f));
    }
    assert_eq!(n, 6);
}

#[test]
fn seed_parses_into_v1_types() {
    let docs = manifest::parse(&repo("examples/seed/fake.yaml")).unwrap();
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| match d {
            Manifest::Namespace(_) => "Namespace",
            Manifest::ClusterSecretStore(_) => "ClusterSecretStore",
            Manifest::ClusterExternalSecret(_) => "ClusterExternalSecret",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["Namespace", "Namespace", "ClusterSecretStore", "ClusterExternalSecret"]);
    let Manifest::ClusterExternalSecret(ces) = &docs[3] else { unreachable!() };
    let es = &ces.spec.external_secret_spec;
    assert_eq!(es.data[0].remote_ref.key, "grafana-admin-password");
    assert_eq!(es.target.as_ref().unwrap().template.as_ref().unwrap().data.len(), 2);
    let Manifest::ClusterSecretStore(css) = &docs[2] else { unreachable!() };
    assert_eq!(css.spec.provider.single().unwrap().0, "fake");
}

#[test]
fn unsupported_and_foreign_kinds_are_reported() {
    let docs = manifest::parse(
        "apiVersion: external-secrets.io/v1alpha1\nkind: PushSecret\nmetadata: {name: p}\n---\n\
         apiVersion: generators.external-secrets.io/v1alpha1\nkind: Password\nmetadata: {name: g}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
    )
    .unwrap();
    assert!(matches!(&docs[0], Manifest::Unsupported(id) if id.kind == "PushSecret"));
    assert!(matches!(&docs[1], Manifest::Unsupported(id) if id.kind == "Password"));
    assert!(matches!(&docs[2], Manifest::Other(id) if id.kind == "Deployment"));
}

#[test]
fn errors_never_quote_values() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: [hunter2-value]}\n";
    let err = manifest::parse(secret).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let es = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: e}\nspec:\n  target:\n    template:\n      data: {k: [hunter2-literal]}\n";
    let err = manifest::parse(es).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("ExternalSecret"), "{err}");
}
