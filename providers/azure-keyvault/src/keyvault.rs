//! Key Vault REST (secrets, certificates, keys) and ESO's output for each.
//! The response shaping is pure and unit-tested natively.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lockstep_provider_sdk::http::{Request, Response};
use lockstep_provider_sdk::{ProviderError, Result, form, json};
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::config::Checked;

/// Supported by Azure and by Lowkey Vault 2.x–7.x (which rejects newer versions).
pub const API_VERSION: &str = "7.6";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Cert,
    Key,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Cert => "certificates",
            Kind::Key => "keys",
        }
    }
}

/// `remoteRef.key` as ESO reads it: `name`, `secret/name`, `cert/name`,
/// `key/name` (anything after a second `/` is ignored).
pub fn parse_key(key: &str) -> Result<(Kind, &str)> {
    let mut parts = key.split('/');
    let first = parts.next().unwrap_or_default();
    let (kind, name) = match parts.next() {
        None => (Kind::Secret, first),
        Some(name) => match first {
            "secret" => (Kind::Secret, name),
            "cert" => (Kind::Cert, name),
            "key" => (Kind::Key, name),
            other => {
                return Err(ProviderError::internal(format!(
                    "unknown Azure Key Vault object type {other:?} in key {key:?}: use secret/, cert/ or key/"
                )));
            }
        },
    };
    if name.is_empty() {
        return Err(ProviderError::not_found(format!("key {key:?} names no object")));
    }
    Ok((kind, name))
}

#[derive(Debug, Default, Deserialize)]
pub struct Attributes {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub updated: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
}

/// One object as the GET answers it (the fields of all three kinds).
#[derive(Debug, Default, Deserialize)]
pub struct Bundle {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub cer: Option<String>,
    #[serde(default)]
    pub key: Option<Jwk>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub attributes: Option<Attributes>,
}

impl Bundle {
    /// The version segment of the object's ID.
    pub fn version(&self) -> Option<String> {
        let id = self
            .id
            .as_deref()
            .or(self.kid.as_deref())
            .or(self.key.as_ref().and_then(|k| k.kid.as_deref()))?;
        id.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// ESO's bytes for the object without property or metadata.
    pub fn payload(&self, kind: Kind) -> Result<Vec<u8>> {
        match kind {
            Kind::Secret => Ok(self.value.clone().unwrap_or_default().into_bytes()),
            Kind::Cert => STANDARD
                .decode(self.cer.as_deref().unwrap_or_default())
                .map_err(|_| ProviderError::internal("Key Vault returned a certificate whose cer is not base64")),
            Kind::Key => {
                let jwk = self
                    .key
                    .as_ref()
                    .ok_or_else(|| ProviderError::internal("Key Vault returned a key without its JWK"))?;
                json::to_vec(jwk)
            }
        }
    }

    /// Tags plus the legacy SDK's `attribute.*` timestamps (ESO's metadata map).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut map = self.tags.clone().unwrap_or_default();
        if let Some(a) = &self.attributes {
            for (name, at) in [
                ("expires", a.exp),
                ("created", a.created),
                ("updated", a.updated),
                ("notBefore", a.nbf),
            ] {
                if let Some(at) = at {
                    map.insert(format!("attribute.{name}"), rfc3339(at));
                }
            }
        }
        map
    }
}

/// The JSON Web Key, serialised in the legacy Go SDK's field order with empty fields omitted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Jwk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kty: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ops: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hsm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// Unix seconds as Go's RFC 3339 in UTC (`2006-01-02T15:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Go's `json.Marshal` of a `map[string]string`: sorted keys, HTML-safe escaping.
pub fn go_json_map(map: &BTreeMap<String, String>) -> Vec<u8> {
    let text = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// ESO's `metadataPolicy: Fetch` result for one object.
pub fn select_metadata(meta: &BTreeMap<String, String>, property: Option<&str>) -> Result<Vec<u8>> {
    let Some(p) = property.filter(|p| !p.is_empty()) else {
        return Ok(go_json_map(meta));
    };
    if let Some(v) = meta.get(p) {
        return Ok(v.clone().into_bytes());
    }
    let missing = || ProviderError::not_found(format!("tag {p} does not exist"));
    let (tag, path) = p.split_once('.').ok_or_else(missing)?;
    let value = meta.get(tag).ok_or_else(missing)?;
    json::property_or_dotted_key(value.as_bytes(), path).ok_or_else(missing)
}

/// ESO's property lookup over a secret or key value.
pub fn select_property(value: Vec<u8>, property: Option<&str>, key: &str) -> Result<Vec<u8>> {
    match property.filter(|p| !p.is_empty()) {
        None => Ok(value),
        Some(p) => json::property_or_dotted_key(&value, p)
            .ok_or_else(|| ProviderError::not_found(format!("property {p} does not exist in key {key}"))),
    }
}

/// `dataFrom.extract` with `metadataPolicy: Fetch`: `<name>_<tag>`, flat
/// JSON-object tags expanded to `<name>_<tag>_<k>`; with a property, only `<key>_<property>`.
pub fn metadata_map(
    name: &str,
    key: &str,
    meta: &BTreeMap<String, String>,
    property: Option<&str>,
) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(p) = property.filter(|p| !p.is_empty()) {
        out.insert(
            format!("{key}_{p}"),
            meta.get(p).cloned().unwrap_or_default().into_bytes(),
        );
        return out;
    }
    for (tag, value) in meta {
        match serde_json::from_str::<BTreeMap<String, String>>(value) {
            Ok(inner) => {
                for (k, v) in inner {
                    out.insert(format!("{name}_{tag}_{k}"), v.into_bytes());
                }
            }
            Err(_) => {
                out.insert(format!("{name}_{tag}"), value.clone().into_bytes());
            }
        }
    }
    out
}

