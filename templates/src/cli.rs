//! Offline rendering for `lockstep template` (ESO's `esoctl template` analog).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;

use crate::{Renderer, RenderedSecret, TemplateSpec};

/// Errors of the offline renderer (file and format problems, or the template).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error(transparent)]
    Template(#[from] crate::TemplateError),
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read { path: path.display().to_string(), source })
}

/// Loads template data from a YAML/JSON file: either a plain mapping of
/// key → string, or a Secret-like object with `data` (base64) and/or
/// `stringData`.
pub fn load_data(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, CliError> {
    let fmt_err = |message: String| CliError::Format { path: path.display().to_string(), message };
    let doc: serde_yaml::Value = serde_yaml::from_str(&read(path)?).map_err(|e| fmt_err(format!("not YAML/JSON: {e}")))?;
    let map = doc.as_mapping().ok_or_else(|| fmt_err("expected a mapping".into()))?;
    let mut out = BTreeMap::new();
    let secret_like = map.contains_key("data") || map.contains_key("stringData");
    let text = |v: &serde_yaml::Value| -> Option<String> {
        match v {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    if secret_like {
        if let Some(d) = map.get("data").and_then(|d| d.as_mapping()) {
            for (k, v) in d {
                let (Some(k), Some(v)) = (text(k), text(v)) else { return Err(fmt_err("data values must be strings".into())) };
                let bytes = base64::engine::general_purpose::STANDARD.decode(v.trim()).map_err(|_| fmt_err(format!("data key {k} is not base64")))?;
                out.insert(k, bytes);
            }
        }
        if let Some(d) = map.get("stringData").and_then(|d| d.as_mapping()) {
            for (k, v) in d {
                let (Some(k), Some(v)) = (text(k), text(v)) else { return Err(fmt_err("stringData values must be strings".into())) };
                out.insert(k, v.into_bytes());
            }
        }
    } else {
        for (k, v) in map {
            let (Some(k), Some(v)) = (text(k), text(v)) else { return Err(fmt_err("values must be strings".into())) };
            out.insert(k, v.into_bytes());
        }
    }
    Ok(out)
}

/// Loads a template file: a [`TemplateSpec`] as YAML/JSON when it parses as
/// one (a mapping with `data`, `templateFrom`, ...), otherwise the whole file
/// is a single template rendered to the key `template`.
pub fn load_spec(path: &Path) -> Result<TemplateSpec, CliError> {
    let text = read(path)?;
    if let Ok(spec) = serde_yaml::from_str::<TemplateSpec>(&text)
        && (!spec.data.is_empty() || !spec.template_from.is_empty() || !spec.metadata.labels.is_empty() || !spec.metadata.annotations.is_empty())
    {
        return Ok(spec);
    }
    let mut spec = TemplateSpec::default();
    spec.data.insert("template".into(), text);
    Ok(spec)
}

/// Renders `template_file` against `data_file` with `renderer` (built with
/// the same function configuration as the controller).
pub fn render_files(renderer: &Renderer, template_file: &Path, data_file: &Path) -> Result<RenderedSecret, CliError> {
    let spec = load_spec(template_file)?;
    let data = load_data(data_file)?;
    Ok(renderer.render(&spec, &data)?)
}
