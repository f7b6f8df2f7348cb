//! The desired Secret: templates applied (through `lockstep-templates`),
//! merged with existing keys for creationPolicy Merge/CreateOrMerge, plus
//! the labels and annotations ESO puts on managed Secrets.

use std::collections::BTreeMap;

use lockstep_api::types::{CreationPolicy, DecodingStrategy, ExternalSecretTemplate, TemplateMergePolicy, TemplateScope};
use lockstep_api::v1::ExternalSecretSpec;
use lockstep_templates as tpl;
use lockstep_templates::Renderer;

use crate::hash::{CREATED_BY_LABEL, DATA_HASH_ANNOTATION, MANAGED_LABEL, created_by, data_hash};
use crate::SyncError;

/// ConfigMaps and Secrets of the ExternalSecret's namespace that
/// `templateFrom` reads, fetched by the caller (see [`template_objects`]).
#[derive(Clone, Default)]
pub struct TemplateObjects {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// Which kind of object a `templateFrom` item reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TemplateObjectKind {
    ConfigMap,
    Secret,
}

/// The ConfigMaps and Secrets `templateFrom` needs, in the ExternalSecret's namespace.
pub fn template_objects(spec: &ExternalSecretSpec) -> Vec<(TemplateObjectKind, String)> {
    let mut out = Vec::new();
    if let Some(t) = spec.target.as_ref().and_then(|t| t.template.as_ref()) {
        for tf in &t.template_from {
            if let Some(cm) = &tf.config_map {
                out.push((TemplateObjectKind::ConfigMap, cm.name.clone()));
            }
            if let Some(s) = &tf.secret {
                out.push((TemplateObjectKind::Secret, s.name.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The ExternalSecret a Secret is built for.
pub struct SecretSource<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub spec: &'a ExternalSecretSpec,
    /// Template syntax chosen for this ExternalSecret (annotation `lockstep.dev/template-syntax`).
    pub syntax: tpl::Syntax,
}

/// What the Secret should look like after this sync.
#[derive(Clone, PartialEq, Eq)]
pub struct DesiredSecret {
    pub name: String,
    pub namespace: String,
    /// None keeps the existing type (the API defaults a new Secret to Opaque).
    pub type_: Option<String>,
    pub data: BTreeMap<String, Vec<u8>>,
    /// Labels and annotations this ExternalSecret sets; others on an existing
    /// Secret are the caller's to keep (ESO keeps foreign ones).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub finalizers: Vec<String>,
    pub immutable: bool,
    /// creationPolicy Owner: set a controller ownerReference to the ExternalSecret.
    pub owned: bool,
}

impl std::fmt::Debug for DesiredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredSecret")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("type_", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .field("immutable", &self.immutable)
            .field("owned", &self.owned)
            .finish()
    }
}

/// The target Secret's name: `target.name`, else the ExternalSecret's name.
pub fn target_name(es_name: &str, spec: &ExternalSecretSpec) -> String {
    spec.target.as_ref().and_then(|t| t.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| es_name.to_string())
}

/// Builds the desired Secret. `provider_data` comes from [`crate::resolve`];
/// `existing_foreign_data` is the existing Secret's data minus the keys this
/// ExternalSecret wrote before (used for creationPolicy Merge/CreateOrMerge only).
pub fn desired_secret(
    es: &SecretSource<'_>,
    provider_data: &BTreeMap<String, Vec<u8>>,
    objects: &TemplateObjects,
    existing_foreign_data: Option<&BTreeMap<String, Vec<u8>>>,
    renderer: &Renderer,
) -> Result<DesiredSecret, SyncError> {
    let target = es.spec.target.clone().unwrap_or_default();
    let creation = target.creation_policy();
    let mut data = match creation {
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge => existing_foreign_data.cloned().unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    let (mut labels, mut annotations, type_, finalizers) = match &target.template {
        None => {
            data.extend(provider_data.iter().map(|(k, v)| (k.clone(), v.clone())));
            (es.labels.clone(), es.annotations.clone(), None, Vec::new())
        }
        Some(t) => {
            let spec = template_spec(t, es.syntax, objects)?;
            let rendered = renderer.render(&spec, provider_data)?;
            data.extend(rendered.data);
            let finalizers = t.metadata.as_ref().map(|m| m.finalizers.clone()).unwrap_or_default();
            (rendered.labels, rendered.annotations, rendered.secret_type, finalizers)
        }
    };
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let owned = creation == CreationPolicy::Owner;
    if owned {
        labels.insert(CREATED_BY_LABEL.into(), created_by(es.namespace, es.name));
    } else {
        labels.remove(CREATED_BY_LABEL);
    }
    annotations.insert(DATA_HASH_ANNOTATION.into(), data_hash(&data));
    Ok(DesiredSecret {
        name: target_name(es.name, es.spec),
        namespace: es.namespace.to_string(),
        type_,
        data,
        labels,
        annotations,
        finalizers,
        immutable: target.immutable.unwrap_or(false),
        owned,
    })
}

/// `spec.target.template` as the templates crate takes it, with the
/// templateFrom objects filled in.
fn template_spec(t: &ExternalSecretTemplate, syntax: tpl::Syntax, objects: &TemplateObjects) -> Result<tpl::TemplateSpec, SyncError> {
    let mut template_from = Vec::new();
    for (i, tf) in t.template_from.iter().enumerate() {
        let target = match tf.target.as_deref() {
            None => tpl::TemplateTarget::Data,
            Some(s) => tpl::TemplateTarget::parse(s).ok_or_else(|| SyncError::InvalidSpec {
                field: format!("spec.target.template.templateFrom[{i}].target"),
                reason: "must be Data, Annotations or Labels".into(),
            })?,
        };
        let values_decoding_strategy = match tf.values_decoding_strategy.unwrap_or_default() {
            DecodingStrategy::None => tpl::DecodingStrategy::None,
            DecodingStrategy::Base64 => tpl::DecodingStrategy::Base64,
            DecodingStrategy::Base64Url => tpl::DecodingStrategy::Base64URL,
            DecodingStrategy::Auto => tpl::DecodingStrategy::Auto,
        };
        let items = |r: &lockstep_api::types::TemplateRef| -> Vec<tpl::TemplateRef> {
            r.items
                .iter()
                .map(|it| tpl::TemplateRef {
                    key: it.key.clone(),
                    template_as: match it.template_as.unwrap_or_default() {
                        TemplateScope::Values => tpl::TemplateScope::Values,
                        TemplateScope::KeysAndValues => tpl::TemplateScope::KeysAndValues,
                    },
                })
                .collect()
        };
        // ESO processes configMap, secret and literal of one item in this order.
        let mut sources = Vec::new();
        if let Some(cm) = &tf.config_map {
            let data = objects.config_maps.get(&cm.name).ok_or_else(|| SyncError::MissingTemplateObject { kind: "ConfigMap", name: cm.name.clone() })?;
            sources.push(tpl::TemplateSource::ConfigMap { name: cm.name.clone(), data: data.clone(), items: items(cm) });
        }
        if let Some(s) = &tf.secret {
            let data = objects.secrets.get(&s.name).ok_or_else(|| SyncError::MissingTemplateObject { kind: "Secret", name: s.name.clone() })?;
            sources.push(tpl::TemplateSource::Secret { name: s.name.clone(), data: data.clone(), items: items(s) });
        }
        if let Some(l) = &tf.literal {
            sources.push(tpl::TemplateSource::Literal(l.clone()));
        }
        template_from.extend(sources.into_iter().map(|source| tpl::TemplateFrom { source, target, values_decoding_strategy }));
    }
    Ok(tpl::TemplateSpec {
        syntax,
        engine_version: t.engine_version.clone().unwrap_or_default(),
        secret_type: t.type_.clone().filter(|s| !s.is_empty()),
        merge_policy: match t.merge_policy.unwrap_or_default() {
            TemplateMergePolicy::Replace => tpl::MergePolicy::Replace,
            TemplateMergePolicy::Merge => tpl::MergePolicy::Merge,
        },
        metadata: tpl::TemplateMetadata {
            labels: t.metadata.as_ref().map(|m| m.labels.clone()).unwrap_or_default(),
            annotations: t.metadata.as_ref().map(|m| m.annotations.clone()).unwrap_or_default(),
        },
        data: t.data.clone(),
        template_from,
    })
}
