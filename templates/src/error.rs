use thiserror::Error;

/// Template failures. Messages name keys, functions and positions, never values.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unable to parse template at key {key}: {message}")]
    Parse { key: String, message: String },
    #[error("unable to execute template at key {key}: {message}")]
    Execute { key: String, message: String },
    #[error("error in {kind} {name}: missing key {key}")]
    MissingTemplateKey { kind: &'static str, name: String, key: String },
    #[error("could not unmarshal template to 'map[string][]byte': {0}")]
    KeysAndValues(String),
    #[error("failed to decode rendered template value for key {key}: {message}")]
    Decode { key: String, message: String },
    #[error("rendered {target} value for key {key} is not valid UTF-8")]
    NotUtf8 { key: String, target: &'static str },
    #[error("template in {kind} {name} key {key} is not valid UTF-8")]
    TemplateNotUtf8 { kind: &'static str, name: String, key: String },
    #[error("unsupported template engineVersion {0:?} (only v2)")]
    UnsupportedEngineVersion(String),
    #[error("invalid template function configuration: {0}")]
    Config(String),
}
