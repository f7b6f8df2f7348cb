use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::CredentialError;

/// Where an ambient credential of the engine's own pod comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmbientSource {
    /// An environment variable of the engine process.
    Env(String),
    /// A file, re-read on every request (projected tokens rotate).
    File(PathBuf),
}

impl std::str::FromStr for AmbientSource {
    type Err = String;
    /// `env:VAR` or `file:/path`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(Self::Env(var.to_string())),
            Some(("file", path)) if !path.is_empty() => Ok(Self::File(PathBuf::from(path))),
            _ => Err(format!("ambient source {s:?}: expected env:VAR or file:/path")),
        }
    }
}

/// Ambient credentials the operator granted, by name. Empty by default: a
/// plugin gets none unless operator configuration says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmbientGrants {
    sources: BTreeMap<String, AmbientSource>,
}

impl AmbientGrants {
    pub fn grant(&mut self, name: impl Into<String>, source: AmbientSource) {
        self.sources.insert(name.into(), source);
    }

    /// Parses `NAME=env:VAR` or `NAME=file:/path` (a CLI flag value).
    pub fn parse_definition(definition: &str) -> Result<(String, AmbientSource), String> {
        let (name, source) = definition
            .split_once('=')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| format!("ambient credential {definition:?}: expected NAME=env:VAR or NAME=file:/path"))?;
        Ok((name.to_string(), source.parse()?))
    }

    /// The subset whose names are in `names`.
    pub fn restricted_to<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Self {
        let sources = names
            .into_iter()
            .filter_map(|n| self.sources.get(n).map(|s| (n.to_string(), s.clone())))
            .collect();
        Self { sources }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub(crate) async fn read(&self, name: &str) -> Result<String, CredentialError> {
        let source = self
            .sources
            .get(name)
            .ok_or_else(|| CredentialError::denied(format!("ambient credential {name:?} is not granted by the operator")))?;
        match source {
            AmbientSource::Env(var) => std::env::var(var)
                .map_err(|_| CredentialError::Unavailable(format!("ambient credential {name:?}: environment variable {var} is not set"))),
            AmbientSource::File(path) => {
                let path = path.clone();
                let read = std::fs::read_to_string(&path);
                read.map(|s| s.trim_end().to_string()).map_err(|e| {
                    CredentialError::Unavailable(format!("ambient credential {name:?}: cannot read {}: {}", path.display(), e.kind()))
                })
            }
        }
    }
}
