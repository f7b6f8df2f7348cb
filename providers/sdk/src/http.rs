//! A small blocking HTTP client over `wasi:http`.
//!
//! The export being called is synchronous and an instance serves one call at
//! a time, so blocking is right: the host parks the fiber, not a thread.
//! The order below matters (see docs/plugin-authoring.md): the body is written
//! and finished *before* `handle`, `Content-Length` is always set, and the
//! host's `ErrorCode` is kept, so a denial surfaces as
//! [`ProviderError::Denied`], not as a vague I/O error.
//!
//! ```no_run
//! use lockstep_provider_sdk::http::Request;
//! # fn f() -> lockstep_provider_sdk::Result<()> {
//! let resp = Request::get("https://kv.example.com/v1/secrets/db")
//!     .bearer("token")
//!     .send()?
//!     .error_for_status()?;
//! let body: serde_json::Value = resp.json()?;
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::parse_retry_after;
use crate::{EgressRule, ProviderError, Result};

/// Timeouts applied when a request sets none. The host's per-call deadline
/// (10 s by default) is the outer bound; these are shorter so a hanging
/// backend usually ends as the plugin's own `unavailable` error and the
/// instance survives (a call cut by the deadline costs the instance).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to the first response byte, and between body chunks.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(8);
/// Response bodies larger than this are refused unless the request raises it.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

/// The parts of an absolute `http(s)` URL that `wasi:http` takes separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    /// `host[:port]` exactly as written.
    pub authority: String,
    pub host: String,
    pub port: Option<u16>,
    /// Path and query, at least `/`; the fragment is dropped.
    pub path_and_query: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| ProviderError::internal(format!("invalid URL: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(bad("scheme must be http or https"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("missing host or userinfo present"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                (h, Some(p.parse::<u16>().map_err(|_| bad("invalid port"))?))
            }
            _ => (authority, None),
        };
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad("invalid host"));
        }
        let path_and_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Target {
            scheme,
            authority: authority.to_owned(),
            host: host.to_ascii_lowercase(),
            port,
            path_and_query,
        })
    }

    /// The egress rule that lets a store reach this URL's origin.
    pub fn egress_rule(&self) -> EgressRule {
        EgressRule { scheme: self.scheme.clone(), host: self.host.clone(), port: self.port }
    }

    /// `METHOD host/path` without the query, for error messages.
    fn describe(&self, method: Method) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        format!("{} {}{}", method.as_str(), self.authority, path)
    }
}

impl EgressRule {
    /// The egress rule for the origin of `url` (`https://host[:port]/...`).
    pub fn from_url(url: &str) -> Result<EgressRule> {
        Target::parse(url).map(|t| t.egress_rule())
    }

    /// `https` to `host` on the default port.
    pub fn https(host: impl Into<String>) -> EgressRule {
        EgressRule { scheme: "https".into(), host: host.into(), port: None }
    }
}

/// An outbound request; build it, then [`send`](Request::send) it.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_response_bytes: usize,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
    pub fn get(url: impl Into<String>) -> Request {
        Request::new(Method::Get, url)
    }
    pub fn post(url: impl Into<String>) -> Request {
        Request::new(Method::Post, url)
    }
    pub fn put(url: impl Into<String>) -> Request {
        Request::new(Method::Put, url)
    }
    pub fn delete(url: impl Into<String>) -> Request {
        Request::new(Method::Delete, url)
    }

    /// Adds a header (names are sent lower-case).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Appends `name=value` to the query string, percent-encoded.
    pub fn query(mut self, name: &str, value: &str) -> Request {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        self.url = format!("{}{sep}{}={}", self.url, crate::form::escape(name), crate::form::escape(value));
        self
    }

    /// A raw body with its content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    /// A JSON body.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Request> {
        let body = crate::json::to_vec(value)?;
        Ok(self.body("application/json", body))
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Request {
        let body = crate::form::encode(pairs);
        self.body("application/x-www-form-urlencoded", body)
    }

    /// Connect, first-byte and between-bytes timeouts at once.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.connect_timeout = timeout;
        self.read_timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Request {
        self.connect_timeout = timeout;
        self
    }

    /// Time to the first byte and between body chunks.
    pub fn read_timeout(mut self, timeout: Duration) -> Request {
        self.read_timeout = timeout;
        self
    }

    /// Refuse response bodies larger than `bytes`.
    pub fn max_response_bytes(mut self, bytes: usize) -> Request {
        self.max_response_bytes = bytes;
        self
    }

    /// The URL this request goes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// The headers set so far (lower-case names), without `content-length`.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body as it will be sent.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Header list as sent: the caller's headers plus `content-length`.
    fn wire_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .filter(|(n, _)| n != "content-length")
            .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
            .collect();
        headers.push(("content-length".into(), self.body.len().to_string().into_bytes()));
        headers
    }

    /// Sends the request and reads the whole response (up to the size cap).
    /// Transport failures become errors; HTTP error statuses do not (see
    /// [`Response::error_for_status`]).
    pub fn send(self) -> Result<Response> {
        let target = Target::parse(&self.url)?;
        let what = target.describe(self.method);
        wasi::send(&self, &target).map_err(|e| match e {
            ProviderError::Denied(m) => ProviderError::Denied(format!("{what}: {m}")),
            ProviderError::Unavailable(m) => ProviderError::Unavailable(format!("{what}: {m}")),
            ProviderError::Internal(m) => ProviderError::Internal(format!("{what}: {m}")),
            other => other,
        })
        .map(|(status, headers, body)| Response { status, headers, body, what })
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    what: String,
}

