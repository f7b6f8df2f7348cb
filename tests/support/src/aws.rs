//! AWS for tests: moto (from PyPI, `tests/support/moto/install.sh`) on
//! loopback with IAM authentication enforced, behind a TLS front that serves
//! the real regional hostnames (`secretsmanager.us-east-1.amazonaws.com`,
//! `sts.us-east-1.amazonaws.com`). Clients reach the front through host →
//! address overrides ([`Aws::resolve`]) and trust its CA ([`Aws::ca_file`]).
//!
//! The front, per request: records it (by action, with the time), injects
//! throttling on demand, and for STS `AssumeRoleWithWebIdentity` verifies the
//! web-identity JWT against its issuer's JWKS and the role's trusted
//! subject/audience (the fake Entra's check, [`verify_federated`]) — moto
//! checks none of that. Then it forwards the request unchanged (Host and
//! signature included) to moto over plain HTTP.
//!
//! moto's own checks are on: after the bootstrap that creates an admin key,
//! every call needs a known access key, a valid SigV4 signature and an IAM
//! policy allowing the action. Set-up calls are made with boto3 from moto's
//! venv (`moto/admin.py`), signed with the admin key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::entra::{FederatedCredential, FederationError, IssuerKeys, verify_federated};
use crate::pki::Pki;
use crate::proc::{self, Lifetime};
use crate::tools::cache_dir;
use crate::{Error, tls};

pub const MOTO_VERSION: &str = "5.2.1";
pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT_ID: &str = "123456789012";
pub const SECRETS_MANAGER_HOST: &str = "secretsmanager.us-east-1.amazonaws.com";
pub const STS_HOST: &str = "sts.us-east-1.amazonaws.com";
/// The audience ESO (and the provider) request service-account tokens for.
pub const WEB_IDENTITY_AUDIENCE: &str = "sts.amazonaws.com";
/// Calls moto serves without checks: the bootstrap's three (user, policy, key).
const BOOTSTRAP_CALLS: u32 = 3;

/// An IAM access key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Throttling for the next `count` requests of one action (e.g.
/// `secretsmanager.GetSecretValue`), optionally only for one `SecretId`:
/// `status` (429, or 400 as AWS does) with a `ThrottlingException` body and
/// `Retry-After: retry_after` seconds.
#[derive(Clone, Debug)]
pub struct Throttle {
    pub action: String,
    pub secret_id: Option<String>,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub count: u32,
}

#[derive(Default)]
struct Book {
    throttles: Vec<Throttle>,
    /// Every request: (action, its SecretId if any, when it arrived).
    requests: Vec<(String, Option<String>, SystemTime)>,
    /// Role ARN → the web identities it trusts.
    trust: HashMap<String, Vec<FederatedCredential>>,
}

#[derive(Clone)]
struct Front {
    book: Arc<Mutex<Book>>,
    keys: IssuerKeys,
    moto: SocketAddr,
    http: reqwest::Client,
}

impl Front {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// moto and its front, one per test binary.
pub struct Aws {
    front: Front,
    address: SocketAddr,
    ca_file: PathBuf,
    admin: AccessKey,
    dir: PathBuf,
}

static SHARED: OnceLock<Result<Aws, String>> = OnceLock::new();

impl Aws {
    /// Starts moto and the front on first use, on a thread that lives as long
    /// as the process (moto is tied to it and dies with the test binary).
    /// `issuer_ca_pem` is the CA to trust when fetching a web-identity issuer's
    /// JWKS (the apiserver's; [`crate::TestEnv::ca_pem`]). Panics with the reason.
    pub async fn shared(issuer_ca_pem: Option<String>) -> &'static Aws {
        let r = tokio::task::spawn_blocking(move || SHARED.get_or_init(|| init(issuer_ca_pem))).await.expect("aws init thread");
        match r {
            Ok(aws) => aws,
            Err(e) => panic!("moto unavailable: {e}"),
        }
    }

    /// Where both AWS hostnames must connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `HOST=IP:PORT` overrides for the engine (`--resolve`, `ControllerConfig::resolve`).
    pub fn resolve(&self) -> Vec<String> {
        [SECRETS_MANAGER_HOST, STS_HOST].iter().map(|h| format!("{h}={}", self.address)).collect()
    }

    /// The CA (PEM file) that signed the front's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// moto's log and the CA live here.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes calls with boto3 (admin key unless `key` is given); a failed call is
    /// `{"error": {"code", "message"}}` in its place.
    pub async fn calls(&self, key: Option<&AccessKey>, calls: &[(&str, &str, Value)]) -> Result<Vec<Value>, Error> {
        let calls: Vec<Value> = calls.iter().map(|(s, a, p)| json!({"service": s, "action": a, "params": p})).collect();
        admin_py(self.front.moto, Some(key.unwrap_or(&self.admin)), &calls).await
    }

    /// One call as admin; an AWS error is an `Err` naming its code.
    pub async fn call(&self, service: &str, action: &str, params: Value) -> Result<Value, Error> {
        let v = self.calls(None, &[(service, action, params)]).await?.pop().unwrap_or_default();
        match v.get("error") {
            Some(e) => Err(Error::Other(format!("{service} {action}: {} {}", e["code"], e["message"]))),
            None => Ok(v),
        }
    }

