//! The world-independent sandbox: one wasmtime `Engine` per process, the
//! compile cache, the WASI context every plugin gets (no filesystem, no
//! environment, no sockets), the memory cap and the per-call deadline.
//!
//! Provider plugins ([`crate::PluginHost`]) and template-function components
//! both build on these pieces. To host another world:
//!
//! 1. put a [`SandboxState`] in your store data and implement [`SandboxView`]
//!    (and `WasiView` through [`SandboxState::wasi_view`]);
//! 2. `sandbox.compile(bytes, &[imports::WASI_BASE])` → [`CompiledComponent`];
//! 3. `let mut linker = sandbox.linker::<T>()?;` add your world's imports,
//!    `linker.instantiate_pre(compiled.component())`;
//! 4. per call: `let mut store = sandbox.store(data)`, instantiate, and run
//!    the export through [`Sandbox::call`] (deadline + trap classification).
//!    After any error the instance must be dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};


use crate::cache::{sha256_hex, CacheOutcome, CompileCache};
use crate::imports::{check_imports, ImportSet};
use crate::HostError;

/// Whether to use wasmtime's pooling instance allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    /// Pooling when the address space can be reserved, else on-demand.
    Auto,
    /// Pooling or fail.
    Always,
    /// On-demand allocation only.
    Never,
}

/// Engine-wide sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Compile cache directory; created with mode 0700.
    pub cache_dir: PathBuf,
    pub pooling: PoolingMode,
    /// Live instances the pool is sized for.
    pub max_instances: u32,
    /// Linear-memory cap per instance.
    pub max_memory_bytes: usize,
    /// Epoch tick; deadlines are enforced with this granularity.
    pub epoch_tick: Duration,
}

impl SandboxConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            pooling: PoolingMode::Auto,
            max_instances: 256,
            max_memory_bytes: 64 << 20,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Per-call limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock bound of one exported call, host calls included.
    pub deadline: Duration,
    /// Linear-memory cap (at most [`SandboxConfig::max_memory_bytes`]).
    pub max_memory_bytes: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self { deadline: Duration::from_secs(10), max_memory_bytes: 64 << 20 }
    }
}

/// One engine, its compile cache and its epoch ticker.
pub struct Sandbox {
    engine: Engine,
    cache: Arc<CompileCache>,
    config: SandboxConfig,
    pooled: bool,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("config", &self.config).field("pooled", &self.pooled).finish()
    }
}

fn engine_config(pooling: Option<&SandboxConfig>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if let Some(sc) = pooling {
        let n = sc.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(sc.max_memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Sandbox {
    /// Builds the process's engine (pooling per `config.pooling`), opens the
    /// compile cache and starts the epoch ticker (a thread that ends with the engine).
    pub fn new(config: SandboxConfig) -> Result<Arc<Self>, HostError> {
        let (engine, pooled) = match config.pooling {
            PoolingMode::Never => (Engine::new(&engine_config(None)), false),
            PoolingMode::Always => (Engine::new(&engine_config(Some(&config))), true),
            PoolingMode::Auto => match Engine::new(&engine_config(Some(&config))) {
                Ok(engine) => (Ok(engine), true),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                    (Engine::new(&engine_config(None)), false)
                }
            },
        };
        let engine = engine.map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache = Arc::new(CompileCache::open(&config.cache_dir, &engine)?);
        let weak = engine.weak();
        let tick = config.epoch_tick;
        std::thread::Builder::new()
            .name("lockstep-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(tick);
                }
            })
            .map_err(|e| HostError::Engine(format!("epoch ticker: {e}")))?;
        Ok(Arc::new(Self { engine, cache, config, pooled }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// True when the pooling allocator is in use.
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Compiles (or loads from the cache) a component and checks its imports
    /// against `allowed` (the import sets of the world it will be linked to).
    pub async fn compile(&self, wasm: Arc<[u8]>, allowed: &[ImportSet]) -> Result<CompiledComponent, HostError> {
        if wasmparser_is_core_module(&wasm) {
            return Err(HostError::NotAComponent);
        }
        let sha256 = sha256_hex(&wasm);
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let sha = sha256.clone();
        // Cranelift is CPU-bound; keep it off the async workers.
        let (component, outcome) = tokio::task::spawn_blocking(move || cache.load_or_compile(&engine, &wasm, &sha))
            .await
            .map_err(|e| HostError::Compile(format!("compile task: {e}")))??;
        let imports = check_imports(&self.engine, &component, allowed)?;
        Ok(CompiledComponent { component, sha256, imports, outcome })
    }

    /// The cached artifact path of a component digest (for diagnostics and the tamper test).
    pub fn artifact_path(&self, wasm_sha256: &str) -> PathBuf {
        self.cache.artifact_path(wasm_sha256)
    }

    /// A linker with the WASI every sandboxed component may import: io,
    /// clocks, random, cli stdio/exit/environment/terminal (all backed by an
    /// empty context). No filesystem, no sockets.
    pub fn linker<T: SandboxView + 'static>(&self) -> Result<Linker<T>, HostError> {
        use wasmtime_wasi::cli::{WasiCli, WasiCliView};
        use wasmtime_wasi::p2::bindings::{cli, random};
        use wasmtime_wasi::random::WasiRandom;
        let mut linker = Linker::new(&self.engine);
        let link = |r: wasmtime::Result<()>| r.map_err(|e| HostError::Engine(format!("linker: {e:#}")));
        link(wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(&mut linker))?;
        let l = &mut linker;
        link(random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random()))?;
        link(random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random()))?;
        link(cli::exit::add_to_linker::<T, WasiCli>(l, T::cli))?;
        link(cli::environment::add_to_linker::<T, WasiCli>(l, T::cli))?;
        link(cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli))?;
        link(cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli))?;
        link(cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli))?;
        link(cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli))?;
        link(cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli))?;
        Ok(linker)
    }

    /// A store with the memory cap installed and the epoch deadline set to
    /// yield on every tick (the wall-clock bound comes from [`Sandbox::call`]).
    pub fn store<T: SandboxView + 'static>(&self, data: T) -> Store<T> {
        let mut store = Store::new(&self.engine, data);
        store.limiter(|t| &mut t.sandbox().limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// Runs one exported call under `deadline`. The future must borrow the
    /// store mutably (so the caller cannot reuse it concurrently). On any
    /// error the instance is poisoned and must be dropped.
    pub async fn call<R>(
        &self,
        deadline: Duration,
        call: impl std::future::Future<Output = wasmtime::Result<R>>,
    ) -> Result<R, CallError> {
        match tokio::time::timeout(deadline, call).await {
            Err(_) => Err(CallError::Deadline(deadline)),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(CallError::Trap(format!("{e:#}"))),
        }
    }
}

