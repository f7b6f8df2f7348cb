//! Render throughput of typical templates: the seed template and a PKCS#12
//! chain split (key + ordered certificate chain).

use std::collections::BTreeMap;
use std::hint::black_box;

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lockstep_templates::{Renderer, RendererConfig, Syntax, TemplateSpec};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn bench(c: &mut Criterion) {
    let renderer = Renderer::new(RendererConfig::default()).expect("renderer");
    let mut data = BTreeMap::new();
    data.insert("admin_password".to_owned(), b"s3cr3t-Pa$$w0rd".to_vec());
    data.insert(
        "p12".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(fixture("chain-nopass.p12")).into_bytes(),
    );

    let mut seed = TemplateSpec { secret_type: Some("Opaque".into()), ..Default::default() };
    seed.data.insert("admin-password".into(), "{{ .admin_password }}".into());
    seed.data.insert("admin-user".into(), "admin".into());

    let mut seed_jinja = seed.clone();
    seed_jinja.syntax = Syntax::Jinja;
    seed_jinja.data.insert("admin-password".into(), "{{ admin_password }}".into());

    let mut chain = TemplateSpec { secret_type: Some("kubernetes.io/tls".into()), ..Default::default() };
    chain.data.insert("tls.key".into(), "{{ .p12 | b64dec | pkcs12key }}".into());
    chain.data.insert("tls.crt".into(), "{{ .p12 | b64dec | pkcs12cert }}".into());

    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seed_go", |b| b.iter(|| black_box(renderer.render(black_box(&seed), &data).expect("render"))));
    g.bench_function("seed_jinja", |b| b.iter(|| black_box(renderer.render(black_box(&seed_jinja), &data).expect("render"))));
    g.bench_function("pkcs12_chain", |b| b.iter(|| black_box(renderer.render(black_box(&chain), &data).expect("render"))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
