//! etcd → kube-apiserver → kube-controller-manager, the real upstream binaries.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::pki::PkiFiles;
use crate::proc::{self, Lifetime, Proc};
use crate::tools::Tools;
use crate::Error;

/// Audience Entra expects on a workload-identity assertion.
pub const AZURE_TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Environment variable: etcd's `--quota-backend-bytes` for clusters started by this process.
pub const ETCD_QUOTA_ENV: &str = "LOCKSTEP_ETCD_QUOTA_BYTES";

/// What a running cluster exposes to clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterState {
    pub api_url: String,
    /// Service-account issuer; equals `api_url`, so `{iss}/.well-known/openid-configuration` resolves.
    pub issuer: String,
    pub admin_token: String,
    pub kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    pub ca_cert: PathBuf,
    pub etcd_url: String,
    pub procs: Vec<Proc>,
}

// Metadata only: request and response bodies (which carry Secret data) are never logged.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

const KCM_CONTROLLERS: &str =
    "garbage-collector-controller,namespace-controller,serviceaccount-controller,root-ca-certificate-publisher-controller";

pub async fn start(dir: &Path, tools: &Tools, pki: &PkiFiles, lifetime: Lifetime) -> Result<ClusterState, Error> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    let mut procs = Vec::new();
    match start_inner(dir, &logs, tools, pki, lifetime, &mut procs).await {
        Ok(state) => Ok(state),
        Err(e) => {
            // Logs stay in the state directory for the post-mortem.
            for p in procs.iter().rev() {
                proc::stop(p.pid, Duration::from_secs(5));
            }
            Err(e)
        }
    }
}

