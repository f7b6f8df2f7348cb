//! The seed how-to, end to end, on the local control plane (`make demo`).
//!
//! 1. starts etcd + kube-apiserver + kube-controller-manager, the fake Entra ID
//!    and the Key Vault endpoint (`lockstep-testenv`);
//! 2. creates the seed's world: the `external-secrets` service account's
//!    federated credential at Entra, the vault `kv-aap-vault-dev` holding the
//!    Grafana admin password;
//! 3. installs Lockstep from `charts/lockstep` (CRDs, ServiceAccount, RBAC) and
//!    runs `lockstep run` as a separate process with the chart's arguments and a
//!    token of the chart's ServiceAccount, as it would run in the cluster;
//! 4. applies `examples/seed/as-written/` and shows the condition the first slip
//!    produces, prints the diff to `examples/seed/fixed/`, applies the first fix
//!    and shows the second slip's condition, applies the second and shows
//!    `kubectl get secret`; rotates the vault value and shows the Secret follow.
//!
//! Secret values are never printed: only their length and sha256.
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lockstep_testenv::{SecretOptions, TestEnv, chart};
use serde_json::{Value, json};
use sha2::Digest;

pub struct Options {
    /// The `lockstep` binary.
    pub lockstep: PathBuf,
    /// The repository checkout (manifests, chart).
    pub checkout: PathBuf,
}

/// What the demo showed, for its test; dropping it stops the engine.
pub struct Report {
    pub kubeconfig: PathBuf,
    pub engine_log: PathBuf,
    /// Ready condition of the ExternalSecret as written: (reason, message).
    pub missing_store: (String, String),
    /// Ready condition of the ExternalSecret with only the store name fixed: (reason, message).
    pub wrong_service_account: (String, String),
    /// `kubectl get secret -n grafana` once the fixed manifests are applied.
    pub secret_listing: String,
    /// Time from applying the fixed manifests to the Secret.
    pub synced_after: Duration,
    /// Time from the force-sync annotation to the rotated value in the Secret.
    pub rotated_after: Duration,
    engine: Child,
}

impl Drop for Report {
    fn drop(&mut self) {
        let _ = self.engine.kill();
        let _ = self.engine.wait();
    }
}

/// The checkout this binary was built from.
pub fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("checkout")
}

