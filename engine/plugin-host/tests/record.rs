//! `--record` / `--replay` of outbound HTTP through the real host path.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

use lockstep_plugin_host::HttpConfig;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_redacted_private_and_replay_offline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exchanges.json");
    let token_body = br#"{"access_token":"tok-DO-NOT-KEEP","token_type":"Bearer","expires_in":3599}"#.to_vec();
    let (addr, hits) = serve(Reply::Fixed { content_type: "application/json", body: token_body }).await;
    let cfg = json!({"mode": "fetch", "url": "http://login.example/tenant/oauth2/v2.0/token",
                     "egress": [{"scheme": "http", "host": "login.example"}]});

    let recording = HttpConfig { overrides: vec![format!("login.example={addr}").parse().unwrap()], record: Some(file.clone()), ..HttpConfig::default() };
    let host = hostile_host(recording, &["*=http"]).await;
    get(&host, cfg.clone()).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("tok-DO-NOT-KEEP"), "{text}");
    assert!(text.contains("<redacted>") && text.contains("http://login.example/tenant/oauth2/v2.0/token"), "{text}");

    // Replay needs no network: no override, and the server sees nothing.
    let replaying = HttpConfig { replay: Some(file.clone()), ..HttpConfig::default() };
    let host = hostile_host(replaying, &["*=http"]).await;
    let replayed = get(&host, cfg).await.unwrap();
    let redacted_len = r#"{"access_token":"<redacted>","expires_in":3599,"token_type":"Bearer"}"#.len();
    assert_eq!(replayed, redacted_len.to_string().into_bytes());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Unrecorded requests fail; the egress policy still applies in replay.
    let other = json!({"mode": "fetch", "url": "http://login.example/other", "egress": [{"scheme": "http", "host": "login.example"}]});
    assert!(get(&host, other).await.is_err());
    let denied_host = json!({"mode": "fetch", "url": "http://elsewhere.example/", "egress": [{"scheme": "http", "host": "login.example"}]});
    assert!(denied(get(&host, denied_host).await).contains("elsewhere.example"));
    assert_healthy(&host).await;
}
