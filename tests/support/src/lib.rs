//! The local control plane for Lockstep's tests and demo.
//!
//! Real parts where they exist: etcd, kube-apiserver and kube-controller-manager
//! built by `tests/cluster/install.sh`. Around them, servers written here: a fake
//! Microsoft Entra ID token endpoint that verifies service-account JWTs against
//! the apiserver's own JWKS, an IMDS-shaped managed-identity endpoint, and a Key
//! Vault data-plane endpoint whose front (the gateway) verifies access tokens,
//! answers with Key Vault's challenge, counts requests and injects faults.
//!
//! Tests use [`TestEnv::shared`]; the demo and `make test` use the
//! `lockstep-testenv` binary (`up` / `down` / `status`); [`chart`] renders the Helm chart.
#![deny(unsafe_code)]

pub mod admin;
pub mod chart;
pub mod aws;
pub mod cluster;
pub mod entra;
pub mod env;
pub mod fakes;
pub mod gateway;
pub mod pki;
pub mod proc;
pub mod state;
pub mod time;
pub mod tls;
pub mod tools;
pub mod vault;

pub use env::{EntraHandle, GatewayHandle, SecretOptions, TestEnv, VaultHandle};
pub use gateway::Fault;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("control-plane tools missing ({0}); run `make tools` (tests/cluster/install.sh)")]
    ToolsMissing(PathBuf),
    #[error("spawning {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("starting {what}: {detail}")]
    Start { what: String, detail: String },
    #[error("pki: {0}")]
    Pki(String),
    #[error("http: {0}")]
    Http(String),
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub(crate) fn http(e: impl std::fmt::Display) -> Self {
        Error::Http(e.to_string())
    }
}
