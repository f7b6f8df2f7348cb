//! # AWS Secrets Manager provider (`spec.provider.aws`, `service: SecretsManager`)
//!
//! ESO's store fields: `region`, `role`, `prefix`, `auth.secretRef` (access key,
//! secret key, optional session token) or `auth.jwt.serviceAccountRef` (web
//! identity: a TokenRequest token for `sts.amazonaws.com`, exchanged through STS
//! `AssumeRoleWithWebIdentity` for the service account's
//! `eks.amazonaws.com/role-arn`, else the store's `role`). As in ESO, a `role`
//! beside static keys or an annotated role is assumed on top (`AssumeRole`).
//! `remoteRef.version` is `uuid/<VersionId>` or a version stage (default
//! `AWSCURRENT`); `property` is gjson over SecretString or SecretBinary;
//! `metadataPolicy: Fetch` reads the tags; `find` lists by `name` prefix and tags
//! (checked exactly here, AWS's filters match prefixes) with a name regexp.
//! Requests are signed with the SDK's SigV4 and go to the store's regional
//! endpoints only; STS sessions, endpoints and error mapping are the SDK's
//! `aws` module. Not supported: `additionalRoles`, `externalID`,
//! `sessionTags`, ambient (pod) credentials; each is refused as invalid config.
#![deny(unsafe_code)]

use std::time::SystemTime;

use base64::Engine as _;
use lockstep_provider_sdk::aws::{self, endpoint};
use lockstep_provider_sdk::find;
use lockstep_provider_sdk::prelude::*;
use lockstep_provider_sdk::sigv4::{self, Credentials};
use serde::Deserialize;
use serde_json::{Value, json};

const AUDIENCE: &str = "sts.amazonaws.com";
const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    service: String,
    region: String,
    role: Option<String>,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    additional_roles: Vec<String>,
    #[serde(rename = "externalID")]
    external_id: Option<String>,
    #[serde(default)]
    session_tags: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Auth {
    secret_ref: Option<StaticKeys>,
    jwt: Option<Jwt>,
}

