//! # Writing a Lockstep provider
//!
//! A provider is a WebAssembly component (`wasm32-wasip2`, crate type
//! `cdylib`) that serves one `spec.provider.<key>` of SecretStores and
//! ClusterSecretStores. It implements the [`Provider`] trait and registers it
//! with [`export_provider!`]. The engine runs it in a sandbox: no filesystem,
//! no environment, no sockets; outbound HTTP only through [`http`] and only to
//! the destinations [`Provider::egress`] declares (and the operator allows);
//! Kubernetes credentials only through [`credentials`], and only those the
//! store's own spec references at the paths [`Provider::metadata`] declares.
//!
//! ```ignore
//! use lockstep_provider_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Config {
//!     url: String,
//!     token_secret_ref: SecretKeyRef, // declared below as a credential path
//! }
//!
//! struct Kv;
//!
//! impl Provider for Kv {
//!     type Config = Config;
//!
//!     fn metadata() -> PluginMetadata {
//!         PluginMetadata::new("kv", env!("CARGO_PKG_VERSION"), "kv")
//!             .description("A key-value service")
//!             .secret_key_ref("tokenSecretRef")
//!     }
//!
//!     fn egress(store: &Store<Config>) -> Result<Vec<EgressRule>> {
//!         Ok(vec![config::https_url("url", &store.config.url)?.egress_rule()])
//!     }
//!
//!     fn get_secret(store: &Store<Config>, r: &SecretRef) -> Result<SecretValue> {
//!         let token = String::from_utf8(store.config.token_secret_ref.fetch()?)
//!             .map_err(|_| ProviderError::invalid_config("tokenSecretRef", "token is not UTF-8"))?;
//!         let resp = http::Request::get(format!("{}/v1/{}", store.config.url, form::escape(&r.key)))
//!             .bearer(token.trim())
//!             .send()?
//!             .error_for_status()?;
//!         select_property(resp.into_body(), None, r)
//!     }
//! }
//!
//! export_provider!(Kv);
//! ```
//!
//! What the SDK does for you:
//!
//! * parses `config-json` into `Config` for every call; a mismatch becomes
//!   `invalid-config{field: "data[1].key", reason}` ([`config::parse`]);
//! * `get_secret_map` (extract) defaults to `get_secret` + [`json::extract_map`];
//!   unsupported operations default to a clear "not supported" error;
//! * maps HTTP statuses ([`ProviderError::from_status`]: 401, 403, 404, 429 and
//!   503 with `Retry-After`, 5xx) and `wasi:http` failures (a host denial is
//!   `denied`, connection failures and timeouts are `unavailable`);
//! * implements ESO's `remoteRef.property` lookup ([`json::property`]).
//!
//! Rules: never put a secret value in an error or log message (errors from
//! the SDK's JSON helpers never quote their input); keep state in
//! `thread_local!` caches only (instances are recycled at any time); ship
//! conformance fixtures under `conformance/` (see `docs/plugin-authoring.md`).
//!
//! The pure helpers ([`json`], [`form`], [`config`], [`error`], the request
//! builder) also compile natively, so they can be unit-tested with
//! `cargo test`; functions that call the host only work inside a component.

#![deny(unsafe_code)]

#[allow(unsafe_code, clippy::all, missing_docs)]
pub mod bindings;
#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod credentials;
pub mod error;
pub mod find;
pub mod form;
pub mod http;
pub mod json;
pub mod log;
#[cfg(feature = "sigv4")]
pub mod sigv4;
pub mod xml;

pub use bindings::lockstep::provider::types::{
    AuthFailure, ConfigIssue, CredentialRefKind, CredentialRefPath, EgressRule, FindRequest, MetadataPolicy,
    PluginMetadata, ProviderError, SecretEntry, SecretKeySelector, SecretRef, SecretValue, ServiceAccountSelector,
    ServiceAccountToken, StoreConfig, StoreKind, Throttle, Validation,
};
pub use error::Result;
/// The raw WASI bindings (clocks, random, http) for what the SDK does not wrap.
pub use wasip2;

/// Everything a provider usually needs.
pub mod prelude {
    pub use crate::credentials::{SecretKeyRef, ServiceAccountRef};
    pub use crate::{
        EgressRule, FindRequest, MetadataPolicy, PluginMetadata, Provider, ProviderError, Result, SecretEntry,
        SecretRef, SecretValue, Store, StoreKind, Validation, config, export_provider, form, http, json, log,
        select_property,
    };
}

/// A store as a provider sees it: its parsed config plus where it lives.
#[derive(Debug, Clone)]
pub struct Store<C> {
    pub config: C,
    pub kind: StoreKind,
    pub name: String,
    /// The store's namespace (SecretStore), `None` for a ClusterSecretStore.
    pub namespace: Option<String>,
    pub provider_key: String,
}

