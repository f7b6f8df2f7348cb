//! The four kinds, declared once and instantiated per served version. The
//! schemas of `v1` and `v1beta1` are identical (conversion strategy None),
//! so the apiserver serves one stored object at either version.

/// The two store kinds share one spec shape (ESO: `SecretStoreSpec`).
macro_rules! store_spec {
    ($(#[$m:meta])* $name:ident) => {
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        $(#[$m])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Controller class; a store naming another class is ignored.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub controller: Option<String>,
            pub provider: ProviderSpec,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub retry_settings: Option<SecretStoreRetrySettings>,
            /// Re-validation period: integer seconds or a Go duration; unset = engine default.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(extend("maxLength" = 64, "x-kubernetes-validations" = [
                {"rule": rules::STORE_REFRESH_INTERVAL.rule, "message": rules::STORE_REFRESH_INTERVAL.message}
            ]))]
            pub refresh_interval: Option<StoreRefreshInterval>,
            /// ClusterSecretStore only: which namespaces may use the store (ORed).
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub conditions: Vec<ClusterSecretStoreCondition>,
        }
    };
}

pub(crate) use store_spec;

/// Declares SecretStore, ClusterSecretStore, ExternalSecret and
/// ClusterExternalSecret at one API version.
macro_rules! eso_kinds {
    ($version:tt, storage = $storage:tt $(, deprecated = $deprecated:tt)?) => {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
        use kube::CustomResource;
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use $crate::rules;
        use $crate::types::*;

        $crate::versioned::store_spec! {
            #[kube(
                group = "external-secrets.io", version = $version, kind = "SecretStore",
                namespaced, status = "SecretStoreStatus", shortname = "ss",
                category = "external-secrets", category = "external-secrets-stores",
                label("external-secrets.io/component", "controller"),
                storage = $storage, $(deprecated = $deprecated,)?
                printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
                printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
                printcolumn = r#"{"name":"Capabilities","type":"string","jsonPath":".status.capabilities"}"#,
                printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
                doc = "SecretStore: a provider configuration usable by ExternalSecrets of its namespace."
            )]
            SecretStoreSpec
        }

        $crate::versioned::store_spec! {
            #[kube(
                group = "external-secrets.io", version = $version, kind = "ClusterSecretStore",
                status = "SecretStoreStatus", shortname = "css",
                category = "external-secrets", category = "external-secrets-stores",
                label("external-secrets.io/component", "controller"),
                storage = $storage, $(deprecated = $deprecated,)?
                printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
                printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
                printcolumn = r#"{"name":"Capabilities","type":"string","jsonPath":".status.capabilities"}"#,
                printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
                doc = "ClusterSecretStore: a provider configuration usable by ExternalSecrets of the namespaces its conditions allow."
            )]
            ClusterSecretStoreSpec
        }

        impl From<ClusterSecretStoreSpec> for SecretStoreSpec {
            fn from(s: ClusterSecretStoreSpec) -> Self {
                SecretStoreSpec {
                    controller: s.controller,
                    provider: s.provider,
                    retry_settings: s.retry_settings,
                    refresh_interval: s.refresh_interval,
                    conditions: s.conditions,
                }
            }
        }

        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "external-secrets.io", version = $version, kind = "ExternalSecret",
            namespaced, status = "ExternalSecretStatus", shortname = "es",
            category = "external-secrets",
            label("external-secrets.io/component", "controller"),
            storage = $storage, $(deprecated = $deprecated,)?
            printcolumn = r#"{"name":"StoreType","type":"string","jsonPath":".spec.secretStoreRef.kind"}"#,
            printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.secretStoreRef.name"}"#,
            printcolumn = r#"{"name":"Refresh Interval","type":"string","jsonPath":".spec.refreshInterval"}"#,
            printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
            printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
            printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.refreshTime"}"#,
            selectable = ".spec.secretStoreRef.name",
            selectable = ".spec.secretStoreRef.kind",
            selectable = ".spec.target.name",
            selectable = ".spec.refreshInterval",
            doc = "ExternalSecret: which provider values make up which Kubernetes Secret."
        )]
        #[serde(rename_all = "camelCase")]
        #[schemars(extend("x-kubernetes-validations" = [
            {"rule": rules::DATA_OR_DATA_FROM.rule, "message": rules::DATA_OR_DATA_FROM.message},
        ]))]
        pub struct ExternalSecretSpec {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub secret_store_ref: Option<SecretStoreRef>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(default = "default_target")]
            pub target: Option<ExternalSecretTarget>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub refresh_policy: Option<RefreshPolicy>,
            /// Go duration; `0` fetches once.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(default = "default_refresh_interval", length(max = 64), regex(pattern = DURATION_PATTERN))]
            pub refresh_interval: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sync_windows: Option<SyncWindows>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub data: Vec<ExternalSecretData>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            #[schemars(length(max = 256))]
            pub data_from: Vec<ExternalSecretDataFrom>,
        }

        fn default_target() -> Option<ExternalSecretTarget> {
            Some(ExternalSecretTarget {
                creation_policy: Some(CreationPolicy::Owner),
                deletion_policy: Some(DeletionPolicy::Retain),
                ..Default::default()
            })
        }

        fn default_refresh_interval() -> Option<String> {
            Some("1h0m0s".into())
        }

        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "external-secrets.io", version = $version, kind = "ClusterExternalSecret",
            status = "ClusterExternalSecretStatus", shortname = "ces",
            category = "external-secrets",
            label("external-secrets.io/component", "controller"),
            storage = $storage, $(deprecated = $deprecated,)?
            printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.externalSecretSpec.secretStoreRef.name"}"#,
            printcolumn = r#"{"name":"Refresh Interval","type":"string","jsonPath":".spec.refreshTime"}"#,
            printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
            doc = "ClusterExternalSecret: an ExternalSecret spec fanned out to selected namespaces."
        )]
        #[serde(rename_all = "camelCase")]
        pub struct ClusterExternalSecretSpec {
            pub external_secret_spec: ExternalSecretSpec,
            /// Name of the ExternalSecrets created; defaults to the ClusterExternalSecret's name.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(length(max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
            pub external_secret_name: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub external_secret_metadata: Option<ExternalSecretMetadata>,
            /// Deprecated single selector, ORed with `namespaceSelectors` and `namespaces`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub namespace_selector: Option<LabelSelector>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub namespace_selectors: Vec<LabelSelector>,
            /// Deprecated list of namespace names.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub namespaces: Vec<DnsLabel>,
            /// How often namespaces are re-evaluated (Go duration, default 1h).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(length(max = 64), regex(pattern = DURATION_PATTERN))]
            pub refresh_time: Option<String>,
        }
    };
}

pub(crate) use eso_kinds;
