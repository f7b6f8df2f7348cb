//! Host bindings of `lockstep:provider@0.1.0`, world `plugin`.

wasmtime::component::bindgen!({
    path: [
        "../../wit/deps/io.wit",
        "../../wit/deps/clocks.wit",
        "../../wit/deps/random.wit",
        "../../wit/deps/filesystem.wit",
        "../../wit/deps/sockets.wit",
        "../../wit/deps/cli.wit",
        "../../wit/deps/http.wit",
        "../../wit/provider",
    ],
    world: "lockstep:provider/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});
