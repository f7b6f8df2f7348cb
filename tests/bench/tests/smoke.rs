//! CI smoke of the bench command: `lockstep-bench --quick` for scenarios 1-5 on the
//! local control plane completes and reports internally consistent numbers. Never a
//! timing threshold: this keeps the benchmark working, it does not judge speed.

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_bench_completes_with_consistent_numbers() {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep-bench"))
        .args(["--quick", "--scenario", "1,2,3,4,5", "--json"])
        .arg(&json)
        .output()
        .expect("run lockstep-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lockstep-bench --quick failed:\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = |id: u64| -> &Value {
        report["scenarios"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("scenario {id} missing"))
    };
    let m = |id: u64, name: &str| -> f64 {
        scenario(id)["medians"][name].as_f64().unwrap_or_else(|| panic!("scenario {id}: no {name:?} in {}", scenario(id)["medians"]))
    };
    for id in 1..=5 {
        assert!(scenario(id)["error"].is_null(), "scenario {id}: {}", scenario(id)["error"]);
    }

    // 1: every ExternalSecret Ready, one Secret created per ExternalSecret, all from few provider calls.
    assert_eq!(m(1, "ExternalSecrets Ready"), 50.0);
    assert_eq!(m(1, "apiserver POST secrets"), 50.0, "one create per target Secret");
    assert!(m(1, "apiserver APPLY externalsecrets/status") >= 50.0);
    assert!(m(1, "provider calls") > 0.0 && m(1, "provider calls") < 50.0 * 2.0, "fetches are shared per store and key");
    assert!(m(1, "lockstep: time to all Ready (s)") > 0.0 && m(1, "bare client (32 in flight): same writes (s)") > 0.0);
    assert!(m(1, "engine CPU (s)") > 0.0 && m(1, "engine peak RSS VmHWM (MiB)") > 0.0);

    // 2: refreshes happen (provider calls), and when nothing changed neither the Secrets
    // nor the statuses are written.
    assert!(m(2, "provider calls per cycle") > 0.0, "the refresh ran");
    assert_eq!(m(2, "Secret writes per cycle"), 0.0);
    assert_eq!(m(2, "ExternalSecret status writes per cycle"), 0.0);

    // 3: every new ExternalSecret became Ready; percentiles ordered.
    assert_eq!(m(3, "new ExternalSecrets Ready"), 5.0);
    assert!(m(3, "time to Ready p50 (s)") <= m(3, "time to Ready p99 (s)"));
    assert!(m(3, "time to Ready p99 (s)") <= m(3, "time to Ready max (s)"));

    // 4: both variants measured; the unrelated Secrets are in etcd.
    assert!(m(4, "with: engine peak RSS VmHWM (MiB)") > 0.0 && m(4, "without: engine peak RSS VmHWM (MiB)") > 0.0);
    assert!(m(4, "with: etcd db size (MiB)") > m(4, "without: etcd db size (MiB)") + 1.0, "20 x 100 KiB stored");

    // 5: every namespace served, through real exchanges and Key Vault GETs.
    assert_eq!(m(5, "ExternalSecrets Ready"), 5.0);
    assert!(m(5, "cold sync: Entra exchanges") >= 1.0 && m(5, "cold sync: Key Vault GETs") >= 2.0);
    assert!(m(5, "Key Vault GETs per cycle") >= 2.0, "each cycle reads both keys");
    assert_eq!(m(5, "Secret writes per cycle"), 0.0);
}