#[derive(Debug, Clone, Deserialize)]
struct StaticKeys {
    #[serde(rename = "accessKeyIDSecretRef")]
    access_key_id: SecretKeyRef,
    #[serde(rename = "secretAccessKeySecretRef")]
    secret_access_key: SecretKeyRef,
    #[serde(rename = "sessionTokenSecretRef")]
    session_token: Option<SecretKeyRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Jwt {
    service_account_ref: ServiceAccountRef,
}

fn check(c: &Config) -> Result<()> {
    let bad = |field: &str, why: &str| Err(ProviderError::invalid_config(field, why));
    if c.service != "SecretsManager" {
        return bad("service", "this plugin serves service SecretsManager only");
    }
    aws::check_region("region", &c.region)?;
    for (field, set) in [
        ("additionalRoles", !c.additional_roles.is_empty()),
        ("externalID", c.external_id.is_some()),
        ("sessionTags", !c.session_tags.is_empty()),
    ] {
        if set {
            return bad(field, "not supported by this plugin");
        }
    }
    if c.auth.secret_ref.is_none() && c.auth.jwt.is_none() {
        return bad(
            "auth",
            "set auth.secretRef or auth.jwt (ambient pod credentials are not supported)",
        );
    }
    Ok(())
}

fn read(r: &SecretKeyRef, field: &str) -> Result<String> {
    let bytes = r.fetch()?;
    String::from_utf8(bytes)
        .map(|s| s.trim().to_owned())
        .map_err(|_| ProviderError::invalid_config(field, "the referenced key is not text"))
}

/// The credentials that sign Secrets Manager calls for this store.
fn credentials(c: &Config) -> Result<Credentials> {
    let (base, chained) = if let Some(k) = &c.auth.secret_ref {
        let token = k
            .session_token
            .as_ref()
            .map(|r| read(r, "auth.secretRef.sessionTokenSecretRef"))
            .transpose()?;
        let base = Credentials {
            access_key_id: read(&k.access_key_id, "auth.secretRef.accessKeyIDSecretRef")?,
            secret_access_key: read(
                &k.secret_access_key,
                "auth.secretRef.secretAccessKeySecretRef",
            )?,
            session_token: token,
        };
        (base, c.role.clone())
    } else {
        let sa = &c.auth.jwt.as_ref().expect("checked").service_account_ref;
        let annotated = sa
            .annotations()?
            .into_iter()
            .find(|(k, _)| k == ROLE_ANNOTATION)
            .map(|(_, v)| v);
        let (role, chained) = match annotated {
            Some(a) => (a, c.role.clone()),
            None => (c.role.clone().ok_or_else(|| ProviderError::invalid_config("role", format!("web identity needs a role: set role or annotate the service account with {ROLE_ANNOTATION}")))?, None),
        };
        let base = aws::assume_role_with_web_identity(
            &c.region,
            &role,
            &format!("{:?}/{}", sa.namespace, sa.name),
            || {
                let audiences: Vec<&str> = if sa.audiences.is_empty() {
                    vec![AUDIENCE]
                } else {
                    sa.audiences.iter().map(String::as_str).collect()
                };
                Ok(sa.token(&audiences)?.token)
            },
        )?;
        (base, chained)
    };
    match chained {
        Some(role) => aws::assume_role(&c.region, &base, &role),
        None => Ok(base),
    }
}

/// A Secrets Manager JSON-protocol call.
fn call(c: &Config, creds: &Credentials, action: &str, body: Value) -> Result<Value> {
    let req = http::Request::post(endpoint("secretsmanager", &c.region))
        .header("x-amz-target", format!("secretsmanager.{action}"))
        .body("application/x-amz-json-1.1", json::to_vec(&body)?);
    let resp = sigv4::sign(req, creds, &c.region, "secretsmanager", SystemTime::now())?.send()?;
    if !resp.is_success() {
        return Err(aws::error(&resp));
    }
    resp.json()
}

/// GetSecretValue: (value, version id). `version` is `uuid/<id>` or a stage.
fn get_value(
    c: &Config,
    creds: &Credentials,
    id: &str,
    version: Option<&str>,
) -> Result<(Vec<u8>, Option<String>)> {
    let mut body = json!({"SecretId": id});
    match version.filter(|v| !v.is_empty()) {
        Some(v) if v.starts_with("uuid/") => body["VersionId"] = v["uuid/".len()..].into(),
        v => body["VersionStage"] = v.unwrap_or("AWSCURRENT").into(),
    }
    let out = call(c, creds, "GetSecretValue", body)?;
    let value = match (out["SecretString"].as_str(), out["SecretBinary"].as_str()) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| ProviderError::internal(format!("SecretBinary of {id} is not base64")))?,
        _ => {
            return Err(ProviderError::internal(format!(
                "secret {id} has neither SecretString nor SecretBinary"
            )));
        }
    };
    Ok((value, out["VersionId"].as_str().map(str::to_owned)))
}

/// ESO's order: the property as one dotted key first, then as a gjson path.
fn select(value: Vec<u8>, r: &SecretRef) -> Result<Vec<u8>> {
    match r.property.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(value),
        Some(p) => json::property(&value, &p.replace('.', "\\."))
            .or_else(|| json::property(&value, p))
            .ok_or_else(|| {
                ProviderError::not_found(format!("key {p} does not exist in secret {}", r.key))
            }),
    }
}

pub struct SecretsManager;

impl Provider for SecretsManager {
    type Config = Config;

    fn metadata() -> PluginMetadata {
        PluginMetadata::new("aws-secretsmanager", env!("CARGO_PKG_VERSION"), "aws")
            .description("AWS Secrets Manager (static keys, assumed roles, web identity with service-account tokens)")
            .secret_key_ref("auth.secretRef.accessKeyIDSecretRef")
            .secret_key_ref("auth.secretRef.secretAccessKeySecretRef")
            .secret_key_ref("auth.secretRef.sessionTokenSecretRef")
            .service_account_ref("auth.jwt.serviceAccountRef")
            .token_audience(AUDIENCE)
    }

