//! `spec.provider.azurekv`: ESO's fields, their defaults, and what they mean
//! for endpoints. Pure: no host calls, unit-tested natively.

use lockstep_provider_sdk::credentials::{SecretKeyRef, ServiceAccountRef};
use lockstep_provider_sdk::http::Target;
use lockstep_provider_sdk::{ProviderError, Result};
use serde::Deserialize;

/// The audience Entra expects on a federated (workload identity) assertion.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The provider config, field for field as ESO's `AzureKVProvider`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureKv {
    #[serde(default)]
    pub auth_type: AuthType,
    pub vault_url: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub environment_type: EnvironmentType,
    #[serde(default)]
    pub auth_secret_ref: Option<AuthSecretRef>,
    #[serde(default)]
    pub service_account_ref: Option<ServiceAccountRef>,
    #[serde(default)]
    pub identity_id: Option<String>,
    /// Accepted for compatibility and ignored: this provider has one client (see the crate docs).
    #[serde(default, rename = "useAzureSDK")]
    pub _use_azure_sdk: Option<bool>,
    #[serde(default)]
    pub custom_cloud_config: Option<CustomCloud>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum AuthType {
    #[default]
    ServicePrincipal,
    ManagedIdentity,
    WorkloadIdentity,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum EnvironmentType {
    #[default]
    PublicCloud,
    USGovernmentCloud,
    ChinaCloud,
    GermanCloud,
    AzureStackCloud,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSecretRef {
    #[serde(default)]
    pub client_id: Option<SecretKeyRef>,
    #[serde(default)]
    pub tenant_id: Option<SecretKeyRef>,
    #[serde(default)]
    pub client_secret: Option<SecretKeyRef>,
    #[serde(default)]
    pub client_certificate: Option<SecretKeyRef>,
}

/// ESO's `customCloudConfig` (Azure Stack, sovereign clouds not built in).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomCloud {
    pub active_directory_endpoint: String,
    #[serde(default)]
    pub key_vault_endpoint: Option<String>,
    #[serde(default, rename = "keyVaultDNSSuffix")]
    pub key_vault_dns_suffix: Option<String>,
    #[serde(default)]
    pub resource_manager_endpoint: Option<String>,
}

/// Where tokens come from and which resource they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    /// `https://login.microsoftonline.com` (no trailing slash).
    pub authority: String,
    pub authority_host: String,
    /// `https://vault.azure.net`; the scope asked for is `<resource>/.default`.
    pub vault_resource: String,
}

impl Cloud {
    pub fn scope(&self) -> String {
        format!("{}/.default", self.vault_resource)
    }
}

/// A checked store config: everything a call needs, resolved once.
#[derive(Debug, Clone)]
pub struct Checked {
    pub spec: AzureKv,
    /// The vault origin without a trailing slash, e.g. `https://kv.vault.azure.net`.
    pub vault: String,
    pub vault_target: Target,
    pub cloud: Cloud,
}

