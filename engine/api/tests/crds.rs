//! CRD generation: deterministic, matches the committed files in
//! `charts/lockstep/files/crds/` (regenerate with `LOCKSTEP_BLESS=1 cargo test -p lockstep-api --test crds`),
//! and carries every CEL rule, printer column and short name.

use std::path::PathBuf;

use lockstep_api::crds::{crds, crds_yaml, file_name, to_yaml};
use lockstep_api::rules;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/lockstep/files/crds")
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(crds_yaml(), crds_yaml());
}

#[test]
fn committed_crds_match_generated() {
    let dir = crd_dir();
    let bless = std::env::var_os("LOCKSTEP_BLESS").is_some();
    let mut expected_files = Vec::new();
    for crd in crds() {
        let name = file_name(&crd);
        let path = dir.join(&name);
        let generated = to_yaml(&crd);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == generated, "{} is stale: run LOCKSTEP_BLESS=1 cargo test -p lockstep-api --test crds", path.display());
        expected_files.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "charts/lockstep/files/crds/ holds exactly the generated CRDs");
}

#[test]
fn versions_names_and_scope() {
    let all = crds();
    let names: Vec<_> = all.iter().map(|c| c.metadata.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "secretstores.external-secrets.io",
            "clustersecretstores.external-secrets.io",
            "externalsecrets.external-secrets.io",
            "clusterexternalsecrets.external-secrets.io"
        ]
    );
    let short: Vec<_> = all.iter().map(|c| c.spec.names.short_names.clone().unwrap()[0].clone()).collect();
    assert_eq!(short, ["ss", "css", "es", "ces"]);
    let scopes: Vec<_> = all.iter().map(|c| c.spec.scope.as_str()).collect();
    assert_eq!(scopes, ["Namespaced", "Cluster", "Namespaced", "Cluster"]);
    for crd in &all {
        let v: Vec<_> = crd.spec.versions.iter().map(|v| (v.name.as_str(), v.served, v.storage, v.deprecated.unwrap_or(false))).collect();
        assert_eq!(v, [("v1", true, true, false), ("v1beta1", true, false, true)]);
        assert_eq!(crd.spec.versions[0].schema, crd.spec.versions[1].schema, "v1 and v1beta1 schemas are identical (conversion None)");
        assert!(crd.spec.conversion.is_none() || crd.spec.conversion.as_ref().unwrap().strategy == "None");
        let cols: Vec<_> = crd.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        assert!(cols.contains(&"Ready"), "{cols:?}");
    }
}

#[test]
fn every_cel_rule_is_in_the_crds() {
    let yaml = crds_yaml();
    let json = serde_json::to_string(&crds()).unwrap();
    for r in rules::ALL {
        assert!(json.contains(&serde_json::to_string(r.rule).unwrap()), "rule {} missing", r.id);
        assert!(json.contains(&serde_json::to_string(r.message).unwrap()), "message of {} missing", r.id);
    }
    assert!(yaml.contains("x-kubernetes-preserve-unknown-fields: true"));
    assert!(!yaml.contains("nullable"), "optional fields are absent, never null (as in ESO's CRDs)");
}