/// Rejects core modules early with a clear message (the component header has layer 1).
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [0, 0]
}

/// A compiled, import-checked component, ready for `Linker::instantiate_pre`.
#[derive(Clone)]
pub struct CompiledComponent {
    component: Component,
    sha256: String,
    imports: Vec<String>,
    outcome: CacheOutcome,
}

impl std::fmt::Debug for CompiledComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledComponent").field("sha256", &self.sha256).field("imports", &self.imports).field("outcome", &self.outcome).finish()
    }
}

impl CompiledComponent {
    pub fn component(&self) -> &Component {
        &self.component
    }
    /// sha256 of the `.wasm` bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The component's imports (`wasi:http/types@0.2.12`, ...).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
    /// Whether it came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.outcome
    }
}

/// Why a sandboxed call failed (before any WIT-level error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("plugin call exceeded its deadline of {} ms", .0.as_millis())]
    Deadline(Duration),
    #[error("plugin exceeded its memory limit of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    #[error("plugin trapped: {0}")]
    Trap(String),
}

impl CallError {
    /// Short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Deadline(_) => "deadline",
            Self::MemoryLimit(_) => "memory_limit",
            Self::Trap(_) => "trap",
        }
    }
}

/// The memory cap of one store. A failed grow traps with a message that names the cap.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, exceeded: false }
    }
    /// True once a grow beyond the cap was attempted.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} MiB exceeded (grow to {desired} bytes refused)", self.max_bytes >> 20);
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        8
    }
}

/// The sandbox part of a store's data: an empty WASI context and the memory cap.
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl SandboxState {
    /// `WasiCtx::builder().build()`: no args, env, preopens or stdio; sockets
    /// and name lookup denied.
    pub fn new(limits: &CallLimits) -> Self {
        Self { wasi: WasiCtx::builder().build(), table: ResourceTable::new(), limiter: MemoryLimiter::new(limits.max_memory_bytes) }
    }
    /// The `WasiView` of this state.
    pub fn wasi_view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
    pub fn limiter(&self) -> &MemoryLimiter {
        &self.limiter
    }
    /// Turns a trap into a [`CallError`], naming the memory cap when that was the cause.
    pub fn classify(&self, err: CallError) -> CallError {
        match err {
            CallError::Trap(_) if self.limiter.exceeded => CallError::MemoryLimit(self.limiter.max_bytes),
            other => other,
        }
    }
}

/// Store data that contains a [`SandboxState`]. Implement `WasiView` with
/// `fn ctx(&mut self) -> WasiCtxView<'_> { self.sandbox().wasi_view() }`.
pub trait SandboxView: WasiView + Send {
    fn sandbox(&mut self) -> &mut SandboxState;
}
