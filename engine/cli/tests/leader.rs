//! Leader election with the real binary: `lockstep run --leader-elect` replicas on
//! the local control plane (`lockstep-testenv`), each with a TokenRequest token of its
//! own ServiceAccount bound to `engine/controller/rbac/clusterrole.yaml`, so the
//! apiserver's audit log tells their requests apart.
//!
//! SIGKILL of the leader hands over within the lease duration; SIGSTOP of the leader
//! past its lease, then SIGCONT: the old leader writes nothing (audit log); SIGTERM
//! releases the lease, so the standby takes over before the lease would expire. No
//! process output carries a secret value.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        coordination::v1::Lease,
        core::v1::{Namespace, Secret, ServiceAccount},
        rbac::v1::{ClusterRole, Role},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use lockstep_api::v1;
use lockstep_testenv::TestEnv;
use serde_json::{Value, json};

const SYSTEM_NS: &str = "lockstep-leader-system";
const LEASE_DURATION: Duration = Duration::from_secs(6);
const RENEW: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_secs(2);

fn rbac_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../controller/rbac/clusterrole.yaml")
}

async fn apply<K>(api: &Api<K>, name: &str, doc: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply("lockstep-leader-test").force(), &Patch::Apply(doc)).await.unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// CRDs, the RBAC file bound to `accounts`, and a kubeconfig per account.
async fn install(env: &TestEnv, admin: &Client, accounts: &[&str], dir: &Path) -> Vec<PathBuf> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in lockstep_api::crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("lockstep-leader-test").force(), &Patch::Apply(&crd)).await.expect("CRD");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Api::<v1::ExternalSecret>::all(admin.clone()).list(&Default::default()).await.is_err() {
        assert!(Instant::now() < deadline, "CRDs not established");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    apply(&Api::<Namespace>::all(admin.clone()), SYSTEM_NS, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}})).await;
    let text = std::fs::read_to_string(rbac_file()).unwrap();
    let mut docs = serde_yaml::Deserializer::from_str(&text);
    let cluster_role: ClusterRole = serde::Deserialize::deserialize(docs.next().unwrap()).unwrap();
    let role: Role = serde::Deserialize::deserialize(docs.next().unwrap()).unwrap();
    let (cr_name, role_name) = (cluster_role.metadata.name.clone().unwrap(), role.metadata.name.clone().unwrap());
    apply(&Api::<ClusterRole>::all(admin.clone()), &cr_name, serde_json::to_value(&cluster_role).unwrap()).await;
    apply(&Api::<Role>::namespaced(admin.clone(), SYSTEM_NS), &role_name, serde_json::to_value(&role).unwrap()).await;
    let subjects: Vec<Value> = accounts.iter().map(|sa| json!({"kind": "ServiceAccount", "name": sa, "namespace": SYSTEM_NS})).collect();
    let binding = |kind: &str, name: &str, role_kind: &str, role: &str| {
        let mut meta = json!({"name": name});
        if kind == "RoleBinding" {
            meta["namespace"] = json!(SYSTEM_NS);
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}, "subjects": subjects})
    };
    let crb = format!("{cr_name}-leader-cli");
    apply(&Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone()), &crb, binding("ClusterRoleBinding", &crb, "ClusterRole", &cr_name)).await;
    apply(&Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), SYSTEM_NS), &role_name, binding("RoleBinding", &role_name, "Role", &role_name)).await;
    let mut kubeconfigs = Vec::new();
    for sa in accounts {
        apply(&Api::<ServiceAccount>::namespaced(admin.clone(), SYSTEM_NS), sa, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": SYSTEM_NS}})).await;
        let token = env.token_request(SYSTEM_NS, sa, Some(env.issuer())).await.expect("token");
        let path = dir.join(format!("{sa}.kubeconfig"));
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "engine",
            "clusters": [{"name": "local", "cluster": {"server": env.api_url(), "certificate-authority": env.ca_path()}}],
            "users": [{"name": "engine", "user": {"token": token}}],
            "contexts": [{"name": "engine", "context": {"cluster": "local", "user": "engine"}}],
        });
        std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
        kubeconfigs.push(path);
    }
    kubeconfigs
}

