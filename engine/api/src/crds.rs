//! The CRDs Lockstep installs: one per kind, serving v1 (storage) and
//! v1beta1 (same schema, conversion None).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::crd::merge_crds;
use kube::CustomResourceExt;

use crate::{v1, v1beta1};

/// All CRDs, in a stable order: stores first (ExternalSecrets reference them).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        merged(v1::SecretStore::crd(), v1beta1::SecretStore::crd()),
        merged(v1::ClusterSecretStore::crd(), v1beta1::ClusterSecretStore::crd()),
        merged(v1::ExternalSecret::crd(), v1beta1::ExternalSecret::crd()),
        merged(v1::ClusterExternalSecret::crd(), v1beta1::ClusterExternalSecret::crd()),
    ]
}

fn merged(v1: CustomResourceDefinition, v1beta1: CustomResourceDefinition) -> CustomResourceDefinition {
    // Both come from one macro with the same names and scope, so merging cannot fail.
    let crd = merge_crds(vec![v1, v1beta1], "v1").expect("v1 and v1beta1 CRDs share names and scope");
    let mut value = serde_json::to_value(&crd).expect("a CRD always serialises");
    strip_nullable(&mut value);
    serde_json::from_value(value).expect("stripping nullable keeps a valid CRD")
}

/// Optional Rust fields come out of schemars as `nullable` with `null` in
/// their enums. ESO's CRDs have neither: an explicit `null` in a manifest is
/// then pruned by the apiserver instead of stored, so `has(self.x)` in CEL
/// and absent-means-default in the engine agree.
fn strip_nullable(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("nullable");
            if let Some(serde_json::Value::Array(values)) = map.get_mut("enum") {
                values.retain(|e| !e.is_null());
            }
            map.values_mut().for_each(strip_nullable);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nullable),
        _ => {}
    }
}

/// One CRD as a YAML document (no leading `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    serde_yaml::to_string(crd).expect("a CRD always serialises")
}

/// All CRDs as one multi-document YAML stream, as `lockstep crds` prints it.
pub fn crds_yaml() -> String {
    crds().iter().map(|c| format!("---\n{}", to_yaml(c))).collect()
}

/// The file name a CRD is committed under in `charts/lockstep/files/crds/`
/// (`<plural>.<group>.yaml`, as the apiserver names the object).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}