    /// An IAM user allowed `actions` (e.g. `secretsmanager:GetSecretValue`) on every resource; its new key.
    pub async fn user(&self, name: &str, actions: &[&str]) -> Result<AccessKey, Error> {
        self.call("iam", "CreateUser", json!({"UserName": name})).await?;
        self.call("iam", "PutUserPolicy", json!({"UserName": name, "PolicyName": "access", "PolicyDocument": policy(actions)})).await?;
        let v = self.call("iam", "CreateAccessKey", json!({"UserName": name})).await?;
        serde_json::from_value(json!({"access_key_id": v["AccessKey"]["AccessKeyId"], "secret_access_key": v["AccessKey"]["SecretAccessKey"]}))
            .map_err(|e| Error::Other(format!("CreateAccessKey: {e}")))
    }

    /// An IAM role allowed `actions`, trusting the web identities given to
    /// [`Self::trust_web_identity`]; returns its ARN.
    pub async fn role(&self, name: &str, actions: &[&str]) -> Result<String, Error> {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": "kubernetes"}, "Action": "sts:AssumeRoleWithWebIdentity"}]});
        let v = self.call("iam", "CreateRole", json!({"RoleName": name, "AssumeRolePolicyDocument": trust.to_string()})).await?;
        self.call("iam", "PutRolePolicy", json!({"RoleName": name, "PolicyName": "access", "PolicyDocument": policy(actions)})).await?;
        v["Role"]["Arn"].as_str().map(String::from).ok_or_else(|| Error::Other("CreateRole: no ARN".into()))
    }

    /// Lets tokens of `issuer` for `subject` (audience `sts.amazonaws.com`) assume `role_arn`.
    pub fn trust_web_identity(&self, role_arn: &str, issuer: &str, subject: &str) {
        let fic = FederatedCredential { issuer: issuer.into(), subject: subject.into(), audience: WEB_IDENTITY_AUDIENCE.into() };
        self.front.lock().trust.entry(role_arn.into()).or_default().push(fic);
    }

    pub fn throttle(&self, t: Throttle) {
        self.front.lock().throttles.push(t);
    }

    /// Arrival times of the requests for `action` (`secretsmanager.GetSecretValue`, `sts.AssumeRole`, ...).
    pub fn requests(&self, action: &str) -> Vec<SystemTime> {
        self.front.lock().requests.iter().filter(|(a, _, _)| a == action).map(|(_, _, t)| *t).collect()
    }

    /// Arrival times of the requests for `action` naming `secret_id`.
    pub fn requests_for(&self, action: &str, secret_id: &str) -> Vec<SystemTime> {
        self.front.lock().requests.iter().filter(|(a, id, _)| a == action && id.as_deref() == Some(secret_id)).map(|(_, _, t)| *t).collect()
    }
}

fn policy(actions: &[&str]) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}).to_string()
}

fn venv() -> PathBuf {
    cache_dir().join("tools/moto").join(MOTO_VERSION)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("moto").join(name)
}

