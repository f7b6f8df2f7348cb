//! From provider results to the provider data map, in ESO's order: dataFrom
//! items in order (later wins), then data[] on top. Per dataFrom item: rewrite
//! (or, without rewrite, key conversion) → key validation → decoding →
//! null-byte check. Per data[] item: decoding → null-byte check.

use std::collections::BTreeMap;

use lockstep_api::types::{CreationPolicy, DeletionPolicy, Rewrite};
use lockstep_api::v1::ExternalSecretSpec;
use lockstep_templates::Renderer;

use crate::keys::{check_null_bytes, convert_keys, decode, validate_keys};
use crate::plan::{FetchPlan, ItemSource, compile};
use crate::SyncError;

/// What the provider answered to one [`crate::plan::Fetch`]. Errors other
/// than not-found never reach this crate: the caller keeps the Secret as it
/// is and reports them.
#[derive(Clone, PartialEq, Eq)]
pub enum FetchResult {
    /// `get-secret`.
    Value(Vec<u8>),
    /// `get-secret-map` / `find-secrets`.
    Map(BTreeMap<String, Vec<u8>>),
    /// The provider's not-found.
    NotFound,
}

impl std::fmt::Debug for FetchResult {
    // Values stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchResult::Value(v) => write!(f, "Value(<{} bytes>)", v.len()),
            FetchResult::Map(m) => write!(f, "Map({:?})", m.keys().collect::<Vec<_>>()),
            FetchResult::NotFound => write!(f, "NotFound"),
        }
    }
}

/// An item skipped because its remote secret does not exist (deletionPolicy
/// Delete or Merge): ESO's `MissingProviderSecret` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingItem {
    pub source: ItemSource,
    pub remote_key: Option<String>,
}

/// The provider data of one ExternalSecret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderData {
    pub data: BTreeMap<String, Vec<u8>>,
    pub missing: Vec<MissingItem>,
}

impl std::fmt::Debug for ProviderData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderData").field("keys", &self.data.keys().collect::<Vec<_>>()).field("missing", &self.missing).finish()
    }
}

/// Builds the provider data map. `results[i]` answers `plan.fetches[i]`.
/// `renderer` runs rewrite `transform` templates.
pub fn resolve(
    spec: &ExternalSecretSpec,
    plan: &FetchPlan,
    results: &[FetchResult],
    renderer: &Renderer,
) -> Result<ProviderData, SyncError> {
    assert_eq!(results.len(), plan.fetches.len(), "one result per planned fetch");
    let deletion = spec.target.as_ref().map(|t| t.deletion_policy()).unwrap_or_default();
    let mut out = ProviderData::default();
    for item in &plan.items {
        let result = &results[item.fetch];
        match item.source {
            ItemSource::DataFrom(i) => {
                let df = &spec.data_from[i];
                let remote_key = df.extract.as_ref().map(|e| e.key.clone());
                let map = match result {
                    FetchResult::Map(m) => m.clone(),
                    FetchResult::NotFound => {
                        not_found(deletion, item.source, remote_key, &mut out)?;
                        continue;
                    }
                    FetchResult::Value(_) => return Err(SyncError::ResultShape { item: item.source.to_string(), expected: "map" }),
                };
                let (conversion, decoding, null_policy) = match (&df.extract, &df.find) {
                    (Some(e), _) => (e.conversion_strategy, e.decoding_strategy, e.null_byte_policy),
                    (_, Some(f)) => (f.conversion_strategy, f.decoding_strategy, f.null_byte_policy),
                    _ => (None, None, None),
                };
                let mut map = if df.rewrite.is_empty() {
                    convert_keys(conversion.unwrap_or_default(), map)?
                } else {
                    rewrite(i, &df.rewrite, map, renderer)?
                };
                validate_keys(&mut map)?;
                for (k, v) in map {
                    let v = decode(decoding.unwrap_or_default(), &k, v)?;
                    check_null_bytes(null_policy.unwrap_or_default(), &k, &v)?;
                    out.data.insert(k, v);
                }
            }
            ItemSource::Data(i) => {
                let d = &spec.data[i];
                let value = match result {
                    FetchResult::Value(v) => v.clone(),
                    FetchResult::NotFound => {
                        not_found(deletion, item.source, Some(d.remote_ref.key.clone()), &mut out)?;
                        continue;
                    }
                    FetchResult::Map(_) => return Err(SyncError::ResultShape { item: item.source.to_string(), expected: "single-secret" }),
                };
                let value = decode(d.remote_ref.decoding_strategy.unwrap_or_default(), &d.secret_key, value)?;
                check_null_bytes(d.remote_ref.null_byte_policy.unwrap_or_default(), &d.secret_key, &value)?;
                out.data.insert(d.secret_key.clone(), value);
            }
        }
    }
    Ok(out)
}

