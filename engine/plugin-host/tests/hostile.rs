//! The sandbox against a plugin that attacks it (`providers/testing/hostile`).
//! After every attack the same host must serve the next call normally.

mod support;

use std::sync::atomic::Ordering;
use std::time::Instant;

use lockstep_plugin_host::{wit, HostOverride, HttpConfig};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_ends_at_the_deadline() {
    let host = hostile_host(HttpConfig::default(), &[]).await;
    let start = Instant::now();
    let err = get(&host, json!({"mode": "loop"})).await.unwrap_err();
    let took = start.elapsed();
    match &err {
        wit::ProviderError::Unavailable(m) => assert!(m.contains("deadline of 800 ms"), "{m}"),
        other => panic!("expected the deadline error, got {other:?}"),
    }
    // The bound: the deadline plus a few epoch ticks (10 ms) of scheduling slack.
    assert!(took >= DEADLINE && took < DEADLINE * 2, "took {took:?}");
    assert_eq!(host.metrics().traps("hostile", "deadline"), 1);
    assert_healthy(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_is_trapped_at_the_cap() {
    let host = hostile_host(HttpConfig::default(), &[]).await;
    let err = get(&host, json!({"mode": "memory-bomb"})).await.unwrap_err();
    match &err {
        wit::ProviderError::Internal(m) => assert!(m.contains("memory limit of 32 MiB"), "{m}"),
        other => panic!("expected the memory-limit error, got {other:?}"),
    }
    assert_eq!(host.metrics().traps("hostile", "memory_limit"), 1);
    assert_healthy(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_trap_and_the_instance_is_retired() {
    let host = hostile_host(HttpConfig::default(), &[]).await;
    assert_healthy(&host).await;
    let err = get(&host, json!({"mode": "panic"})).await.unwrap_err();
    match &err {
        wit::ProviderError::Internal(m) => assert!(m.starts_with("plugin trapped"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(host.metrics().traps("hostile", "trap"), 1);
    assert_healthy(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_granted_hostname_never_gets_a_connection() {
    let body = Reply::Fixed { content_type: "text/plain", body: b"hello".to_vec() };
    let (granted, granted_hits) = serve(body.clone()).await;
    let (forbidden, forbidden_hits) = serve(body).await;
    // Real-looking names pointed at loopback listeners by operator overrides.
    let http = HttpConfig {
        overrides: vec![
            format!("allowed.example={granted}").parse::<HostOverride>().unwrap(),
            format!("forbidden.example={forbidden}").parse::<HostOverride>().unwrap(),
        ],
        ..HttpConfig::default()
    };
    let host = hostile_host(http, &["*=http"]).await;
    let egress = json!([{"scheme": "http", "host": "allowed.example"}]);

    // Control: the granted name is reached through its override.
    let ok = get(&host, json!({"mode": "fetch", "url": "http://allowed.example/x", "egress": egress})).await.unwrap();
    assert_eq!(ok, b"5");
    assert!(granted_hits.load(Ordering::SeqCst) >= 1);

    let msg = denied(get(&host, json!({"mode": "fetch", "url": "http://forbidden.example/x", "egress": egress})).await);
    assert!(msg.contains("forbidden.example") && msg.contains("not among the destinations"), "{msg}");
    assert_eq!(forbidden_hits.load(Ordering::SeqCst), 0);
    assert_eq!(host.metrics().denials("hostile", "host_not_granted"), 1);
    assert!(host.metrics().encode().contains(r#"lockstep_plugin_denials_total{plugin="hostile",reason="host_not_granted"} 1"#));

    // Plain http without the operator's grant is refused even when declared.
    let strict = hostile_host(HttpConfig::default(), &[]).await;
    let msg = denied(get(&strict, json!({"mode": "fetch", "url": "http://allowed.example/x", "egress": egress})).await);
    assert!(msg.contains("plain http"), "{msg}");
    assert_healthy(&host).await;
}

/// Runs its body in a new network namespace without routes (`unshare -n`,
/// needs root): the test binary re-executes itself there, so even a
/// regression in the policy could not send a packet off the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literals_are_denied_without_routes() {
    const CHILD: &str = "LOCKSTEP_TEST_IN_NETNS";
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("unshare")
            .args(["-n", "--"])
            .arg(exe)
            .args(["--exact", "ip_literals_are_denied_without_routes", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("unshare(1) must be installed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "in the network namespace:\n{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "the child did not run the test:\n{stdout}");
        return;
    }
    // The plugin declares the literals, so only the address check can refuse them.
    let host = hostile_host(HttpConfig::default(), &["*=http"]).await;
    let cases = [
        ("http://10.1.2.3/", "10.1.2.3", "private_address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "metadata_address"),
        ("http://127.0.0.1:9/", "127.0.0.1", "loopback_address"),
    ];
    for (url, ip, reason) in cases {
        let egress = json!([{"scheme": "http", "host": ip}, {"scheme": "http", "host": ip, "port": 9}]);
        let msg = denied(get(&host, json!({"mode": "fetch", "url": url, "egress": egress})).await);
        assert!(msg.contains(ip) && msg.contains("not granted"), "{msg}");
        assert_eq!(host.metrics().denials("hostile", reason), 1, "{reason}");
    }
    assert_healthy(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_response_is_cut() {
    for declared in [false, true] {
        let (addr, _) = serve(Reply::Huge { size: 100 << 20, declared }).await;
        let http = HttpConfig { overrides: vec![format!("big.example={addr}").parse().unwrap()], ..HttpConfig::default() };
        let host = hostile_host(http, &["*=http"]).await;
        let cfg = json!({"mode": "fetch", "url": "http://big.example/", "egress": [{"scheme": "http", "host": "big.example"}]});
        let msg = denied(get(&host, cfg).await);
        assert!(msg.contains("exceeds the 16 MiB cap"), "declared={declared}: {msg}");
        assert_eq!(host.metrics().denials("hostile", "response_too_large"), 1);
        assert_healthy(&host).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_requests_outside_the_store_spec_are_refused() {
    let host = hostile_host(HttpConfig::default(), &[]).await;
    let auth = json!({
        "secretRef": {"name": "creds", "key": "password"},
        "serviceAccountRef": {"name": "wi", "audiences": ["api://store-audience"]}
    });
    let ask = |mode: &str, request: serde_json::Value| json!({"mode": mode, "auth": auth, "request": request});

    // Control: exactly what the spec references is served.
    let v = get(&host, ask("secret", json!({"name": "creds", "key": "password"}))).await.unwrap();
    assert_eq!(v, b"hunter2");

    for (mode, request, expect) in [
        ("secret", json!({"name": "creds", "key": "other"}), "not referenced"),
        ("secret", json!({"name": "unreferenced", "key": "password"}), "not referenced"),
        ("secret", json!({"name": "creds", "key": "password", "namespace": "kube-system"}), "not referenced"),
        ("token", json!({"name": "wi", "audiences": ["https://evil.example"]}), "declared neither"),
        ("token", json!({"name": "wi", "audiences": ["https://kubernetes.default.svc"]}), "apiserver's own"),
        ("token", json!({"name": "default", "audiences": ["api://hostile"]}), "not referenced"),
        ("ambient", json!({"name": "pod-token"}), "not granted by the operator"),
    ] {
        let msg = denied(get(&host, ask(mode, request.clone())).await);
        assert!(msg.contains(expect), "{mode} {request}: {msg}");
    }
    assert_eq!(host.metrics().denials("hostile", "credential"), 7);

    // Declared audiences pass the policy; the file backend then says it cannot mint offline.
    for aud in ["api://hostile", "api://store-audience"] {
        match get(&host, ask("token", json!({"name": "wi", "audiences": [aud]}))).await {
            Err(wit::ProviderError::Unavailable(m)) => assert!(m.contains("not available offline"), "{m}"),
            other => panic!("{aud}: {other:?}"),
        }
    }
    assert_healthy(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_kept_per_unit_and_dropped_after_failures() {
    let host = hostile_host(HttpConfig::default(), &[]).await;
    let bound = host.bind(binding(json!({"mode": "ok"}))).unwrap();
    bound.get_secret(&secret_ref()).await.unwrap();
    bound.get_secret(&secret_ref()).await.unwrap();
    assert_eq!(host.idle_instances(), 1, "one instance serves the unit's sequential calls");
    let failing = host.bind(binding(json!({"mode": "panic"}))).unwrap();
    assert!(failing.get_secret(&secret_ref()).await.is_err());
    // The newer generation retired the old unit; the trapped instance was not kept.
    assert_eq!(host.idle_instances(), 0);
    // A cancelled call drops its instance too.
    let looping = host.bind(binding(json!({"mode": "loop"}))).unwrap();
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(100), looping.get_secret(&secret_ref())).await;
    assert!(cancelled.is_err());
    assert_eq!(host.idle_instances(), 0);
    assert_healthy(&host).await;
}