/// Validates the config; errors name the field, as ESO's messages do.
pub fn check(spec: AzureKv) -> Result<Checked> {
    let vault_target = lockstep_provider_sdk::config::https_url("vaultUrl", &spec.vault_url)?;
    if vault_target.path_and_query.trim_end_matches('/') != "" {
        return Err(ProviderError::invalid_config(
            "vaultUrl",
            "vaultUrl must be the vault origin, without a path",
        ));
    }
    let vault = format!("https://{}", vault_target.authority);
    let cloud = cloud(&spec, &vault_target)?;
    if let Some(id) = spec.tenant_id.as_deref() {
        lockstep_provider_sdk::config::require("tenantId", id)?;
        check_tenant_id("tenantId", id)?;
    }
    if let Some(sa) = &spec.service_account_ref {
        lockstep_provider_sdk::config::require("serviceAccountRef.name", &sa.name)?;
    }
    let refs = spec.auth_secret_ref.clone().unwrap_or_default();
    match spec.auth_type {
        AuthType::ServicePrincipal => {
            if spec.auth_secret_ref.is_none() {
                return Err(ProviderError::invalid_config(
                    "authSecretRef",
                    "authType ServicePrincipal needs authSecretRef (clientId and clientSecret or clientCertificate)",
                ));
            }
            if refs.client_id.is_none() {
                return Err(ProviderError::invalid_config(
                    "authSecretRef.clientId",
                    "ServicePrincipal needs authSecretRef.clientId",
                ));
            }
            if spec.tenant_id.is_none() && refs.tenant_id.is_none() {
                return Err(ProviderError::invalid_config(
                    "tenantId",
                    "ServicePrincipal needs tenantId (or authSecretRef.tenantId)",
                ));
            }
            match (&refs.client_secret, &refs.client_certificate) {
                (None, None) => {
                    return Err(ProviderError::invalid_config(
                        "authSecretRef.clientSecret",
                        "ServicePrincipal needs authSecretRef.clientSecret or authSecretRef.clientCertificate",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(ProviderError::invalid_config(
                        "authSecretRef.clientCertificate",
                        "set either authSecretRef.clientSecret or authSecretRef.clientCertificate, not both",
                    ));
                }
                _ => {}
            }
        }
        AuthType::WorkloadIdentity => {
            if refs.client_secret.is_some() || refs.client_certificate.is_some() {
                return Err(ProviderError::invalid_config(
                    "authSecretRef",
                    "WorkloadIdentity uses a federated token; authSecretRef may only hold clientId and tenantId",
                ));
            }
        }
        AuthType::ManagedIdentity => {
            if spec.auth_secret_ref.is_some() || spec.service_account_ref.is_some() {
                return Err(ProviderError::invalid_config(
                    "authType",
                    "ManagedIdentity uses the node's identity; remove authSecretRef and serviceAccountRef",
                ));
            }
        }
    }
    Ok(Checked {
        spec,
        vault,
        vault_target,
        cloud,
    })
}

/// Tenant IDs become a path segment of the token URL: keep them to GUIDs and domain names.
pub fn check_tenant_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= 256 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ProviderError::invalid_config(
            field,
            "a tenant ID is a GUID or a domain name",
        ))
    }
}

