//! `lockstep plugin test`: replays the conformance fixtures a provider ships
//! (docs/plugin-authoring.md §3) through the real host and reports findings.
//! Findings name cases, keys, variants and digests — never values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use lockstep_credentials::{FileBackend, StoreKind, StoreScope};
use lockstep_plugin_host::wit::{self, FindRequest, MetadataPolicy, ProviderError, SecretRef};
use lockstep_plugin_host::{AttemptOutcome, Exchange, HostConfig, OperatorGrants, PluginHost, Recording, StoreBinding};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::plugin_cmd::file_source;

#[derive(Args, Debug)]
pub struct TestArgs {
    /// The component (.wasm).
    wasm: PathBuf,
    /// Directory of fixture files (*.yaml).
    #[arg(long)]
    fixtures: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    name: String,
    #[serde(default)]
    description: String,
    store: FixtureStore,
    namespace: Option<String>,
    #[serde(default)]
    objects: Vec<Value>,
    /// TokenRequest answers for ServiceAccounts among `objects` (offline there is no apiserver to mint them).
    #[serde(default)]
    tokens: Vec<FixtureToken>,
    call: Call,
    #[serde(rename = "deadlineMs", default = "default_deadline_ms")]
    deadline_ms: u64,
    #[serde(default)]
    exchanges: Vec<Exchange>,
    expect: Expect,
}

fn default_deadline_ms() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureToken {
    #[serde(rename = "serviceAccount")]
    service_account: String,
    namespace: String,
    token: String,
    #[serde(rename = "expiresAt", default = "far_future")]
    expires_at: u64,
}

