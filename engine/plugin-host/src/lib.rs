//! The wasmtime host of Lockstep's provider plugins.
//!
//! # Pieces
//!
//! * [`Sandbox`]: one wasmtime `Engine` per process (pooling allocator when
//!   the address space allows, else on-demand), the compile cache (a 0700
//!   directory of artifacts checked against the sha256 recorded when they
//!   were written; recompiled on any mismatch), the WASI every component may
//!   import (no filesystem, environment or sockets), the memory cap and the
//!   per-call deadline. World-independent: template-function components use
//!   it too (see the [`sandbox`] module docs).
//! * [`PluginHost`]: provider plugins (`lockstep:provider@0.1.0`, world
//!   `plugin`). [`PluginHost::load`] compiles and checks a [`PluginSource`]
//!   and reads its metadata; [`PluginHost::register`] maps a `spec.provider`
//!   key to it; [`PluginHost::bind`] turns a [`StoreBinding`] into a
//!   [`BoundStore`] whose `validate` / `get_secret` / `get_secret_map` /
//!   `find_secrets` run in instances of the store's isolation unit.
//! * Egress: every outbound request of every plugin goes through
//!   [`OutboundHttp::send`], checked against the unit's [`EgressGrant`] (the
//!   plugin's `egress(store)` answer within the operator's
//!   [`NetworkGrants`]) on the URL and on each resolved address, size-capped,
//!   and sent by one pooled reqwest client, or answered from a recording
//!   ([`HttpConfig::record`] / [`HttpConfig::replay`]).
//! * Operator grants: [`OperatorGrants`] (flag syntax in [`grants`]).
//! * Credentials: [`lockstep_credentials`], behind the WIT `credentials` imports.
//! * [`HostMetrics`]: denials and traps by plugin and reason.
//!
//! # Engine usage
//!
//! ```no_run
//! # async fn demo(manifests: &str, store: lockstep_credentials::StoreScope) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use lockstep_plugin_host::*;
//! let mut config = HostConfig::new("/var/cache/lockstep/compiled");
//! config.grants = OperatorGrants::from_flags(&["kind:ClusterSecretStore=metadata"], &[] as &[&str])?;
//! let host = PluginHost::new(config)?;
//! static FAKE: &[u8] = b"";  // include_bytes!(...) in the binary
//! host.load_and_register(&PluginSource::parse("builtin:fake", &[("fake", FAKE)])?).await?;
//! let backend = Arc::new(lockstep_credentials::FileBackend::from_yaml(manifests)?);
//! let bound = host.bind(StoreBinding { provider_key: "fake".into(), store, controller_class: None, credentials: backend })
//!     .map_err(|e| anyhow::anyhow!("{e:?}"))?;
//! let value = bound.get_secret(&wit::SecretRef { key: "k".into(), version: None, property: None,
//!     metadata_policy: wit::MetadataPolicy::None }).await;
//! # let _ = value; Ok(()) }
//! ```
//!
//! Errors reach the engine as [`wit::ProviderError`]: policy refusals as
//! `denied` (with the host and reason), a deadline as `unavailable("plugin
//! call exceeded its deadline of N ms")`, traps and the memory cap as
//! `internal("plugin trapped: ..." / "plugin exceeded its memory limit of N MiB")`.
#![deny(unsafe_code)]

mod artifact;
mod bindings;
mod cache;
mod describe;
pub mod egress;
pub mod grants;
mod host;
pub mod http;
pub mod imports;
mod metrics;
pub mod record;
pub mod sandbox;
mod source;
mod state;

pub use cache::CacheOutcome;
pub use describe::describe;
pub use egress::{Denial, DenyReason, EgressGrant, EgressRule};
pub use grants::{EffectiveGrants, GrantParseError, NetworkGrants, OperatorGrants};
pub use host::{BoundStore, HostConfig, LoadedPlugin, PluginHost, RecyclePolicy, StoreBinding};
pub use http::{HostOverride, HttpConfig, OutboundHttp};
pub use record::{Attempt, AttemptOutcome, Exchange, RecordedBody, Recording, Replayer};
pub use metrics::HostMetrics;
pub use sandbox::{CallError, CallLimits, CompiledComponent, PoolingMode, Sandbox, SandboxConfig, SandboxState, SandboxView};
pub use source::PluginSource;

/// The WIT types of `lockstep:provider@0.1.0` (records, variants, enums).
pub mod wit {
    pub use crate::bindings::lockstep::provider::types::*;
}

/// Errors of loading and configuring plugins (call errors are [`wit::ProviderError`]).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("wasmtime engine: {0}")]
    Engine(String),
    #[error("compile cache: {0}")]
    Cache(String),
    #[error("compiling component: {0}")]
    Compile(String),
    #[error("not a component: a core wasm module was given; build for wasm32-wasip2")]
    NotAComponent,
    #[error("import {import} refused: {reason}")]
    ForbiddenImport { import: String, reason: String },
    #[error("linking component: {0}")]
    Link(String),
    #[error("plugin metadata: {0}")]
    Metadata(String),
    #[error("plugin source: {0}")]
    Source(String),
    #[error("configuration: {0}")]
    Config(String),
}
