//! Test-only provider (`spec.provider.probe`), never embedded in the engine.
//!
//! Its store config says what to do on each call, so controller tests can
//! exercise credential refusals, error variants and failure/recovery without
//! backend-specific code. See docs/plugin-authoring.md ("The probe provider").
//!
//! State is per instance (sequence counters) and instances are recycled at
//! any time: tests flip behaviour by editing the store, which also starts a
//! new isolation unit.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use lockstep_provider_sdk::credentials;
use lockstep_provider_sdk::prelude::*;
use lockstep_provider_sdk::ServiceAccountSelector;
use lockstep_provider_sdk::wasip2;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// References at the declared credential paths (what the host honours).
    #[serde(default)]
    pub auth: Auth,
    /// Host capability calls made before every get-secret, get-secret-map and validate.
    #[serde(default)]
    pub request: Requests,
    /// Answer per remote key: one response, or a sequence (call N gets item N, the last repeats).
    #[serde(default)]
    pub responses: BTreeMap<String, OneOrMany>,
    /// Answer for keys without an entry; none means not-found.
    #[serde(default)]
    pub default: Option<Response>,
    /// `ready` (default), `unknown`, or `{"error": ...}`.
    #[serde(default)]
    pub validation: Option<ValidationSpec>,
    /// Destinations to declare (the origin of `fetch` is added).
    #[serde(default)]
    pub egress: Vec<Rule>,
    /// A URL fetched with GET before answering; its body is `{"from": "http"}`.
    #[serde(default)]
    pub fetch: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auth {
    pub secret_ref: Option<SecretKeyRef>,
    #[serde(default)]
    pub secret_refs: Vec<SecretKeyRef>,
    pub service_account_ref: Option<ServiceAccountRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requests {
    pub secret_key: Option<SecretKeyRef>,
    pub service_account_annotations: Option<SaSelector>,
    pub token: Option<TokenRequest>,
    pub ambient: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaSelector {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub service_account: SaSelector,
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(Response),
    Many(Vec<Response>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Response {
    /// A literal value.
    pub value: Option<String>,
    /// The result of a `request` call: `secretKey`, `token`, `annotations`, `ambient` or `http`.
    pub from: Option<String>,
    pub version: Option<String>,
    pub error: Option<ErrorSpec>,
    /// Sleep this long (monotonic clock) before answering: deadline tests.
    pub sleep_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorSpec {
    /// A WIT variant name: not-found, unauthorized, forbidden, throttled,
    /// invalid-config, denied, unavailable, internal.
    pub kind: String,
    #[serde(default)]
    pub message: Option<String>,
    pub code: Option<String>,
    pub retry_after_ms: Option<u64>,
    pub field: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ValidationSpec {
    Named(String),
    Error { error: ErrorSpec },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl ErrorSpec {
    pub fn to_error(&self) -> ProviderError {
        let message = self.message.clone().unwrap_or_else(|| format!("probe: configured {}", self.kind));
        let retry = self.retry_after_ms.map(Duration::from_millis);
        match self.kind.as_str() {
            "not-found" => ProviderError::not_found(message),
            "unauthorized" => ProviderError::unauthorized(self.code.as_deref(), message),
            "forbidden" => ProviderError::forbidden(self.code.as_deref(), message),
            "throttled" => ProviderError::throttled(retry, message),
            "invalid-config" => ProviderError::invalid_config(self.field.clone().unwrap_or_default(), message),
            "denied" => ProviderError::denied(message),
            "unavailable" => ProviderError::unavailable(message),
            "internal" => ProviderError::internal(message),
            other => ProviderError::invalid_config("error.kind", format!("unknown error kind {other:?}")),
        }
    }
}

/// Results of the configured host calls, by the name `from` uses.
#[derive(Default)]
struct Fetched(HashMap<&'static str, Vec<u8>>);

fn perform_requests(config: &Config) -> Result<Fetched> {
    let mut out = Fetched::default();
    let r = &config.request;
    if let Some(s) = &r.secret_key {
        out.0.insert("secretKey", credentials::secret_key(&s.selector())?);
    }
    if let Some(sa) = &r.service_account_annotations {
        let annotations: BTreeMap<String, String> =
            credentials::service_account_annotations(&sa_selector(sa))?.into_iter().collect();
        out.0.insert("annotations", json::to_vec(&annotations)?);
    }
    if let Some(t) = &r.token {
        let token = credentials::service_account_token(&sa_selector(&t.service_account), &t.audiences)?;
        out.0.insert("token", token.token.into_bytes());
    }
    if let Some(name) = &r.ambient {
        out.0.insert("ambient", credentials::ambient(name)?.into_bytes());
    }
    if let Some(url) = &config.fetch {
        let body = http::Request::get(url.as_str()).send()?.error_for_status()?.into_body();
        out.0.insert("http", body);
    }
    Ok(out)
}

fn sa_selector(sa: &SaSelector) -> ServiceAccountSelector {
    ServiceAccountSelector { name: sa.name.clone(), namespace: sa.namespace.clone() }
}

thread_local! {
    /// Calls seen per remote key by this instance (for response sequences).
    static CALLS: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

fn pick(config: &Config, key: &str) -> Option<Response> {
    let n = CALLS.with(|c| {
        let mut c = c.borrow_mut();
        let n = c.entry(key.to_owned()).or_default();
        *n += 1;
        *n - 1
    });
    match config.responses.get(key) {
        Some(OneOrMany::One(r)) => Some(r.clone()),
        Some(OneOrMany::Many(list)) => list.get(n).or(list.last()).cloned(),
        None => config.default.clone(),
    }
}

fn answer(response: &Response, fetched: &Fetched, key: &str) -> Result<SecretValue> {
    if let Some(ms) = response.sleep_ms {
        wasip2::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    }
    if let Some(e) = &response.error {
        return Err(e.to_error());
    }
    let value = match (&response.value, &response.from) {
        (Some(v), _) => v.clone().into_bytes(),
        (None, Some(from)) => fetched
            .0
            .get(from.as_str())
            .cloned()
            .ok_or_else(|| ProviderError::invalid_config(format!("responses.{key}.from"), format!("nothing was requested as {from:?}")))?,
        (None, None) => return Err(ProviderError::invalid_config(format!("responses.{key}"), "needs value, from or error")),
    };
    Ok(SecretValue { value, version: response.version.clone() })
}

pub struct Probe;

impl Provider for Probe {
    type Config = Config;

    fn metadata() -> PluginMetadata {
        PluginMetadata::new("probe", env!("CARGO_PKG_VERSION"), "probe")
            .description("Test-only provider whose store config scripts every answer")
            .secret_key_ref("auth.secretRef")
            .secret_key_ref("auth.secretRefs.*")
            .service_account_ref("auth.serviceAccountRef")
            .token_audience("lockstep-probe")
            .ambient_credential("probe-ambient")
    }

    fn egress(store: &Store<Config>) -> Result<Vec<EgressRule>> {
        let mut rules: Vec<EgressRule> = store
            .config
            .egress
            .iter()
            .map(|r| EgressRule { scheme: r.scheme.clone(), host: r.host.clone(), port: r.port })
            .collect();
        if let Some(url) = &store.config.fetch {
            rules.push(EgressRule::from_url(url).map_err(|_| ProviderError::invalid_config("fetch", "not an http(s) URL"))?);
        }
        Ok(rules)
    }

    fn validate(store: &Store<Config>) -> Result<Validation> {
        perform_requests(&store.config)?;
        match &store.config.validation {
            None => Ok(Validation::Ready),
            Some(ValidationSpec::Named(n)) if n == "ready" => Ok(Validation::Ready),
            Some(ValidationSpec::Named(n)) if n == "unknown" => Ok(Validation::Unknown),
            Some(ValidationSpec::Named(n)) => Err(ProviderError::invalid_config("validation", format!("unknown value {n:?}"))),
            Some(ValidationSpec::Error { error }) => Err(error.to_error()),
        }
    }

    fn get_secret(store: &Store<Config>, r: &SecretRef) -> Result<SecretValue> {
        let fetched = perform_requests(&store.config)?;
        let response = pick(&store.config, &r.key).ok_or_else(|| ProviderError::not_found(format!("probe: no response for {}", r.key)))?;
        let value = answer(&response, &fetched, &r.key)?;
        select_property(value.value, value.version, r)
    }

    fn find_secrets(store: &Store<Config>, find: &FindRequest) -> Result<Vec<SecretEntry>> {
        let matcher = regex_lite::Regex::new(find.name_regexp.as_deref().unwrap_or(""))
            .map_err(|e| ProviderError::internal(format!("invalid find.name.regexp: {e}")))?;
        let fetched = perform_requests(&store.config)?;
        let mut out = Vec::new();
        for key in store.config.responses.keys().filter(|k| matcher.is_match(k)) {
            let response = pick(&store.config, key).unwrap_or_default();
            out.push(SecretEntry { key: key.clone(), value: answer(&response, &fetched, key)?.value });
        }
        Ok(out)
    }
}

export_provider!(Probe);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sequences_repeat_the_last_item() {
        let c = config(serde_json::json!({"responses": {
            "flaky": [{"error": {"kind": "unavailable"}}, {"value": "ok"}],
        }}));
        let fetched = Fetched::default();
        assert_eq!(answer(&pick(&c, "flaky").unwrap(), &fetched, "flaky").unwrap_err().variant(), "unavailable");
        assert_eq!(answer(&pick(&c, "flaky").unwrap(), &fetched, "flaky").unwrap().value, b"ok");
        assert_eq!(answer(&pick(&c, "flaky").unwrap(), &fetched, "flaky").unwrap().value, b"ok");
        assert!(pick(&c, "other").is_none());
    }

    #[test]
    fn every_error_variant() {
        for kind in ["not-found", "unauthorized", "forbidden", "throttled", "invalid-config", "denied", "unavailable", "internal"] {
            let e = ErrorSpec { kind: kind.into(), message: None, code: Some("C".into()), retry_after_ms: Some(1500), field: None };
            assert_eq!(e.to_error().variant(), kind);
        }
        let e = ErrorSpec { kind: "throttled".into(), message: None, code: None, retry_after_ms: Some(1500), field: None };
        assert_eq!(e.to_error(), ProviderError::throttled(Some(Duration::from_millis(1500)), "probe: configured throttled"));
    }

    #[test]
    fn from_needs_a_request() {
        let r = Response { from: Some("secretKey".into()), ..Default::default() };
        assert_eq!(answer(&r, &Fetched::default(), "k").unwrap_err().variant(), "invalid-config");
        let mut f = Fetched::default();
        f.0.insert("secretKey", b"s3".to_vec());
        assert_eq!(answer(&r, &f, "k").unwrap().value, b"s3");
    }
}
