//! Lockstep's controllers: ExternalSecret, SecretStore / ClusterSecretStore and
//! ClusterExternalSecret reconcilers with ESO's semantics (minus its known faults),
//! scheduling by fetch key, prompt healing, leader election and metrics.
//!
//! The CLI embeds [`RunArgs`] and calls [`run`]; tests may build a [`ControllerConfig`]
//! directly.
#![forbid(unsafe_code)]

mod admin;
mod args;
mod clusterexternalsecret;
mod conditions;
mod config;
mod context;
pub mod credentials;
pub mod duration;
mod error;
mod externalsecret;
mod own_writes;
pub mod fetch;
pub mod lease;
pub mod metrics;
mod runtime;
mod stores;

pub use args::{LogFormatArg, RunArgs};
pub use config::{ControllerConfig, LeaderElection, LogFormat};
pub use error::Error;
pub use runtime::{init_logging, run};