/// Runs `moto/admin.py` (boto3) against moto directly.
async fn admin_py(moto: SocketAddr, key: Option<&AccessKey>, calls: &[Value]) -> Result<Vec<Value>, Error> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(venv().join("bin/python"))
        .arg(script("admin.py"))
        .arg(format!("http://{moto}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Spawn("moto/admin.py".into(), e))?;
    let input = json!({"credentials": key, "calls": calls}).to_string();
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).await.map_err(|e| Error::io(&script("admin.py"), e))?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(|e| Error::io(&script("admin.py"), e))?;
    if !out.status.success() {
        return Err(Error::Other(format!("moto/admin.py failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::Other(format!("moto/admin.py output: {e}")))
}

fn init(issuer_ca_pem: Option<String>) -> Result<Aws, String> {
    let python = venv().join("bin/python");
    if !venv().join(".complete").exists() {
        return Err(Error::ToolsMissing(python).to_string() + " (moto: tests/support/moto/install.sh)");
    }
    // moto is tied to this thread, which never exits.
    crate::env::on_lasting_thread("lockstep-aws", move || async move { start(issuer_ca_pem).await.map_err(|e| e.to_string()) })
}

/// Removes the directories of earlier runs whose process is gone.
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let pid = e.file_name().to_str().and_then(|n| n.strip_prefix("lockstep-aws-")).and_then(|p| p.parse().ok());
        if pid.is_some_and(|pid| !proc::alive(pid)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn start(issuer_ca_pem: Option<String>) -> Result<Aws, Error> {
    sweep(&std::env::temp_dir());
    let dir = std::env::temp_dir().join(format!("lockstep-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let moto = free_port()?;
    let p = proc::spawn(
        "moto",
        &venv().join("bin/python"),
        &[script("serve.py").display().to_string(), moto.port().to_string(), BOOTSTRAP_CALLS.to_string()],
        &dir,
        Lifetime::TiedToParent,
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(moto).await.is_err() {
        if std::time::Instant::now() > deadline || !proc::alive(p.pid) {
            return Err(Error::Start { what: "moto".into(), detail: proc::tail(&p.log, 20) });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bootstrap = [
        json!({"service": "iam", "action": "CreateUser", "params": {"UserName": "lockstep-admin"}}),
        json!({"service": "iam", "action": "PutUserPolicy", "params": {"UserName": "lockstep-admin", "PolicyName": "all", "PolicyDocument": policy(&["*"])}}),
        json!({"service": "iam", "action": "CreateAccessKey", "params": {"UserName": "lockstep-admin"}}),
    ];
    let out = admin_py(moto, None, &bootstrap).await?;
    let key = &out.last().ok_or_else(|| Error::Other("bootstrap: no output".into()))?["AccessKey"];
    let admin: AccessKey = serde_json::from_value(json!({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}))
        .map_err(|e| Error::Other(format!("bootstrap: no admin key ({e}): {out:?}")))?;

    let pki = Pki::generate()?;
    let leaf = pki.server_leaf("lockstep aws front", &[SECRETS_MANAGER_HOST, STS_HOST])?;
    let ca_file = dir.join("aws-ca.crt");
    std::fs::write(&ca_file, &pki.ca_cert_pem).map_err(|e| Error::io(&ca_file, e))?;
    let mut jwks_http = reqwest::Client::builder().tls_built_in_root_certs(false).timeout(Duration::from_secs(10));
    if let Some(pem) = issuer_ca_pem {
        jwks_http = jwks_http.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).map_err(Error::http)?);
    }
    let front = Front {
        book: Arc::default(),
        keys: IssuerKeys::new(jwks_http.build().map_err(Error::http)?),
        moto,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(Error::http)?,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?;
    let address = listener.local_addr().map_err(|e| Error::io(Path::new("listener"), e))?;
    let router = Router::new().fallback(gate).with_state(front.clone());
    tokio::spawn(tls::serve(listener, tls::server_config(&leaf.cert_pem, &leaf.key_pem)?, router));
    Ok(Aws { front, address, ca_file, admin, dir })
}

fn free_port() -> Result<SocketAddr, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?;
    l.local_addr().map_err(|e| Error::io(Path::new("listener"), e))
}

/// An STS (query protocol) error.
fn sts_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
    );
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

async fn gate(State(f): State<Front>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, 4 << 20).await else { return StatusCode::PAYLOAD_TOO_LARGE.into_response() };
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let action = match parts.headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        Some(target) => target.to_string(),
        None => format!("{}.{}", host.split('.').next().unwrap_or_default(), form.get("Action").map(String::as_str).unwrap_or_default()),
    };
    let secret_id = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["SecretId"].as_str().map(String::from));
    let throttle = {
        let mut book = f.lock();
        book.requests.push((action.clone(), secret_id.clone(), SystemTime::now()));
        let i = book.throttles.iter().position(|t| t.action == action && t.count > 0 && t.secret_id.as_ref().is_none_or(|id| Some(id) == secret_id.as_ref()));
        i.map(|i| {
            book.throttles[i].count -= 1;
            book.throttles[i].clone()
        })
    };
    if let Some(t) = throttle {
        let status = StatusCode::from_u16(t.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let mut r = (status, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string()).into_response();
        if let Some(s) = t.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        return r;
    }
    if action == "sts.AssumeRoleWithWebIdentity" {
        let role = form.get("RoleArn").cloned().unwrap_or_default();
        let trusted = f.lock().trust.get(&role).cloned().unwrap_or_default();
        let token = form.get("WebIdentityToken").map(String::as_str).unwrap_or_default();
        let now = crate::time::unix_now();
        if let Err(e) = verify_federated(&f.keys, token, &trusted, now).await {
            // AWS's answers for the same cases.
            return match e {
                FederationError::UntrustedIssuer(iss) if !trusted.is_empty() => {
                    sts_error(StatusCode::BAD_REQUEST, "InvalidIdentityToken", &format!("No OpenIDConnect provider found in your account for {iss}"))
                }
                FederationError::Time { .. } => sts_error(StatusCode::BAD_REQUEST, "ExpiredTokenException", "Token expired"),
                FederationError::Malformed | FederationError::Algorithm(_) | FederationError::Keys(_) | FederationError::KeyNotFound | FederationError::Signature(_) => {
                    sts_error(StatusCode::BAD_REQUEST, "InvalidIdentityToken", "Couldn't verify the token's signature with the identity provider's keys")
                }
                _ => sts_error(StatusCode::FORBIDDEN, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"),
            };
        }
    }
    forward(&f, parts, body).await
}

/// Sends the request to moto as received (Host and signature untouched).
async fn forward(f: &Front, parts: axum::http::request::Parts, body: bytes::Bytes) -> Response {
    let url = format!("http://{}{}", f.moto, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut req = f.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != header::CONNECTION && name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            req = req.header(name, value);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("moto: {e}")).into_response(),
    };
    let mut out = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if name != header::CONNECTION && name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    out.body(Body::from(body)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
