//! `webkv`: the SDK's worked example and the positive control of the HTTP
//! conformance fixtures. Test-only, never embedded.

#![forbid(unsafe_code)]

/// The broken twin (`testing/broken`) sets this to true.
const BROKEN: bool = false;

mod kv;

lockstep_provider_sdk::export_provider!(kv::WebKv);
