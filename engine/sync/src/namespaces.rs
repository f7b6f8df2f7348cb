//! Namespace selection: ClusterExternalSecret fan-out and ClusterSecretStore
//! `conditions`, evaluated against given Namespace objects.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use lockstep_api::types::ClusterSecretStoreCondition;
use lockstep_api::v1::{ClusterExternalSecret, ExternalSecret};

use crate::hash::FORCE_SYNC_ANNOTATION;
use crate::plan::compile;
use crate::SyncError;

/// Whether a label selector matches a label set (Kubernetes semantics: all
/// of `matchLabels` and all `matchExpressions`; an empty selector matches
/// everything).
pub fn selector_matches(field: &str, sel: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, SyncError> {
    if let Some(ml) = &sel.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return Ok(false);
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let values = e.values.clone().unwrap_or_default();
        let bad = |reason: &str| SyncError::InvalidSelector { field: format!("{field}.matchExpressions[{i}]"), reason: reason.into() };
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => return Err(bad("In/NotIn need values")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(bad("Exists/DoesNotExist take no values")),
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => return Err(bad("unknown operator")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn labels_of(ns: &Namespace) -> BTreeMap<String, String> {
    let mut labels = ns.metadata.labels.clone().unwrap_or_default();
    // The apiserver sets this label on every namespace; manifests for `render` may omit it.
    if let Some(name) = &ns.metadata.name {
        labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| name.clone());
    }
    labels
}

/// Namespaces a ClusterExternalSecret targets: the union of `namespaces`,
/// `namespaceSelector` and `namespaceSelectors` (ORed), sorted. Terminating
/// namespaces are included; the caller skips creating into them.
pub fn ces_namespaces(ces: &ClusterExternalSecret, namespaces: &[Namespace]) -> Result<Vec<String>, SyncError> {
    let spec = &ces.spec;
    let mut selectors: Vec<(String, &LabelSelector)> = Vec::new();
    if let Some(s) = &spec.namespace_selector {
        selectors.push(("spec.namespaceSelector".into(), s));
    }
    for (i, s) in spec.namespace_selectors.iter().enumerate() {
        selectors.push((format!("spec.namespaceSelectors[{i}]"), s));
    }
    let names: BTreeSet<&str> = spec.namespaces.iter().map(|n| n.0.as_str()).collect();
    let mut out = BTreeSet::new();
    for ns in namespaces {
        let Some(name) = ns.metadata.name.as_deref() else { continue };
        let labels = labels_of(ns);
        let mut hit = labels.get("kubernetes.io/metadata.name").is_some_and(|n| names.contains(n.as_str()));
        for (field, sel) in &selectors {
            if hit {
                break;
            }
            hit = selector_matches(field, sel, &labels)?;
        }
        if hit {
            out.insert(name.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

/// The name of the ExternalSecrets a ClusterExternalSecret creates.
pub fn ces_external_secret_name(ces: &ClusterExternalSecret) -> String {
    ces.spec
        .external_secret_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ces.metadata.name.clone().unwrap_or_default())
}

/// The ExternalSecret a ClusterExternalSecret wants in `namespace`: its
/// metadata (labels/annotations set, force-sync mirrored), the spec
/// verbatim, and a controller ownerReference when the CES has a UID.
pub fn ces_external_secret(ces: &ClusterExternalSecret, namespace: &str) -> ExternalSecret {
    let meta = ces.spec.external_secret_metadata.clone().unwrap_or_default();
    let mut annotations = meta.annotations;
    if let Some(v) = ces.metadata.annotations.as_ref().and_then(|a| a.get(FORCE_SYNC_ANNOTATION)) {
        annotations.insert(FORCE_SYNC_ANNOTATION.into(), v.clone());
    }
    let owner = ces.metadata.uid.as_ref().map(|uid| OwnerReference {
        api_version: format!("{}/v1", lockstep_api::GROUP),
        kind: "ClusterExternalSecret".into(),
        name: ces.metadata.name.clone().unwrap_or_default(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    ExternalSecret {
        metadata: ObjectMeta {
            name: Some(ces_external_secret_name(ces)),
            namespace: Some(namespace.to_string()),
            labels: (!meta.labels.is_empty()).then_some(meta.labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: ces.spec.external_secret_spec.clone(),
        status: None,
    }
}

/// Whether a ClusterSecretStore's `conditions` let `namespace` use it: no
/// conditions allow every namespace; otherwise any selector, name or regex
/// of any condition must match (RE2, unanchored). An invalid selector or
/// regex is an error (the store's Ready=False reason), never a silent allow.
pub fn store_allows_namespace(conditions: &[ClusterSecretStoreCondition], namespace: &Namespace) -> Result<bool, SyncError> {
    if conditions.is_empty() {
        return Ok(true);
    }
    let name = namespace.metadata.name.as_deref().unwrap_or_default();
    let labels = labels_of(namespace);
    for (i, c) in conditions.iter().enumerate() {
        if c.namespaces.iter().any(|n| n.0 == name) {
            return Ok(true);
        }
        if let Some(sel) = &c.namespace_selector
            && selector_matches(&format!("spec.conditions[{i}].namespaceSelector"), sel, &labels)?
        {
            return Ok(true);
        }
        for (j, re) in c.namespace_regexes.iter().enumerate() {
            if compile(&format!("spec.conditions[{i}].namespaceRegexes[{j}]"), re)?.is_match(name) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Checks every regex and selector of a store's conditions (store validation).
pub fn validate_store_conditions(conditions: &[ClusterSecretStoreCondition]) -> Result<(), SyncError> {
    let empty = BTreeMap::new();
    for (i, c) in conditions.iter().enumerate() {
        if let Some(sel) = &c.namespace_selector {
            selector_matches(&format!("spec.conditions[{i}].namespaceSelector"), sel, &empty)?;
        }
        for (j, re) in c.namespace_regexes.iter().enumerate() {
            compile(&format!("spec.conditions[{i}].namespaceRegexes[{j}]"), re)?;
        }
    }
    Ok(())
}
