//! Template functions supplied by WebAssembly components
//! (`lockstep:template-functions@0.1.0`), run in the plugin host's sandbox:
//! no filesystem, environment or sockets, a memory cap and a deadline per
//! call, a fresh instance per call (a component that traps or times out
//! leaves nothing behind). [`WasmFunctions`] implements
//! [`lockstep_templates::ExternalFunctions`], so a component is registered
//! with the renderer as an [`lockstep_templates::ExternalPack`].
#![forbid(unsafe_code)]

use std::sync::Arc;

use lockstep_plugin_host::imports::WASI_BASE;
use lockstep_plugin_host::{CallError, CallLimits, Sandbox, SandboxState, SandboxView};
use lockstep_templates::{ExternalFunctions, ExternalPack, FunctionInfo};
use wasmtime_wasi::{WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/template-functions",
        world: "lockstep:template-functions/template-functions",
        exports: { default: async },
    });
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading template-function component {name}: {message}")]
    Load { name: String, message: String },
}

struct State {
    sandbox: SandboxState,
}

impl SandboxView for State {
    fn sandbox(&mut self) -> &mut SandboxState {
        &mut self.sandbox
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.sandbox.wasi_view()
    }
}

/// One loaded component: compiled once, instantiated per call.
pub struct WasmFunctions {
    name: String,
    sandbox: Arc<Sandbox>,
    pre: bindings::TemplateFunctionsPre<State>,
    limits: CallLimits,
    functions: Vec<FunctionInfo>,
    runtime: tokio::runtime::Runtime,
}

impl WasmFunctions {
    /// Compiles (through the sandbox's cache) and checks `wasm`, and asks it
    /// for its function list.
    pub async fn load(sandbox: Arc<Sandbox>, name: &str, wasm: Arc<[u8]>, limits: CallLimits) -> Result<Self, LoadError> {
        let err = |message: String| LoadError::Load { name: name.to_owned(), message };
        let compiled = sandbox.compile(wasm, &[WASI_BASE]).await.map_err(|e| err(e.to_string()))?;
        let linker = sandbox.linker::<State>().map_err(|e| err(e.to_string()))?;
        let pre = linker
            .instantiate_pre(compiled.component())
            .and_then(bindings::TemplateFunctionsPre::new)
            .map_err(|e| err(format!("{e:#}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|e| err(e.to_string()))?;
        let mut this = WasmFunctions { name: name.to_owned(), sandbox, pre, limits, functions: Vec::new(), runtime };
        let list = this.run(|f, store| Box::pin(async move { f.call_list_functions(store).await })).await.map_err(|e| err(e.to_string()))?;
        this.functions = list
            .into_iter()
            .map(|f| FunctionInfo { name: f.name, description: f.description, volatile: f.volatile })
            .collect();
        tracing::info!(component = %name, functions = this.functions.len(), cache = ?compiled.cache_outcome(), "template functions loaded");
        Ok(this)
    }

    /// Registers this component as a function pack named `pack`, callable as `<prefix><function>`.
    pub fn into_pack(self, pack: &str, prefix: &str) -> ExternalPack {
        ExternalPack { pack: pack.to_owned(), prefix: prefix.to_owned(), functions: Arc::new(self) }
    }

    /// Instantiates afresh and runs one export under the deadline and memory cap.
    async fn run<R>(
        &self,
        f: impl for<'a> FnOnce(
            &'a bindings::exports::lockstep::template_functions::functions::Guest,
            &'a mut wasmtime::Store<State>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<R>> + 'a>>,
    ) -> Result<R, CallError> {
        let mut store = self.sandbox.store(State { sandbox: SandboxState::new(&self.limits) });
        let pre = &self.pre;
        let res = self
            .sandbox
            .call(self.limits.deadline, async {
                let inst = pre.instantiate_async(&mut store).await?;
                let guest = inst.lockstep_template_functions_functions();
                f(guest, &mut store).await
            })
            .await;
        res.map_err(|e| store.data().sandbox.classify(e))
    }
}

impl ExternalFunctions for WasmFunctions {
    fn list(&self) -> Vec<FunctionInfo> {
        self.functions.clone()
    }

    fn call(&self, name: &str, args: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let name = name.to_owned();
        // The renderer is synchronous and may run on an async worker: drive the
        // sandboxed call on this component's own runtime from a scoped thread.
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                self.runtime.block_on(self.run(move |f, store| {
                    Box::pin(async move { f.call_call(store, &name, &args).await })
                }))
            })
            .join()
        })
        .map_err(|_| format!("component {} call panicked", self.name))?;
        match out {
            Ok(Ok(json)) => serde_json::from_str(&json).map_err(|_| format!("component {} returned invalid JSON", self.name)),
            Ok(Err(msg)) => Err(msg),
            Err(e) => Err(format!("component {}: {e}", self.name)),
        }
    }
}
