//! Record/replay of outbound HTTP (`--record FILE` / `--replay FILE`).
//!
//! Recordings never hold credentials: Authorization-like and signing headers,
//! credential fields of form bodies (OAuth client secrets and assertions, and
//! any field named like a token, secret or password), token fields in JSON
//! bodies and credential-named elements of XML bodies (e.g. temporary keys a
//! token service returns) are replaced by `<redacted>` before anything is kept. Files are
//! written with mode 0600. Replay matches method + URL + request body, with
//! redacted fields ignored (both sides are compared redacted).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub(crate) const REDACTED: &str = "<redacted>";

const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-vault-token",
    "x-auth-token",
    "ocp-apim-subscription-key",
];
const SIGNING_HEADER_PREFIXES: &[&str] = &["x-amz-", "x-goog-", "x-oss-", "x-ms-authorization"];
const SECRET_FORM_FIELDS: &[&str] =
    &["client_secret", "client_assertion", "assertion", "password", "refresh_token", "code", "subject_token", "actor_token"];
const SECRET_JSON_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token", "client_secret", "client_assertion", "token"];

/// A body as stored: text when it is UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedBody {
    Text(String),
    Base64(String),
}

impl RecordedBody {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => Self::Text(s.to_string()),
            Err(_) => Self::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Text(s) => s.clone().into_bytes(),
            Self::Base64(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default(),
        }
    }
}

/// One request and its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub request_headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RecordedBody>,
    pub status: u16,
    #[serde(default)]
    pub response_headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<RecordedBody>,
    /// Replay waits this long before answering (a hanging backend in a fixture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

/// The file format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub version: u32,
    pub exchanges: Vec<Exchange>,
}

impl Recording {
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }
}

fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&name.as_str()) || SIGNING_HEADER_PREFIXES.iter().any(|p| name.starts_with(p))
}

pub(crate) fn redact_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let value = if is_secret_header(k.as_str()) { REDACTED.to_string() } else { String::from_utf8_lossy(v.as_bytes()).into_owned() };
            (k.as_str().to_string(), value)
        })
        .collect()
}

/// A form field or XML element whose name says it holds a credential (any case).
fn is_credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_FORM_FIELDS.contains(&n.as_str()) || n.ends_with("token") || n.contains("secret") || n.contains("password")
}

fn redact_form(body: &str) -> String {
    body.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_credential_name(k) => format!("{k}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Replaces the text of leaf elements with credential names (`<SessionToken>…</SessionToken>`).
fn redact_xml(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|i| open + i) else { break };
        let tag = &rest[open + 1..close];
        let name = tag.split_whitespace().next().unwrap_or_default();
        out.push_str(&rest[..=close]);
        rest = &rest[close + 1..];
        let leaf_end = rest.find('<').filter(|&i| rest[i..].starts_with(&format!("</{name}>")));
        if let Some(end) = leaf_end.filter(|_| !tag.ends_with('/') && !name.starts_with(['/', '?', '!']) && is_credential_name(name)) {
            out.push_str(REDACTED);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_JSON_FIELDS.contains(&k.as_str()) && v.is_string() {
                    *v = serde_json::Value::String(REDACTED.into());
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Redacts credential fields of a body given its content type.
pub(crate) fn redact_body(content_type: Option<&str>, body: &[u8]) -> Option<RecordedBody> {
    if body.is_empty() {
        return None;
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if let Ok(text) = std::str::from_utf8(body) {
        if ct.starts_with("application/x-www-form-urlencoded") {
            return Some(RecordedBody::Text(redact_form(text)));
        }
        if ct.contains("xml") {
            return Some(RecordedBody::Text(redact_xml(text)));
        }
        if ct.contains("json") {
            if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
                redact_json(&mut v);
                return Some(RecordedBody::Text(v.to_string()));
            }
        }
    }
    Some(RecordedBody::from_bytes(body))
}

/// Collects exchanges and writes them (mode 0600) once the provider call that made
/// them has returned, with every value it returned scrubbed: a recording holds the
/// shape of the backend's answers, never the secrets in them.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    recording: Mutex<Recording>,
}

impl Recorder {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), recording: Mutex::new(Recording { version: 1, exchanges: Vec::new() }) }
    }

    pub(crate) fn append(&self, exchange: Exchange) {
        self.recording.lock().expect("recorder lock").exchanges.push(exchange);
    }

    /// Scrubs `values` from everything recorded so far and rewrites the file.
    pub(crate) fn commit(&self, values: &[&[u8]]) -> std::io::Result<()> {
        let mut rec = self.recording.lock().expect("recorder lock");
        let needles = Needles::new(values);
        for exchange in &mut rec.exchanges {
            for (_, v) in exchange.request_headers.iter_mut().chain(exchange.response_headers.iter_mut()) {
                if needles.found_in(v.as_bytes()) {
                    *v = REDACTED.into();
                }
            }
            for body in [&mut exchange.request_body, &mut exchange.response_body].into_iter().flatten() {
                needles.scrub(body);
            }
        }
        let bytes = serde_json::to_vec_pretty(&*rec).map_err(std::io::Error::other)?;
        crate::cache::write_private(&self.path, &bytes)
    }
}