fn far_future() -> u64 {
    4_102_444_800 // 2100-01-01
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureStore {
    #[serde(default = "default_kind")]
    kind: String,
    name: String,
    namespace: Option<String>,
    provider: BTreeMap<String, Value>,
}

fn default_kind() -> String {
    "SecretStore".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    op: String,
    #[serde(rename = "ref")]
    secret_ref: Option<FixtureRef>,
    find: Option<FixtureFind>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureRef {
    key: String,
    version: Option<String>,
    property: Option<String>,
    #[serde(rename = "metadataPolicy", default)]
    metadata_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFind {
    #[serde(rename = "nameRegexp")]
    name_regexp: Option<String>,
    path: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    value: Option<ExpectValue>,
    entries: Option<BTreeMap<String, String>>,
    validation: Option<String>,
    egress: Option<Vec<ExpectEgress>>,
    error: Option<ExpectError>,
    #[serde(default)]
    contacted: Vec<String>,
    #[serde(rename = "withinMs")]
    within_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectValue {
    sha256: String,
    version: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct ExpectEgress {
    scheme: String,
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectError {
    variant: String,
    #[serde(rename = "retryAfterMs")]
    retry_after_ms: Option<u64>,
    field: Option<String>,
    code: Option<String>,
    #[serde(rename = "messageContains")]
    message_contains: Option<String>,
}

/// What a call answered, reduced to what fixtures can expect.
enum Outcome {
    Value(wit::SecretValue),
    Entries(Vec<wit::SecretEntry>),
    Validation(wit::Validation),
    Egress(Vec<wit::EgressRule>),
    Error(ProviderError),
}

pub async fn test(args: TestArgs) -> anyhow::Result<()> {
    let TestArgs { wasm, fixtures } = args;
    let cases = load_fixtures(&fixtures)?;
    let scratch = Scratch::new()?;
    let mut failed = 0;
    for (path, fixture) in &cases {
        let findings = run_case(&wasm, fixture, &scratch).await.unwrap_or_else(|e| vec![format!("could not run: {e:#}")]);
        if findings.is_empty() {
            println!("ok    {}", fixture.name);
        } else {
            failed += 1;
            println!("FAIL  {} ({}): {}", fixture.name, path.display(), fixture.description);
            for finding in findings {
                println!("      - {finding}");
            }
        }
    }
    println!("{} case(s), {} passed, {} failed", cases.len(), cases.len() - failed, failed);
    if failed > 0 {
        bail!("{failed} conformance case(s) failed");
    }
    Ok(())
}

fn load_fixtures(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Fixture)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{}: no fixture files (*.yaml)", dir.display());
    }
    let mut names = BTreeSet::new();
    let mut cases = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        // Through JSON values: bodies are written `{text: ...}`, the JSON form of the host's enum.
        let fixture: Fixture = serde_yaml::from_str::<Value>(&text)
            .map_err(anyhow::Error::from)
            .and_then(|v| Ok(serde_json::from_value(v)?))
            .with_context(|| format!("{}: not a valid fixture", path.display()))?;
        if !names.insert(fixture.name.clone()) {
            bail!("{}: case name {:?} is used twice", path.display(), fixture.name);
        }
        cases.push((path, fixture));
    }
    Ok(cases)
}

/// A private directory for the compile cache and replay files of one run.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("lockstep-plugin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run_case(wasm: &Path, fixture: &Fixture, scratch: &Scratch) -> anyhow::Result<Vec<String>> {
    let replay = scratch.0.join(format!("{}.replay.json", sanitize(&fixture.name)));
    let recording = Recording { version: 1, exchanges: fixture.exchanges.clone() };
    std::fs::write(&replay, serde_json::to_vec(&recording)?)?;

    let mut config = HostConfig::new(scratch.0.join("compiled"));
    config.http.replay = Some(replay);
    config.limits.deadline = Duration::from_millis(fixture.deadline_ms);
    if fixture.exchanges.iter().any(|e| e.url.starts_with("http://")) {
        // Recorded plain-http backends: the operator grant such a store would need.
        config.grants = OperatorGrants::from_flags(&["*=http", "kind:SecretStore=http"], &[] as &[&str])?;
    }
    let host = PluginHost::new(config)?;
    let plugin = host.load(&file_source(wasm)?).await?;

    let (provider_key, provider_config) = match fixture.store.provider.iter().collect::<Vec<_>>()[..] {
        [(k, v)] => (k.clone(), v.clone()),
        _ => bail!("store.provider must have exactly one key"),
    };
    if provider_key != plugin.metadata().provider_key {
        return Ok(vec![format!("fixture is for provider {provider_key:?}, the component serves {:?}", plugin.metadata().provider_key)]);
    }
    host.register(&provider_key, plugin);
    let kind = match fixture.store.kind.as_str() {
        "SecretStore" => StoreKind::SecretStore,
        "ClusterSecretStore" => StoreKind::ClusterSecretStore,
        other => bail!("store.kind {other:?} is neither SecretStore nor ClusterSecretStore"),
    };
    let consumer = match fixture.call.op.as_str() {
        "validate" | "egress" => None,
        _ => fixture.namespace.clone().or_else(|| fixture.store.namespace.clone()),
    };
    let objects = fixture.objects.iter().map(serde_yaml::to_string).collect::<Result<Vec<_>, _>>()?.join("---\n");
    let mut backend = FileBackend::from_yaml(&objects)?;
    for t in &fixture.tokens {
        backend.supply_token(&t.namespace, &t.service_account, t.token.clone(), t.expires_at);
    }
    let backend = Arc::new(backend);
    let store = StoreScope {
        kind,
        name: fixture.store.name.clone(),
        namespace: fixture.store.namespace.clone(),
        uid: format!("conformance-{}", fixture.name),
        generation: 1,
        provider_config,
        consumer_namespace: consumer,
    };

    let started = Instant::now();
    let outcome = match host.bind(StoreBinding { provider_key, store, controller_class: None, credentials: backend }) {
        Err(e) => Outcome::Error(e),
        Ok(bound) => call(&bound, &fixture.call).await?,
    };
    let elapsed = started.elapsed();

    let mut findings = compare(&fixture.expect, &outcome);
    let within = fixture.expect.within_ms.unwrap_or(fixture.deadline_ms + 1000);
    if elapsed > Duration::from_millis(within) {
        findings.push(format!("the call took {} ms, more than {within} ms", elapsed.as_millis()));
    }
    findings.extend(check_traffic(&host, fixture));
    Ok(findings)
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

async fn call(bound: &lockstep_plugin_host::BoundStore, call: &Call) -> anyhow::Result<Outcome> {
    let secret_ref = || -> anyhow::Result<SecretRef> {
        let r = call.secret_ref.as_ref().with_context(|| format!("call.op {} needs call.ref", call.op))?;
        let metadata_policy = match r.metadata_policy.as_deref() {
            None | Some("None") => MetadataPolicy::None,
            Some("Fetch") => MetadataPolicy::Fetch,
            Some(other) => bail!("metadataPolicy {other:?} is neither None nor Fetch"),
        };
        Ok(SecretRef { key: r.key.clone(), version: r.version.clone(), property: r.property.clone(), metadata_policy })
    };
    let result = match call.op.as_str() {
        "egress" => bound.egress().await.map(Outcome::Egress),
        "validate" => bound.validate().await.map(Outcome::Validation),
        "get-secret" => bound.get_secret(&secret_ref()?).await.map(Outcome::Value),
        "get-secret-map" => bound.get_secret_map(&secret_ref()?).await.map(Outcome::Entries),
        "find-secrets" => {
            let f = call.find.as_ref().context("call.op find-secrets needs call.find")?;
            let find = FindRequest {
                path: f.path.clone(),
                name_regexp: f.name_regexp.clone(),
                tags: f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            bound.find_secrets(&find).await.map(Outcome::Entries)
        }
        other => bail!("call.op {other:?} is not one of egress, validate, get-secret, get-secret-map, find-secrets"),
    };
    Ok(result.unwrap_or_else(Outcome::Error))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(8)]
}

fn variant(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::NotFound(_) => "not-found",
        ProviderError::Unauthorized(_) => "unauthorized",
        ProviderError::Forbidden(_) => "forbidden",
        ProviderError::Throttled(_) => "throttled",
        ProviderError::InvalidConfig(_) => "invalid-config",
        ProviderError::Denied(_) => "denied",
        ProviderError::Unavailable(_) => "unavailable",
        ProviderError::Internal(_) => "internal",
    }
}

fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Value(v) => format!("a value (sha256 {})", short(&sha256_hex(&v.value))),
        Outcome::Entries(e) => format!("entries {{{}}}", e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>().join(", ")),
        Outcome::Validation(v) => format!("validation {v:?}"),
        Outcome::Egress(rules) => format!("{} egress rule(s)", rules.len()),
        Outcome::Error(e) => format!("{} ({})", variant(e), lockstep_plugin_host::describe(e)),
    }
}