/// One listed secret.
#[derive(Debug, Deserialize)]
pub struct Item {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub attributes: Option<Attributes>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Item>,
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
}

/// ESO's `find` filter: enabled, every tag equal, name matching the regexp.
pub fn matches(item: &Item, name_re: Option<&regex_lite::Regex>, tags: &[(String, String)]) -> Option<String> {
    let id = item.id.as_deref()?;
    if item.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
        return None;
    }
    let name = id.trim_end_matches('/').rsplit('/').next()?.to_owned();
    let item_tags = item.tags.as_ref();
    if !tags.iter().all(|(k, v)| item_tags.and_then(|t| t.get(k)) == Some(v)) {
        return None;
    }
    if let Some(re) = name_re
        && !re.is_match(&name)
    {
        return None;
    }
    Some(name)
}

/// The URL of the next page. A `nextLink` must stay on this vault: the
/// bearer token goes with it.
pub fn next_link(vault: &str, link: &str) -> Result<String> {
    let prefix = format!("{vault}/").to_ascii_lowercase();
    if !link.to_ascii_lowercase().starts_with(&prefix) {
        return Err(ProviderError::internal(
            "Key Vault sent a nextLink to another host; refusing to follow it",
        ));
    }
    if link.contains("api-version=") {
        Ok(link.to_owned())
    } else {
        let sep = if link.contains('?') { '&' } else { '?' };
        Ok(format!("{link}{sep}api-version={API_VERSION}"))
    }
}

/// A client for one vault with one token.
pub struct Vault<'a> {
    store: &'a Checked,
    token: String,
}

impl<'a> Vault<'a> {
    pub fn connect(store: &'a Checked) -> Result<Vault<'a>> {
        Ok(Vault {
            store,
            token: auth::vault_token(store)?,
        })
    }

    /// GET one object (`version` empty = latest).
    pub fn get(&self, kind: Kind, name: &str, version: Option<&str>) -> Result<Bundle> {
        let mut url = format!("{}/{}/{}", self.store.vault, kind.collection(), form::escape(name));
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            url = format!("{url}/{}", form::escape(v));
        }
        let what = format!("{} {name}", kind.collection().trim_end_matches('s'));
        let resp = self.send(Request::get(url).query("api-version", API_VERSION), &what)?;
        resp.json()
    }

    /// Every secret of the vault that passes [`matches`], following `nextLink`.
    pub fn list_secrets(&self, name_re: Option<&regex_lite::Regex>, tags: &[(String, String)]) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut url = format!("{}/secrets?api-version={API_VERSION}&maxresults=25", self.store.vault);
        for _ in 0..10_000 {
            let page: Page = self.send(Request::get(url.clone()), "the secret list")?.json()?;
            names.extend(page.value.iter().filter_map(|item| matches(item, name_re, tags)));
            match page.next_link.filter(|l| !l.is_empty()) {
                None => return Ok(names),
                Some(next) => url = next_link(&self.store.vault, &next)?,
            }
        }
        Err(ProviderError::internal("the secret list did not end after 10000 pages"))
    }

    fn send(&self, req: Request, what: &str) -> Result<Response> {
        let resp = req.bearer(&self.token).send()?;
        if resp.is_success() {
            return Ok(resp);
        }
        if resp.status() == 401 {
            auth::forget(&self.token);
        }
        Err(vault_error(&resp, what, &self.store.vault))
    }
}

