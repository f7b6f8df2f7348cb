//! A deliberately broken `webkv` provider: the same code with
//! `BROKEN = true`, which maps 404 to `internal`, ignores `Retry-After`,
//! reports 403 as `unauthorized` and pings an undeclared host. It exists so
//! `lockstep plugin test` can be shown failing with readable findings
//! against `providers/testing/webkv/conformance`. Test-only, never embedded.

#![forbid(unsafe_code)]

const BROKEN: bool = true;

#[path = "../../webkv/src/kv.rs"]
mod kv;

lockstep_provider_sdk::export_provider!(kv::WebKv);
