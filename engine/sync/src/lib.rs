//! Pure ExternalSecret resolution, shared by `lockstep render` and the
//! controllers: no Kubernetes client, no plugin runtime.
//!
//! 1. [`plan()`]: `spec.data[]` / `spec.dataFrom[]` → deduplicated provider
//!    calls ([`FetchPlan`]), after the reconcile-time spec checks.
//! 2. [`resolve()`]: provider results → the provider data map (rewrite, key
//!    conversion and validation, decoding, null bytes, not-found per
//!    deletionPolicy); [`on_empty_data`] for an empty map.
//! 3. [`desired_secret`]: templates (via `lockstep-templates`), merge with
//!    existing keys, managed/created-by labels and the ESO data-hash.
//! 4. [`namespaces`]: ClusterExternalSecret fan-out and ClusterSecretStore
//!    conditions.
//!
//! Values are bytes and never appear in errors or debug output.
#![forbid(unsafe_code)]

mod error;
pub mod hash;
pub mod keys;
mod merge;
pub mod namespaces;
pub mod plan;
pub mod resolve;
pub mod secret;

pub use error::SyncError;
pub use plan::{Call, Fetch, FetchPlan, FindRequest, ItemSource, PlannedItem, SecretRequest, StoreKey, plan, validate};
pub use resolve::{EmptyDataOutcome, FetchResult, MissingItem, ProviderData, on_empty_data, resolve};
pub use secret::{DesiredSecret, SecretSource, TemplateObjectKind, TemplateObjects, desired_secret, target_name, template_objects};
