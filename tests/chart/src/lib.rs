//! Test-only crate: see `tests/chart.rs`.
#![forbid(unsafe_code)]