/// Retain: a missing remote secret is an error. Delete / Merge: skip the item.
fn not_found(deletion: DeletionPolicy, source: ItemSource, remote_key: Option<String>, out: &mut ProviderData) -> Result<(), SyncError> {
    if deletion == DeletionPolicy::Retain {
        let item = match &remote_key {
            Some(k) => format!("{source} (key: {k})"),
            None => source.to_string(),
        };
        return Err(SyncError::NotFound { item });
    }
    out.missing.push(MissingItem { source, remote_key });
    Ok(())
}

/// One rewrite operation as a key-to-key function.
type KeyRename<'a> = Box<dyn Fn(&str) -> Result<String, SyncError> + 'a>;

/// Applies rewrite operations in order to the keys of one dataFrom map.
pub fn rewrite(
    item: usize,
    ops: &[Rewrite],
    mut map: BTreeMap<String, Vec<u8>>,
    renderer: &Renderer,
) -> Result<BTreeMap<String, Vec<u8>>, SyncError> {
    for (j, op) in ops.iter().enumerate() {
        let field = format!("spec.dataFrom[{item}].rewrite[{j}]");
        let rename: KeyRename<'_> = match (&op.regexp, &op.transform, &op.merge) {
            (Some(r), None, None) => {
                let re = compile(&format!("{field}.regexp.source"), &r.source)?;
                let target = r.target.clone();
                Box::new(move |k: &str| Ok(re.replace_all(k, target.as_str()).into_owned()))
            }
            (None, Some(t), None) => {
                let template = t.template.clone();
                Box::new(move |k: &str| Ok(renderer.transform_key(&template, k)?))
            }
            (None, None, Some(m)) => {
                map = crate::merge::rewrite_merge(&field, m, map)?;
                continue;
            }
            _ => return Err(SyncError::InvalidSpec { field, reason: "needs exactly one of regexp, transform or merge".into() }),
        };
        let mut next = BTreeMap::new();
        for (k, v) in map {
            // Keys are visited in sorted order, so a collision resolves the same way every time.
            next.insert(rename(&k)?, v);
        }
        map = next;
    }
    Ok(map)
}

/// What to do when the provider data is empty (ESO §2.3 step 6). A typed
/// outcome: deleting is the caller's decision, taken only after it checked
/// that the Secret is controlled by this ExternalSecret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmptyDataOutcome {
    /// deletionPolicy Delete with creationPolicy Owner: the Secret may be deleted.
    DeleteSecret,
    /// deletionPolicy Delete without Owner: nothing is deleted; an error condition.
    DeleteRefused { creation_policy: CreationPolicy },
    /// deletionPolicy Retain: keep the Secret untouched ("secret retained").
    RetainSecret,
    /// deletionPolicy Merge: continue; managed keys are removed.
    Continue,
}

/// The outcome for an empty provider data map.
pub fn on_empty_data(spec: &ExternalSecretSpec) -> EmptyDataOutcome {
    let target = spec.target.clone().unwrap_or_default();
    match target.deletion_policy() {
        DeletionPolicy::Delete if target.creation_policy() == CreationPolicy::Owner => EmptyDataOutcome::DeleteSecret,
        DeletionPolicy::Delete => EmptyDataOutcome::DeleteRefused { creation_policy: target.creation_policy() },
        DeletionPolicy::Retain => EmptyDataOutcome::RetainSecret,
        DeletionPolicy::Merge => EmptyDataOutcome::Continue,
    }
}
