//! Diagnostics through the host (which adds the store and plugin as context).
//! Never pass a secret value.

use crate::bindings::lockstep::provider::log::{Level, emit};

pub fn debug(message: &str) {
    emit(Level::Debug, message);
}
pub fn info(message: &str) {
    emit(Level::Info, message);
}
pub fn warn(message: &str) {
    emit(Level::Warn, message);
}
pub fn error(message: &str) {
    emit(Level::Error, message);
}
