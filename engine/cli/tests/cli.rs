//! The `lockstep` binary's offline commands, run as a user runs them, on the
//! components `make components` built.

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