const VAULT: &str = "kv-aap-vault-dev";
const REMOTE_KEY: &str = "grafana-admin-password";
const RELEASE: &str = "lockstep";
const RELEASE_NAMESPACE: &str = "lockstep-system";
const TARGET_NAMESPACE: &str = "grafana";
const SECRET: &str = "grafana-admin-credentials";

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let seed = opts.checkout.join("examples/seed");
    step("Starting the local control plane (etcd, kube-apiserver, kube-controller-manager, fake Entra ID, Key Vault)");
    let t0 = Instant::now();
    let env = TestEnv::shared().await;
    println!("  ready in {:.1} s; apiserver {}", t0.elapsed().as_secs_f64(), env.api_url());

    step("The seed's Azure side (steps 1-4): identity, federated credential, vault");
    let sa: Value = serde_yaml::from_str(&std::fs::read_to_string(seed.join("as-written/01-serviceaccount.yaml"))?)?;
    let annotation = |k: &str| sa["metadata"]["annotations"][k].as_str().map(str::to_owned).with_context(|| format!("{k} annotation"));
    let (client_id, tenant_id) = (annotation("azure.workload.identity/client-id")?, annotation("azure.workload.identity/tenant-id")?);
    let subject = TestEnv::subject("external-secrets", "external-secrets");
    env.entra().federate(&tenant_id, &client_id, env.issuer(), &subject).await?;
    println!("  Entra ID: app {client_id} in tenant {tenant_id} trusts {subject} (issuer {})", env.issuer());
    let vault = env.vault_in(VAULT, &tenant_id).await;
    let first = password();
    vault.set_secret(REMOTE_KEY, &first, &SecretOptions::default()).await?;
    println!("  Key Vault: https://{VAULT}.vault.azure.net/secrets/{REMOTE_KEY} = {}", fingerprint(first.as_bytes()));

    step("Installing Lockstep from charts/lockstep (CRDs, ServiceAccount, least-privilege RBAC)");
    let work = env.state_dir().join("demo");
    std::fs::create_dir_all(&work)?;
    let objects = chart::template(RELEASE, RELEASE_NAMESPACE, &[], &[])?;
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").context("the chart renders no Deployment")?.clone();
    let installed: Vec<&Value> = objects.iter().filter(|o| !matches!(o["kind"].as_str(), Some("Deployment" | "Service"))).collect();
    let install_file = work.join("chart-install.yaml");
    std::fs::write(&install_file, installed.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect::<String>())?;
    shell(env, &["create", "namespace", RELEASE_NAMESPACE])?;
    println!("$ helm template {RELEASE} charts/lockstep -n {RELEASE_NAMESPACE}   # all but the Deployment and Service, which run locally:");
    shell(env, &["apply", "--server-side", "-f", &install_file.display().to_string()])?;
    shell(env, &["wait", "--for=condition=Established", "--timeout=60s", "crd/externalsecrets.external-secrets.io", "crd/clustersecretstores.external-secrets.io", "crd/clusterexternalsecrets.external-secrets.io"])?;

    step("The cluster side of the seed (step 5): namespaces and the annotated service account");
    shell(env, &["create", "namespace", "external-secrets"])?;
    shell(env, &["create", "namespace", TARGET_NAMESPACE])?;
    shell(env, &["apply", "-f", &seed.join("as-written/01-serviceaccount.yaml").display().to_string()])?;

    step("Running the engine as the chart's Deployment would (its own ServiceAccount token, the chart's flags)");
    let engine = start_engine(env, &opts.lockstep, &deployment, &work).await?;
    let (engine, engine_log, probe) = engine;
    println!("  engine ready ({}), log: {}", probe, engine_log.display());
    let mut report = Report {
        kubeconfig: env.kubeconfig_path().to_path_buf(),
        engine_log,
        missing_store: Default::default(),
        wrong_service_account: Default::default(),
        secret_listing: String::new(),
        synced_after: Duration::ZERO,
        rotated_after: Duration::ZERO,
        engine,
    };

    step("Applying the seed's manifests as written (steps 6-7, with its two slips)");
    shell(env, &["apply", "-f", &seed.join("as-written").display().to_string()])?;
    let es_ref = ["externalsecret", "-n", TARGET_NAMESPACE, SECRET];
    report.missing_store = wait_condition(env, &es_ref, "a condition on the ExternalSecret", |_, m| m.contains("cluster-secret-store")).await?;
    shell(env, &["get", "clustersecretstore,clusterexternalsecret"])?;
    shell(env, &["get", "externalsecret", "-n", TARGET_NAMESPACE])?;
    println!("  Slip 1, the ExternalSecret's Ready condition: {}: {}", report.missing_store.0, report.missing_store.1);

    step("The two one-line fixes (examples/seed/fixed)");
    let diff = Command::new("diff").arg("-ru").arg("as-written").arg("fixed").current_dir(&seed).output().context("diff")?;
    print!("{}", String::from_utf8_lossy(&diff.stdout));

    step("Fixing the store name first: the second slip shows");
    shell(env, &["apply", "-f", &seed.join("fixed/03-clusterexternalsecret.yaml").display().to_string()])?;
    report.wrong_service_account =
        wait_condition(env, &es_ref, "a condition naming the service account", |s, m| s == "False" && m.contains("cluster-external-secrets")).await?;
    shell(env, &["get", "externalsecret", "-n", TARGET_NAMESPACE])?;
    println!("  Slip 2, the ExternalSecret's Ready condition: {}: {}", report.wrong_service_account.0, report.wrong_service_account.1);
    if get_json(env, &["secret", "-n", TARGET_NAMESPACE, SECRET]).is_some() {
        bail!("a Secret was written from the broken manifests");
    }

    step("Fixing the service account: the seed's result");
    let fixed_at = Instant::now();
    shell(env, &["apply", "-f", &seed.join("fixed").display().to_string()])?;
    let first_data = wait_secret(env, |d| d.get("admin-password").is_some_and(|v| v == first.as_bytes())).await?;
    report.synced_after = fixed_at.elapsed();
    println!("  Secret written {:.1} s after the fix", report.synced_after.as_secs_f64());
    report.secret_listing = shell(env, &["get", "secret", "-n", TARGET_NAMESPACE])?;
    shell(env, &["get", "externalsecret", "-n", TARGET_NAMESPACE])?;
    for (k, v) in &first_data {
        println!("  {k}: {}", fingerprint(v));
    }

    step("Rotating the password in the vault; the Secret follows");
    let second = password();
    vault.set_secret(REMOTE_KEY, &second, &SecretOptions::default()).await?;
    println!("  Key Vault: new version of {REMOTE_KEY} = {}", fingerprint(second.as_bytes()));
    // refreshInterval is 1m; ESO's force-sync annotation asks for the refresh now.
    let rotated_at = Instant::now();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs().to_string();
    shell(env, &["annotate", "externalsecret", "-n", TARGET_NAMESPACE, SECRET, &format!("force-sync={stamp}"), "--overwrite"])?;
    let rotated = wait_secret(env, |d| d.get("admin-password").is_some_and(|v| v == second.as_bytes())).await?;
    report.rotated_after = rotated_at.elapsed();
    println!("  admin-password: {} -> {} in {:.1} s", fingerprint(first.as_bytes()), fingerprint(&rotated["admin-password"]), report.rotated_after.as_secs_f64());
    Ok(report)
}

