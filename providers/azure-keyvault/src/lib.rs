//! # Azure Key Vault provider (`spec.provider.azurekv`)
//!
//! A Lockstep plugin component with the behaviour of ESO's Azure Key Vault
//! provider (`providers/v1/azure/keyvault`): the same store fields, the same
//! `remoteRef` forms (`name`, `secret/`, `cert/` → DER, `key/` → JWK JSON),
//! `property` with the dotted-key fallback, `metadataPolicy: Fetch` (tags and
//! `attribute.*`), `dataFrom.extract` and `dataFrom.find` (name regexp, tags,
//! paged listing, disabled secrets skipped).
//!
//! ## Authentication
//!
//! * **WorkloadIdentity** with `serviceAccountRef`: the host (never this
//!   component) reads the service account's annotations and issues a
//!   TokenRequest token for `api://AzureADTokenExchange` (+ the ref's
//!   audiences); the component exchanges it at
//!   `{authority}/{tenant}/oauth2/v2.0/token` (client credentials with a
//!   jwt-bearer client assertion, scope `{vault resource}/.default`).
//!   Client ID: `authSecretRef.clientId`, then the `azure.workload.identity/client-id`
//!   annotation; tenant ID: `authSecretRef.tenantId`, `tenantId`, the
//!   `tenant-id` annotation, then `AZURE_TENANT_ID` if granted. Unlike ESO,
//!   two sources naming the *same* ID are not a conflict.
//!   Without `serviceAccountRef`, the engine's own mounted token
//!   (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//!   `AZURE_AUTHORITY_HOST`) — only where the operator granted those ambient
//!   credentials.
//! * **ServicePrincipal** with a client secret, or a client certificate (a PEM
//!   certificate + RSA key; the assertion is an RS256 JWT with `x5t#S256`).
//! * **ManagedIdentity** through IMDS (`169.254.169.254`, `Metadata: true`,
//!   optional `identityId`), reachable only where the operator granted it.
//!
//! Access tokens are cached per (tenant, client, scope, credential
//! fingerprint) in the instance until 5 minutes before `expires_in` (halfway
//! for short-lived tokens); the service-account token likewise. The host keeps
//! one instance per isolation unit, so the seed's ClusterSecretStore does one
//! Entra exchange per token lifetime. There is no retry here: 429/503 come
//! back as `throttled(retry-after)` and the engine decides when to call again.
//!
//! ## Why not the official `azure_identity` / `azure_security_keyvault_*` crates
//!
//! They build for `wasm32-wasip2` with default features off, an `HttpClient`
//! adapter and a wasi `AsyncRuntime` (see the project's wasm notes). They are
//! not used, after a time-boxed look, because:
//!
//! * `azure_identity`'s `ClientCertificateCredential` sits behind its
//!   `client_certificate` feature, which depends on `openssl` (C), which does
//!   not build for `wasm32-wasip2` here; the certificate path would be
//!   hand-written anyway (as a custom `ClientAssertion`).
//! * `cert/` and `key/` need two further crates
//!   (`azure_security_keyvault_certificates`, `_keys`): ~150 crates in the
//!   guest graph and about twice the component size, on a 2-core build machine.
//! * The SDK's Key Vault client authenticates through the challenge flow: an
//!   unauthenticated request and a 401 before every fresh client, i.e. extra
//!   vault round trips per instance, and Lowkey Vault's challenge needs
//!   `verify_challenge_resource = false`.
//! * Retry-After handling, the token cache key (which must include a
//!   credential fingerprint and be scoped to the host's isolation unit), and
//!   the throttled/denied mapping would all be configured *against* the SDK's
//!   defaults (retry policy, per-credential cache, `Io` error kinds that it
//!   retries on a host denial).
//!
//! What remains is small: one OAuth2 client-credentials POST and three GETs
//! plus a paged list, over the SDK's blocking `wasi:http` client. Crypto is
//! pure Rust (`rsa` 0.10 on constant-time `crypto-bigint`, `sha2`), with no RNG
//! needed (PKCS#1 v1.5 signatures are deterministic).
//!
//! The Key Vault REST api-version is pinned to 7.6 (Azure and Lowkey Vault 7.x).
//!
//! ## Tests
//!
//! * Pure parts (config, Entra errors, JWT assertion, response shaping,
//!   find filter, ID precedence, cache timing) natively:
//!   `cargo test --manifest-path providers/Cargo.toml -p lockstep-provider-azure-keyvault`.
//! * `conformance/`: recorded exchanges replayed by `lockstep plugin test`.
//! * `engine/azure-tests`: the built component in the real plugin host against
//!   the local control plane (real apiserver TokenRequest, the verifying fake
//!   Entra ID, the vault gateway), under the real hostnames.

#![deny(unsafe_code)]

pub mod assertion;
pub mod auth;
pub mod config;
pub mod entra;
pub mod keyvault;