fn compare(expect: &Expect, outcome: &Outcome) -> Vec<String> {
    let mut findings = Vec::new();
    let got = || describe_outcome(outcome);
    match (outcome, expect) {
        (Outcome::Value(v), Expect { value: Some(want), .. }) => {
            let actual = sha256_hex(&v.value);
            if !actual.eq_ignore_ascii_case(&want.sha256) {
                findings.push(format!("expected value sha256 {}, got sha256 {}", short(&want.sha256), short(&actual)));
            }
            if want.version.is_some() && want.version != v.version {
                findings.push(format!("expected version {:?}, got {:?}", want.version, v.version));
            }
        }
        (Outcome::Entries(entries), Expect { entries: Some(want), .. }) => {
            let got: BTreeMap<&str, String> = entries.iter().map(|e| (e.key.as_str(), sha256_hex(&e.value))).collect();
            let want_keys: BTreeSet<&str> = want.keys().map(String::as_str).collect();
            let got_keys: BTreeSet<&str> = got.keys().copied().collect();
            if want_keys != got_keys {
                findings.push(format!("expected entries {{{}}}, got {{{}}}", join(&want_keys), join(&got_keys)));
            }
            for (key, digest) in want {
                if let Some(actual) = got.get(key.as_str()).filter(|a| !a.eq_ignore_ascii_case(digest)) {
                    findings.push(format!("entry {key}: expected sha256 {}, got sha256 {}", short(digest), short(actual)));
                }
            }
        }
        (Outcome::Validation(v), Expect { validation: Some(want), .. }) => {
            let actual = match v {
                wit::Validation::Ready => "ready",
                wit::Validation::Unknown => "unknown",
            };
            if actual != want {
                findings.push(format!("expected validation {want}, got {actual}"));
            }
        }
        (Outcome::Egress(rules), Expect { egress: Some(want), .. }) => {
            let mut want: Vec<(String, String, Option<u16>)> = want.iter().map(|r| (r.scheme.clone(), r.host.clone(), r.port)).collect();
            let mut actual: Vec<(String, String, Option<u16>)> = rules
                .iter()
                .map(|r| {
                    let default_port = if r.scheme == "https" { 443 } else { 80 };
                    (r.scheme.clone(), r.host.clone(), r.port.filter(|p| *p != default_port))
                })
                .collect();
            for w in &mut want {
                let default_port = if w.0 == "https" { 443 } else { 80 };
                w.2 = w.2.filter(|p| *p != default_port);
            }
            want.sort();
            actual.sort();
            if want != actual {
                findings.push(format!("expected egress {}, got {}", egress_text(&want), egress_text(&actual)));
            }
        }
        (Outcome::Error(e), Expect { error: Some(want), .. }) => {
            if variant(e) != want.variant {
                findings.push(format!("expected {}, got {}", want.variant, got()));
            } else {
                findings.extend(compare_error(e, want));
            }
        }
        _ => findings.push(format!("expected {}, got {}", expected_kind(expect), got())),
    }
    findings
}