/// Returned values and their base64 forms (a backend may send binary values encoded).
struct Needles(Vec<Vec<u8>>);

impl Needles {
    fn new(values: &[&[u8]]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        Self(values.iter().filter(|v| !v.is_empty()).flat_map(|v| [v.to_vec(), b64.encode(v).into_bytes()]).collect())
    }

    fn found_in(&self, haystack: &[u8]) -> bool {
        self.0.iter().any(|n| haystack.windows(n.len()).any(|w| w == n.as_slice()))
    }

    /// Redacts JSON strings holding a value; any other body holding one is redacted whole
    /// (over-redacting is the safe side).
    fn scrub(&self, body: &mut RecordedBody) {
        if !self.found_in(&body.to_bytes()) {
            return;
        }
        let json = match body {
            RecordedBody::Text(t) => serde_json::from_str::<serde_json::Value>(t).ok(),
            RecordedBody::Base64(_) => None,
        };
        *body = RecordedBody::Text(match json {
            Some(mut v) => {
                self.scrub_json(&mut v);
                v.to_string()
            }
            None => REDACTED.into(),
        });
    }

    fn scrub_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) if self.found_in(s.as_bytes()) => *s = REDACTED.into(),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.scrub_json(v)),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            _ => {}
        }
    }
}

/// One request a plugin attempted while replaying, for `plugin test`'s checks.
/// The headers are as the plugin sent them, before redaction: kept in memory
/// only, compared, never printed.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub method: String,
    pub url: String,
    /// `host:port` the request was for.
    pub authority: String,
    pub headers: Vec<(String, String)>,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The host's egress check refused it (the reason, without values).
    Denied(String),
    /// Answered by the exchange at this index of the recording.
    Replayed(usize),
    /// No recorded exchange matched.
    Unmatched,
}

/// Answers requests from a recording; each exchange is served once, in order.
#[derive(Debug)]
pub struct Replayer {
    exchanges: Vec<Exchange>,
    used: Mutex<Vec<bool>>,
    attempts: Mutex<Vec<Attempt>>,
}

impl Replayer {
    pub fn load(path: &Path) -> std::io::Result<Self> {
        Ok(Self::new(Recording::load(path)?))
    }

    pub fn new(recording: Recording) -> Self {
        let n = recording.exchanges.len();
        Self { exchanges: recording.exchanges, used: Mutex::new(vec![false; n]), attempts: Mutex::default() }
    }

    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// Indexes of the exchanges no request has used yet.
    pub fn unused(&self) -> Vec<usize> {
        let used = self.used.lock().expect("replayer lock");
        (0..used.len()).filter(|&i| !used[i]).collect()
    }

    /// Every request attempted so far, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().expect("replayer lock").clone()
    }

    pub(crate) fn log(&self, attempt: Attempt) {
        self.attempts.lock().expect("replayer lock").push(attempt);
    }

    /// The first unused exchange with this method, URL and (redacted) body;
    /// when all such are used, the last one again (retries and polling).
    pub(crate) fn find(&self, method: &str, url: &str, body: &Option<RecordedBody>) -> Option<(usize, Exchange)> {
        let mut used = self.used.lock().expect("replayer lock");
        let matching: Vec<usize> = (0..self.exchanges.len())
            .filter(|&i| {
                let e = &self.exchanges[i];
                e.method.eq_ignore_ascii_case(method) && e.url == url && bodies_match(&e.request_body, body)
            })
            .collect();
        let pick = matching.iter().copied().find(|&i| !used[i]).or(matching.last().copied())?;
        used[pick] = true;
        Some((pick, self.exchanges[pick].clone()))
    }
}

