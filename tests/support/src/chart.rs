//! `charts/lockstep` through the real `helm` (built by `tests/cluster/install.sh`):
//! the chart tests and the demo render it, and the demo runs the engine under the
//! RBAC it renders.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::Error;
use crate::tools::Tools;

/// The chart directory in this checkout.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/lockstep")
}

/// `helm` with its state kept out of the user's home.
pub fn helm() -> Result<Command, Error> {
    let tools = Tools::from_cache()?;
    let home = crate::tools::cache_dir().join("helm-home");
    let mut c = Command::new(tools.helm);
    c.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    Ok(c)
}

/// Runs `helm ARGS...`; stdout on success, stderr as the error.
pub fn run_helm(args: &[&str]) -> Result<String, Error> {
    let out = helm()?.args(args).output().map_err(|e| Error::Spawn("helm".into(), e))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(Error::Other(format!("helm {}: {}", args.join(" "), stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `helm template RELEASE charts/lockstep -n NAMESPACE [--set K=V]... [-f FILE]...`,
/// parsed into one JSON value per rendered object.
pub fn template(release: &str, namespace: &str, sets: &[&str], values_files: &[&Path]) -> Result<Vec<Value>, Error> {
    let chart = chart_dir();
    let mut args = vec!["template".to_owned(), release.to_owned(), chart.display().to_string(), "-n".into(), namespace.to_owned()];
    for s in sets {
        args.extend(["--set".to_owned(), (*s).to_owned()]);
    }
    for f in values_files {
        args.extend(["-f".to_owned(), f.display().to_string()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    parse_documents(&run_helm(&refs)?)
}

/// Splits a multi-document YAML stream into objects, skipping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| Error::Other(format!("rendered YAML: {e}")))?;
        if !v.is_null() {
            objects.push(v);
        }
    }
    Ok(objects)
}