use lockstep_provider_sdk::prelude::*;
use lockstep_provider_sdk::{EgressRule, json};

use crate::config::{AuthType, AzureKv, Checked, TOKEN_EXCHANGE_AUDIENCE};
use crate::keyvault::{Kind, Vault, metadata_map, parse_key, select_metadata, select_property};

pub struct AzureKeyVault;

/// Every credential reference of the spec: (config path, namespace as written).
fn reference_namespaces(spec: &AzureKv) -> Vec<(&'static str, Option<&str>)> {
    let mut out = Vec::new();
    if let Some(r) = &spec.auth_secret_ref {
        let refs = [
            ("authSecretRef.clientId", &r.client_id),
            ("authSecretRef.tenantId", &r.tenant_id),
            ("authSecretRef.clientSecret", &r.client_secret),
            ("authSecretRef.clientCertificate", &r.client_certificate),
        ];
        out.extend(
            refs.into_iter()
                .filter_map(|(p, r)| r.as_ref().map(|r| (p, r.namespace.as_deref()))),
        );
    }
    if let Some(sa) = &spec.service_account_ref {
        out.push(("serviceAccountRef", sa.namespace.as_deref()));
    }
    out
}

fn checked(store: &Store<AzureKv>) -> Result<Checked> {
    config::check(store.config.clone())
}

impl Provider for AzureKeyVault {
    type Config = AzureKv;

    fn metadata() -> PluginMetadata {
        let mut m = PluginMetadata::new("azure-keyvault", env!("CARGO_PKG_VERSION"), "azurekv")
            .description("Azure Key Vault secrets, certificates and keys (Workload Identity, Service Principal, Managed Identity)")
            .secret_key_ref("authSecretRef.clientId")
            .secret_key_ref("authSecretRef.tenantId")
            .secret_key_ref("authSecretRef.clientSecret")
            .secret_key_ref("authSecretRef.clientCertificate")
            .service_account_ref("serviceAccountRef")
            .token_audience(TOKEN_EXCHANGE_AUDIENCE);
        for name in auth::AMBIENT {
            m = m.ambient_credential(name);
        }
        m
    }

    fn egress(store: &Store<AzureKv>) -> Result<Vec<EgressRule>> {
        let c = checked(store)?;
        let mut rules = vec![
            c.vault_target.egress_rule(),
            EgressRule::https(c.cloud.authority_host.clone()),
        ];
        if c.spec.auth_type == AuthType::ManagedIdentity {
            rules.push(EgressRule {
                scheme: "http".into(),
                host: auth::IMDS_HOST.into(),
                port: None,
            });
        }
        Ok(rules)
    }

    /// Like ESO: no remote call. A namespaced SecretStore may reference only
    /// its own namespace (ESO's webhook rule). A ClusterSecretStore whose
    /// references name no namespace resolves them per consuming namespace, so
    /// it is `unknown`.
    fn validate(store: &Store<AzureKv>) -> Result<Validation> {
        let c = checked(store)?;
        let namespaces = reference_namespaces(&c.spec);
        if store.kind == StoreKind::SecretStore {
            let own = store.namespace.as_deref().unwrap_or_default();
            if let Some((path, ns)) = namespaces.iter().find(|(_, ns)| ns.is_some_and(|ns| ns != own)) {
                return Err(ProviderError::invalid_config(
                    format!("{path}.namespace"),
                    format!(
                        "a SecretStore may only reference its own namespace {own:?}, not {:?}",
                        ns.unwrap_or_default()
                    ),
                ));
            }
            return Ok(Validation::Ready);
        }
        let referent = namespaces.iter().any(|(_, ns)| ns.is_none());
        Ok(if referent {
            Validation::Unknown
        } else {
            Validation::Ready
        })
    }

    fn get_secret(store: &Store<AzureKv>, r: &SecretRef) -> Result<SecretValue> {
        let c = checked(store)?;
        let (kind, name) = parse_key(&r.key)?;
        let bundle = Vault::connect(&c)?.get(kind, name, r.version.as_deref())?;
        let property = r.property.as_deref();
        let value = if r.metadata_policy == MetadataPolicy::Fetch {
            select_metadata(&bundle.metadata(), property)?
        } else if kind == Kind::Cert {
            bundle.payload(kind)?
        } else {
            select_property(bundle.payload(kind)?, property, &r.key)?
        };
        Ok(SecretValue {
            value,
            version: bundle.version(),
        })
    }

