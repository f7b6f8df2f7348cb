//! `make demo` as a test: the seed end to end on the local control plane with the
//! real `lockstep` binary as the engine (tests/demo), so the README's run command
//! cannot rot.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_demo_shows_both_slips_then_the_secret_and_its_rotation() {
    let opts = lockstep_demo::Options { lockstep: env!("CARGO_BIN_EXE_lockstep").into(), checkout: lockstep_demo::checkout() };
    let report = lockstep_demo::run(&opts).await.unwrap_or_else(|e| panic!("demo failed: {e:#}"));

    assert_eq!(report.missing_store.0, "StoreNotFound");
    assert!(report.missing_store.1.contains("\"cluster-secret-store\" does not exist"), "{:?}", report.missing_store);
    assert!(report.wrong_service_account.1.contains("external-secrets/cluster-external-secrets"), "{:?}", report.wrong_service_account);
    assert!(report.wrong_service_account.1.contains("does not exist"), "{:?}", report.wrong_service_account);

    // What the seed's step 8 shows.
    let line = report.secret_listing.lines().find(|l| l.starts_with("grafana-admin-credentials")).expect("the Secret is listed");
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&columns[..3], ["grafana-admin-credentials", "Opaque", "2"], "{}", report.secret_listing);

    let log = std::fs::read_to_string(&report.engine_log).expect("engine log");
    assert!(log.contains("controllers starting"), "the engine's own log: {log}");
}
