//! The template spec the engine hands in: plain, serde-friendly mirrors of
//! ESO's `spec.target.template`, with `templateFrom` objects already fetched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which syntax the template strings use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Syntax {
    /// ESO's Go `text/template` syntax (the default; what `engineVersion: v2` means).
    #[default]
    GoTemplate,
    /// Native minijinja syntax; opted into per ExternalSecret (see docs/templates.md).
    Jinja,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MergePolicy {
    #[default]
    Replace,
    Merge,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateScope {
    #[default]
    Values,
    KeysAndValues,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateTarget {
    #[default]
    Data,
    Annotations,
    Labels,
}

impl TemplateTarget {
    /// ESO accepts the target case-insensitively.
    pub fn parse(s: &str) -> Option<TemplateTarget> {
        match s.to_ascii_lowercase().as_str() {
            "" | "data" => Some(TemplateTarget::Data),
            "annotations" => Some(TemplateTarget::Annotations),
            "labels" => Some(TemplateTarget::Labels),
            _ => None,
        }
    }
}

/// Decoding applied to each rendered value of a `templateFrom` item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecodingStrategy {
    #[default]
    None,
    Base64,
    Base64URL,
    Auto,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub key: String,
    #[serde(default)]
    pub template_as: TemplateScope,
}

/// Where a `templateFrom` item's templates come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TemplateSource {
    /// A ConfigMap (its `data`, fetched by the engine) and the keys to use.
    ConfigMap { name: String, data: BTreeMap<String, String>, items: Vec<TemplateRef> },
    /// A Secret (its decoded `data`, fetched by the engine) and the keys to use.
    Secret { name: String, data: BTreeMap<String, Vec<u8>>, items: Vec<TemplateRef> },
    /// Inline template text, always rendered with the KeysAndValues scope.
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    pub source: TemplateSource,
    #[serde(default)]
    pub target: TemplateTarget,
    #[serde(default)]
    pub values_decoding_strategy: DecodingStrategy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `spec.target.template`, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TemplateSpec {
    pub syntax: Syntax,
    /// "" or "v2"; anything else is rejected.
    pub engine_version: String,
    /// Secret `type`; `None` keeps the existing type.
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    pub merge_policy: MergePolicy,
    pub metadata: TemplateMetadata,
    pub data: BTreeMap<String, String>,
    pub template_from: Vec<TemplateFrom>,
}

/// What a template produces. The engine merges it over existing Secret keys
/// for creationPolicy Merge/CreateOrMerge (that step is not the renderer's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedSecret {
    pub data: BTreeMap<String, Vec<u8>>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub secret_type: Option<String>,
}

/// Annotation on an ExternalSecret that selects the template syntax
/// (`go` or `jinja`); ESO ignores it, so the manifest stays valid for ESO.
pub const SYNTAX_ANNOTATION: &str = "lockstep.dev/template-syntax";

impl Syntax {
    /// Parses the annotation value.
    pub fn from_annotation(v: &str) -> Option<Syntax> {
        match v.trim().to_ascii_lowercase().as_str() {
            "go" | "gotemplate" | "go-template" => Some(Syntax::GoTemplate),
            "jinja" | "minijinja" => Some(Syntax::Jinja),
            _ => None,
        }
    }
}
