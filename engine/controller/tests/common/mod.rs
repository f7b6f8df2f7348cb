//! The engine set-up the controller e2e test binaries share: CRDs and the
//! engine's RBAC installed as admin, a kubeconfig holding a TokenRequest token
//! of the engine's own ServiceAccount (never admin), and the engine running on
//! its own thread and runtime, so it outlives each test's runtime.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    core::v1::{Namespace, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use lockstep_api::v1;
use lockstep_controller::{ControllerConfig, LogFormat};
use lockstep_testenv::TestEnv;
use serde_json::json;
use sha2::Digest;

/// A running engine.
pub struct Engine {
    pub metrics_url: String,
    /// Kubeconfig, compile cache and logs of this engine.
    pub dir: PathBuf,
}

/// Who the engine runs as, and where its files go.
pub struct Identity {
    pub namespace: &'static str,
    pub service_account: &'static str,
    /// Names this binary's field manager, ClusterRoleBinding and state directory,
    /// so test binaries sharing a control plane do not overwrite each other.
    pub tag: &'static str,
}

/// Installs the CRDs and binds `rbac/clusterrole.yaml` to the engine's
/// ServiceAccount; returns a config for that ServiceAccount with `plugins`
/// and defaults the callers adjust.
pub async fn config(env: &'static TestEnv, id: &Identity, plugins: Vec<(String, String)>) -> ControllerConfig {
    let admin = env.client().await;
    let apply = PatchParams::apply(&format!("lockstep-{}", id.tag)).force();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(admin.clone());
    for crd in lockstep_api::crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await.expect("apply CRD");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Api::<v1::ExternalSecret>::all(admin.clone()).list(&Default::default()).await.is_err() {
        assert!(Instant::now() < deadline, "CRDs not established");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (ns, sa) = (id.namespace, id.service_account);
    Api::<Namespace>::all(admin.clone())
        .patch(ns, &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})))
        .await
        .expect("namespace");
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .patch(sa, &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})))
        .await
        .expect("service account");

    let rbac = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rbac/clusterrole.yaml")).expect("rbac file");
    let mut docs = serde_yaml::Deserializer::from_str(&rbac);
    let cluster_role: ClusterRole = serde::Deserialize::deserialize(docs.next().unwrap()).expect("ClusterRole");
    let role: Role = serde::Deserialize::deserialize(docs.next().unwrap()).expect("Role");
    let cr_name = cluster_role.metadata.name.clone().unwrap();
    let role_name = role.metadata.name.clone().unwrap();
    Api::<ClusterRole>::all(admin.clone()).patch(&cr_name, &apply, &Patch::Apply(&cluster_role)).await.expect("ClusterRole");
    Api::<Role>::namespaced(admin.clone(), ns).patch(&role_name, &apply, &Patch::Apply(&role)).await.expect("Role");
    let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": ns}]);
    let crb_name = format!("{cr_name}-{}", id.tag);
    Api::<ClusterRoleBinding>::all(admin.clone())
        .patch(&crb_name, &apply, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": crb_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr_name}, "subjects": subject,
        })))
        .await
        .expect("ClusterRoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .patch(&role_name, &apply, &Patch::Apply(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name}, "subjects": subject,
        })))
        .await
        .expect("RoleBinding");

    let token = env.token_request(ns, sa, Some(env.issuer())).await.expect("engine token");
    let dir = env.state_dir().join(format!("lockstep-controller-{}", id.tag));
    std::fs::create_dir_all(&dir).expect("engine dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_yaml::to_string(&json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "engine",
            "clusters": [{"name": "local", "cluster": {"server": env.api_url(), "certificate-authority": env.ca_path()}}],
            "users": [{"name": "engine", "user": {"token": token}}],
            "contexts": [{"name": "engine", "context": {"cluster": "local", "user": "engine", "namespace": ns}}],
        }))
        .unwrap(),
    )
    .expect("kubeconfig");

    ControllerConfig {
        kubeconfig: Some(kubeconfig),
        controller_class: "default".into(),
        namespace: None,
        concurrency: 8,
        provider_concurrency: 4,
        store_rate_limit: 50.0,
        store_requeue_interval: Duration::from_secs(300),
        fetch_cache_bytes: 16 << 20,
        metrics_addr: free_port(),
        probe_addr: free_port(),
        log_format: LogFormat::Json,
        normal_events: true,
        leader_election: None,
        plugins,
        builtins: Vec::new(),
        compile_cache_dir: dir.join("compiled"),
        grants: Vec::new(),
        ambient_sources: Vec::new(),
        extra_ca_files: Vec::new(),
        resolve: Vec::new(),
        template_functions: Default::default(),
        template_plugins: Vec::new(),
    }
}

/// Runs the engine on its own thread and runtime; returns once it serves /metrics.
pub async fn start(config: ControllerConfig) -> Engine {
    let metrics_url = format!("http://{}/metrics", config.metrics_addr);
    let dir = config.compile_cache_dir.parent().expect("engine dir").to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async move {
            if let Err(e) = lockstep_controller::run(config, std::future::pending()).await {
                panic!("engine stopped: {e:#}");
            }
        });
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if reqwest::get(&metrics_url).await.is_ok_and(|r| r.status().is_success()) {
            return Engine { metrics_url, dir };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("engine did not serve /metrics within 60 s; state in {}", dir.display());
}

pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A built component as a plugin source pinned to its sha256.
pub fn component(name: &str) -> String {
    let dir = std::env::var("LOCKSTEP_COMPONENTS_DIR").expect("LOCKSTEP_COMPONENTS_DIR (run `make components`)");
    let path = PathBuf::from(dir).join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make components`)", path.display()));
    format!("file:{}@sha256:{}", path.display(), hex::encode(sha2::Sha256::digest(&bytes)))
}

pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn suffix() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() & 0xffffff)
}

pub async fn namespace(client: &Client, name: &str, labels: serde_json::Value) {
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap())
        .await
        .expect("create namespace");
}

pub async fn metric(engine: &Engine, prefix: &str) -> f64 {
    let text = reqwest::get(&engine.metrics_url).await.expect("metrics").text().await.expect("metrics body");
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

pub fn ready_of(status: Option<&lockstep_api::types::ExternalSecretStatus>) -> Option<(String, String, String)> {
    let c = status?.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}