/// One `lockstep run` process; its stdout and stderr go to files for the scan.
struct Replica {
    identity: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Replica {
    fn spawn(dir: &Path, identity: &str, kubeconfig: &Path, lease: &str) -> Self {
        let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let (stdout, stderr) = (dir.join(format!("{identity}.stdout")), dir.join(format!("{identity}.stderr")));
        let secs = |d: Duration| format!("{}s", d.as_secs());
        let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["run", "--kubeconfig", kubeconfig.to_str().unwrap(), "--leader-elect", "--identity", identity])
            .args(["--lease-name", lease, "--lease-namespace", SYSTEM_NS])
            .args(["--lease-duration", &secs(LEASE_DURATION), "--lease-renew-interval", &secs(RENEW), "--lease-margin", &secs(MARGIN)])
            .args(["--metrics-addr", &port(), "--probe-addr", &port(), "--plugin", "fake=builtin:fake"])
            .args(["--compile-cache-dir", dir.join("compiled").to_str().unwrap()])
            // Debug logs of the engine's own crates: more text for the secret scan.
            .env("RUST_LOG", "info,lockstep_controller=debug,lockstep_plugin_host=debug,kube=warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("lockstep run");
        Self { identity: identity.to_owned(), child, stdout, stderr }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default() + &std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    async fn wait_started(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.logs().contains("controllers starting") {
            assert!(self.child.try_wait().unwrap().is_none(), "{} exited:\n{}", self.identity, self.logs());
            assert!(Instant::now() < deadline, "{} did not start:\n{}", self.identity, self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -{signal} {}", self.identity);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases.get_opt(name).await.ok()??.spec?.holder_identity
}

async fn wait_holder(leases: &Api<Lease>, name: &str, want: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    while holder(leases, name).await.as_deref() != Some(want) {
        assert!(start.elapsed() < timeout, "{want} did not get the lease within {timeout:?} (holder {:?})", holder(leases, name).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

async fn create_es(client: &Client, ns: &str, name: &str) {
    apply(&Api::<v1::ExternalSecret>::namespaced(client.clone(), ns), name, json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": name, "namespace": ns},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "fake"}, "data": [{"secretKey": "password", "remoteRef": {"key": "db"}}]},
    }))
    .await;
}

/// Waits for the Secret of ExternalSecret `name`; returns how long it took.
async fn wait_secret(client: &Client, ns: &str, name: &str, value: &str, timeout: Duration) -> Duration {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    loop {
        let s = secrets.get_opt(name).await.unwrap();
        if s.and_then(|s| s.data).and_then(|d| d.get("password").cloned()).is_some_and(|v| v.0 == value.as_bytes()) {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "Secret {ns}/{name} not synced within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request of a replica's ServiceAccount, from the audit log.
#[derive(Debug)]
struct Request {
    user: String,
    verb: String,
    resource: String,
    namespace: String,
    name: String,
    at: Timestamp,
    code: u64,
}

fn audit(env: &TestEnv) -> Vec<Request> {
    let text = std::fs::read_to_string(env.audit_log_path()).expect("audit log");
    let mut seen = std::collections::BTreeSet::new();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["user"]["username"].as_str().is_some_and(|u| u.starts_with(&format!("system:serviceaccount:{SYSTEM_NS}:"))))
        .filter(|e| seen.insert(e["auditID"].as_str().unwrap_or_default().to_owned()))
        .map(|e| Request {
            user: e["user"]["username"].as_str().unwrap().rsplit(':').next().unwrap().to_owned(),
            verb: e["verb"].as_str().unwrap_or_default().to_owned(),
            resource: e["objectRef"]["resource"].as_str().unwrap_or_default().to_owned(),
            namespace: e["objectRef"]["namespace"].as_str().unwrap_or_default().to_owned(),
            name: e["objectRef"]["name"].as_str().unwrap_or_default().to_owned(),
            at: e["requestReceivedTimestamp"].as_str().and_then(|t| t.parse().ok()).expect("requestReceivedTimestamp"),
            code: e["responseStatus"]["code"].as_u64().unwrap_or(0),
        })
        .collect()
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "create" | "update" | "patch" | "delete" | "deletecollection")
}

#[tokio::test]
async fn only_the_leader_writes_and_handover_is_prompt() {
    let env = TestEnv::shared().await;
    let admin = env.client().await;
    // A control plane kept between runs (LOCKSTEP_TESTENV_STATE) has older audit entries.
    let run_started = Timestamp::now();
    let id = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() & 0xffffff);
    let dir = env.state_dir().join(format!("leader-cli-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfigs = install(env, &admin, &["lockstep-leader-a", "lockstep-leader-b"], &dir).await;
    let (kc_a, kc_b) = (&kubeconfigs[0], &kubeconfigs[1]);
    let lease = format!("lockstep-leader-{id}");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), SYSTEM_NS);
    let value = format!("leader-S3cret-{id}");
    let ns = format!("leader-{id}");
    apply(&Api::<Namespace>::all(admin.clone()), &ns, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).await;
    apply(&Api::<v1::SecretStore>::namespaced(admin.clone(), &ns), "fake", json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore", "metadata": {"name": "fake", "namespace": ns},
        "spec": {"provider": {"fake": {"data": [{"key": "db", "value": value}]}}},
    }))
    .await;

    // a leads, b is a warm standby.
    let mut a = Replica::spawn(&dir, "a", kc_a, &lease);
    a.wait_started().await;
    wait_holder(&leases, &lease, "a", Duration::from_secs(30)).await;
    let mut b = Replica::spawn(&dir, "b", kc_b, &lease);
    b.wait_started().await;
    create_es(&admin, &ns, "es1").await;
    wait_secret(&admin, &ns, "es1", &value, Duration::from_secs(30)).await;
    // An error path that echoes the value: the template's own `fail`.
    let es_api: Api<v1::ExternalSecret> = Api::namespaced(admin.clone(), &ns);
    apply(&es_api, "leaky", json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "leaky", "namespace": ns},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "fake"}, "target": {"template": {"data": {"x": "{{ fail .password }}"}}},
                 "data": [{"secretKey": "password", "remoteRef": {"key": "db"}}]},
    }))
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let message = loop {
        let status = es_api.get("leaky").await.unwrap().status.unwrap_or_default();
        if let Some(c) = status.conditions.iter().find(|c| c.type_ == "Ready" && c.status == "False") {
            break c.message.clone().unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "no failure condition for the leaky template");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("leader: template echoing the value fails with: {message}");
    assert!(message.contains("fail") && message.contains("[redacted]") && !message.contains(&value), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGKILL the leader: b takes over within the lease duration (+ renew interval and sync time).
    let killed_at = Timestamp::now();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let start = Instant::now();
    create_es(&admin, &ns, "es2").await;
    wait_secret(&admin, &ns, "es2", &value, LEASE_DURATION + RENEW + Duration::from_secs(5)).await;
    let handover = start.elapsed();
    eprintln!("leader: SIGKILL → new ExternalSecret synced by the standby in {handover:?} (lease {LEASE_DURATION:?})");
    assert_eq!(holder(&leases, &lease).await.as_deref(), Some("b"));
    drop(a);

    // SIGSTOP the leader (b) past its lease; a fresh replica (a2) takes over.
    let mut a2 = Replica::spawn(&dir, "a2", kc_a, &lease);
    a2.wait_started().await;
    b.signal("STOP");
    // Requests b sent before the signal may still arrive for a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Timestamp::now();
    let start = Instant::now();
    create_es(&admin, &ns, "es3").await;
    wait_secret(&admin, &ns, "es3", &value, LEASE_DURATION + RENEW + Duration::from_secs(5)).await;
    eprintln!("leader: SIGSTOP → new ExternalSecret synced by the standby in {:?}", start.elapsed());
    wait_holder(&leases, &lease, "a2", Duration::from_secs(5)).await;
    // Work for the paused replica: its watches deliver these events when it resumes.
    create_es(&admin, &ns, "es4").await;
    Api::<v1::ExternalSecret>::namespaced(admin.clone(), &ns)
        .patch("es1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})))
        .await
        .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns).delete("es2", &DeleteParams::default()).await.unwrap();
    wait_secret(&admin, &ns, "es2", &value, Duration::from_secs(10)).await;
    b.signal("CONT");
    let resumed_at = Timestamp::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(b.logs().contains("lost the lease") || b.logs().contains("lease expired before it could be renewed")) {
        assert!(Instant::now() < deadline, "the resumed replica never noticed it lost the lease:\n{}", b.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(holder(&leases, &lease).await.as_deref(), Some("a2"), "the resumed replica must not take the lease back");

    // SIGTERM the leader (a2): it releases the lease, b takes over well before it would expire.
    let terminated_at = Timestamp::now();
    a2.signal("TERM");
    let start = Instant::now();
    let took = wait_holder(&leases, &lease, "b", LEASE_DURATION).await;
    eprintln!("leader: SIGTERM → lease released and taken over in {took:?}");
    assert!(took < LEASE_DURATION - MARGIN, "SIGTERM must release the lease (took {took:?})");
    let status = a2.child.wait().unwrap();
    assert!(status.success(), "a2 did not shut down cleanly: {status:?}\n{}", a2.logs());
    create_es(&admin, &ns, "es5").await;
    wait_secret(&admin, &ns, "es5", &value, Duration::from_secs(10)).await;
    eprintln!("leader: SIGTERM → new ExternalSecret synced {:?} after the signal", start.elapsed());
    b.signal("TERM");
    assert!(b.child.wait().unwrap().success(), "b did not shut down cleanly:\n{}", b.logs());

    // The audit log: who wrote what, when.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests: Vec<Request> = audit(env).into_iter().filter(|r| r.at >= run_started).collect();
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(refused.is_empty(), "a replica was refused: {refused:#?}");
    let standby_writes: Vec<_> = requests.iter().filter(|r| r.user == "lockstep-leader-b" && is_write(&r.verb) && r.resource != "leases" && r.at < killed_at).collect();
    assert!(standby_writes.is_empty(), "the standby wrote while the other replica led: {standby_writes:#?}");
    let paused_writes: Vec<_> = requests.iter().filter(|r| r.user == "lockstep-leader-b" && is_write(&r.verb) && r.at > stopped_at && r.at < terminated_at).collect();
    assert!(paused_writes.is_empty(), "the replica paused past its lease wrote after resuming ({resumed_at}): {paused_writes:#?}");
    let b_after_resume = requests.iter().filter(|r| r.user == "lockstep-leader-b" && r.at > resumed_at && r.at < terminated_at).count();
    assert!(b_after_resume > 0, "the resumed replica made no request at all: the check above would be vacuous");
    // The Lease Role: exactly get, create and update, each used.
    let lease_verbs: std::collections::BTreeSet<&str> = requests.iter().filter(|r| r.resource == "leases").map(|r| r.verb.as_str()).collect();
    assert_eq!(lease_verbs, ["create", "get", "update"].into_iter().collect(), "Lease verbs used");
    assert!(requests.iter().filter(|r| r.resource == "leases").all(|r| r.namespace == SYSTEM_NS && r.name == lease));

    // No secret value in any output of any replica.
    let mut scanned = 0;
    for path in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "stdout" || e == "stderr")) {
        let text = std::fs::read_to_string(&path).unwrap();
        scanned += text.len();
        assert!(!text.contains(&value), "{} carries the secret value", path.display());
    }
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(admin.clone(), &ns).list(&Default::default()).await.unwrap();
    let statuses = es_api.list(&Default::default()).await.unwrap();
    let published = format!("{:?}{:?}", events.items.iter().map(|e| &e.message).collect::<Vec<_>>(), statuses.items.iter().map(|e| &e.status).collect::<Vec<_>>());
    assert!(published.contains("[redacted]") && !published.contains(&value), "events and conditions must not carry the value: {published}");
    let all = format!("{}{}", b.logs(), std::fs::read_to_string(dir.join("a.stderr")).unwrap());
    assert!(all.contains("acquired the lease") && all.contains("store condition"), "the logs are not what the scan expects");
    eprintln!("leader: scanned {scanned} bytes of replica output, no secret value");
    Api::<Namespace>::all(admin).delete(&ns, &DeleteParams::default()).await.ok();
}