    fn get_secret_map(store: &Store<AzureKv>, r: &SecretRef) -> Result<Vec<SecretEntry>> {
        let c = checked(store)?;
        let (kind, name) = parse_key(&r.key)?;
        match kind {
            Kind::Cert => {
                return Err(ProviderError::internal(format!(
                    "dataFrom.extract cannot expand a certificate ({}); use data with cert/{name}, or extract secret/{name}",
                    r.key
                )));
            }
            Kind::Key => {
                return Err(ProviderError::internal(format!(
                    "dataFrom.extract cannot expand a key ({}); use data with key/{name}",
                    r.key
                )));
            }
            Kind::Secret => {}
        }
        let bundle = Vault::connect(&c)?.get(kind, name, r.version.as_deref())?;
        if r.metadata_policy == MetadataPolicy::Fetch {
            let map = metadata_map(name, &r.key, &bundle.metadata(), r.property.as_deref());
            return Ok(map.into_iter().map(|(key, value)| SecretEntry { key, value }).collect());
        }
        json::extract_map(&select_property(bundle.payload(kind)?, r.property.as_deref(), &r.key)?)
    }

    fn find_secrets(store: &Store<AzureKv>, find: &FindRequest) -> Result<Vec<SecretEntry>> {
        let c = checked(store)?;
        let re = match find.name_regexp.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => Some(regex_lite::Regex::new(r).map_err(|e| {
                ProviderError::internal(format!("find.name.regexp is not a valid regular expression: {e}"))
            })?),
            None => None,
        };
        let vault = Vault::connect(&c)?;
        let mut entries = Vec::new();
        for name in vault.list_secrets(re.as_ref(), &find.tags)? {
            let value = vault.get(Kind::Secret, &name, None)?.payload(Kind::Secret)?;
            entries.push(SecretEntry { key: name, value });
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}

export_provider!(AzureKeyVault);

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kind: StoreKind, ns: Option<&str>, json: &str) -> Store<AzureKv> {
        Store {
            config: lockstep_provider_sdk::config::parse(json).unwrap(),
            kind,
            name: "s".into(),
            namespace: ns.map(str::to_owned),
            provider_key: "azurekv".into(),
        }
    }

    const WI_NS: &str = r#"{"authType":"WorkloadIdentity","vaultUrl":"https://kv.vault.azure.net","serviceAccountRef":{"name":"sa","namespace":"external-secrets"}}"#;
    const WI: &str =
        r#"{"authType":"WorkloadIdentity","vaultUrl":"https://kv.vault.azure.net","serviceAccountRef":{"name":"sa"}}"#;

    #[test]
    fn validation_follows_eso() {
        let v = |kind, ns, json| AzureKeyVault::validate(&store(kind, ns, json));
        assert_eq!(
            v(StoreKind::ClusterSecretStore, None, WI_NS).unwrap(),
            Validation::Ready
        );
        assert_eq!(v(StoreKind::ClusterSecretStore, None, WI).unwrap(), Validation::Unknown);
        assert_eq!(
            v(StoreKind::SecretStore, Some("team-a"), WI).unwrap(),
            Validation::Ready
        );
        match v(StoreKind::SecretStore, Some("team-a"), WI_NS) {
            Err(ProviderError::InvalidConfig(c)) => {
                assert_eq!(c.field, "serviceAccountRef.namespace");
                assert!(
                    c.reason.contains("team-a") && c.reason.contains("external-secrets"),
                    "{}",
                    c.reason
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn egress_is_the_vault_and_the_authority() {
        let rules = AzureKeyVault::egress(&store(StoreKind::ClusterSecretStore, None, WI_NS)).unwrap();
        let hosts: Vec<(&str, &str)> = rules.iter().map(|r| (r.scheme.as_str(), r.host.as_str())).collect();
        assert_eq!(
            hosts,
            [("https", "kv.vault.azure.net"), ("https", "login.microsoftonline.com")]
        );
        let mi = r#"{"authType":"ManagedIdentity","vaultUrl":"https://kv.vault.usgovcloudapi.net:8443","environmentType":"USGovernmentCloud"}"#;
        let rules = AzureKeyVault::egress(&store(StoreKind::ClusterSecretStore, None, mi)).unwrap();
        let got: Vec<(&str, &str, Option<u16>)> = rules
            .iter()
            .map(|r| (r.scheme.as_str(), r.host.as_str(), r.port))
            .collect();
        assert_eq!(
            got,
            [
                ("https", "kv.vault.usgovcloudapi.net", Some(8443)),
                ("https", "login.microsoftonline.us", None),
                ("http", "169.254.169.254", None)
            ]
        );
    }

    #[test]
    fn metadata_declares_refs_audience_and_ambient() {
        let m = AzureKeyVault::metadata();
        assert_eq!(m.provider_key, "azurekv");
        let paths: Vec<&str> = m.credential_refs.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "authSecretRef.clientId",
                "authSecretRef.tenantId",
                "authSecretRef.clientSecret",
                "authSecretRef.clientCertificate",
                "serviceAccountRef"
            ]
        );
        assert_eq!(m.token_audiences, ["api://AzureADTokenExchange"]);
        assert_eq!(m.ambient_credentials.len(), 4);
    }
}
