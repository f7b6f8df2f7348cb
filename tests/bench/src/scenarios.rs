//! The six scenarios of issue 9.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use lockstep_testenv::{SecretOptions, TestEnv};
use serde_json::json;

use crate::{
    Args,
    engine::{self, Engine, EngineOptions},
    metrics,
    plane::Plane,
    report::{self, Section},
    workload::{self, ReadyTracker},
};

struct Ctx {
    args: Args,
    bin: PathBuf,
    work: PathBuf,
}

impl Ctx {
    fn runs(&self) -> usize {
        if self.args.quick { 1 } else { self.args.runs.unwrap_or(3) }
    }

    fn engine(&self, kubeconfig: &Path, tag: &str, mut extra: Vec<String>) -> anyhow::Result<Engine> {
        extra.extend(self.args.engine_args.iter().cloned());
        Engine::spawn(&self.bin, EngineOptions { kubeconfig, dir: &self.work.join(tag), extra })
    }
}

pub async fn run_all(args: Args) -> anyhow::Result<()> {
    let wanted: Vec<u8> = match args.scenario.as_str() {
        "all" if args.quick => vec![1, 2, 3, 4, 5],
        "all" => vec![1, 2, 3, 4, 5, 6],
        s => s.split(',').map(|x| x.trim().parse::<u8>().context("--scenario: 1..6 or all")).collect::<Result<_, _>>()?,
    };
    let bin = engine::binary()?;
    let work = lockstep_testenv::cluster::default_state_root().join(format!("bench-work-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let ctx = Ctx { args: args.clone(), bin, work };
    let machine_before = report::machine();
    let started = Instant::now();
    eprintln!("lockstep-bench: engine {}, {machine_before}", ctx.bin.display());

    let mut sections = Vec::new();
    for id in wanted {
        let sizes: Vec<usize> = match (id, ctx.args.quick) {
            (1, true) => vec![50],
            (1, false) if !ctx.args.n.is_empty() => ctx.args.n.clone(),
            (1, false) => vec![1000, 5000, 10_000],
            _ => vec![0],
        };
        for n in sizes {
            let mut section = Section::new(id, title(id, n, ctx.args.quick));
            eprintln!("== scenario {id}: {}", section.title);
            if id == 6 {
                if let Err(e) = scenario6(&mut section).await {
                    section.error = Some(format!("{e:#}"));
                }
            } else {
                for run in 0..ctx.runs() {
                    let t = Instant::now();
                    let r = match id {
                        1 => scenario1(&ctx, n, run, &mut section.notes).await,
                        2 => scenario2(&ctx, run, &mut section.notes).await,
                        3 => scenario3(&ctx, run, &mut section.notes).await,
                        4 => scenario4(&ctx, run, &mut section.notes).await,
                        5 => scenario5(&ctx, run, &mut section.notes).await,
                        _ => Err(anyhow::anyhow!("no scenario {id}")),
                    };
                    match r {
                        Ok(values) => {
                            eprintln!("   run {} done in {:.0?}: {values:?}", run + 1, t.elapsed());
                            section.runs.push(values);
                        }
                        Err(e) => {
                            eprintln!("   run {} failed: {e:#}", run + 1);
                            section.error = Some(format!("{e:#}"));
                            break;
                        }
                    }
                }
            }
            // Every run pushes the same notes: keep the first of each.
            let mut seen = std::collections::HashSet::new();
            section.notes.retain(|n| seen.insert(n.clone()));
            sections.push(section);
        }
    }
    let _ = std::fs::remove_dir_all(&ctx.work);

    let machine_after = report::machine();
    let mut md = format!(
        "Command: `lockstep-bench {}`\n\nMachine at start: {machine_before}.\nLoad average at end: {} (wall time {:.0?}).\n\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        report::load(),
        started.elapsed()
    );
    let _ = machine_after;
    for s in &sections {
        md.push_str(&s.markdown());
    }
    print!("{md}");
    if let Some(out) = &ctx.args.out {
        std::fs::write(out, &md)?;
    }
    if let Some(out) = &ctx.args.json {
        let v = json!({"machine": machine_before, "quick": ctx.args.quick, "scenarios": sections.iter().map(Section::json).collect::<Vec<_>>()});
        std::fs::write(out, serde_json::to_string_pretty(&v)?)?;
    }
    let failed: Vec<String> = sections.iter().filter(|s| s.error.is_some()).map(|s| format!("scenario {}", s.id)).collect();
    anyhow::ensure!(failed.is_empty(), "failed: {}", failed.join(", "));
    Ok(())
}

fn title(id: u8, n: usize, quick: bool) -> String {
    let q = if quick { " (quick)" } else { "" };
    match id {
        1 => format!("cold sync, N = {n}{q}"),
        2 => format!("steady state{q}"),
        3 => format!("latency of new ExternalSecrets under refresh load{q}"),
        4 => format!("unrelated 100 KiB Secrets{q}"),
        5 => format!("seed topology at scale (Azure provider){q}"),
        _ => "plugin overhead (plugin-host criterion bench)".into(),
    }
}

/// A fresh control plane with the engine's identity installed.
async fn setup(ctx: &Ctx, tag: &str) -> anyhow::Result<(Plane, Client, PathBuf)> {
    let plane = Plane::start(tag).await?;
    let admin = plane.env.client().await;
    let kubeconfig = engine::install(&plane.env, &admin, &ctx.work.join(tag)).await?;
    Ok((plane, admin, kubeconfig))
}

async fn apiserver_requests(env: &TestEnv) -> anyhow::Result<BTreeMap<String, f64>> {
    let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(env.ca_pem().as_bytes())?).build()?;
    let text = http.get(format!("{}/metrics", env.api_url())).bearer_auth(env.admin_token()).send().await?.error_for_status()?.text().await?;
    Ok(metrics::apiserver_requests(&text))
}

/// Namespaces `bench-NN` with a fake SecretStore each.
async fn fake_namespaces(admin: &Client, prefix: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = (0..count).map(|i| workload::ns_name(prefix, i)).collect();
    workload::namespaces(admin, &names, json!({})).await?;
    workload::fake_stores(admin, &names).await?;
    Ok(names)
}

fn ready_timeout(n: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(60 * n as u64)
}

struct EngineTotals {
    provider_calls: f64,
    dedupe_hits: f64,
    metrics_bytes: f64,
    fetch_cache_bytes: f64,
}

async fn engine_totals(e: &Engine) -> anyhow::Result<EngineTotals> {
    let text = e.metrics().await?;
    Ok(EngineTotals {
        provider_calls: metrics::sum(&text, "lockstep_provider_calls_total", &[]).unwrap_or(0.0),
        dedupe_hits: metrics::sum(&text, "lockstep_fetch_dedupe_hits_total", &[]).unwrap_or(0.0),
        metrics_bytes: text.len() as f64,
        fetch_cache_bytes: metrics::sum(&text, "lockstep_fetch_cache_bytes", &[]).unwrap_or(0.0),
    })
}

fn push_api(values: &mut Vec<(String, f64)>, delta: &BTreeMap<String, f64>, per: f64) {
    for (k, v) in delta {
        if k.starts_with("WATCH") {
            continue;
        }
        values.push((format!("apiserver {k}"), v / per));
    }
}

/// 1. Cold sync of N ExternalSecrets over 50 namespaces, then the bare-client limit.
async fn scenario1(ctx: &Ctx, n: usize, run: usize, notes: &mut Vec<String>) -> anyhow::Result<Vec<(String, f64)>> {
    let ns_count = if ctx.args.quick { 10 } else { 50 };
    let (plane, admin, kubeconfig) = setup(ctx, &format!("s1-{n}-{run}")).await?;
    let nss = fake_namespaces(&admin, "bench", ns_count).await?;

    // The engine idle (stores only): binary, runtime, wasmtime, compiled plugins, watches.
    // Started twice: the first start fills the compile cache if it was empty.
    let mut idle_rss = 0.0;
    for _ in 0..2 {
        let idle = ctx.engine(&kubeconfig, &format!("s1-{n}-{run}-idle"), vec![])?;
        idle.wait_serving(Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        idle_rss = idle.memory_mib()?.1;
        idle.stop();
    }

    let t = Instant::now();
    workload::external_secrets(&admin, &nss, n, "1h").await?;
    eprintln!("   created {n} ExternalSecrets in {:.1?}", t.elapsed());
    let (tracker, watch) = ReadyTracker::start(&admin).await?;
    let api_before = apiserver_requests(&plane.env).await?;
    let engine = ctx.engine(&kubeconfig, &format!("s1-{n}-{run}"), vec![])?;
    let last = tracker.wait("bench-", n, ready_timeout(n), || engine.check_alive()).await?;
    let lockstep_secs = last.duration_since(engine.started).as_secs_f64();
    let cpu = engine.cpu_seconds()?;
    let (hwm, rss) = engine.memory_mib()?;
    let totals = engine_totals(&engine).await?;
    let api_delta = metrics::delta(&api_before, &apiserver_requests(&plane.env).await?);
    engine.stop();

    // The same writes from a bare client with the engine's identity, engine stopped.
    let bare_ns: Vec<String> = (0..ns_count).map(|i| workload::ns_name("bare", i)).collect();
    workload::namespaces(&admin, &bare_ns, json!({})).await?;
    let objects = workload::external_secrets(&admin, &bare_ns, n, "1h").await?;
    let bare_client = engine::client_from(&kubeconfig).await?;
    let bare = workload::bare_writes(&bare_client, &objects, 32).await?;
    tracker.wait("bare-", n, Duration::from_secs(60), || Ok(())).await?;
    watch.abort();
    let bare8 = {
        // The engine's reconcile concurrency (8), for reference.
        let ns8: Vec<String> = (0..ns_count).map(|i| workload::ns_name("bare8", i)).collect();
        workload::namespaces(&admin, &ns8, json!({})).await?;
        let objects = workload::external_secrets(&admin, &ns8, n, "1h").await?;
        workload::bare_writes(&bare_client, &objects, 8).await?
    };

    notes.push(format!(
        "{ns_count} namespaces, one `fake` SecretStore each (2 keys); each ExternalSecret reads both keys and renders a 1-key template; refreshInterval 1h."
    ));
    notes.push("Lockstep time = engine process spawn → last ExternalSecret seen Ready=True by a watch from the bench (includes process start, plugin load from the compile cache, initial lists).".into());
    notes.push("Bare client = the engine's ServiceAccount token, one Secret create + one status apply per ExternalSecret, 32 (and 8) requests in flight, on a second set of N ExternalSecrets in the same control plane after the engine stopped.".into());
    notes.push("Idle RSS = the engine with the stores but no ExternalSecret (binary, runtimes, wasmtime, compiled plugins, watches); per-ExternalSecret = (peak − idle) / N.".into());

    let mut v = vec![
        ("lockstep: time to all Ready (s)".into(), lockstep_secs),
        ("bare client (32 in flight): same writes (s)".into(), bare.as_secs_f64()),
        ("bare client (8 in flight): same writes (s)".into(), bare8.as_secs_f64()),
        ("ratio lockstep / bare(32)".into(), lockstep_secs / bare.as_secs_f64()),
        ("ExternalSecrets Ready".into(), tracker.count_in("bench-") as f64),
        ("engine CPU (s)".into(), cpu),
        ("engine peak RSS VmHWM (MiB)".into(), hwm),
        ("engine RSS at all-Ready (MiB)".into(), rss),
        ("engine idle RSS, no ExternalSecrets (MiB)".into(), idle_rss),
        ("RSS per ExternalSecret above idle (KiB)".into(), (hwm - idle_rss) * 1024.0 / n as f64),
        ("engine /metrics size (KiB)".into(), totals.metrics_bytes / 1024.0),
        ("fetch cache (bytes)".into(), totals.fetch_cache_bytes),
        ("provider calls".into(), totals.provider_calls),
        ("fetch dedupe hits".into(), totals.dedupe_hits),
    ];
    push_api(&mut v, &api_delta, 1.0);
    Ok(v)
}

/// 2. Steady state at refreshInterval 1m: per-cycle CPU, writes, provider calls.
async fn scenario2(ctx: &Ctx, run: usize, notes: &mut Vec<String>) -> anyhow::Result<Vec<(String, f64)>> {
    let (n, ns_count, interval, cycles) = if ctx.args.quick { (20, 5, 5u64, 2u64) } else { (5000, 50, 60, 5) };
    let (plane, admin, kubeconfig) = setup(ctx, &format!("s2-{run}")).await?;
    let nss = fake_namespaces(&admin, "bench", ns_count).await?;
    workload::external_secrets(&admin, &nss, n, &format!("{interval}s")).await?;
    let (tracker, watch) = ReadyTracker::start(&admin).await?;
    let engine = ctx.engine(&kubeconfig, &format!("s2-{run}"), vec![])?;
    let last = tracker.wait("bench-", n, ready_timeout(n), || engine.check_alive()).await?;
    let cold = last.duration_since(engine.started).as_secs_f64();
    watch.abort();
    // Let the cold sync's own follow-ups settle, then measure whole intervals.
    tokio::time::sleep(Duration::from_secs(interval + 5)).await;
    let (cpu0, api0, m0) = (engine.cpu_seconds()?, apiserver_requests(&plane.env).await?, engine_totals(&engine).await?);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(interval * cycles)).await;
    engine.check_alive()?;
    let (cpu1, api1, m1) = (engine.cpu_seconds()?, apiserver_requests(&plane.env).await?, engine_totals(&engine).await?);
    let window = t0.elapsed().as_secs_f64();
    let (hwm, rss) = engine.memory_mib()?;
    engine.stop();
    let delta = metrics::delta(&api0, &api1);
    let c = cycles as f64;
    notes.push(format!("N = {n} ExternalSecrets over {ns_count} namespaces at refreshInterval {interval}s, measured over {cycles} intervals after the cold sync settled; per-cycle = total / {cycles}."));
    let mut v = vec![
        ("cold sync to all Ready (s)".into(), cold),
        ("measured window (s)".into(), window),
        ("engine CPU per cycle (s)".into(), (cpu1 - cpu0) / c),
        ("engine CPU, share of one core (%)".into(), (cpu1 - cpu0) / window * 100.0),
        ("Secret writes per cycle".into(), metrics::writes_of(&delta, "secrets") / c),
        ("ExternalSecret status writes per cycle".into(), metrics::writes_of(&delta, "externalsecrets/status") / c),
        ("Event writes per cycle".into(), metrics::writes_of(&delta, "events") / c),
        ("provider calls per cycle".into(), (m1.provider_calls - m0.provider_calls) / c),
        ("fetch dedupe hits per cycle".into(), (m1.dedupe_hits - m0.dedupe_hits) / c),
        ("engine peak RSS VmHWM (MiB)".into(), hwm),
        ("engine RSS (MiB)".into(), rss),
    ];
    push_api(&mut v, &delta, c);
    Ok(v)
}

/// 3. While N refresh at 1m, create new ExternalSecrets and time each one to Ready.
async fn scenario3(ctx: &Ctx, run: usize, notes: &mut Vec<String>) -> anyhow::Result<Vec<(String, f64)>> {
    let (n, ns_count, interval, new, spread) = if ctx.args.quick { (20, 5, 5u64, 5usize, 2u64) } else { (5000, 50, 60, 100, 60) };
    let (plane, admin, kubeconfig) = setup(ctx, &format!("s3-{run}")).await?;
    let nss = fake_namespaces(&admin, "bench", ns_count).await?;
    workload::external_secrets(&admin, &nss, n, &format!("{interval}s")).await?;
    let (tracker, watch) = ReadyTracker::start(&admin).await?;
    let engine = ctx.engine(&kubeconfig, &format!("s3-{run}"), vec![])?;
    tracker.wait("bench-", n, ready_timeout(n), || engine.check_alive()).await?;
    tokio::time::sleep(Duration::from_secs(interval / 4 + 1)).await;
    let cpu0 = engine.cpu_seconds()?;
    let t0 = Instant::now();
    let mut sent = Vec::new();
    let gap = Duration::from_millis(spread * 1000 / new as u64);
    for j in 0..new {
        let ns = nss[j % nss.len()].clone();
        let name = format!("new-{j}");
        let es = workload::external_secret(&ns, &name, &format!("{interval}s"))?;
        let at = Instant::now();
        Api::<lockstep_api::v1::ExternalSecret>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &es).await?;
        sent.push((format!("{ns}/{name}"), at));
        tokio::time::sleep(gap.saturating_sub(at.elapsed())).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lat = Vec::new();
    for (key, at) in &sent {
        loop {
            if let Some(r) = tracker.ready_at(key) {
                lat.push(r.duration_since(*at).as_secs_f64());
                break;
            }
            engine.check_alive()?;
            anyhow::ensure!(Instant::now() < deadline, "{key} not Ready within 120 s of the last create");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let window = t0.elapsed().as_secs_f64();
    let cpu = engine.cpu_seconds()? - cpu0;
    engine.stop();
    watch.abort();
    drop(plane);
    lat.sort_by(f64::total_cmp);
    notes.push(format!("{new} new ExternalSecrets created one every {gap:?} (over {spread} s, i.e. across a whole refresh interval) while {n} refresh at {interval}s; latency = create request sent → Ready=True seen by the bench's watch."));
    Ok(vec![
        ("new ExternalSecrets Ready".into(), lat.len() as f64),
        ("time to Ready p50 (s)".into(), report::percentile(&lat, 50.0)),
        ("time to Ready p99 (s)".into(), report::percentile(&lat, 99.0)),
        ("time to Ready max (s)".into(), lat.last().copied().unwrap_or(f64::NAN)),
        ("engine CPU during the window, share of one core (%)".into(), cpu / window * 100.0),
    ])
}

/// 4. Engine memory with and without many unrelated large Secrets.
async fn scenario4(ctx: &Ctx, run: usize, notes: &mut Vec<String>) -> anyhow::Result<Vec<(String, f64)>> {
    let (n, ns_count, unrelated, settle) = if ctx.args.quick { (20, 5, 20, 2u64) } else { (1000, 50, 10_000, 10) };
    let size = 100 * 1024;
    let mut v = Vec::new();
    let mut rss = [0.0f64; 2];
    for (i, with) in [false, true].into_iter().enumerate() {
        let label = if with { "with" } else { "without" };
        let (plane, admin, kubeconfig) = setup(ctx, &format!("s4-{run}-{label}")).await?;
        let nss = fake_namespaces(&admin, "bench", ns_count).await?;
        if with {
            let t = Instant::now();
            workload::unrelated_secrets(&admin, &nss, unrelated, size).await?;
            v.push(("unrelated Secrets created in (s)".into(), t.elapsed().as_secs_f64()));
        }
        workload::external_secrets(&admin, &nss, n, "1h").await?;
        let (tracker, watch) = ReadyTracker::start(&admin).await?;
        let engine = ctx.engine(&kubeconfig, &format!("s4-{run}-{label}"), vec![])?;
        let last = tracker.wait("bench-", n, ready_timeout(n), || engine.check_alive()).await?;
        let secs = last.duration_since(engine.started).as_secs_f64();
        tokio::time::sleep(Duration::from_secs(settle)).await;
        let (hwm, now) = engine.memory_mib()?;
        let cpu = engine.cpu_seconds()?;
        engine.stop();
        watch.abort();
        let db = plane.etcd_db_bytes().await.unwrap_or(f64::NAN);
        rss[i] = hwm;
        v.push((format!("{label}: time to all Ready (s)"), secs));
        v.push((format!("{label}: engine peak RSS VmHWM (MiB)"), hwm));
        v.push((format!("{label}: engine RSS after settling (MiB)"), now));
        v.push((format!("{label}: engine CPU (s)"), cpu));
        v.push((format!("{label}: etcd db size (MiB)"), db / 1048576.0));
    }
    v.push(("peak RSS difference with − without (MiB)".into(), rss[1] - rss[0]));
    notes.push(format!(
        "{n} ExternalSecrets (as scenario 1) with and without {unrelated} unlabelled Opaque Secrets of {} KiB in the same namespaces, created before the engine starts; each variant on its own fresh control plane.",
        size / 1024
    ));
    Ok(v)
}

const S5_TENANT: &str = "8d2e6b71-5c3a-4f90-b1e4-7a9c0d3f2e58";
const S5_CLIENT: &str = "3f1c9a52-7b4e-4d2a-9c61-0e8f5a2b7d14";
const S5_VAULT: &str = "kv-aap-vault-dev";

/// 5. The seed topology at scale: one ClusterExternalSecret over many namespaces,
/// Azure Key Vault with workload identity through the fake Entra and the gateway.
async fn scenario5(ctx: &Ctx, run: usize, notes: &mut Vec<String>) -> anyhow::Result<Vec<(String, f64)>> {
    let (ns_count, interval, cycles) = if ctx.args.quick { (5, 5u64, 2u64) } else { (100, 60, 5) };
    let (plane, admin, kubeconfig) = setup(ctx, &format!("s5-{run}")).await?;
    let env = &plane.env;
    let pp = PatchParams::apply("lockstep-bench").force();
    Api::<Namespace>::all(admin.clone())
        .patch("external-secrets", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "external-secrets"}})))
        .await?;
    Api::<ServiceAccount>::namespaced(admin.clone(), "external-secrets")
        .patch("external-secrets", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "external-secrets", "namespace": "external-secrets",
            "annotations": {"azure.workload.identity/client-id": S5_CLIENT, "azure.workload.identity/tenant-id": S5_TENANT},
        }})))
        .await?;
    env.entra().federate(S5_TENANT, S5_CLIENT, env.issuer(), &TestEnv::subject("external-secrets", "external-secrets")).await?;
    let vault = env.vault_in(S5_VAULT, S5_TENANT).await;
    vault.set_secret("db-user", "app", &SecretOptions::default()).await?;
    vault.set_secret("db-password", "s5-pw", &SecretOptions::default()).await?;
    let store: lockstep_api::v1beta1::ClusterSecretStore = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1beta1", "kind": "ClusterSecretStore",
        "metadata": {"name": "azure"},
        "spec": {"provider": {"azurekv": {
            "authType": "WorkloadIdentity", "vaultUrl": vault.url(),
            "serviceAccountRef": {"name": "external-secrets", "namespace": "external-secrets"},
        }}},
    }))?;
    Api::<lockstep_api::v1beta1::ClusterSecretStore>::all(admin.clone()).create(&PostParams::default(), &store).await?;
    let nss: Vec<String> = (0..ns_count).map(|i| workload::ns_name("seed", i)).collect();
    workload::namespaces(&admin, &nss, json!({"bench-seed": "true"})).await?;
    let ces: lockstep_api::v1beta1::ClusterExternalSecret = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1beta1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "bench-db"},
        "spec": {
            "externalSecretName": "bench-db",
            "namespaceSelector": {"matchLabels": {"bench-seed": "true"}},
            "refreshTime": format!("{interval}s"),
            "externalSecretSpec": {
                "refreshInterval": format!("{interval}s"),
                "secretStoreRef": {"name": "azure", "kind": "ClusterSecretStore"},
                "target": {"name": "bench-db", "template": {"type": "Opaque", "data": {"dsn": "postgres://{{ .user }}:{{ .password }}@db:5432/app"}}},
                "data": [
                    {"secretKey": "user", "remoteRef": {"key": "db-user"}},
                    {"secretKey": "password", "remoteRef": {"key": "db-password"}},
                ],
            },
        },
    }))?;
    Api::<lockstep_api::v1beta1::ClusterExternalSecret>::all(admin.clone()).create(&PostParams::default(), &ces).await?;

    let mut extra = vec![format!("--extra-ca-file={}", env.ca_path().display())];
    extra.extend(env.host_overrides().await.into_iter().map(|(host, addr)| format!("--resolve={host}={addr}")));
    let (tracker, watch) = ReadyTracker::start(&admin).await?;
    let (entra, gateway) = (env.entra(), env.gateway());
    gateway.reset_requests().await?;
    let ex0 = entra.exchange_count(S5_CLIENT).await?;
    let api0 = apiserver_requests(env).await?;
    let engine = ctx.engine(&kubeconfig, &format!("s5-{run}"), extra)?;
    let last = tracker.wait("seed-", ns_count, ready_timeout(ns_count), || engine.check_alive()).await?;
    let cold = last.duration_since(engine.started).as_secs_f64();
    watch.abort();
    let gets = |m: &BTreeMap<String, u64>| m.iter().filter(|(k, _)| k.starts_with("GET ")).map(|(_, v)| *v as f64).sum::<f64>();
    let token_requests = |d: &BTreeMap<String, f64>| d.get("POST serviceaccounts/token").copied().unwrap_or(0.0);
    let cold_gets = gets(&gateway.requests().await?);
    let cold_ex = (entra.exchange_count(S5_CLIENT).await? - ex0) as f64;
    let api1 = apiserver_requests(env).await?;
    let cold_tr = token_requests(&metrics::delta(&api0, &api1));

    tokio::time::sleep(Duration::from_secs(interval + 5)).await;
    let (g0, e0, a0, cpu0) = (gets(&gateway.requests().await?), entra.exchange_count(S5_CLIENT).await?, apiserver_requests(env).await?, engine.cpu_seconds()?);
    tokio::time::sleep(Duration::from_secs(interval * cycles)).await;
    engine.check_alive()?;
    let (g1, e1, a1, cpu1) = (gets(&gateway.requests().await?), entra.exchange_count(S5_CLIENT).await?, apiserver_requests(env).await?, engine.cpu_seconds()?);
    let (hwm, _) = engine.memory_mib()?;
    engine.stop();
    let d = metrics::delta(&a0, &a1);
    let c = cycles as f64;
    notes.push(format!(
        "One v1beta1 ClusterExternalSecret selecting {ns_count} namespaces, 2 keys + template, refreshInterval {interval}s; ClusterSecretStore `azurekv` with WorkloadIdentity through the `external-secrets` ServiceAccount; {cycles} cycles measured after the cold sync settled. Access-token lifetime 3599 s (the fake Entra's default), so no re-exchange is due inside the window."
    ));
    notes.push("Key Vault: the Lowkey Vault jar is not served by the reachable Maven registry, so the data plane is lockstep-testenv's in-memory Key Vault stand-in behind the verifying gateway (it checks every access token against the fake Entra's keys). Entra exchanges are counted by the fake Entra, Key Vault GETs by the gateway, TokenRequests by the apiserver (`POST serviceaccounts/token`).".into());
    Ok(vec![
        ("ExternalSecrets Ready".into(), tracker.count_in("seed-") as f64),
        ("cold sync to all Ready (s)".into(), cold),
        ("cold sync: Entra exchanges".into(), cold_ex),
        ("cold sync: TokenRequests".into(), cold_tr),
        ("cold sync: Key Vault GETs".into(), cold_gets),
        ("Key Vault GETs per cycle".into(), (g1 - g0) / c),
        ("Entra exchanges per cycle".into(), (e1 - e0) as f64 / c),
        ("TokenRequests per cycle".into(), token_requests(&d) / c),
        ("Secret writes per cycle".into(), metrics::writes_of(&d, "secrets") / c),
        ("ExternalSecret status writes per cycle".into(), metrics::writes_of(&d, "externalsecrets/status") / c),
        ("ExternalSecret writes per cycle (ClusterExternalSecret fan-out)".into(), metrics::writes_of(&d, "externalsecrets") / c),
        ("engine CPU per cycle (s)".into(), (cpu1 - cpu0) / c),
        ("engine peak RSS VmHWM (MiB)".into(), hwm),
    ])
}

