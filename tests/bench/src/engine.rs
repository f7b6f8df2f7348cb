//! The engine under test: `lockstep run` as a separate process, with a TokenRequest
//! token of its own ServiceAccount bound to `engine/controller/rbac/clusterrole.yaml`
//! (never admin), and what /proc and its /metrics say about it.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use k8s_openapi::{
    api::{
        core::v1::{Namespace, ServiceAccount},
        rbac::v1::{ClusterRole, Role},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use lockstep_testenv::{TestEnv, proc};
use serde_json::json;

const ENGINE_NS: &str = "lockstep-system";
const ENGINE_SA: &str = "lockstep";
const RBAC: &str = include_str!("../../../engine/controller/rbac/clusterrole.yaml");

/// The `lockstep` binary: `$LOCKSTEP_BIN`, else next to this executable (same profile).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("LOCKSTEP_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("executable directory")?;
    // Integration tests run from `<profile>/deps`.
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join("lockstep");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("no `lockstep` binary next to {} (build it with the same profile: `cargo build [--release] -p lockstep`, or set LOCKSTEP_BIN)", me.display())
}

/// CRDs, the engine's namespace, ServiceAccount and RBAC; returns its kubeconfig.
pub async fn install(env: &TestEnv, admin: &Client, dir: &Path) -> anyhow::Result<PathBuf> {
    let apply = PatchParams::apply("lockstep-bench").force();
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in lockstep_api::crds::crds() {
        let name = crd.metadata.name.clone().context("CRD name")?;
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Api::<lockstep_api::v1::ExternalSecret>::all(admin.clone()).list(&Default::default()).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "CRDs not established");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Api::<Namespace>::all(admin.clone()).patch(ENGINE_NS, &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ENGINE_NS}}))).await?;
    Api::<ServiceAccount>::namespaced(admin.clone(), ENGINE_NS)
        .patch(ENGINE_SA, &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ENGINE_SA}})))
        .await?;
    let mut docs = serde_yaml::Deserializer::from_str(RBAC);
    let cluster_role: ClusterRole = serde::Deserialize::deserialize(docs.next().context("ClusterRole")?)?;
    let role: Role = serde::Deserialize::deserialize(docs.next().context("Role")?)?;
    let cr = cluster_role.metadata.name.clone().context("ClusterRole name")?;
    let rn = role.metadata.name.clone().context("Role name")?;
    Api::<ClusterRole>::all(admin.clone()).patch(&cr, &apply, &Patch::Apply(&cluster_role)).await?;
    Api::<Role>::namespaced(admin.clone(), ENGINE_NS).patch(&rn, &apply, &Patch::Apply(&role)).await?;
    let subjects = json!([{"kind": "ServiceAccount", "name": ENGINE_SA, "namespace": ENGINE_NS}]);
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .patch(&cr, &apply, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": cr},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr}, "subjects": subjects,
        })))
        .await?;
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), ENGINE_NS)
        .patch(&rn, &apply, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": rn},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rn}, "subjects": subjects,
        })))
        .await?;
    let token = env.token_request(ENGINE_NS, ENGINE_SA, Some(env.issuer())).await?;
    std::fs::create_dir_all(dir)?;
    let kubeconfig = dir.join("engine.kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml::to_string(&json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "engine",
            "clusters": [{"name": "local", "cluster": {"server": env.api_url(), "certificate-authority": env.ca_path()}}],
            "users": [{"name": "engine", "user": {"token": token}}],
            "contexts": [{"name": "engine", "context": {"cluster": "local", "user": "engine", "namespace": ENGINE_NS}}],
        }))?,
    )?;
    Ok(kubeconfig)
}

/// A kube client from a kubeconfig file (the engine's identity, for the bare-client baseline).
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// A running `lockstep run`.
pub struct Engine {
    pub pid: u32,
    pub metrics_url: String,
    pub started: Instant,
    log: PathBuf,
}

pub struct EngineOptions<'a> {
    pub kubeconfig: &'a Path,
    pub dir: &'a Path,
    pub extra: Vec<String>,
}

impl Engine {
    /// Spawns the engine (built-in plugins, compile cache shared across runs) and
    /// returns at once; `started` is the spawn instant.
    pub fn spawn(bin: &Path, o: EngineOptions<'_>) -> anyhow::Result<Self> {
        let metrics = free_addr()?;
        let probes = free_addr()?;
        let cache = lockstep_testenv::tools::cache_dir().join("bench-compiled");
        let mut args = vec![
            "run".to_string(),
            format!("--kubeconfig={}", o.kubeconfig.display()),
            format!("--metrics-addr={metrics}"),
            format!("--probe-addr={probes}"),
            format!("--compile-cache-dir={}", cache.display()),
            "--log-format=json".into(),
        ];
        args.extend(o.extra);
        std::fs::create_dir_all(o.dir)?;
        let started = Instant::now();
        let p = proc::spawn("lockstep", bin, &args, o.dir, proc::Lifetime::TiedToParent)?;
        Ok(Self { pid: p.pid, metrics_url: format!("http://{metrics}/metrics"), started, log: p.log })
    }

    /// Waits until /metrics answers (the engine has started its controllers' server).
    pub async fn wait_serving(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if reqwest::get(&self.metrics_url).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            self.check_alive()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("engine did not serve /metrics in {timeout:?}; log {}:\n{}", self.log.display(), proc::tail(&self.log, 20))
    }

    pub fn check_alive(&self) -> anyhow::Result<()> {
        if !proc::alive(self.pid) {
            bail!("engine exited; log {}:\n{}", self.log.display(), proc::tail(&self.log, 20));
        }
        Ok(())
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(&self.metrics_url).await?.text().await?)
    }

    /// user + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime), in clock ticks (USER_HZ = 100 on Linux).
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / 100.0)
    }

    /// (VmHWM, VmRSS) in MiB.
    pub fn memory_mib(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kb = |field: &str| -> anyhow::Result<f64> {
            let line = status.lines().find(|l| l.starts_with(field)).with_context(|| field.to_string())?;
            Ok(line.split_whitespace().nth(1).context("value")?.parse::<f64>()?)
        };
        Ok((kb("VmHWM:")? / 1024.0, kb("VmRSS:")? / 1024.0))
    }

    /// SIGTERM (graceful: releases the lease, lets reconciles finish), SIGKILL after 10 s.
    pub fn stop(&self) {
        proc::stop(self.pid, Duration::from_secs(10));
    }
}

fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Drop for Engine {
    fn drop(&mut self) {
        // A failed scenario must not leave its engine running.
        proc::stop(self.pid, Duration::from_secs(2));
    }
}
