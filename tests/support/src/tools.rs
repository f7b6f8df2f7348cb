//! Where `tests/cluster/install.sh` put the control-plane binaries. The
//! script writes `$LOCKSTEP_CACHE/tools/manifest.env`; versions live only there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// `$LOCKSTEP_CACHE`, defaulting like the Makefile does.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOCKSTEP_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache"));
    base.join("lockstep")
}

#[derive(Clone, Debug)]
pub struct Tools {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

impl Tools {
    pub fn from_cache() -> Result<Self, Error> {
        let manifest = cache_dir().join("tools/manifest.env");
        let text = std::fs::read_to_string(&manifest).map_err(|_| Error::ToolsMissing(manifest.clone()))?;
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| -> Result<PathBuf, Error> {
            let p = vars.get(k).map(PathBuf::from).ok_or_else(|| Error::ToolsMissing(manifest.clone()))?;
            if Path::new(&p).exists() { Ok(p) } else { Err(Error::ToolsMissing(p)) }
        };
        Ok(Self {
            etcd: get("LOCKSTEP_ETCD")?,
            kube_apiserver: get("LOCKSTEP_KUBE_APISERVER")?,
            kube_controller_manager: get("LOCKSTEP_KUBE_CONTROLLER_MANAGER")?,
            kubectl: get("LOCKSTEP_KUBECTL")?,
            helm: get("LOCKSTEP_HELM")?,
        })
    }
}
