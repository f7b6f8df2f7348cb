//! Host bindings of `lockstep:provider@0.1.0`, world `plugin`.

wasmtime::component::bindgen!({
    // `wit/provider/deps` links to the vendored WASI packages.
    path: "../../wit/provider",
    world: "lockstep:provider/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});
