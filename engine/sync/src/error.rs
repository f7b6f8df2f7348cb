use lockstep_templates::TemplateError;

/// Why an ExternalSecret cannot be turned into Secret contents. Every
/// variant names keys, fields and objects, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("secret name collision during conversion: {key}")]
    KeyCollision { key: String },
    #[error("invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): {}", .keys.iter().map(|k| format!("key {k:?} has invalid characters or is longer than 253")).collect::<Vec<_>>().join(", "))]
    InvalidKeys { keys: Vec<String> },
    #[error("failed to decode value of key {key} with decodingStrategy {strategy}")]
    Decode { key: String, strategy: &'static str },
    #[error("value of key {key} contains a null byte (nullBytePolicy: Fail)")]
    NullByte { key: String },
    #[error("error processing {item}, err: Secret does not exist")]
    NotFound { item: String },
    #[error("{item}: the provider answered a {expected} request with a different result shape")]
    ResultShape { item: String, expected: &'static str },
    #[error("{what} is not supported by Lockstep")]
    Unsupported { what: String },
    #[error("{field}: invalid regular expression: {reason}")]
    InvalidRegex { field: String, reason: String },
    #[error("{item}: no store: set spec.secretStoreRef or sourceRef.storeRef")]
    NoStore { item: String },
    #[error("duplicate secretKey {key} in spec.data (not allowed with deletionPolicy Retain)")]
    DuplicateSecretKey { key: String },
    #[error("{field}: {reason}")]
    InvalidSpec { field: String, reason: String },
    #[error("{kind} {name} referenced by spec.target.template.templateFrom does not exist")]
    MissingTemplateObject { kind: &'static str, name: String },
    #[error("{field}: invalid label selector: {reason}")]
    InvalidSelector { field: String, reason: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
}