impl<C: serde::de::DeserializeOwned> Store<C> {
    /// Parses the store config the host passed.
    pub fn from_wit(store: &StoreConfig) -> Result<Store<C>> {
        Ok(Store {
            config: config::parse(&store.config_json)?,
            kind: store.kind,
            name: store.name.clone(),
            namespace: store.namespace.clone(),
            provider_key: store.provider_key.clone(),
        })
    }
}

impl<C> Store<C> {
    /// ESO's validation of credential references, without a remote call. `refs`
    /// are (config path, namespace as written) of every reference in the spec.
    /// A SecretStore may reference only its own namespace (else
    /// `invalid-config` at `<path>.namespace`); a ClusterSecretStore with a
    /// reference naming no namespace resolves it per consumer: `unknown`.
    pub fn validate_reference_namespaces(&self, refs: &[(&str, Option<&str>)]) -> Result<Validation> {
        if self.kind == StoreKind::SecretStore {
            let own = self.namespace.as_deref().unwrap_or_default();
            if let Some((path, ns)) = refs.iter().find(|(_, ns)| ns.is_some_and(|ns| ns != own)) {
                return Err(ProviderError::invalid_config(
                    format!("{path}.namespace"),
                    format!("a SecretStore may only reference its own namespace {own:?}, not {:?}", ns.unwrap_or_default()),
                ));
            }
            return Ok(Validation::Ready);
        }
        Ok(if refs.iter().any(|(_, ns)| ns.is_none()) { Validation::Unknown } else { Validation::Ready })
    }
}

/// A secret backend. Every method has a default except [`metadata`](Provider::metadata).
pub trait Provider {
    /// The provider's config: the JSON under `spec.provider.<key>`.
    type Config: serde::de::DeserializeOwned;

    /// Static facts: name, version, provider key, credential paths, audiences.
    fn metadata() -> PluginMetadata;

    /// The destinations a store with this config needs. Default: none.
    fn egress(_store: &Store<Self::Config>) -> Result<Vec<EgressRule>> {
        Ok(Vec::new())
    }

    /// Checks the config (and, where cheap, the credentials). The config has
    /// already parsed when this runs. Default: ready.
    fn validate(_store: &Store<Self::Config>) -> Result<Validation> {
        Ok(Validation::Ready)
    }

    /// One secret (`spec.data[].remoteRef`).
    fn get_secret(_store: &Store<Self::Config>, _ref: &SecretRef) -> Result<SecretValue> {
        Err(ProviderError::not_supported("get-secret"))
    }

    /// `dataFrom[].extract`. Default: [`get_secret`](Provider::get_secret), then the
    /// value as a JSON object ([`json::extract_map`]).
    fn get_secret_map(store: &Store<Self::Config>, r: &SecretRef) -> Result<Vec<SecretEntry>> {
        json::extract_map(&Self::get_secret(store, r)?.value)
    }

    /// `dataFrom[].find`.
    fn find_secrets(_store: &Store<Self::Config>, _find: &FindRequest) -> Result<Vec<SecretEntry>> {
        Err(ProviderError::not_supported("find"))
    }
}

/// Applies `remoteRef.property` (gjson path, ESO semantics) to a fetched value;
/// a missing property is `not-found`.
pub fn select_property(value: Vec<u8>, version: Option<String>, r: &SecretRef) -> Result<SecretValue> {
    let value = match r.property.as_deref() {
        None | Some("") => value,
        Some(path) => json::property(&value, path)
            .ok_or_else(|| ProviderError::not_found(format!("property {path} not found in secret {}", r.key)))?,
    };
    Ok(SecretValue { value, version })
}

impl PluginMetadata {
    /// Metadata with no credential paths, audiences or ambient credentials.
    pub fn new(name: &str, version: &str, provider_key: &str) -> PluginMetadata {
        PluginMetadata {
            name: name.into(),
            version: version.into(),
            provider_key: provider_key.into(),
            credential_refs: Vec::new(),
            token_audiences: Vec::new(),
            ambient_credentials: Vec::new(),
            description: String::new(),
        }
    }

    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    /// Declares a config path holding a `{name, key, namespace?}` Secret reference.
    pub fn secret_key_ref(mut self, path: &str) -> Self {
        self.credential_refs.push(CredentialRefPath { path: path.into(), kind: CredentialRefKind::SecretKeySelector });
        self
    }

    /// Declares a config path holding a `{name, namespace?, audiences?}` ServiceAccount reference.
    pub fn service_account_ref(mut self, path: &str) -> Self {
        self.credential_refs.push(CredentialRefPath { path: path.into(), kind: CredentialRefKind::ServiceAccountRef });
        self
    }

    /// An audience the plugin may request service-account tokens for.
    pub fn token_audience(mut self, audience: &str) -> Self {
        self.token_audiences.push(audience.into());
        self
    }

    /// An ambient credential the plugin can use when the operator grants it.
    pub fn ambient_credential(mut self, name: &str) -> Self {
        self.ambient_credentials.push(name.into());
        self
    }
}