impl Response {
    /// A response built in memory (tests, replay).
    pub fn from_parts(status: u16, headers: Vec<(String, String)>, body: Vec<u8>, what: &str) -> Response {
        let headers = headers.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
        Response { status, headers, body, what: what.into() }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as JSON; errors never quote the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        crate::json::from_slice(&self.body)
    }

    /// How long the backend asked us to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }

    /// `Ok(self)` for 2xx, else the mapped error ([`ProviderError::from_status`]).
    pub fn error_for_status(self) -> Result<Response> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.status_error())
        }
    }

    /// The error for this (non-success) status, honouring `Retry-After`.
    pub fn status_error(&self) -> ProviderError {
        ProviderError::from_status(self.status, self.retry_after(), &self.what)
    }
}

/// Maps a `wasi:http` error code onto the WIT error the engine acts on.
pub fn map_error_code(code: &wasip2::http::types::ErrorCode) -> ProviderError {
    use wasip2::http::types::ErrorCode as E;
    match code {
        E::HttpRequestDenied => ProviderError::denied("request denied by the host's egress policy"),
        E::DestinationIpProhibited => ProviderError::denied("destination address prohibited by the host"),
        E::DnsTimeout
        | E::DnsError(_)
        | E::DestinationNotFound
        | E::DestinationUnavailable
        | E::DestinationIpUnroutable
        | E::ConnectionRefused
        | E::ConnectionTerminated
        | E::ConnectionTimeout
        | E::ConnectionReadTimeout
        | E::ConnectionWriteTimeout
        | E::ConnectionLimitReached
        | E::TlsProtocolError
        | E::TlsCertificateError
        | E::TlsAlertReceived(_)
        | E::HttpResponseIncomplete
        | E::HttpResponseTimeout
        | E::HttpProtocolError => ProviderError::unavailable(format!("{code:?}")),
        E::HttpResponseBodySize(_) => ProviderError::internal("response body exceeds the host's size cap"),
        E::InternalError(Some(m)) => ProviderError::unavailable(format!("host error: {m}")),
        other => ProviderError::internal(format!("{other:?}")),
    }
}

/// The raw `wasi:http` exchange.
mod wasi {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        Fields, IncomingBody, Method as WMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::streams::StreamError;

    use super::{Method, Request, Target, map_error_code};
    use crate::{ProviderError, Result};

