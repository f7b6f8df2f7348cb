//! The AWS Secrets Manager component through the `lockstep` binary: its
//! conformance fixtures, and `plugin run --record` against moto (the real
//! hostnames pointed at the moto front with `--resolve` and its CA) replayed
//! with `--replay` while nothing can reach moto.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lockstep_testenv::aws::{self, Aws};
use serde_json::json;

fn component() -> PathBuf {
    let dir = std::env::var_os("LOCKSTEP_COMPONENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lockstep/components"));
    let path = dir.join("lockstep_provider_aws_secretsmanager.wasm");
    assert!(path.exists(), "{} missing: run `make components`", path.display());
    path
}

fn lockstep(args: &[&str]) -> Output {
    let scratch = std::env::temp_dir().join(format!("lockstep-cli-aws-{}", std::process::id()));
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

#[test]
fn plugin_test_passes_on_the_aws_fixtures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../providers/aws-secretsmanager/conformance");
    let out = lockstep(&["plugin", "test", component().to_str().unwrap(), "--fixtures", fixtures.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 failed") && stdout.contains("28 passed"), "{stdout}");
}

/// A SecretStore with static keys plus the Secret holding them, as one file.
fn store_file(dir: &Path, key: &aws::AccessKey, secret_access_key: &str) -> PathBuf {
    let path = dir.join("store.yaml");
    let text = format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: aws, namespace: team-a}}\n\
         spec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: {region}\n      auth:\n        secretRef:\n\
         \x20         accessKeyIDSecretRef: {{name: aws-creds, key: id}}\n          secretAccessKeySecretRef: {{name: aws-creds, key: secret}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: aws-creds, namespace: team-a}}\n\
         stringData: {{id: {id}, secret: {secret_access_key}}}\n",
        region = aws::REGION,
        id = key.access_key_id,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_run_records_against_moto_and_replays_without_it() {
    let aws = Aws::shared(None).await;
    let key = aws.user("cli-reader", &["secretsmanager:GetSecretValue"]).await.expect("IAM user");
    let value = json!({"user": "app", "password": "cli-Rec0rd-pw"}).to_string();
    aws.call("secretsmanager", "CreateSecret", json!({"Name": "cli/db", "SecretString": value})).await.expect("CreateSecret");

    let dir = std::env::temp_dir().join(format!("lockstep-cli-aws-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = component();
    let (resolve, ca) = (aws.resolve(), aws.ca_file().to_str().unwrap().to_string());
    let network: Vec<&str> = vec!["--resolve", &resolve[0], "--resolve", &resolve[1], "--extra-ca-file", &ca];
    let run = |store: &Path, extra: &[&str]| {
        let mut args = vec!["plugin", "run", wasm.to_str().unwrap(), "--store", store.to_str().unwrap(), "--namespace", "team-a", "--ref", "cli/db", "--property", "password", "--show-values"];
        args.extend_from_slice(extra);
        lockstep(&args)
    };

    // A wrong secret key: moto checks the signature.
    let bad = store_file(&dir, &key, "not-the-secret-key");
    let out = run(&bad, &network);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");

    // Record against moto.
    let store = store_file(&dir, &key, &key.secret_access_key);
    let recording = dir.join("recording.json");
    let mut args = network.clone();
    args.extend(["--record", recording.to_str().unwrap()]);
    let out = run(&store, &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("cli/db: cli-Rec0rd-pw"), "{stdout}");
    let recorded = std::fs::read_to_string(&recording).unwrap();
    assert!(!recorded.contains(&key.secret_access_key), "the recording holds no credential");
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    let auth = recorded["exchanges"][0]["request_headers"].as_array().unwrap().iter().find(|h| h[0] == "authorization").cloned();
    assert_eq!(auth, Some(json!(["authorization", "<redacted>"])), "the signature is redacted");
    let before = aws.requests("secretsmanager.GetSecretValue").len();
    assert_eq!(before, 2, "one refused and one recorded call reached moto");

    // Replay: no --resolve, no CA, so the real hostname is unreachable; the front sees nothing.
    let out = run(&store, &["--replay", recording.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("cli/db: cli-Rec0rd-pw"), "{stdout}");
    assert_eq!(aws.requests("secretsmanager.GetSecretValue").len(), before, "replay must not reach moto");
}