fn compare_error(error: &ProviderError, want: &ExpectError) -> Vec<String> {
    let mut findings = Vec::new();
    match error {
        ProviderError::Throttled(t) if want.retry_after_ms.is_some() && t.retry_after_ms != want.retry_after_ms => {
            findings.push(match t.retry_after_ms {
                Some(ms) => format!("expected retry-after {} ms, got {ms} ms", want.retry_after_ms.unwrap_or_default()),
                None => format!("expected retry-after {} ms, got none", want.retry_after_ms.unwrap_or_default()),
            })
        }
        ProviderError::InvalidConfig(issue) if want.field.as_ref().is_some_and(|f| *f != issue.field) => {
            findings.push(format!("expected invalid field {:?}, got {:?}", want.field.as_deref().unwrap_or_default(), issue.field))
        }
        ProviderError::Unauthorized(f) | ProviderError::Forbidden(f) if want.code.is_some() && want.code != f.code => {
            findings.push(format!("expected code {:?}, got {:?}", want.code.as_deref().unwrap_or_default(), f.code))
        }
        _ => {}
    }
    if let Some(needle) = &want.message_contains {
        if !lockstep_plugin_host::describe(error).contains(needle.as_str()) {
            findings.push(format!("the error message lacks {needle:?}"));
        }
    }
    findings
}

fn expected_kind(expect: &Expect) -> String {
    if let Some(e) = &expect.error {
        e.variant.clone()
    } else if expect.value.is_some() {
        "a value".into()
    } else if expect.entries.is_some() {
        "entries".into()
    } else if let Some(v) = &expect.validation {
        format!("validation {v}")
    } else if expect.egress.is_some() {
        "egress rules".into()
    } else {
        "an outcome (expect names none)".into()
    }
}

fn join(keys: &BTreeSet<&str>) -> String {
    keys.iter().copied().collect::<Vec<_>>().join(", ")
}

fn egress_text(rules: &[(String, String, Option<u16>)]) -> String {
    let items: Vec<String> =
        rules.iter().map(|(s, h, p)| p.map_or_else(|| format!("{s}://{h}"), |p| format!("{s}://{h}:{p}"))).collect();
    format!("[{}]", items.join(", "))
}

/// Checks what the plugin sent against the recorded exchanges and `contacted`.
fn check_traffic(host: &PluginHost, fixture: &Fixture) -> Vec<String> {
    let Some(replayer) = host.outbound().replayer() else {
        return vec!["the host is not replaying".into()];
    };
    let allowed: BTreeSet<String> = fixture.expect.contacted.iter().map(|a| with_port(a, "https")).collect();
    let mut findings = Vec::new();
    let mut reported = BTreeSet::new();
    for attempt in replayer.attempts() {
        let scheme = attempt.url.split_once("://").map_or("https", |(s, _)| s);
        let authority = with_port(&attempt.authority, scheme);
        if !allowed.contains(&authority) && reported.insert(authority.clone()) {
            findings.push(format!("contacted {authority}, not allowed"));
        }
        match attempt.outcome {
            AttemptOutcome::Unmatched => findings.push(format!("unexpected request {} {}", attempt.method, strip_query(&attempt.url))),
            AttemptOutcome::Denied(_) => {}
            AttemptOutcome::Replayed(i) => {
                for (name, value) in &replayer.exchanges()[i].request_headers {
                    let sent = attempt.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
                    let ok = match sent {
                        None => false,
                        Some(_) if value == "<redacted>" => true,
                        Some((_, v)) => v == value,
                    };
                    if !ok {
                        findings.push(format!("request {} {} lacks {name}", attempt.method, strip_query(&attempt.url)));
                    }
                }
            }
        }
    }
    for i in replayer.unused() {
        let e = &replayer.exchanges()[i];
        findings.push(format!("expected request {} {} not made", e.method, strip_query(&e.url)));
    }
    findings
}

/// `host:port`, lower-case, with the scheme's default port when none is written.
fn with_port(authority: &str, scheme: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']'));
    if has_port {
        authority
    } else {
        format!("{authority}:{}", if scheme == "http" { 80 } else { 443 })
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
