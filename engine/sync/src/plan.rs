//! The fetch plan: which provider calls an ExternalSecret needs, as plain
//! values. Two items asking the same store for the same remote reference
//! share one [`Fetch`]; the controller can dedupe further across
//! ExternalSecrets by the same key (plus its credential scope).

use std::collections::{BTreeMap, HashMap};

use lockstep_api::types::{
    DeletionPolicy, ExternalSecretFind, MetadataPolicy, RemoteRef, SecretStoreRef, SourceRef, StoreKind,
};
use lockstep_api::v1::ExternalSecretSpec;
use regex::Regex;

use crate::SyncError;

/// A store as an ExternalSecret in `namespace` resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey {
    pub kind: StoreKind,
    pub name: String,
    /// The ExternalSecret's namespace for a SecretStore; none for a ClusterSecretStore.
    pub namespace: Option<String>,
}

impl StoreKey {
    fn resolve(r: &SecretStoreRef, namespace: &str) -> StoreKey {
        let kind = r.kind();
        StoreKey {
            kind,
            name: r.name.clone(),
            namespace: (kind == StoreKind::SecretStore).then(|| namespace.to_string()),
        }
    }
}

impl std::fmt::Display for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// What the provider is asked for (the WIT `secret-ref`): the parts of a
/// remote reference that change the answer. Decoding, conversion and the
/// null-byte policy are applied afterwards and are not part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRequest {
    pub key: String,
    pub version: Option<String>,
    pub property: Option<String>,
    pub metadata_policy: MetadataPolicy,
}

impl From<&RemoteRef> for SecretRequest {
    fn from(r: &RemoteRef) -> Self {
        SecretRequest {
            key: r.key.clone(),
            version: r.version.clone().filter(|v| !v.is_empty()),
            property: r.property.clone().filter(|p| !p.is_empty()),
            metadata_policy: r.metadata_policy.unwrap_or_default(),
        }
    }
}

/// The WIT `find-request`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindRequest {
    pub path: Option<String>,
    pub name_regexp: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl From<&ExternalSecretFind> for FindRequest {
    fn from(f: &ExternalSecretFind) -> Self {
        FindRequest {
            path: f.path.clone().filter(|p| !p.is_empty()),
            name_regexp: f.name.as_ref().and_then(|n| n.regexp.clone()).filter(|r| !r.is_empty()),
            tags: f.tags.clone(),
        }
    }
}

/// One provider call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    /// `get-secret` (`spec.data[]`).
    GetSecret(SecretRequest),
    /// `get-secret-map` (`spec.dataFrom[].extract`).
    GetSecretMap(SecretRequest),
    /// `find-secrets` (`spec.dataFrom[].find`).
    FindSecrets(FindRequest),
}

/// A provider call against a store: the dedupe key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fetch {
    pub store: StoreKey,
    pub call: Call,
}

/// Which part of the spec an item comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemSource {
    Data(usize),
    DataFrom(usize),
}

impl std::fmt::Display for ItemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemSource::Data(i) => write!(f, "spec.data[{i}]"),
            ItemSource::DataFrom(i) => write!(f, "spec.dataFrom[{i}]"),
        }
    }
}

/// One data/dataFrom item and the fetch that serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedItem {
    pub source: ItemSource,
    /// Index into [`FetchPlan::fetches`].
    pub fetch: usize,
}

/// The provider calls of one ExternalSecret, deduplicated, and the items in
/// processing order (dataFrom in order, then data: later wins, data wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchPlan {
    pub fetches: Vec<Fetch>,
    pub items: Vec<PlannedItem>,
}

