//! Lockstep's secret template engine.
//!
//! ESO templates (Go `text/template` syntax) are parsed by a real Go-template
//! parser and compiled to minijinja; native Jinja is available on opt-in.
//! Values are bytes, carried through minijinja by a reversible byte↔char
//! mapping ([`bytes`]). Functions come in packs (`builtin`, `sprig`, `eso`,
//! and external packs such as WASM components) configured function by
//! function ([`FunctionConfig`]). The crate knows nothing of Kubernetes.
//! See docs/templates.md.

#![forbid(unsafe_code)]

pub mod bytes;
pub mod cli;
mod config;
mod error;
mod external;
mod funcs;
pub mod gotmpl;
mod render;
mod spec;
mod value;
mod yaml;

pub use config::{Directive, FunctionConfig};
pub use error::TemplateError;
pub use external::{ExternalFunctions, ExternalPack, FunctionInfo};
pub use render::{FunctionListing, Limits, Renderer, RendererConfig, SharedRenderer};
pub use spec::*;