fn cloud(spec: &AzureKv, vault: &Target) -> Result<Cloud> {
    let builtin = |authority_host: &str, resource: &str| Cloud {
        authority: format!("https://{authority_host}"),
        authority_host: authority_host.to_owned(),
        vault_resource: resource.to_owned(),
    };
    if let Some(custom) = &spec.custom_cloud_config {
        let field = "customCloudConfig.activeDirectoryEndpoint";
        let ad = lockstep_provider_sdk::config::https_url(field, &custom.active_directory_endpoint)?;
        let vault_resource = match (&custom.key_vault_endpoint, &custom.key_vault_dns_suffix) {
            (Some(endpoint), _) => {
                let t = lockstep_provider_sdk::config::https_url("customCloudConfig.keyVaultEndpoint", endpoint)?;
                format!("https://{}", t.authority)
            }
            (None, Some(suffix)) => format!("https://{}", suffix.trim_start_matches('.')),
            // The vault's own domain minus its first label: `kv.vault.azurestack.example` → `vault.azurestack.example`.
            (None, None) => match vault.host.split_once('.') {
                Some((_, domain)) if domain.contains('.') => format!("https://{domain}"),
                _ => {
                    return Err(ProviderError::invalid_config(
                        "customCloudConfig.keyVaultEndpoint",
                        "cannot derive the Key Vault resource from vaultUrl; set keyVaultEndpoint",
                    ));
                }
            },
        };
        return Ok(Cloud {
            authority: format!("https://{}", ad.authority),
            authority_host: ad.host,
            vault_resource,
        });
    }
    Ok(match spec.environment_type {
        EnvironmentType::PublicCloud => builtin("login.microsoftonline.com", "https://vault.azure.net"),
        EnvironmentType::ChinaCloud => builtin("login.chinacloudapi.cn", "https://vault.azure.cn"),
        EnvironmentType::USGovernmentCloud => builtin("login.microsoftonline.us", "https://vault.usgovcloudapi.net"),
        EnvironmentType::GermanCloud => builtin("login.microsoftonline.de", "https://vault.microsoftazure.de"),
        EnvironmentType::AzureStackCloud => {
            return Err(ProviderError::invalid_config(
                "customCloudConfig",
                "environmentType AzureStackCloud needs customCloudConfig (activeDirectoryEndpoint)",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Checked> {
        check(lockstep_provider_sdk::config::parse(json)?)
    }

    fn field(json: &str) -> String {
        match parse(json).unwrap_err() {
            ProviderError::InvalidConfig(c) => c.field,
            other => panic!("{other:?}"),
        }
    }

    const WI: &str = r#"{"authType":"WorkloadIdentity","vaultUrl":"https://kv-aap-vault-dev.vault.azure.net","serviceAccountRef":{"name":"external-secrets","namespace":"external-secrets"}}"#;

    #[test]
    fn seed_store_is_valid() {
        let c = parse(WI).unwrap();
        assert_eq!(c.vault, "https://kv-aap-vault-dev.vault.azure.net");
        assert_eq!(c.cloud.authority, "https://login.microsoftonline.com");
        assert_eq!(c.cloud.scope(), "https://vault.azure.net/.default");
        assert_eq!(c.spec.auth_type, AuthType::WorkloadIdentity);
    }

    #[test]
    fn clouds() {
        let c = parse(r#"{"vaultUrl":"https://v.vault.azure.cn/","environmentType":"ChinaCloud","tenantId":"t","authSecretRef":{"clientId":{"name":"s","key":"id"},"clientSecret":{"name":"s","key":"pw"}}}"#).unwrap();
        assert_eq!(c.cloud.authority_host, "login.chinacloudapi.cn");
        assert_eq!(c.cloud.vault_resource, "https://vault.azure.cn");
        let c = parse(r#"{"authType":"ManagedIdentity","vaultUrl":"https://v.vault.stack.example","environmentType":"AzureStackCloud","customCloudConfig":{"activeDirectoryEndpoint":"https://login.stack.example/"}}"#).unwrap();
        assert_eq!(c.cloud.authority, "https://login.stack.example");
        assert_eq!(c.cloud.vault_resource, "https://vault.stack.example");
        assert_eq!(
            field(r#"{"authType":"ManagedIdentity","vaultUrl":"https://v.x.y","environmentType":"AzureStackCloud"}"#),
            "customCloudConfig"
        );
        assert_eq!(
            field(r#"{"authType":"ManagedIdentity","vaultUrl":"https://v.x.y","environmentType":"Mars"}"#),
            "environmentType"
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(r#"{"authType":"WorkloadIdentity"}"#), "vaultUrl");
        assert_eq!(
            field(r#"{"authType":"WorkloadIdentity","vaultUrl":"http://kv.vault.azure.net"}"#),
            "vaultUrl"
        );
        assert_eq!(
            field(r#"{"authType":"WorkloadIdentity","vaultUrl":"https://kv.vault.azure.net/secrets"}"#),
            "vaultUrl"
        );
        assert_eq!(
            field(r#"{"authType":"Kerberos","vaultUrl":"https://kv.vault.azure.net"}"#),
            "authType"
        );
        assert_eq!(field(r#"{"vaultUrl":"https://kv.vault.azure.net"}"#), "authSecretRef");
        assert_eq!(
            field(r#"{"vaultUrl":"https://kv.vault.azure.net","authSecretRef":{}}"#),
            "authSecretRef.clientId"
        );
        assert_eq!(
            field(r#"{"vaultUrl":"https://kv.vault.azure.net","authSecretRef":{"clientId":{"name":"a","key":"b"}}}"#),
            "tenantId"
        );
        assert_eq!(
            field(
                r#"{"vaultUrl":"https://kv.vault.azure.net","tenantId":"t","authSecretRef":{"clientId":{"name":"a","key":"b"}}}"#
            ),
            "authSecretRef.clientSecret"
        );
        assert_eq!(
            field(
                r#"{"vaultUrl":"https://kv.vault.azure.net","tenantId":"t","authSecretRef":{"clientId":{"name":"a","key":"b"},"clientSecret":{"name":"a","key":"c"},"clientCertificate":{"name":"a","key":"d"}}}"#
            ),
            "authSecretRef.clientCertificate"
        );
        assert_eq!(
            field(r#"{"vaultUrl":"https://kv.vault.azure.net","tenantId":"t/../x","authType":"WorkloadIdentity"}"#),
            "tenantId"
        );
        assert_eq!(
            field(
                r#"{"vaultUrl":"https://kv.vault.azure.net","authType":"WorkloadIdentity","serviceAccountRef":{"name":""}}"#
            ),
            "serviceAccountRef.name"
        );
        assert_eq!(
            field(r#"{"vaultUrl":"https://kv.vault.azure.net","authType":"WorkloadIdentity","serviceAccountRef":{}}"#),
            "serviceAccountRef.name"
        );
        assert_eq!(
            field(
                r#"{"vaultUrl":"https://kv.vault.azure.net","authType":"ManagedIdentity","serviceAccountRef":{"name":"x"}}"#
            ),
            "authType"
        );
        assert_eq!(
            field(
                r#"{"vaultUrl":"https://kv.vault.azure.net","authType":"WorkloadIdentity","authSecretRef":{"clientSecret":{"name":"a","key":"c"}}}"#
            ),
            "authSecretRef"
        );
    }
}
