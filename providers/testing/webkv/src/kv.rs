//! A key-value service over HTTPS with a bearer token read from a Secret:
//!
//! * `GET {url}/v1/secrets/{key}[?version=V]` → `{"value": "...", "version": "...", "tags": {..}}`
//! * `GET {url}/v1/secrets?prefix=P` → `{"keys": ["a", "b"]}`
//!
//! Everything a real backend needs fits here: config parsing, a credential
//! from the host, egress, status mapping, property and metadata lookup, find.

use std::collections::BTreeMap;

use lockstep_provider_sdk::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Base URL of the service, `https://...`.
    pub url: String,
    /// The Secret key holding the bearer token (declared in metadata).
    pub token_secret_ref: SecretKeyRef,
}

#[derive(Deserialize)]
struct Item {
    value: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Listing {
    keys: Vec<String>,
}

pub struct WebKv;

fn base(store: &Store<Config>) -> Result<String> {
    config::https_url("url", &store.config.url)?;
    Ok(store.config.url.trim_end_matches('/').to_owned())
}

fn token(store: &Store<Config>) -> Result<String> {
    let raw = store.config.token_secret_ref.fetch()?;
    let token = String::from_utf8(raw)
        .map_err(|_| ProviderError::invalid_config("tokenSecretRef", "the token is not UTF-8"))?;
    Ok(token.trim().to_owned())
}

/// One authenticated GET, statuses mapped to WIT errors.
fn get(store: &Store<Config>, request: http::Request) -> Result<http::Response> {
    let response = request.bearer(&token(store)?).send()?;
    if !super::BROKEN {
        return response.error_for_status();
    }
    // The deliberate bugs: wrong variants, Retry-After dropped, an undeclared
    // host pinged after each success (the host reports a denial that happens
    // during a failing call as the call's error, which would hide the others).
    match response.status() {
        200..=299 => {
            let _ = http::Request::get("https://telemetry.webkv.example/ping").send();
            Ok(response)
        }
        403 => Err(ProviderError::unauthorized(None, "forbidden")),
        404 => Err(ProviderError::internal("backend said 404")),
        429 => Err(ProviderError::unavailable("busy")),
        _ => Err(response.status_error()),
    }
}

fn fetch(store: &Store<Config>, key: &str, version: Option<&str>) -> Result<Item> {
    let mut request = http::Request::get(format!("{}/v1/secrets/{}", base(store)?, form::escape(key)));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        request = request.query("version", v);
    }
    get(store, request)?.json()
}

impl Provider for WebKv {
    type Config = Config;

    fn metadata() -> PluginMetadata {
        let name = if super::BROKEN { "webkv-broken" } else { "webkv" };
        PluginMetadata::new(name, env!("CARGO_PKG_VERSION"), "webkv")
            .description("Example key-value service over HTTPS (test-only)")
            .secret_key_ref("tokenSecretRef")
    }

    fn egress(store: &Store<Config>) -> Result<Vec<EgressRule>> {
        Ok(vec![config::https_url("url", &store.config.url)?.egress_rule()])
    }

    fn validate(store: &Store<Config>) -> Result<Validation> {
        base(store)?;
        config::require("tokenSecretRef.name", &store.config.token_secret_ref.name)?;
        config::require("tokenSecretRef.key", &store.config.token_secret_ref.key)?;
        Ok(Validation::Ready)
    }

    fn get_secret(store: &Store<Config>, r: &SecretRef) -> Result<SecretValue> {
        let item = fetch(store, &r.key, r.version.as_deref())?;
        if r.metadata_policy == MetadataPolicy::Fetch {
            // ESO: with metadataPolicy Fetch the property names a tag; without one, all tags as JSON.
            let value = match r.property.as_deref() {
                Some(tag) if !tag.is_empty() => item.tags.get(tag).cloned().ok_or_else(|| {
                    ProviderError::not_found(format!("tag {tag} not found on secret {}", r.key))
                })?,
                _ => String::from_utf8(json::to_vec(&item.tags)?).unwrap_or_default(),
            };
            return Ok(SecretValue { value: value.into_bytes(), version: item.version });
        }
        select_property(item.value.into_bytes(), item.version, r)
    }

    fn find_secrets(store: &Store<Config>, find: &FindRequest) -> Result<Vec<SecretEntry>> {
        if !find.tags.is_empty() {
            return Err(ProviderError::not_supported("find by tags"));
        }
        let matcher = regex_lite::Regex::new(find.name_regexp.as_deref().unwrap_or(""))
            .map_err(|e| ProviderError::internal(format!("invalid find.name.regexp: {e}")))?;
        let request = http::Request::get(format!("{}/v1/secrets", base(store)?))
            .query("prefix", find.path.as_deref().unwrap_or(""));
        let listing: Listing = get(store, request)?.json()?;
        let mut out = Vec::new();
        for key in listing.keys.iter().filter(|k| matcher.is_match(k)) {
            let item = fetch(store, key, None)?;
            out.push(SecretEntry { key: key.clone(), value: item.value.into_bytes() });
        }
        Ok(out)
    }
}
