//! A template calls a WASM component's function; hostile functions fail the
//! render with a clear error and the next render still works.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lockstep_plugin_host::{CallLimits, Sandbox, SandboxConfig};
use lockstep_template_functions::WasmFunctions;
use lockstep_templates::{Renderer, RendererConfig, Syntax, TemplateSpec};

fn component(name: &str) -> Arc<[u8]> {
    let dir = std::env::var("LOCKSTEP_COMPONENTS_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        let cache = std::env::var("LOCKSTEP_CACHE").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/lockstep")
        });
        cache.join("components")
    });
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make components`)", path.display())).into()
}

fn render(r: &Renderer, syntax: Syntax, tpl: &str) -> Result<Vec<u8>, String> {
    let mut spec = TemplateSpec { syntax, ..Default::default() };
    spec.data.insert("out".into(), tpl.into());
    let mut data = BTreeMap::new();
    data.insert("version".to_owned(), b"1.4.2".to_vec());
    data.insert("title".to_owned(), b"Hello, World: Admin Key!".to_vec());
    r.render(&spec, &data).map(|mut o| o.data.remove("out").unwrap_or_default()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_functions_render_and_hostile_ones_fail_cleanly() {
    let cache = tempfile::tempdir().expect("tempdir");
    let mut config = SandboxConfig::new(cache.path());
    config.max_memory_bytes = 32 << 20;
    let sandbox = Sandbox::new(config).expect("sandbox");
    let limits = CallLimits { deadline: Duration::from_millis(500), max_memory_bytes: 16 << 20 };
    let example = WasmFunctions::load(sandbox.clone(), "example", component("lockstep_fn_example.wasm"), limits).await.expect("example");
    let hostile = WasmFunctions::load(sandbox.clone(), "hostile", component("lockstep_fn_hostile.wasm"), limits).await.expect("hostile");
    let renderer = Renderer::new(RendererConfig {
        external: vec![example.into_pack("wasm", "wasm_"), hostile.into_pack("hostile", "h_")],
        ..Default::default()
    })
    .expect("renderer");

    // Rendering is synchronous: run it off the async workers, as the engine does.
    tokio::task::spawn_blocking(move || {
        let r = &renderer;
        assert_eq!(render(r, Syntax::GoTemplate, r#"{{ wasm_semverCompare ">=1.2.0, <2" .version }}"#).unwrap(), b"true");
        assert_eq!(render(r, Syntax::GoTemplate, "{{ .title | wasm_slugify }}").unwrap(), b"hello-world-admin-key");
        assert_eq!(render(r, Syntax::Jinja, "{{ title | wasm_slugify }}").unwrap(), b"hello-world-admin-key");
        assert_eq!(render(r, Syntax::GoTemplate, r#"{{ wasm_jsonPath "a.1" "{\"a\":[1,{\"b\":2}]}" | toJson }}"#).unwrap(), br#"{"b":2}"#);
        let err = render(r, Syntax::GoTemplate, r#"{{ wasm_jsonPath "a.b" "[]" }}"#).unwrap_err();
        assert!(err.contains("error calling wasm_jsonPath"), "{err}");

        let started = std::time::Instant::now();
        let err = render(r, Syntax::GoTemplate, "{{ h_spin }}").unwrap_err();
        assert!(err.contains("deadline"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "deadline not enforced: {:?}", started.elapsed());
        let err = render(r, Syntax::GoTemplate, "{{ h_hog }}").unwrap_err();
        assert!(err.contains("memory limit"), "{err}");
        let err = render(r, Syntax::GoTemplate, "{{ h_trap }}").unwrap_err();
        assert!(err.contains("trapped"), "{err}");

        // The engine keeps serving: the same renderer and components still work.
        assert_eq!(render(r, Syntax::GoTemplate, r#"{{ h_echo "ok" }}"#).unwrap(), b"ok");
        assert_eq!(render(r, Syntax::GoTemplate, "{{ .title | wasm_slugify }}").unwrap(), b"hello-world-admin-key");
    })
    .await
    .expect("render thread");
}
