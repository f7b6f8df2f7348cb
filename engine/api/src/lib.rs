//! Rust types of the External Secrets Operator resources
//! (`external-secrets.io` v1 and v1beta1) and the CRDs derived from them.
//!
//! - [`v1`] / [`v1beta1`]: SecretStore, ClusterSecretStore, ExternalSecret,
//!   ClusterExternalSecret, with identical schemas (conversion None; v1 is
//!   the storage version). The engine works with [`v1`]; a v1beta1 object
//!   deserialises into the v1 types unchanged.
//! - [`types`]: the field types both versions share.
//! - [`rules`]: the CEL rules the CRDs carry, and the invariants checked at
//!   reconcile time instead.
//! - [`crds`]: all CRDs (both versions merged per kind) as objects or YAML.
//! - [`manifest`]: multi-document YAML into typed objects (for `render`).
#![forbid(unsafe_code)]

pub mod crds;
pub mod manifest;
pub mod rules;
pub mod types;
mod versioned;

/// The API group of every ESO resource.
pub const GROUP: &str = "external-secrets.io";

/// `external-secrets.io/v1`: the storage version.
pub mod v1 {
    crate::versioned::eso_kinds!("v1", storage = true);
}

/// `external-secrets.io/v1beta1`: served for existing manifests (the seed
/// uses it), deprecated, same schema as v1.
pub mod v1beta1 {
    crate::versioned::eso_kinds!(
        "v1beta1",
        storage = false,
        deprecated = "external-secrets.io/v1beta1 is deprecated; use external-secrets.io/v1"
    );
}
