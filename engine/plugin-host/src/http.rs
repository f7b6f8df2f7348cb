//! Outbound HTTP of every plugin: checked in one place ([`OutboundHttp::send`])
//! against the unit's [`EgressGrant`], capped in size, and sent by one pooled
//! host client (reqwest + rustls), or answered from a recording.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use crate::egress::{Denial, DenyReason, EgressGrant, Target};
use crate::grants::NetworkGrants;
use crate::record::{redact_body, redact_headers, Attempt, AttemptOutcome, Exchange, Recorder, Replayer};
use crate::HostError;

/// Settings of the host's HTTP client.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    /// Bound of one request, response body included.
    pub request_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// Send every request through this proxy (`http://proxy:3128`).
    pub proxy: Option<String>,
    /// Hosts that bypass the proxy (curl's NO_PROXY syntax).
    pub no_proxy: Option<String>,
    /// Extra PEM bundles trusted next to the built-in and system roots.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Host-to-address overrides, also for IP literals. Operator configuration:
    /// the addresses are trusted as given (no address-class check).
    pub overrides: Vec<HostOverride>,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    /// Write every exchange (redacted) to this file.
    pub record: Option<PathBuf>,
    /// Answer from this recording instead of the network.
    pub replay: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            proxy: None,
            no_proxy: None,
            extra_ca_pem: Vec::new(),
            overrides: Vec::new(),
            max_request_bytes: 1 << 20,
            max_response_bytes: 16 << 20,
            record: None,
            replay: None,
        }
    }
}

/// `HOST=IP:PORT` (a CLI flag value): connect to `IP:PORT` for `HOST`.
/// `HOST` may be a name or an IP literal (IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOverride {
    pub host: String,
    pub addr: SocketAddr,
}

impl std::str::FromStr for HostOverride {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, addr) = s.split_once('=').ok_or_else(|| format!("override {s:?}: expected HOST=IP:PORT"))?;
        let addr = addr.parse().map_err(|_| format!("override {s:?}: {addr:?} is not IP:PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(format!("override {s:?}: empty host"));
        }
        Ok(Self { host, addr })
    }
}

/// Per-store state of the egress check: who is asking, what they may reach,
/// and the last denial (the host turns it into the WIT `denied` error).
#[derive(Debug, Clone)]
pub struct EgressContext {
    pub plugin: String,
    pub grant: Arc<EgressGrant>,
    pub metrics: crate::HostMetrics,
    pub last_denial: Arc<Mutex<Option<Denial>>>,
}

impl EgressContext {
    pub fn new(plugin: &str, grant: EgressGrant, metrics: crate::HostMetrics) -> Self {
        Self { plugin: plugin.to_string(), grant: Arc::new(grant), metrics, last_denial: Default::default() }
    }

    fn deny(&self, denial: Denial) -> HttpError {
        tracing::warn!(plugin = %self.plugin, target = %denial.target, reason = denial.reason.as_str(), "{denial}");
        self.metrics.denial(&self.plugin, denial.reason.as_str());
        *self.last_denial.lock().expect("denial lock") = Some(denial.clone());
        match denial.reason {
            DenyReason::RequestTooLarge => HttpError::HttpRequestBodySize(None),
            DenyReason::ResponseTooLarge => HttpError::HttpResponseBodySize(None),
            _ => HttpError::HttpRequestDenied,
        }
    }

