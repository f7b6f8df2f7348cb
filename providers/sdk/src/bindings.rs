//! The wit-bindgen bindings of the `lockstep:provider/plugin` world.
//!
//! The WASI interfaces the world pulls in are mapped onto the `wasip2` crate
//! rather than generated a second time, so [`crate::http`] and any code the
//! plugin writes against `wasip2` share one set of types.

wit_bindgen::generate!({
    path: "../../wit/provider",
    world: "lockstep:provider/plugin",
    with: {
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
    additional_derives: [PartialEq],
    pub_export_macro: true,
    export_macro_name: "export_plugin",
    default_bindings_module: "lockstep_provider_sdk::bindings",
});