#[derive(Deserialize, Default)]
struct VaultErrorBody {
    #[serde(default)]
    error: VaultError,
}

#[derive(Deserialize, Default)]
struct VaultError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Key Vault statuses in plain words; messages name the object, never a value.
pub fn vault_error(resp: &Response, what: &str, vault: &str) -> ProviderError {
    let e = serde_json::from_slice::<VaultErrorBody>(resp.body())
        .unwrap_or_default()
        .error;
    let detail = e.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    let status = resp.status();
    match status {
        401 => ProviderError::unauthorized(
            e.code.as_deref(),
            format!("Key Vault {vault} rejected the access token for {what}{detail}"),
        ),
        403 => ProviderError::forbidden(
            e.code.as_deref(),
            format!("Key Vault {vault} denied access to {what}{detail}"),
        ),
        404 => ProviderError::not_found(format!("{what} does not exist in Key Vault {vault}")),
        429 => ProviderError::throttled(
            resp.retry_after(),
            format!("Key Vault {vault} is throttling requests (HTTP 429)"),
        ),
        503 => ProviderError::throttled(
            resp.retry_after(),
            format!("Key Vault {vault} is unavailable (HTTP 503)"),
        ),
        _ => resp.status_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefixes() {
        assert_eq!(parse_key("db").unwrap(), (Kind::Secret, "db"));
        assert_eq!(parse_key("secret/db").unwrap(), (Kind::Secret, "db"));
        assert_eq!(parse_key("cert/tls").unwrap(), (Kind::Cert, "tls"));
        assert_eq!(parse_key("key/sign/ignored").unwrap(), (Kind::Key, "sign"));
        assert_eq!(parse_key("blob/x").unwrap_err().variant(), "internal");
        assert!(parse_key("secret/").is_err());
    }

    #[test]
    fn bundles() {
        let b: Bundle = serde_json::from_str(
            r#"{"value":"{\"a\":1}","id":"https://kv.vault.azure.net/secrets/db/0123abcd","attributes":{"enabled":true,"created":1700000000,"updated":1700000060,"exp":1800000000},"tags":{"team":"a"}}"#,
        )
        .unwrap();
        assert_eq!(b.version().as_deref(), Some("0123abcd"));
        assert_eq!(b.payload(Kind::Secret).unwrap(), br#"{"a":1}"#);
        let meta = b.metadata();
        assert_eq!(meta["attribute.created"], "2023-11-14T22:13:20Z");
        assert_eq!(meta["attribute.expires"], "2027-01-15T08:00:00Z");
        assert!(!meta.contains_key("attribute.notBefore"));
        let c: Bundle = serde_json::from_str(r#"{"cer":"MAMCAQE=","id":"https://kv/certificates/tls/v1"}"#).unwrap();
        assert_eq!(c.payload(Kind::Cert).unwrap(), vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let k: Bundle = serde_json::from_str(
            r#"{"key":{"e":"AQAB","n":"xyz","kty":"RSA","key_ops":["sign","verify"],"kid":"https://kv/keys/k/v9"},"attributes":{"enabled":true}}"#,
        )
        .unwrap();
        assert_eq!(k.version().as_deref(), Some("v9"));
        assert_eq!(
            String::from_utf8(k.payload(Kind::Key).unwrap()).unwrap(),
            r#"{"kid":"https://kv/keys/k/v9","kty":"RSA","key_ops":["sign","verify"],"n":"xyz","e":"AQAB"}"#
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn metadata_fetch() {
        let mut meta = BTreeMap::new();
        meta.insert("team".to_owned(), "a&b".to_owned());
        meta.insert("cfg".to_owned(), r#"{"env":"dev","n":{"x":"y"}}"#.to_owned());
        assert_eq!(
            select_metadata(&meta, None).unwrap(),
            br#"{"cfg":"{\"env\":\"dev\",\"n\":{\"x\":\"y\"}}","team":"a\u0026b"}"#
        );
        assert_eq!(select_metadata(&meta, Some("team")).unwrap(), b"a&b");
        assert_eq!(select_metadata(&meta, Some("cfg.env")).unwrap(), b"dev");
        assert_eq!(select_metadata(&meta, Some("cfg.n.x")).unwrap(), b"y");
        assert_eq!(select_metadata(&meta, Some("nope")).unwrap_err().variant(), "not-found");
        assert_eq!(select_metadata(&BTreeMap::new(), None).unwrap(), b"{}");

        let mut flat = BTreeMap::new();
        flat.insert("team".to_owned(), "a".to_owned());
        flat.insert("owner".to_owned(), r#"{"name":"x","mail":"y"}"#.to_owned());
        let m = metadata_map("db", "secret/db", &flat, None);
        assert_eq!(
            m.keys().cloned().collect::<Vec<_>>(),
            ["db_owner_mail", "db_owner_name", "db_team"]
        );
        let m = metadata_map("db", "secret/db", &flat, Some("team"));
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [("secret/db_team".to_owned(), b"a".to_vec())]
        );
    }

    #[test]
    fn properties() {
        let v = br#"{"admin":{"password":"p"},"foo.json":"x","n":5}"#.to_vec();
        assert_eq!(select_property(v.clone(), Some("admin.password"), "k").unwrap(), b"p");
        assert_eq!(select_property(v.clone(), Some("foo.json"), "k").unwrap(), b"x");
        assert_eq!(select_property(v.clone(), Some("n"), "k").unwrap(), b"5");
        assert_eq!(select_property(v.clone(), None, "k").unwrap(), v);
        let e = select_property(v, Some("missing"), "db").unwrap_err();
        assert_eq!(e, ProviderError::not_found("property missing does not exist in key db"));
    }

    #[test]
    fn find_filter() {
        let item = |json: &str| serde_json::from_str::<Item>(json).unwrap();
        let re = regex_lite::Regex::new("^app-").unwrap();
        let tags = vec![("env".to_owned(), "dev".to_owned())];
        let ok =
            item(r#"{"id":"https://kv/secrets/app-db","attributes":{"enabled":true},"tags":{"env":"dev","x":"y"}}"#);
        assert_eq!(matches(&ok, Some(&re), &tags).as_deref(), Some("app-db"));
        let disabled =
            item(r#"{"id":"https://kv/secrets/app-db","attributes":{"enabled":false},"tags":{"env":"dev"}}"#);
        assert_eq!(matches(&disabled, Some(&re), &tags), None);
        let wrong_tag = item(r#"{"id":"https://kv/secrets/app-db","tags":{"env":"prod"}}"#);
        assert_eq!(matches(&wrong_tag, Some(&re), &tags), None);
        let no_tags = item(r#"{"id":"https://kv/secrets/app-db"}"#);
        assert_eq!(matches(&no_tags, Some(&re), &[]).as_deref(), Some("app-db"));
        assert_eq!(matches(&no_tags, Some(&re), &tags), None);
        let other = item(r#"{"id":"https://kv/secrets/web"}"#);
        assert_eq!(matches(&other, Some(&re), &[]), None);
        assert_eq!(matches(&item(r#"{}"#), None, &[]), None);
    }

    #[test]
    fn next_links_stay_on_the_vault() {
        let v = "https://kv.vault.azure.net";
        assert_eq!(
            next_link(v, "https://kv.vault.azure.net/secrets?api-version=7.6&$skiptoken=25").unwrap(),
            "https://kv.vault.azure.net/secrets?api-version=7.6&$skiptoken=25"
        );
        assert_eq!(
            next_link(v, "https://KV.vault.azure.net/secrets?$skiptoken=25").unwrap(),
            "https://KV.vault.azure.net/secrets?$skiptoken=25&api-version=7.6"
        );
        assert!(next_link(v, "https://kv.vault.azure.net.evil.example/secrets").is_err());
        assert!(next_link(v, "https://evil.example/?https://kv.vault.azure.net/").is_err());
    }

    #[test]
    fn status_errors() {
        let r = |status, body: &str, headers: Vec<(String, String)>| {
            Response::from_parts(status, headers, body.as_bytes().to_vec(), "GET kv/secrets/db")
        };
        let e = vault_error(
            &r(
                403,
                r#"{"error":{"code":"Forbidden","message":"Caller is not authorized"}}"#,
                vec![],
            ),
            "secret db",
            "https://kv",
        );
        match e {
            ProviderError::Forbidden(f) => {
                assert_eq!(f.code.as_deref(), Some("Forbidden"));
                assert_eq!(
                    f.message,
                    "Key Vault https://kv denied access to secret db: Caller is not authorized"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            vault_error(&r(404, "", vec![]), "secret db", "https://kv"),
            ProviderError::not_found("secret db does not exist in Key Vault https://kv")
        );
        match vault_error(
            &r(429, "", vec![("Retry-After".into(), "30".into())]),
            "secret db",
            "https://kv",
        ) {
            ProviderError::Throttled(t) => assert_eq!(t.retry_after_ms, Some(30_000)),
            other => panic!("{other:?}"),
        }
        assert_eq!(vault_error(&r(401, "", vec![]), "x", "v").variant(), "unauthorized");
        assert_eq!(vault_error(&r(500, "", vec![]), "x", "v").variant(), "unavailable");
    }
}
