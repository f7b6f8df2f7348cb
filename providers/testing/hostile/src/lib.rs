//! A plugin that attacks its host. Its store config picks the misbehaviour:
//!
//! ```json
//! {"mode": "ok" | "loop" | "memory-bomb" | "panic" | "fetch" | "secret" | "token" | "ambient",
//!  "url": "https://...",                       // fetch
//!  "egress": [{"scheme": "https", "host": "h", "port": 443}],
//!  "auth": {"secretRef": {...}, "serviceAccountRef": {...}},   // what the store references
//!  "request": {"name": "...", "key": "...", "namespace": "...", "audiences": ["..."]}}  // what it asks for
//! ```

wit_bindgen::generate!({
    path: "../../../wit/provider",
    world: "lockstep:provider/plugin",
    with: {
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
});

use exports::lockstep::provider::provider::Guest;
use lockstep::provider::credentials;
use lockstep::provider::types::*;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Config {
    mode: String,
    url: String,
    egress: Vec<Rule>,
    request: Request,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Rule {
    scheme: String,
    host: String,
    port: Option<u16>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Request {
    name: String,
    key: String,
    namespace: Option<String>,
    audiences: Vec<String>,
}

fn config(store: &StoreConfig) -> Result<Config, ProviderError> {
    serde_json::from_str(&store.config_json)
        .map_err(|e| ProviderError::InvalidConfig(ConfigIssue { field: String::new(), reason: e.to_string() }))
}

struct Hostile;

impl Guest for Hostile {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider_key: "hostile".into(),
            credential_refs: vec![
                CredentialRefPath { path: "auth.secretRef".into(), kind: CredentialRefKind::SecretKeySelector },
                CredentialRefPath { path: "auth.serviceAccountRef".into(), kind: CredentialRefKind::ServiceAccountRef },
            ],
            token_audiences: vec!["api://hostile".into()],
            ambient_credentials: vec!["pod-token".into()],
            description: "Test-only: misbehaves as its store config asks".into(),
        }
    }

    fn egress(store: StoreConfig) -> Result<Vec<EgressRule>, ProviderError> {
        Ok(config(&store)?
            .egress
            .into_iter()
            .map(|r| EgressRule { scheme: r.scheme, host: r.host, port: r.port })
            .collect())
    }

    fn validate(store: StoreConfig) -> Result<Validation, ProviderError> {
        config(&store).map(|_| Validation::Ready)
    }

    fn get_secret(store: StoreConfig, _r: SecretRef) -> Result<SecretValue, ProviderError> {
        let cfg = config(&store)?;
        let value = match cfg.mode.as_str() {
            "ok" => b"fine".to_vec(),
            "loop" => spin(),
            "memory-bomb" => bomb(),
            "panic" => panic!("hostile plugin panics on purpose"),
            "fetch" => fetch(&cfg.url)?.to_string().into_bytes(),
            "secret" => credentials::secret_key(&SecretKeySelector {
                name: cfg.request.name,
                key: cfg.request.key,
                namespace: cfg.request.namespace,
            })?,
            "token" => {
                let sa = ServiceAccountSelector { name: cfg.request.name, namespace: cfg.request.namespace };
                credentials::service_account_token(&sa, &cfg.request.audiences)?.token.into_bytes()
            }
            "ambient" => credentials::ambient(&cfg.request.name)?.into_bytes(),
            other => return Err(ProviderError::InvalidConfig(ConfigIssue { field: "mode".into(), reason: format!("unknown mode {other:?}") })),
        };
        Ok(SecretValue { value, version: None })
    }

    fn get_secret_map(_store: StoreConfig, _r: SecretRef) -> Result<Vec<SecretEntry>, ProviderError> {
        Err(ProviderError::Internal("not supported".into()))
    }

    fn find_secrets(_store: StoreConfig, _f: FindRequest) -> Result<Vec<SecretEntry>, ProviderError> {
        Err(ProviderError::Internal("not supported".into()))
    }
}

#[inline(never)]
fn spin() -> Vec<u8> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[inline(never)]
fn bomb() -> Vec<u8> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the growth is real.
        hoard.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// GET `url` over raw wasi:http and count the body bytes (discarding them).
fn fetch(url: &str) -> Result<u64, ProviderError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| ProviderError::Internal("bad url".into()))?;
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let req = OutgoingRequest::new(Fields::new());
    req.set_method(&Method::Get).map_err(|_| ProviderError::Internal("method".into()))?;
    req.set_scheme(Some(&if scheme == "http" { Scheme::Http } else { Scheme::Https })).map_err(|_| ProviderError::Internal("scheme".into()))?;
    req.set_authority(Some(authority)).map_err(|_| ProviderError::Internal("authority".into()))?;
    req.set_path_with_query(Some(if path.is_empty() { "/" } else { path })).map_err(|_| ProviderError::Internal("path".into()))?;
    let body = req.body().map_err(|_| ProviderError::Internal("body".into()))?;
    OutgoingBody::finish(body, None).map_err(|e| http_error(&e))?;
    let pending = outgoing_handler::handle(req, None).map_err(|e| http_error(&e))?;
    pending.subscribe().block();
    let resp = pending
        .get()
        .ok_or_else(|| ProviderError::Internal("no response".into()))?
        .map_err(|_| ProviderError::Internal("response taken twice".into()))?
        .map_err(|e| http_error(&e))?;
    let body = resp.consume().map_err(|_| ProviderError::Internal("consume".into()))?;
    let stream = body.stream().map_err(|_| ProviderError::Internal("stream".into()))?;
    let mut total = 0u64;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => total += chunk.len() as u64,
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(ProviderError::Unavailable(format!("body read failed after {total} bytes: {}", e.to_debug_string())));
            }
        }
    }
    Ok(total)
}

fn http_error(e: &ErrorCode) -> ProviderError {
    match e {
        ErrorCode::HttpRequestDenied => ProviderError::Denied("http request denied".into()),
        other => ProviderError::Unavailable(format!("http error: {other:?}")),
    }
}

export!(Hostile);
