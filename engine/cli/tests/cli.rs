//! The `lockstep` binary's offline commands, run as a user runs them, on the
//! components `make components` built.
//! One test records against moto (`lockstep_testenv::aws`, installed by `make tools`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn components() -> PathBuf {
    std::env::var_os("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lockstep/components")
    })
}

fn component(name: &str) -> PathBuf {
    let path = components().join(format!("lockstep_provider_{name}.wasm"));
    assert!(path.exists(), "{} missing: run `make components`", path.display());
    path
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn lockstep(args: &[&str]) -> Output {
    let scratch = std::env::temp_dir().join(format!("lockstep-cli-test-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env("LOCKSTEP_COMPILE_CACHE", scratch.join("plugins"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("lockstep runs")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

const SEED_VALUE: &str = "s3cr3t-Adm1n-pw";

#[test]
fn render_prints_the_seed_secret_for_the_selected_namespace_only() {
    let out = lockstep(&["render", "-f", repo("examples/seed/fake.yaml").to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("name: grafana-admin-credentials\n  namespace: grafana\n"), "{stdout}");
    assert!(!stdout.contains("namespace: payments"), "an unselected namespace got a Secret:\n{stdout}");
    assert!(stdout.contains("type: Opaque"));
    assert!(stdout.contains("# 2 key(s)"), "{stdout}");
    assert!(stdout.contains("admin-password: \"<15 bytes, sha256:"), "{stdout}");
    assert!(stdout.contains("admin-user: \"<5 bytes, sha256:"), "{stdout}");
    assert!(!stdout.contains(SEED_VALUE) && !stderr.contains(SEED_VALUE), "a value was printed without --show-values");

    let shown = lockstep(&["render", "-f", repo("examples/seed/fake.yaml").to_str().unwrap(), "--show-values"]);
    let (stdout, _) = text(&shown);
    assert!(stdout.contains(&format!("admin-password: \"{SEED_VALUE}\"")), "{stdout}");
    assert!(stdout.contains("admin-user: \"admin\""), "{stdout}");
}

#[test]
fn render_reports_the_seeds_missing_store_slip() {
    let dir = std::env::temp_dir().join(format!("lockstep-render-slip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("slip.yaml");
    let manifests = std::fs::read_to_string(repo("examples/seed/fake.yaml")).unwrap();
    // The seed's own slip: the store exists under another name.
    std::fs::write(&file, manifests.replacen("name: cluster-secret-store", "name: cluster-cross-account-secret-store", 1)).unwrap();
    let out = lockstep(&["render", "-f", file.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("ClusterSecretStore cluster-secret-store does not exist"), "{stderr}");
}

#[test]
fn plugin_inspect_shows_metadata_and_imports() {
    let out = lockstep(&["plugin", "inspect", component("azure_keyvault").to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("provider key:  azurekv"), "{stdout}");
    assert!(stdout.contains("contract:      lockstep:provider@0.1.0"), "{stdout}");
    assert!(stdout.contains("api://AzureADTokenExchange"), "{stdout}");
    assert!(stdout.contains("wasi:http/outgoing-handler@0.2"), "{stdout}");
    assert!(!stdout.contains("wasi:filesystem") && !stdout.contains("wasi:sockets"), "{stdout}");
}

#[test]
fn plugin_test_passes_on_conforming_providers() {
    for (name, fixtures) in [
        ("fake", "providers/fake/conformance"),
        ("webkv", "providers/testing/webkv/conformance"),
        ("azure_keyvault", "providers/azure-keyvault/conformance"),
        ("aws_secretsmanager", "providers/aws-secretsmanager/conformance"),
    ] {
        let out = lockstep(&["plugin", "test", component(name).to_str().unwrap(), "--fixtures", repo(fixtures).to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{name}:\n{stdout}\n{stderr}");
        assert!(stdout.contains(" 0 failed"), "{name}: {stdout}");
    }
}

#[test]
fn plugin_test_fails_a_broken_provider_with_readable_findings() {
    let out = lockstep(&[
        "plugin",
        "test",
        component("broken").to_str().unwrap(),
        "--fixtures",
        repo("providers/testing/webkv/conformance").to_str().unwrap(),
    ]);
    let (stdout, _) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL  not-found"), "{stdout}");
    assert!(stdout.contains("FAIL  throttled"), "{stdout}");
    assert!(stdout.contains("contacted telemetry.webkv.example:443, not allowed"), "{stdout}");
    assert!(stdout.contains("expected not-found, got"), "{stdout}");
}

#[test]
fn plugin_run_calls_the_fake_provider_and_hides_the_value() {
    let dir = std::env::temp_dir().join(format!("lockstep-plugin-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store.yaml");
    std::fs::write(
        &store,
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: team-a}\n\
         spec:\n  provider:\n    fake:\n      data:\n      - {key: db, value: '{\"user\":\"admin\",\"pw\":\"p4ss\"}', version: v1}\n",
    )
    .unwrap();
    let wasm = component("fake");
    let args = |extra: &[&str]| {
        let mut a = vec!["plugin", "run", wasm.to_str().unwrap(), "--store", store.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        lockstep(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&["--ref", "db", "--version", "v1", "--property", "user"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("db: <5 bytes, sha256:"), "{stdout}");
    let out = run(&["--ref", "db", "--version", "v1", "--extract", "--show-values"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("pw: p4ss") && stdout.contains("user: admin"), "{stdout}");
    let out = run(&["--ref", "missing"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn plugin_run_replays_a_recording_without_the_backend() {
    let dir = std::env::temp_dir().join(format!("lockstep-plugin-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store.yaml");
    std::fs::write(
        &store,
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: kv, namespace: team-a}\n\
         spec: {provider: {webkv: {url: 'https://kv.example.com', tokenSecretRef: {name: kv-token, key: token}}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: kv-token, namespace: team-a}\nstringData: {token: t0k3n}\n",
    )
    .unwrap();
    let recording = dir.join("recording.json");
    std::fs::write(
        &recording,
        r#"{"version":1,"exchanges":[{"method":"GET","url":"https://kv.example.com/v1/secrets/db",
            "request_headers":[["authorization","<redacted>"]],"status":200,
            "response_headers":[["content-type","application/json"]],
            "response_body":{"text":"{\"value\":\"from-the-recording\",\"version\":\"7\"}"}}]}"#,
    )
    .unwrap();
    let wasm = component("webkv");
    let out = lockstep(&[
        "plugin", "run", wasm.to_str().unwrap(), "--store", store.to_str().unwrap(), "--namespace", "team-a",
        "--ref", "db", "--replay", recording.to_str().unwrap(), "--show-values",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("db: from-the-recording") && stdout.contains("version: 7"), "{stdout}");
}

#[test]
fn crds_prints_all_four_kinds() {
    let out = lockstep(&["crds"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for name in ["secretstores", "clustersecretstores", "externalsecrets", "clusterexternalsecrets"] {
        assert!(stdout.contains(&format!("name: {name}.external-secrets.io")), "{name}");
    }
}

/// A SecretStore with static keys plus the Secret holding them, as one file.
fn aws_store_file(dir: &Path, key: &lockstep_testenv::aws::AccessKey, secret_access_key: &str) -> PathBuf {
    let path = dir.join("store.yaml");
    let text = format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: aws, namespace: team-a}}\n\
         spec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: {region}\n      auth:\n        secretRef:\n\
         \x20         accessKeyIDSecretRef: {{name: aws-creds, key: id}}\n          secretAccessKeySecretRef: {{name: aws-creds, key: secret}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: aws-creds, namespace: team-a}}\n\
         stringData: {{id: {id}, secret: {secret_access_key}}}\n",
        region = lockstep_testenv::aws::REGION,
        id = key.access_key_id,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The AWS component: `plugin run --record` against moto (the real hostnames
/// pointed at the moto front with `--resolve` and its CA), then `--replay`
/// with no way to reach moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_run_records_against_moto_and_replays_without_it() {
    let aws = lockstep_testenv::aws::Aws::shared(None).await;
    let key = aws.user("cli-reader", &["secretsmanager:GetSecretValue"]).await.expect("IAM user");
    let value = serde_json::json!({"user": "app", "password": "cli-Rec0rd-pw"}).to_string();
    aws.call("secretsmanager", "CreateSecret", serde_json::json!({"Name": "cli/db", "SecretString": value})).await.expect("CreateSecret");

    let dir = std::env::temp_dir().join(format!("lockstep-cli-aws-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = component("aws_secretsmanager");
    let (resolve, ca) = (aws.resolve(), aws.ca_file().to_str().unwrap().to_string());
    let network: Vec<&str> = vec!["--resolve", &resolve[0], "--resolve", &resolve[1], "--extra-ca-file", &ca];
    let run = |store: &Path, extra: &[&str]| {
        let mut args = vec!["plugin", "run", wasm.to_str().unwrap(), "--store", store.to_str().unwrap(), "--namespace", "team-a", "--ref", "cli/db", "--show-values"];
        args.extend_from_slice(extra);
        lockstep(&args)
    };

    // A wrong secret key: moto checks the signature.
    let bad = aws_store_file(&dir, &key, "not-the-secret-key");
    let mut args = network.clone();
    args.extend(["--property", "password"]);
    let out = run(&bad, &args);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");

    // Record against moto.
    let store = aws_store_file(&dir, &key, &key.secret_access_key);
    let recording = dir.join("recording.json");
    args.extend(["--record", recording.to_str().unwrap()]);
    let out = run(&store, &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("cli/db: cli-Rec0rd-pw"), "{stdout}");
    let recorded = std::fs::read_to_string(&recording).unwrap();
    assert!(!recorded.contains(&key.secret_access_key), "the recording holds no credential");
    assert!(!recorded.contains("cli-Rec0rd-pw"), "the recording holds no returned value: {recorded}");
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    let auth = recorded["exchanges"][0]["request_headers"].as_array().unwrap().iter().find(|h| h[0] == "authorization").cloned();
    assert_eq!(auth, Some(serde_json::json!(["authorization", "<redacted>"])), "the signature is redacted");
    let before = aws.requests("secretsmanager.GetSecretValue").len();
    assert_eq!(before, 2, "one refused and one recorded call reached moto");

    // Replay: no --resolve, no CA, so the real hostname is unreachable; the front sees nothing.
    // The secret string held the returned property, so it replays as `<redacted>`.
    let out = run(&store, &["--replay", recording.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("cli/db: <redacted>"), "{stdout}");
    assert_eq!(aws.requests("secretsmanager.GetSecretValue").len(), before, "replay must not reach moto");
}