    fn internal<T: std::fmt::Debug>(what: &str) -> impl FnOnce(T) -> ProviderError + '_ {
        move |e| ProviderError::internal(format!("{what}: {e:?}"))
    }

    pub(super) fn send(req: &Request, target: &Target) -> Result<(u16, Vec<(String, String)>, Vec<u8>)> {
        let fields = Fields::from_list(&req.wire_headers()).map_err(internal("invalid header"))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match req.method {
            Method::Get => WMethod::Get,
            Method::Post => WMethod::Post,
            Method::Put => WMethod::Put,
            Method::Patch => WMethod::Patch,
            Method::Delete => WMethod::Delete,
            Method::Head => WMethod::Head,
        };
        let scheme = if target.scheme == "https" { Scheme::Https } else { Scheme::Http };
        outgoing.set_method(&method).map_err(internal("method"))?;
        outgoing.set_scheme(Some(&scheme)).map_err(internal("scheme"))?;
        outgoing.set_authority(Some(&target.authority)).map_err(internal("authority"))?;
        outgoing.set_path_with_query(Some(&target.path_and_query)).map_err(internal("path"))?;

        // The body is complete before the request is handed over.
        let body = outgoing.body().map_err(internal("request body"))?;
        {
            let stream = body.write().map_err(internal("request body stream"))?;
            for chunk in req.body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).map_err(|e| stream_error(e, "writing the request body"))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|c| map_error_code(&c))?;

        let options = RequestOptions::new();
        // A host may not support a timeout; its own deadline still applies.
        let _ = options.set_connect_timeout(Some(nanos(req.connect_timeout)));
        let _ = options.set_first_byte_timeout(Some(nanos(req.read_timeout)));
        let _ = options.set_between_bytes_timeout(Some(nanos(req.read_timeout)));

        let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(|c| map_error_code(&c))?;
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(map_error_code(&code)),
            Some(Err(())) => return Err(ProviderError::internal("response already taken")),
            None => return Err(ProviderError::internal("response not ready after block")),
        };
        let status = response.status();
        let headers = {
            let fields = response.headers();
            fields
                .entries()
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
                .collect()
        };

        let incoming = response.consume().map_err(internal("response body"))?;
        let mut body = Vec::new();
        {
            let stream = incoming.stream().map_err(internal("response body stream"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        if body.len() + chunk.len() > req.max_response_bytes {
                            return Err(ProviderError::internal(format!(
                                "response body exceeds {} bytes",
                                req.max_response_bytes
                            )));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(e, "reading the response body")),
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok((status, headers, body))
    }

    fn stream_error(e: StreamError, doing: &str) -> ProviderError {
        match e {
            StreamError::Closed => ProviderError::unavailable(format!("stream closed while {doing}")),
            StreamError::LastOperationFailed(err) => match wasip2::http::types::http_error_code(&err) {
                Some(code) => map_error_code(&code),
                None => ProviderError::unavailable(format!("{doing}: {}", err.to_debug_string())),
            },
        }
    }

    fn nanos(d: std::time::Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("https://Vault.example.com/secrets/a?api-version=7.5#frag").unwrap();
        assert_eq!(t.scheme, "https");
        assert_eq!(t.authority, "Vault.example.com");
        assert_eq!(t.host, "vault.example.com");
        assert_eq!(t.port, None);
        assert_eq!(t.path_and_query, "/secrets/a?api-version=7.5");
        let t = Target::parse("http://127.0.0.1:8443").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path_and_query.as_str()), ("127.0.0.1", Some(8443), "/"));
        let t = Target::parse("https://[::1]:9/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", Some(9)));
        let t = Target::parse("https://h?q=1").unwrap();
        assert_eq!(t.path_and_query, "/?q=1");
        for bad in ["vault.example.com", "ftp://h/", "https:///p", "https://u:p@h/", "https://h:99999/"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn egress_from_url() {
        assert_eq!(
            EgressRule::from_url("https://login.example.com:8443/t/oauth2").unwrap(),
            EgressRule { scheme: "https".into(), host: "login.example.com".into(), port: Some(8443) }
        );
    }

    #[test]
    fn builder_sets_content_length_and_query() {
        let r = Request::post("https://h/token")
            .query("api-version", "7.5")
            .query("q", "a b")
            .header("Content-Length", "999")
            .form(&[("a", "1")]);
        assert_eq!(r.url(), "https://h/token?api-version=7.5&q=a%20b");
        let h = r.wire_headers();
        assert!(h.contains(&("content-type".into(), b"application/x-www-form-urlencoded".to_vec())));
        assert_eq!(h.iter().filter(|(n, _)| n == "content-length").count(), 1);
        assert!(h.contains(&("content-length".into(), b"3".to_vec())));
        let g = Request::get("https://h/").wire_headers();
        assert_eq!(g, vec![("content-length".to_string(), b"0".to_vec())]);
    }

    #[test]
    fn status_errors_use_retry_after() {
        let r = Response::from_parts(429, vec![("Retry-After".into(), "2".into())], vec![], "GET h/x");
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.clone().error_for_status().unwrap_err(), ProviderError::throttled(Some(Duration::from_secs(2)), "GET h/x: HTTP 429"));
        let ok = Response::from_parts(200, vec![], b"{\"a\":1}".to_vec(), "GET h/x");
        assert_eq!(ok.error_for_status().unwrap().json::<serde_json::Value>().unwrap()["a"], 1);
    }

    #[test]
    fn error_codes() {
        use wasip2::http::types::ErrorCode as E;
        assert_eq!(map_error_code(&E::HttpRequestDenied).variant(), "denied");
        assert_eq!(map_error_code(&E::ConnectionRefused).variant(), "unavailable");
        assert_eq!(map_error_code(&E::ConnectionReadTimeout).variant(), "unavailable");
        assert_eq!(map_error_code(&E::HttpRequestUriInvalid).variant(), "internal");
    }
}