    /// Takes the denial recorded during the current call, if any.
    pub fn take_denial(&self) -> Option<Denial> {
        self.last_denial.lock().expect("denial lock").take()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a resolver returns for a name that resolves to an address the
/// grant excludes; found again in reqwest's error chain.
#[derive(Debug)]
struct AddressDenied(Denial);

impl std::fmt::Display for AddressDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for AddressDenied {}

/// Resolution for one set of address grants: overrides first, then the
/// system resolver, refusing names with any address outside the grant.
/// Checking at connect time leaves no gap between check and use.
struct GrantResolver {
    network: NetworkGrants,
    overrides: Arc<HashMap<String, SocketAddr>>,
}

impl reqwest::dns::Resolve for GrantResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let network = self.network;
        let overridden = self.overrides.get(&host).copied();
        Box::pin(async move {
            if let Some(addr) = overridden {
                return Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs);
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let grant = EgressGrant { rules: Vec::new(), network };
            for a in &addrs {
                grant.check_address(&host, a.ip()).map_err(|d| Box::new(AddressDenied(d)) as BoxError)?;
            }
            Ok::<_, BoxError>(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one outbound HTTP client of the process.
pub struct OutboundHttp {
    config: HttpConfig,
    overrides: Arc<HashMap<String, SocketAddr>>,
    /// One connection pool per set of address grants, so a connection opened
    /// under a wider grant is never reused under a narrower one.
    clients: Mutex<HashMap<NetworkGrants, reqwest::Client>>,
    recorder: Option<Recorder>,
    replayer: Option<Replayer>,
}

impl std::fmt::Debug for OutboundHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundHttp").field("config", &self.config).finish_non_exhaustive()
    }
}

impl OutboundHttp {
    pub fn new(config: HttpConfig) -> Result<Self, HostError> {
        let overrides = Arc::new(config.overrides.iter().map(|o| (o.host.clone(), o.addr)).collect());
        let replayer = match &config.replay {
            Some(p) => Some(Replayer::load(p).map_err(|e| HostError::Config(format!("--replay {}: {e}", p.display())))?),
            None => None,
        };
        let recorder = config.record.as_ref().map(Recorder::new);
        let this = Self { config, overrides, clients: Mutex::new(HashMap::new()), recorder, replayer };
        // Build one client now so bad CA bundles or proxies fail at start-up.
        this.client(NetworkGrants::default())?;
        Ok(this)
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Ends a provider call when recording: scrubs the values it returned and writes the
    /// file (the values are only gathered when recording; calls are a hot path).
    pub(crate) fn commit_recording<'v>(&self, returned: impl FnOnce() -> Vec<&'v [u8]>) -> std::io::Result<()> {
        self.recorder.as_ref().map_or(Ok(()), |r| r.commit(&returned()))
    }

    /// The replayer, when answering from a recording.
    pub fn replayer(&self) -> Option<&Replayer> {
        self.replayer.as_ref()
    }

    fn client(&self, network: NetworkGrants) -> Result<reqwest::Client, HostError> {
        let mut clients = self.clients.lock().expect("client lock");
        if let Some(c) = clients.get(&network) {
            return Ok(c.clone());
        }
        let cfg = &self.config;
        let mut b = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GrantResolver { network, overrides: self.overrides.clone() }));
        for pem in &cfg.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| HostError::Config(format!("extra CA bundle: {e}")))? {
                b = b.add_root_certificate(cert);
            }
        }
        b = match &cfg.proxy {
            Some(p) => {
                let mut proxy = reqwest::Proxy::all(p).map_err(|e| HostError::Config(format!("proxy {p:?}: {e}")))?;
                if let Some(np) = &cfg.no_proxy {
                    proxy = proxy.no_proxy(reqwest::NoProxy::from_string(np));
                }
                b.proxy(proxy)
            }
            // Environment proxies are the operator's to set explicitly.
            None => b.no_proxy(),
        };
        let client = b.build().map_err(|e| HostError::Config(format!("http client: {e}")))?;
        clients.insert(network, client.clone());
        Ok(client)
    }

    /// Checks and sends one request of a plugin. Every outbound request of
    /// every plugin passes here.
    pub async fn send(
        &self,
        ctx: &EgressContext,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let target = match ctx.grant.check_url(request.uri()) {
            Ok(target) => target,
            Err(denial) => {
                if let Some(replayer) = &self.replayer {
                    replayer.log(Attempt {
                        method: request.method().to_string(),
                        url: request.uri().to_string(),
                        authority: denial.target.clone(),
                        headers: header_pairs(request.headers()),
                        outcome: AttemptOutcome::Denied(denial.reason.as_str().to_string()),
                    });
                }
                return Err(ctx.deny(denial));
            }
        };
        let (parts, body) = request.into_parts();
        let cap = self.config.max_request_bytes;
        let body = match http_body_util::Limited::new(body, cap).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ctx.deny(Denial {
                    reason: DenyReason::RequestTooLarge,
                    target: target.authority(),
                    detail: format!("request body exceeds the {cap} byte cap"),
                }))
            }
            Err(e) => return Err(HttpError::InternalError(Some(format!("request body: {e}")))),
        };
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        // The URL is rebuilt from the validated target: the authority a request
        // goes to is never taken from the guest's headers.
        let url = format!("{}://{}{}", scheme_str(&target), target.authority(), path);
        let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);

        if let Some(replayer) = &self.replayer {
            let live = redact_body(content_type.as_deref(), &body);
            let found = replayer.find(parts.method.as_str(), &url, &live);
            replayer.log(Attempt {
                method: parts.method.to_string(),
                url: url.clone(),
                authority: target.authority(),
                headers: header_pairs(&parts.headers),
                outcome: found.as_ref().map_or(AttemptOutcome::Unmatched, |(i, _)| AttemptOutcome::Replayed(*i)),
            });
            let Some((_, ex)) = found else {
                return Err(HttpError::InternalError(Some(format!("replay: no recorded exchange for {} {url}", parts.method))));
            };
            if let Some(ms) = ex.delay_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let mut resp = http::Response::builder().status(ex.status);
            for (k, v) in &ex.response_headers {
                resp = resp.header(k, v);
            }
            let bytes = Bytes::from(ex.response_body.as_ref().map(|b| b.to_bytes()).unwrap_or_default());
            return resp
                .body(full_body(bytes))
                .map_err(|e| HttpError::InternalError(Some(format!("replay: {e}"))));
        }

        let client = self.client(ctx.grant.network).map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
        let mut send_url = url.clone();
        let mut headers = parts.headers.clone();
        headers.remove(http::header::HOST);
        headers.remove(http::header::CONTENT_LENGTH);
        if let Some(addr) = target.ip.and_then(|_| self.overrides.get(&target.host)) {
            // reqwest does not resolve IP literals, so an override of one
            // rewrites the connection address and keeps the Host header.
            send_url = format!("{}://{}{}", scheme_str(&target), addr, path);
            headers.insert(http::header::HOST, http::HeaderValue::from_str(&target.authority()).map_err(|_| HttpError::HttpRequestUriInvalid)?);
        }
        let mut timeout = self.config.request_timeout;
        if let Some(t) = options.and_then(|o| o.first_byte_timeout) {
            timeout = timeout.min(t);
        }
        let req = client
            .request(parts.method.clone(), &send_url)
            .headers(headers)
            .body(body.clone())
            .timeout(timeout)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let resp = match client.execute(req).await {
            Ok(r) => r,
            Err(e) => return Err(self.map_send_error(ctx, &target, e)),
        };
        let max = self.config.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(ctx.deny(too_large(&target, max)));
        }
        let resp: http::Response<reqwest::Body> = resp.into();
        if let Some(recorder) = &self.recorder {
            let (rparts, rbody) = resp.into_parts();
            let bytes = match http_body_util::Limited::new(rbody, max).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(ctx.deny(too_large(&target, max))),
                Err(e) => return Err(HttpError::InternalError(Some(format!("response body: {e}")))),
            };
            let rct = rparts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let exchange = Exchange {
                method: parts.method.to_string(),
                url,
                request_headers: redact_headers(&parts.headers),
                request_body: redact_body(content_type.as_deref(), &body),
                status: rparts.status.as_u16(),
                response_headers: redact_headers(&rparts.headers),
                response_body: redact_body(rct, &bytes),
                delay_ms: None,
            };
            recorder.append(exchange);
            return Ok(http::Response::from_parts(rparts, full_body(bytes)));
        }
        let (rparts, rbody) = resp.into_parts();
        let capped = CappedBody { inner: Box::pin(rbody), seen: 0, max, ctx: ctx.clone(), target: target.authority(), failed: false };
        Ok(http::Response::from_parts(rparts, capped.boxed_unsync()))
    }

    fn map_send_error(&self, ctx: &EgressContext, target: &Target, err: reqwest::Error) -> HttpError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(AddressDenied(d)) = e.downcast_ref::<AddressDenied>() {
                return ctx.deny(Denial { target: target.authority(), ..d.clone() });
            }
            source = e.source();
        }
        tracing::debug!(plugin = %ctx.plugin, target = %target.authority(), error = %err, "outbound request failed");
        if err.is_timeout() {
            HttpError::ConnectionTimeout
        } else if err.is_connect() {
            HttpError::ConnectionRefused
        } else {
            HttpError::InternalError(Some(format!("request to {} failed: {err}", target.authority())))
        }
    }
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn scheme_str(t: &Target) -> &'static str {
    match t.scheme {
        crate::egress::Scheme::Http => "http",
        crate::egress::Scheme::Https => "https",
    }
}

fn too_large(target: &Target, max: usize) -> Denial {
    Denial {
        reason: DenyReason::ResponseTooLarge,
        target: target.authority(),
        detail: format!("response body exceeds the {} MiB cap", max >> 20),
    }
}

fn full_body(bytes: Bytes) -> WasiBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// A response body that stops with an error once it passes the cap.
struct CappedBody {
    inner: Pin<Box<reqwest::Body>>,
    seen: usize,
    max: usize,
    ctx: EgressContext,
    target: String,
    failed: bool,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len();
                    if self.seen > self.max {
                        self.failed = true;
                        let denial = Denial {
                            reason: DenyReason::ResponseTooLarge,
                            target: self.target.clone(),
                            detail: format!("response body exceeds the {} MiB cap; cut after {} bytes", self.max >> 20, self.seen),
                        };
                        return Poll::Ready(Some(Err(self.ctx.deny(denial))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                HttpError::ConnectionReadTimeout
            } else {
                HttpError::HttpResponseIncomplete
            }))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }
}
