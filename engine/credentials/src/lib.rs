//! The credential capability of Lockstep plugins.
//!
//! A plugin never gets a Kubernetes client. It asks the host, through the WIT
//! `credentials` interface, for a key of a Secret, the annotations of a
//! ServiceAccount, a TokenRequest token or an operator-granted ambient
//! credential. This crate decides whether to answer and fetches the answer:
//!
//! * [`CredentialBackend`] is the one interface every backend implements
//!   ([`FileBackend`] for `plugin run` / `render`; the kube-backed one lives
//!   with the controllers). Backends do no policy: they read what they are asked.
//! * [`ScopedCredentials`] is the policy layer shared by all backends, built
//!   once per isolation unit. It honours only references that appear in the
//!   store's own spec at the paths the plugin's metadata declares
//!   ([`StoreReferences::collect`]), applies ESO's cross-namespace rules
//!   ([`StoreScope`]), issues tokens only for declared audiences (never the
//!   apiserver's own) with a bounded lifetime, and serves ambient credentials
//!   only by name when the operator granted them ([`AmbientGrants`]).
//! * [`IsolationUnit`] says which calls may share a plugin instance.
//!
//! Errors ([`CredentialError`]) carry names, keys and paths, never values.
//!
//! ```no_run
//! # async fn demo(manifests: &str, config: serde_json::Value) -> Result<(), lockstep_credentials::CredentialError> {
//! use std::sync::Arc;
//! use lockstep_credentials::*;
//! let backend = Arc::new(FileBackend::from_yaml(manifests)?);
//! let store = StoreScope {
//!     kind: StoreKind::SecretStore, name: "vault".into(), namespace: Some("team-a".into()),
//!     uid: "uid-1".into(), generation: 3, provider_config: config,
//!     consumer_namespace: Some("team-a".into()),
//! };
//! let plugin = PluginDeclarations {
//!     credential_refs: vec![DeclaredRef::secret_key("auth.clientSecret")],
//!     token_audiences: vec![], ambient: vec![],
//! };
//! let creds = ScopedCredentials::new(backend, store, plugin, Arc::new(CredentialPolicy::default()), AmbientGrants::default())?;
//! let unit = creds.isolation_unit();
//! let value = creds.secret_key(&SecretKeyRequest { name: "azure".into(), key: "client-secret".into(), namespace: None }).await?;
//! # let _ = (unit, value); Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod ambient;
mod backend;
mod error;
mod file;
mod policy;
mod refs;
mod unit;

pub use ambient::{AmbientGrants, AmbientSource};
pub use backend::{CredentialBackend, IssuedToken, TokenRequest};
pub use error::CredentialError;
pub use file::FileBackend;
pub use policy::{
    CredentialPolicy, PluginDeclarations, ScopedCredentials, SecretKeyRequest,
    ServiceAccountRequest,
};
pub use refs::{DeclaredRef, RefKind, SecretKeyRef, ServiceAccountRef, StoreReferences};
pub use unit::{CredentialScope, IsolationUnit, StoreKind, StoreScope};