    fn egress(store: &Store<Config>) -> Result<Vec<EgressRule>> {
        let c = &store.config;
        check(c)?;
        let mut rules = vec![EgressRule::https(format!(
            "secretsmanager.{}.amazonaws.com",
            c.region
        ))];
        if c.role.is_some() || c.auth.jwt.is_some() {
            rules.push(EgressRule::https(format!("sts.{}.amazonaws.com", c.region)));
        }
        Ok(rules)
    }

    /// No remote call. A SecretStore may reference only its own namespace; a
    /// ClusterSecretStore whose references name none resolves them per consumer.
    fn validate(store: &Store<Config>) -> Result<Validation> {
        let c = &store.config;
        check(c)?;
        let mut refs: Vec<(&str, Option<&str>)> = Vec::new();
        if let Some(k) = &c.auth.secret_ref {
            refs.push((
                "auth.secretRef.accessKeyIDSecretRef",
                k.access_key_id.namespace.as_deref(),
            ));
            refs.push((
                "auth.secretRef.secretAccessKeySecretRef",
                k.secret_access_key.namespace.as_deref(),
            ));
            if let Some(t) = &k.session_token {
                refs.push((
                    "auth.secretRef.sessionTokenSecretRef",
                    t.namespace.as_deref(),
                ));
            }
        }
        if let Some(j) = &c.auth.jwt {
            refs.push((
                "auth.jwt.serviceAccountRef",
                j.service_account_ref.namespace.as_deref(),
            ));
        }
        store.validate_reference_namespaces(&refs)
    }

    fn get_secret(store: &Store<Config>, r: &SecretRef) -> Result<SecretValue> {
        let c = &store.config;
        check(c)?;
        let creds = credentials(c)?;
        let id = format!("{}{}", c.prefix, r.key);
        if r.metadata_policy == MetadataPolicy::Fetch {
            let out = call(c, &creds, "DescribeSecret", json!({"SecretId": id}))?;
            let tags: serde_json::Map<String, Value> = out["Tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["Key"].as_str().unwrap_or_default().to_owned(),
                        t["Value"].clone(),
                    )
                })
                .collect();
            return Ok(SecretValue {
                value: select(json::to_vec(&tags)?, r)?,
                version: None,
            });
        }
        let (value, version) = get_value(c, &creds, &id, r.version.as_deref())?;
        Ok(SecretValue {
            value: select(value, r)?,
            version,
        })
    }

    fn find_secrets(store: &Store<Config>, find: &FindRequest) -> Result<Vec<SecretEntry>> {
        let c = &store.config;
        check(c)?;
        let creds = credentials(c)?;
        let filter = find::Filter::new(find)?;
        let mut filters: Vec<Value> = find
            .tags
            .iter()
            .flat_map(|(k, v)| {
                [
                    json!({"Key": "tag-key", "Values": [k]}),
                    json!({"Key": "tag-value", "Values": [v]}),
                ]
            })
            .collect();
        filters.extend(
            find.path
                .as_ref()
                .map(|p| json!({"Key": "name", "Values": [p]})),
        );
        let (mut entries, mut next) = (Vec::new(), None::<String>);
        loop {
            let mut body = json!({"Filters": filters});
            if let Some(t) = &next {
                body["NextToken"] = t.as_str().into();
            }
            let page = call(c, &creds, "ListSecrets", body)?;
            for s in page["SecretList"].as_array().into_iter().flatten() {
                let name = s["Name"].as_str().unwrap_or_default();
                let tags = s["Tags"].as_array().into_iter().flatten();
                let tags = tags.map(|t| {
                    (
                        t["Key"].as_str().unwrap_or_default(),
                        t["Value"].as_str().unwrap_or_default(),
                    )
                });
                // AWS's tag filters match prefixes: check exactly here.
                if filter.matches(name, tags) {
                    entries.push(SecretEntry {
                        key: name.to_owned(),
                        value: get_value(c, &creds, name, None)?.0,
                    });
                }
            }
            match page["NextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => break,
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}

export_provider!(SecretsManager);

#[cfg(test)]
mod tests;
