//! `charts/lockstep` with the real `helm` (lint, template) and the real
//! apiserver (server-side dry-run of everything it renders). The Deployment's
//! arguments are parsed by `lockstep run`'s own flag parser, the ClusterRole is
//! compared with the file the controller e2e tests run under, and the CRDs with
//! what the Rust types generate.

use std::path::{Path, PathBuf};

use clap::Parser;
use lockstep_testenv::{TestEnv, chart};
use serde_json::{Value, json};

fn full_values() -> PathBuf {
    chart::chart_dir().join("ci/full-values.yaml")
}

fn render(sets: &[&str], files: &[&Path]) -> Vec<Value> {
    chart::template("lockstep", "lockstep-system", sets, files).unwrap_or_else(|e| panic!("helm template: {e}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

fn args_of(objects: &[Value]) -> Vec<String> {
    let container = &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    container["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("string arg").to_owned()).collect()
}

/// The rendered arguments, through `lockstep run`'s own parser and validation.
fn parse_run_args(args: &[String]) -> lockstep_controller::ControllerConfig {
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(clap::Subcommand)]
    enum Cmd {
        Run(lockstep_controller::RunArgs),
    }
    let cli = Cli::try_parse_from(std::iter::once("lockstep".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("the chart passes flags `lockstep run` rejects: {e}"));
    let Cmd::Run(run) = cli.cmd;
    run.into_config().unwrap_or_else(|e| panic!("the chart's flags do not validate: {e:#}"))
}

#[test]
fn lints_strict_with_default_and_full_values() {
    let dir = chart::chart_dir().display().to_string();
    let full = full_values().display().to_string();
    for args in [vec!["lint", "--strict", dir.as_str()], vec!["lint", "--strict", dir.as_str(), "-f", full.as_str()]] {
        let out = chart::run_helm(&args).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("0 chart(s) failed"), "helm lint: {out}");
    }
}

#[test]
fn defaults_are_hardened_and_run_the_engine_rbac() {
    let objects = render(&[], &[]);
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    // The only writable path is the compiled-plugin cache, an emptyDir.
    assert_eq!(container["volumeMounts"], json!([{"name": "compile-cache", "mountPath": "/var/cache/lockstep"}]));
    assert!(pod["volumes"][0]["emptyDir"].is_object());

    let config = parse_run_args(&args_of(&objects));
    assert_eq!(config.compile_cache_dir, PathBuf::from("/var/cache/lockstep"));
    assert!(config.leader_election.is_some(), "leader election on by default");
    assert!(config.normal_events, "ESO's events by default");
    let mut plugins = config.plugins.clone();
    plugins.sort();
    assert_eq!(plugins, [("azurekv".to_owned(), "builtin:azure-keyvault".to_owned()), ("fake".to_owned(), "builtin:fake".to_owned())]);
    assert!(config.grants.is_empty(), "no grant unless the operator sets one");

    // RBAC: the same rules as the file the controller e2e tests run the engine under.
    let rbac = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../engine/controller/rbac/clusterrole.yaml")).unwrap();
    let files = chart::parse_documents(&rbac).unwrap();
    for kind in ["ClusterRole", "Role"] {
        let expected = files.iter().find(|d| d["kind"] == kind).expect(kind);
        assert_eq!(one(&objects, kind)["rules"], expected["rules"], "{kind} rules differ from engine/controller/rbac/clusterrole.yaml");
    }
    let binding = one(&objects, "ClusterRoleBinding");
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": "lockstep", "namespace": "lockstep-system"}]));
    assert_eq!(binding["roleRef"]["name"], one(&objects, "ClusterRole")["metadata"]["name"]);

    // CRDs: what the Rust types generate, kept on uninstall.
    let crds = of_kind(&objects, "CustomResourceDefinition");
    let generated = lockstep_api::crds::crds();
    assert_eq!(crds.len(), generated.len());
    for crd in generated {
        let name = crd.metadata.name.clone().unwrap();
        let rendered = crds.iter().find(|c| c["metadata"]["name"] == name.as_str()).unwrap_or_else(|| panic!("{name} not rendered"));
        assert_eq!(rendered["spec"], serde_json::to_value(&crd.spec).unwrap(), "{name}: chart CRD differs from the generated one");
        assert_eq!(rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    }
    assert!(of_kind(&objects, "PodDisruptionBudget").is_empty() && of_kind(&objects, "NetworkPolicy").is_empty());
}

#[test]
fn full_values_switch_every_option_on() {
    let objects = render(&[], &[&full_values()]);
    assert!(of_kind(&objects, "CustomResourceDefinition").is_empty(), "crds.install=false uses ESO's CRDs");
    for kind in ["PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Service"] {
        one(&objects, kind);
    }
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["azure.workload.identity/use"], "true");
    let sa = one(&objects, "ServiceAccount");
    assert_eq!(sa["metadata"]["annotations"]["azure.workload.identity/client-id"], "0c7a3b1e-2f4d-4b8a-9e6f-5d3c2b1a0f9e");

    let config = parse_run_args(&args_of(&objects));
    assert_eq!(config.controller_class, "lockstep");
    assert!(!config.normal_events, "events: warnings");
    assert_eq!(config.grants, ["kind:ClusterSecretStore=private"]);
    assert_eq!(config.resolve, ["kv-private.vault.azure.net=10.1.2.3:443"]);
    assert_eq!(config.extra_ca_files, [PathBuf::from("/etc/lockstep/ca/ca.crt")]);
    assert!(config.plugins.iter().any(|(k, s)| k == "webkv" && s.starts_with("file:/plugins/webkv.wasm@sha256:")));
    assert!(!config.plugins.iter().any(|(k, _)| k == "fake"), "a disabled built-in is not loaded");
    assert_eq!(config.template_plugins.len(), 1);
    assert_eq!(config.template_plugins[0].0, "example");
    assert_eq!(config.template_functions, "-sprig.now,-sprig.uuidv4".parse().unwrap());
}

#[test]
fn unsafe_values_are_refused() {
    let dir = chart::chart_dir().display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (&["replicaCount=2", "leaderElection.enabled=false"], "needs leaderElection.enabled"),
        (&["plugins.extra[0].key=x", "plugins.extra[0].file=x.wasm", "plugins.extra[0].sha256=abc", "componentsVolume.emptyDir.medium=Memory"], "sha256 must be 64"),
        (&["plugins.extra[0].key=x", "plugins.extra[0].file=x.wasm", &format!("plugins.extra[0].sha256={}", "a".repeat(64))], "need componentsVolume"),
    ];
    for (sets, expected) in cases {
        let mut args = vec!["template", "x", dir.as_str()];
        for s in sets {
            args.extend(["--set", s]);
        }
        let err = chart::run_helm(&args).expect_err("helm template must refuse these values").to_string();
        assert!(err.contains(expected), "{sets:?}: {err}");
    }
}

/// Everything the chart renders is accepted by the real apiserver (server-side dry-run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_server_side_dry_run() {
    let env = TestEnv::shared().await;
    let dir = env.state_dir().join("chart-test");
    std::fs::create_dir_all(&dir).unwrap();
    // The release namespace, and the ServiceMonitor kind (Prometheus Operator's CRD,
    // reduced to a schema-less stand-in: only its kind and group are checked here).
    let setup = dir.join("setup.yaml");
    std::fs::write(&setup, SETUP).unwrap();
    kubectl(env, &["apply", "--server-side", "-f", setup.to_str().unwrap()]);
    wait_established(env, "servicemonitors.monitoring.coreos.com");

    for (name, files) in [("defaults", vec![]), ("full", vec![full_values()])] {
        let file_refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let objects = render(&[], &file_refs);
        let path = dir.join(format!("{name}.yaml"));
        let text: String = objects.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect();
        std::fs::write(&path, text).unwrap();
        let out = kubectl(env, &["apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", path.to_str().unwrap()]);
        assert_eq!(out.lines().count(), objects.len(), "{name}: every object applied: {out}");
        assert!(out.lines().all(|l| l.contains("(server dry run)")), "{name}: {out}");
    }
}

const SETUP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: lockstep-system
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn kubectl(env: &TestEnv, args: &[&str]) -> String {
    let out = env.kubectl().args(args).output().expect("kubectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kubectl {}: {}{}", args.join(" "), stdout, String::from_utf8_lossy(&out.stderr));
    stdout
}

fn wait_established(env: &TestEnv, crd: &str) {
    kubectl(env, &["wait", "--for=condition=Established", "--timeout=30s", &format!("crd/{crd}")]);
}