/// Bridges a [`Provider`] to the generated `Guest` trait. Used by [`export_provider!`].
#[doc(hidden)]
pub struct Adapter<P>(std::marker::PhantomData<P>);

impl<P: Provider> bindings::exports::lockstep::provider::provider::Guest for Adapter<P> {
    fn metadata() -> PluginMetadata {
        P::metadata()
    }
    fn egress(store: StoreConfig) -> Result<Vec<EgressRule>> {
        P::egress(&Store::from_wit(&store)?)
    }
    fn validate(store: StoreConfig) -> Result<Validation> {
        P::validate(&Store::from_wit(&store)?)
    }
    fn get_secret(store: StoreConfig, r: SecretRef) -> Result<SecretValue> {
        P::get_secret(&Store::from_wit(&store)?, &r)
    }
    fn get_secret_map(store: StoreConfig, r: SecretRef) -> Result<Vec<SecretEntry>> {
        P::get_secret_map(&Store::from_wit(&store)?, &r)
    }
    fn find_secrets(store: StoreConfig, find: FindRequest) -> Result<Vec<SecretEntry>> {
        P::find_secrets(&Store::from_wit(&store)?, &find)
    }
}

/// Exports a [`Provider`] implementation as the component's `provider` interface.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[doc(hidden)]
        pub type __LockstepProviderExport = $crate::Adapter<$provider>;
        // Native builds (unit tests) export nothing: the component symbol
        // names are not valid in a native linker's version script.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_plugin!(__LockstepProviderExport with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sref(property: Option<&str>) -> SecretRef {
        SecretRef { key: "k".into(), version: None, property: property.map(Into::into), metadata_policy: MetadataPolicy::None }
    }

    #[test]
    fn property_selection() {
        let doc = br#"{"a":{"b":"c"}}"#.to_vec();
        assert_eq!(select_property(doc.clone(), None, &sref(None)).unwrap().value, doc);
        assert_eq!(select_property(doc.clone(), None, &sref(Some(""))).unwrap().value, doc);
        assert_eq!(select_property(doc.clone(), Some("v".into()), &sref(Some("a.b"))).unwrap(), SecretValue {
            value: b"c".to_vec(),
            version: Some("v".into())
        });
        assert_eq!(select_property(doc, None, &sref(Some("a.x"))).unwrap_err().variant(), "not-found");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Cfg {
        url: String,
    }

    #[test]
    fn store_parsing_reports_invalid_config() {
        let wit = StoreConfig {
            provider_key: "kv".into(),
            config_json: r#"{"url": 5}"#.into(),
            kind: StoreKind::ClusterSecretStore,
            name: "s".into(),
            namespace: None,
        };
        match Store::<Cfg>::from_wit(&wit).unwrap_err() {
            ProviderError::InvalidConfig(c) => assert_eq!(c.field, "url"),
            other => panic!("{other:?}"),
        }
        let ok = Store::<Cfg>::from_wit(&StoreConfig { config_json: r#"{"url":"https://x"}"#.into(), ..wit }).unwrap();
        assert_eq!((ok.config.url.as_str(), ok.kind, ok.namespace), ("https://x", StoreKind::ClusterSecretStore, None));
    }

    #[test]
    fn reference_namespaces() {
        let store = |kind, ns: Option<&str>| Store { config: (), kind, name: "s".into(), namespace: ns.map(Into::into), provider_key: "k".into() };
        let ss = store(StoreKind::SecretStore, Some("a"));
        assert_eq!(ss.validate_reference_namespaces(&[("auth.x", None), ("auth.y", Some("a"))]).unwrap(), Validation::Ready);
        match ss.validate_reference_namespaces(&[("auth.y", Some("b"))]).unwrap_err() {
            ProviderError::InvalidConfig(c) => assert_eq!(c.field, "auth.y.namespace"),
            other => panic!("{other:?}"),
        }
        let css = store(StoreKind::ClusterSecretStore, None);
        assert_eq!(css.validate_reference_namespaces(&[("auth.x", None)]).unwrap(), Validation::Unknown);
        assert_eq!(css.validate_reference_namespaces(&[("auth.x", Some("b"))]).unwrap(), Validation::Ready);
    }

    #[test]
    fn metadata_builder() {
        let md = PluginMetadata::new("kv", "1.0.0", "kv")
            .description("d")
            .secret_key_ref("auth.secretRef")
            .service_account_ref("auth.serviceAccountRef")
            .token_audience("aud")
            .ambient_credential("pod-token");
        assert_eq!(md.credential_refs.len(), 2);
        assert_eq!(md.credential_refs[1].kind, CredentialRefKind::ServiceAccountRef);
        assert_eq!((md.token_audiences.as_slice(), md.ambient_credentials.as_slice()), (&["aud".to_string()][..], &["pod-token".to_string()][..]));
    }
}