async fn start_inner(
    dir: &Path,
    logs: &Path,
    tools: &Tools,
    pki: &PkiFiles,
    lifetime: Lifetime,
    procs: &mut Vec<Proc>,
) -> Result<ClusterState, Error> {
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&read(&pki.ca_cert)?).map_err(Error::http)?)
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(Error::http)?;

    // etcd
    let (client_port, peer_port) = (proc::free_port()?, proc::free_port()?);
    let etcd_url = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut etcd_args: Vec<String> = vec![
        "--name=lockstep".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={etcd_url}"),
        format!("--advertise-client-urls={etcd_url}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=lockstep={peer}"),
        "--unsafe-no-fsync".into(),
        "--log-level=warn".into(),
    ];
    // Benchmarks storing ~1 GiB of Secrets raise etcd's 2 GiB default quota.
    if let Ok(bytes) = std::env::var(ETCD_QUOTA_ENV) {
        etcd_args.push(format!("--quota-backend-bytes={bytes}"));
    }
    let etcd = proc::spawn("etcd", &tools.etcd, &etcd_args, logs, lifetime)?;
    procs.push(etcd.clone());
    wait_until(&etcd, Duration::from_secs(30), || async {
        let r = http.get(format!("{etcd_url}/health")).send().await.ok()?;
        r.text().await.ok().filter(|t| t.contains("\"true\""))
    })
    .await?;

    // kube-apiserver
    let api_port = proc::free_port()?;
    let api_url = format!("https://127.0.0.1:{api_port}");
    let admin_token = random_token();
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, format!("{admin_token},lockstep-admin,lockstep-admin,\"system:masters\"\n")).map_err(|e| Error::io(&tokens, e))?;
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY).map_err(|e| Error::io(&policy, e))?;
    let audit_log = logs.join("audit.log");
    let apiserver = proc::spawn(
        "kube-apiserver",
        &tools.kube_apiserver,
        &[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.apiserver_cert.display()),
            format!("--tls-private-key-file={}", pki.apiserver_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC".into(),
            "--anonymous-auth=true".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--service-account-issuer={api_url}"),
            format!("--service-account-jwks-uri={api_url}/openid/v1/jwks"),
            format!("--service-account-signing-key-file={}", pki.sa_key.display()),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!("--api-audiences={api_url}"),
            format!("--audit-log-path={}", audit_log.display()),
            format!("--audit-policy-file={}", policy.display()),
            "--audit-log-format=json".into(),
            "--audit-log-mode=blocking".into(),
            // 127.0.0.1 is not a valid Endpoints address; nothing routes to the service anyway.
            "--endpoint-reconciler-type=none".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
        ],
        logs,
        lifetime,
    )?;
    procs.push(apiserver.clone());
    wait_until(&apiserver, Duration::from_secs(120), || async {
        let r = http.get(format!("{api_url}/readyz")).bearer_auth(&admin_token).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await?;

    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig, &api_url, &pki.ca_cert, &admin_token)?;
    allow_anonymous_discovery(&http, &api_url, &admin_token).await?;

    // kube-controller-manager
    let kcm_port = proc::free_port()?;
    let kcm = proc::spawn(
        "kube-controller-manager",
        &tools.kube_controller_manager,
        &[
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kubeconfig.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm_port}"),
            format!("--cert-dir={}", dir.join("kcm-certs").display()),
            format!("--controllers={KCM_CONTROLLERS}"),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            format!("--service-account-private-key-file={}", pki.sa_key.display()),
            "--use-service-account-credentials=false".into(),
        ],
        logs,
        lifetime,
    )?;
    procs.push(kcm.clone());
    // The serviceaccount controller creating `default` proves the KCM is working.
    wait_until(&kcm, Duration::from_secs(60), || async {
        let r = http
            .get(format!("{api_url}/api/v1/namespaces/default/serviceaccounts/default"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await?;

    Ok(ClusterState {
        issuer: api_url.clone(),
        api_url,
        admin_token,
        kubeconfig,
        audit_log,
        ca_cert: pki.ca_cert.clone(),
        etcd_url,
        procs: procs.clone(),
    })
}

/// Entra fetches the issuer's discovery document and JWKS anonymously, as it
/// does from an AKS issuer; by default only service accounts may read them.
async fn allow_anonymous_discovery(http: &reqwest::Client, api_url: &str, token: &str) -> Result<(), Error> {
    let body = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "lockstep:service-account-issuer-discovery-anonymous"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:service-account-issuer-discovery"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}]
    });
    let r = http
        .post(format!("{api_url}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(Error::http)?;
    if r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT {
        Ok(())
    } else {
        Err(Error::Start { what: "anonymous discovery binding".into(), detail: r.text().await.unwrap_or_default() })
    }
}

pub fn write_kubeconfig(path: &Path, api_url: &str, ca: &Path, token: &str) -> Result<(), Error> {
    let cfg = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lockstep", "cluster": {"server": api_url, "certificate-authority": ca}}],
        "users": [{"name": "lockstep-admin", "user": {"token": token}}],
        "contexts": [{"name": "lockstep", "context": {"cluster": "lockstep", "user": "lockstep-admin"}}],
        "current-context": "lockstep",
    });
    let text = serde_yaml::to_string(&cfg).map_err(|e| Error::Start { what: "kubeconfig".into(), detail: e.to_string() })?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Polls `probe` until it yields, the process dies, or the deadline passes.
async fn wait_until<F, Fut, T>(p: &Proc, timeout: Duration, probe: F) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if !proc::alive(p.pid) {
            return Err(Error::Start { what: format!("{} exited", p.name), detail: log_hint(&p.log) });
        }
        if Instant::now() > deadline {
            return Err(Error::Start { what: format!("{} not ready after {timeout:?}", p.name), detail: log_hint(&p.log) });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn log_hint(log: &Path) -> String {
    format!("log {}:\n{}", log.display(), proc::tail(log, 20))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

pub(crate) fn random_token() -> String {
    let bytes: [u8; 24] = rand::thread_rng().r#gen();
    hex::encode(bytes)
}

/// Stops a cluster's processes, newest first.
pub fn stop(procs: &[Proc]) {
    for p in procs.iter().rev() {
        proc::stop(p.pid, Duration::from_secs(10));
    }
}

pub fn default_state_root() -> PathBuf {
    crate::tools::cache_dir().join("testenv")
}