/// 6. The plugin host's criterion bench, re-run and quoted.
async fn scenario6(section: &mut Section) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let args = ["bench", "-p", "lockstep-plugin-host", "--bench", "plugin_host", "--", "--warm-up-time", "1", "--measurement-time", "3"];
    section.notes.push(format!("`cargo {}` (criterion output below).", args.join(" ")));
    let out = tokio::process::Command::new("cargo").args(args).current_dir(&root).output().await.context("running cargo bench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = Vec::new();
    let mut name = String::new();
    for line in stdout.lines() {
        let t = line.trim();
        if let Some((head, rest)) = t.split_once("time:") {
            let head = head.trim();
            lines.push(format!("{} time: {}", if head.is_empty() { &name } else { head }, rest.trim()));
        } else if t.contains("per live instance") || t.contains("memory") {
            lines.push(t.to_string());
        } else if !t.is_empty() && !t.starts_with("Benchmarking") && !t.contains(':') {
            name = t.to_string();
        }
    }
    for l in lines {
        section.notes.push(format!("`{l}`"));
    }
    anyhow::ensure!(out.status.success(), "cargo bench failed: {}", String::from_utf8_lossy(&out.stderr).lines().rev().take(10).collect::<Vec<_>>().join(" | "));
    Ok(())
}