/// Starts `lockstep run` with the Deployment's arguments, except what differs on a laptop:
/// listen addresses, the cache directory, the kubeconfig (a TokenRequest token of the
/// chart's ServiceAccount) and the vault/Entra host overrides with the local CA.
async fn start_engine(env: &TestEnv, lockstep: &Path, deployment: &Value, work: &Path) -> anyhow::Result<(Child, PathBuf, String)> {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let service_account = pod["serviceAccountName"].as_str().context("serviceAccountName")?;
    let token = env.token_request(RELEASE_NAMESPACE, service_account, Some(env.issuer())).await?;
    let kubeconfig = work.join("engine-kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml::to_string(&json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "engine",
            "clusters": [{"name": "local", "cluster": {"server": env.api_url(), "certificate-authority": env.ca_path()}}],
            "users": [{"name": service_account, "user": {"token": token}}],
            "contexts": [{"name": "engine", "context": {"cluster": "local", "user": service_account}}],
        }))?,
    )?;
    let (metrics, probe) = (free_port()?, free_port()?);
    let local = [
        format!("--metrics-addr={metrics}"),
        format!("--probe-addr={probe}"),
        format!("--compile-cache-dir={}", work.join("compiled").display()),
    ];
    let overridden = |a: &str| local.iter().any(|l| l.split('=').next() == a.split('=').next());
    let mut args: Vec<String> = container["args"].as_array().context("args")?.iter().filter_map(|a| a.as_str()).filter(|a| !overridden(a)).map(str::to_owned).collect();
    args.extend(local);
    args.push(format!("--kubeconfig={}", kubeconfig.display()));
    args.push(format!("--extra-ca-file={}", env.ca_path().display()));
    for (host, addr) in env.host_overrides().await {
        args.push(format!("--resolve={host}={addr}"));
    }
    let mut cmd = Command::new(lockstep);
    cmd.args(&args).env_clear().env("POD_NAME", "lockstep-demo-0").env("POD_NAMESPACE", RELEASE_NAMESPACE);
    for var in container["env"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            cmd.env(name, value);
        }
    }
    println!("$ lockstep {}", args.join(" "));
    let log = work.join("engine.log");
    let file = std::fs::File::create(&log)?;
    let child = cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).spawn().with_context(|| format!("starting {}", lockstep.display()))?;
    let url = format!("http://{probe}/readyz");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok((child, log, url));
        }
        if Instant::now() > deadline {
            bail!("the engine did not become ready in 120 s; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Runs kubectl as admin, echoing the command and its output.
fn shell(env: &TestEnv, args: &[&str]) -> anyhow::Result<String> {
    println!("$ kubectl {}", args.join(" "));
    let out = env.kubectl().args(args).output().context("kubectl")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if !out.status.success() {
        bail!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

fn get_json(env: &TestEnv, what: &[&str]) -> Option<Value> {
    let out = env.kubectl().arg("get").args(what).args(["-o", "json"]).output().ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

/// Waits for the object's Ready condition to satisfy `ok(status, message)`; returns (reason, message).
async fn wait_condition(env: &TestEnv, what: &[&str], describe: &str, ok: impl Fn(&str, &str) -> bool) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(obj) = get_json(env, what)
            && let Some(c) = obj["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready")
        {
            let (status, reason, message) = (c["status"].as_str().unwrap_or(""), c["reason"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or(""));
            if ok(status, message) {
                return Ok((reason.to_owned(), message.to_owned()));
            }
        }
        if Instant::now() > deadline {
            bail!("no {describe} within 60 s ({})", what.join(" "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the target Secret's data to satisfy `ok`; returns the decoded data.
async fn wait_secret(env: &TestEnv, ok: impl Fn(&std::collections::BTreeMap<String, Vec<u8>>) -> bool) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(env.client().await, TARGET_NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = secrets.get_opt(SECRET).await?
            && let data = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()
            && ok(&data)
        {
            return Ok(data);
        }
        if Instant::now() > deadline {
            bail!("Secret {TARGET_NAMESPACE}/{SECRET} did not reach the expected value within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh password (never printed).
fn password() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::thread_rng().r#gen();
    format!("Gr4f-{}", hex::encode(bytes))
}

/// How a value is shown: its length and the start of its sha256.
fn fingerprint(value: &[u8]) -> String {
    format!("{} bytes, sha256 {}…", value.len(), &hex::encode(sha2::Sha256::digest(value))[..12])
}

fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