fn bodies_match(recorded: &Option<RecordedBody>, live: &Option<RecordedBody>) -> bool {
    match (recorded, live) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            // JSON bodies compare as values so key order does not matter.
            let (a, b) = (a.to_bytes(), b.to_bytes());
            match (serde_json::from_slice::<serde_json::Value>(&a), serde_json::from_slice::<serde_json::Value>(&b)) {
                (Ok(x), Ok(y)) => x == y,
                _ => a == b,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_values_are_scrubbed_from_bodies_headers_and_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.json");
        let recorder = Recorder::new(&path);
        let exchange = |body: RecordedBody| Exchange {
            method: "GET".into(),
            url: "https://vault.example/secrets/db".into(),
            request_headers: vec![],
            request_body: None,
            status: 200,
            response_headers: vec![("x-echo".into(), "pre-hunter2-post".into())],
            response_body: Some(body),
            delay_ms: None,
        };
        recorder.append(exchange(RecordedBody::Text(r#"{"value":"hunter2","id":"db","nested":[{"p":"{\"k\":\"hunter2\"}"}]}"#.into())));
        recorder.append(exchange(RecordedBody::Text(r#"{"SecretBinary":"AAEC/w=="}"#.into())));
        recorder.append(exchange(RecordedBody::Text("plain hunter2 text".into())));
        recorder.commit(&[b"hunter2", &[0, 1, 2, 255]]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("AAEC"), "{text}");
        let rec = Recording::load(&path).unwrap();
        assert_eq!(rec.exchanges[0].response_body, Some(RecordedBody::Text(r#"{"id":"db","nested":[{"p":"<redacted>"}],"value":"<redacted>"}"#.into())));
        assert_eq!(rec.exchanges[0].response_headers[0].1, REDACTED);
        assert_eq!(rec.exchanges[2].response_body, Some(RecordedBody::Text(REDACTED.into())));
    }

    #[test]
    fn redacts_credentials_everywhere() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("x-amz-security-token", "tok".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        let r = redact_headers(&h);
        assert!(r.contains(&("authorization".into(), REDACTED.into())));
        assert!(r.contains(&("x-amz-security-token".into(), REDACTED.into())));
        assert!(r.contains(&("accept".into(), "application/json".into())));
        let form = redact_body(Some("application/x-www-form-urlencoded"), b"client_id=a&client_secret=s3&client_assertion=jwt&scope=x").unwrap();
        assert_eq!(form, RecordedBody::Text(format!("client_id=a&client_secret={REDACTED}&client_assertion={REDACTED}&scope=x")));
        let json = redact_body(Some("application/json; charset=utf-8"), br#"{"access_token":"t","expires_in":3599}"#).unwrap();
        let RecordedBody::Text(text) = json else { panic!() };
        assert!(!text.contains("\"t\"") && text.contains("expires_in"));
    }

    #[test]
    fn redacts_credential_named_form_fields_and_xml_elements() {
        let form = redact_body(Some("application/x-www-form-urlencoded"), b"Action=Exchange&Role=r&IdentityToken=eyJ&Password=p").unwrap();
        assert_eq!(form, RecordedBody::Text(format!("Action=Exchange&Role=r&IdentityToken={REDACTED}&Password={REDACTED}")));
        let xml = br#"<?xml version="1.0"?><R xmlns="x"><Credentials><KeyId>K1</KeyId><ClientSecret>s3</ClientSecret><RefreshToken a="1">t0k</RefreshToken><Empty/></Credentials></R>"#;
        let RecordedBody::Text(text) = redact_body(Some("text/xml"), xml).unwrap() else { panic!() };
        assert!(text.contains("<KeyId>K1</KeyId>"), "{text}");
        assert!(text.contains(&format!("<ClientSecret>{REDACTED}</ClientSecret>")), "{text}");
        assert!(text.contains(&format!("<RefreshToken a=\"1\">{REDACTED}</RefreshToken>")), "{text}");
        assert!(!text.contains("s3<") && !text.contains("t0k") && text.contains("<Empty/>"), "{text}");
    }

    #[test]
    fn replay_ignores_redacted_fields_and_serves_in_order() {
        let ex = |status| Exchange {
            method: "POST".into(),
            url: "https://login.example/token".into(),
            request_headers: vec![],
            request_body: redact_body(Some("application/x-www-form-urlencoded"), b"client_id=a&client_assertion=old"),
            status,
            response_headers: vec![],
            response_body: None,
            delay_ms: None,
        };
        let replay = Replayer::new(Recording { version: 1, exchanges: vec![ex(429), ex(200)] });
        let live = redact_body(Some("application/x-www-form-urlencoded"), b"client_id=a&client_assertion=new");
        assert_eq!(replay.find("POST", "https://login.example/token", &live).unwrap().1.status, 429);
        assert_eq!(replay.find("POST", "https://login.example/token", &live).unwrap().1.status, 200);
        assert_eq!(replay.find("POST", "https://login.example/token", &live).unwrap().1.status, 200);
        let other = redact_body(Some("application/x-www-form-urlencoded"), b"client_id=b&client_assertion=new");
        assert!(replay.find("POST", "https://login.example/token", &other).is_none());
        assert!(replay.find("GET", "https://login.example/token", &live).is_none());
    }
}
