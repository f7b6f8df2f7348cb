//! The engine knows no backend: no engine crate depends on a provider crate, and no
//! engine source (outside its unit tests) names a backend's API or endpoint. Backends
//! live in `providers/` behind the WIT contract.

use std::path::{Path, PathBuf};

/// Test-only crates under `engine/` that drive real backends on purpose.
const TEST_CRATES: &[&str] = &["azure-tests"];

/// Names of backend APIs and endpoints (lowercase) that only a provider may know.
const BACKEND_NAMES: &[&str] = &[
    "amazonaws",
    "secretsmanager",
    "getsecretvalue",
    "assumerole",
    "vault.azure.net",
    "microsoftonline",
    "azureadtokenexchange",
    "googleapis",
];

fn engine_crates() -> Vec<PathBuf> {
    let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&engine)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .filter(|p| !TEST_CRATES.contains(&p.file_name().unwrap().to_str().unwrap()))
        .collect();
    crates.sort();
    assert!(crates.len() >= 5, "engine crates found: {crates:?}");
    crates
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_engine_crate_depends_on_a_provider() {
    for krate in engine_crates() {
        let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
        // Dependency lines only (the package's own name may say "provider").
        for line in manifest.lines().map(str::trim_start).filter(|l| !l.starts_with('#') && !l.starts_with("name")) {
            assert!(!line.contains("providers/") && !line.contains("lockstep-provider-"), "{}: {line}", krate.display());
        }
    }
}

#[test]
fn no_engine_source_names_a_backend_api() {
    let mut checked = 0;
    for krate in engine_crates() {
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests may use real-looking names as data.
            let code = text.split("#[cfg(test)]").next().unwrap().to_ascii_lowercase();
            for (n, line) in code.lines().enumerate() {
                if let Some(name) = BACKEND_NAMES.iter().find(|name| line.contains(*name)) {
                    panic!("{}:{}: names the backend API {name:?}: {line}", file.display(), n + 1);
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} engine source files checked");
}
