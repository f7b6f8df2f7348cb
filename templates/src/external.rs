//! Functions supplied from outside the crate (WASM components through the
//! plugin host): registered as a pack under a configured prefix.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One externally supplied function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    pub description: String,
    /// Output changes on every call.
    pub volatile: bool,
}

/// A set of functions implemented elsewhere. Arguments and results are JSON
/// values (byte strings travel as JSON strings). `call` runs synchronously on
/// the rendering thread and must enforce its own deadline and memory cap.
pub trait ExternalFunctions: Send + Sync {
    fn list(&self) -> Vec<FunctionInfo>;
    /// Error messages must not contain argument values.
    fn call(&self, name: &str, args: Vec<serde_json::Value>) -> Result<serde_json::Value, String>;
}

/// An external pack: its functions are callable as `<prefix><name>`.
#[derive(Clone)]
pub struct ExternalPack {
    /// Pack name used in the function configuration (`-<pack>.<fn>`).
    pub pack: String,
    /// Prefix of the template-visible names (an identifier fragment, e.g. `wasm_`).
    pub prefix: String,
    pub functions: Arc<dyn ExternalFunctions>,
}

impl std::fmt::Debug for ExternalPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalPack").field("pack", &self.pack).field("prefix", &self.prefix).finish()
    }
}