impl FetchPlan {
    /// The distinct stores the plan uses (for class, condition and readiness checks).
    pub fn stores(&self) -> Vec<&StoreKey> {
        let mut out: Vec<&StoreKey> = self.fetches.iter().map(|f| &f.store).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Checks the spec for what the CRD schema cannot (see
/// `lockstep_api::rules::RECONCILE_TIME_CHECKS`) and for features Lockstep
/// does not support, then computes the fetch plan.
pub fn plan(spec: &ExternalSecretSpec, namespace: &str) -> Result<FetchPlan, SyncError> {
    validate(spec)?;
    let default_store = spec.secret_store_ref.as_ref();
    let mut fetches: Vec<Fetch> = Vec::new();
    let mut index: HashMap<Fetch, usize> = HashMap::new();
    let mut items = Vec::new();
    let mut add = |source: ItemSource, fetch: Fetch| {
        let next = fetches.len();
        let i = *index.entry(fetch.clone()).or_insert(next);
        if i == next {
            fetches.push(fetch);
        }
        items.push(PlannedItem { source, fetch: i });
    };

    for (i, item) in spec.data_from.iter().enumerate() {
        let source = ItemSource::DataFrom(i);
        let store = store_for(source, item.source_ref.as_ref(), default_store, namespace)?;
        let call = match (&item.extract, &item.find) {
            (Some(extract), None) => Call::GetSecretMap(extract.into()),
            (None, Some(find)) => Call::FindSecrets(find.into()),
            _ => {
                return Err(SyncError::InvalidSpec {
                    field: source.to_string(),
                    reason: "needs exactly one of extract, find or sourceRef.generatorRef".into(),
                });
            }
        };
        add(source, Fetch { store, call });
    }
    for (i, item) in spec.data.iter().enumerate() {
        let source = ItemSource::Data(i);
        let store = store_for(source, item.source_ref.as_ref(), default_store, namespace)?;
        add(source, Fetch { store, call: Call::GetSecret((&item.remote_ref).into()) });
    }
    Ok(FetchPlan { fetches, items })
}

fn store_for(
    source: ItemSource,
    source_ref: Option<&SourceRef>,
    default: Option<&SecretStoreRef>,
    namespace: &str,
) -> Result<StoreKey, SyncError> {
    if let Some(sr) = source_ref {
        if sr.generator_ref.is_some() {
            return Err(SyncError::Unsupported { what: format!("{source}.sourceRef.generatorRef (generators)") });
        }
        if let Some(store) = &sr.store_ref {
            return Ok(StoreKey::resolve(store, namespace));
        }
    }
    match default {
        Some(store) if !store.name.is_empty() => Ok(StoreKey::resolve(store, namespace)),
        _ => Err(SyncError::NoStore { item: source.to_string() }),
    }
}

/// Reconcile-time checks: what ESO's webhook rejects but a CEL rule cannot
/// check cheaply, and what Lockstep does not support (named, never ignored).
pub fn validate(spec: &ExternalSecretSpec) -> Result<(), SyncError> {
    if spec.data.is_empty() && spec.data_from.is_empty() {
        return Err(SyncError::InvalidSpec { field: "spec".into(), reason: "either data or dataFrom should be specified".into() });
    }
    let target = spec.target.clone().unwrap_or_default();
    if target.manifest.is_some() {
        return Err(SyncError::Unsupported { what: "spec.target.manifest (generic targets)".into() });
    }
    if let Some(t) = &target.template {
        if let Some(v) = t.engine_version.as_deref().filter(|v| !v.is_empty() && *v != "v2") {
            return Err(SyncError::Unsupported { what: format!("spec.target.template.engineVersion {v}") });
        }
        for (i, tf) in t.template_from.iter().enumerate() {
            if let Some(target) = tf.target.as_deref()
                && lockstep_templates::TemplateTarget::parse(target).is_none()
            {
                return Err(SyncError::InvalidSpec {
                    field: format!("spec.target.template.templateFrom[{i}].target"),
                    reason: "must be Data, Annotations or Labels".into(),
                });
            }
        }
    }
    if target.deletion_policy() == DeletionPolicy::Retain {
        let mut seen = std::collections::HashSet::new();
        for d in &spec.data {
            if !seen.insert(d.secret_key.as_str()) {
                return Err(SyncError::DuplicateSecretKey { key: d.secret_key.clone() });
            }
        }
    }
    for (i, item) in spec.data_from.iter().enumerate() {
        if let Some(re) = item.find.as_ref().and_then(|f| f.name.as_ref()).and_then(|n| n.regexp.as_deref()) {
            compile(&format!("spec.dataFrom[{i}].find.name.regexp"), re)?;
        }
        for (j, rw) in item.rewrite.iter().enumerate() {
            let field = format!("spec.dataFrom[{i}].rewrite[{j}]");
            if let Some(r) = &rw.regexp {
                compile(&format!("{field}.regexp.source"), &r.source)?;
            }
        }
    }
    Ok(())
}

/// Compiles an RE2-style expression (the `regex` crate's syntax is RE2's).
pub(crate) fn compile(field: &str, re: &str) -> Result<Regex, SyncError> {
    Regex::new(re).map_err(|e| SyncError::InvalidRegex { field: field.to_string(), reason: first_line(&e.to_string()) })
}

fn first_line(s: &str) -> String {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_string()
}
