//! Denials and traps, for the engine's `/metrics`. Labels are the plugin name
//! (one per loaded plugin) and a reason from a fixed set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginReason {
    pub plugin: String,
    pub reason: String,
}

/// Counters of the plugin host. Clone-cheap; register once into the engine's registry.
#[derive(Debug, Clone, Default)]
pub struct HostMetrics {
    denials: Family<PluginReason, Counter>,
    traps: Family<PluginReason, Counter>,
    instances: Family<PluginReason, Counter>,
}

impl HostMetrics {
    /// Adds `lockstep_plugin_denials_total`, `lockstep_plugin_traps_total` and
    /// `lockstep_plugin_instances_total` (reason `created` / `recycled_*`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("lockstep_plugin_denials", "Egress and credential requests refused by policy", self.denials.clone());
        registry.register("lockstep_plugin_traps", "Plugin calls that trapped, hit their deadline or memory cap, or were cancelled", self.traps.clone());
        registry.register("lockstep_plugin_instances", "Plugin instances created and recycled", self.instances.clone());
    }

    fn key(plugin: &str, reason: &str) -> PluginReason {
        PluginReason { plugin: plugin.to_string(), reason: reason.to_string() }
    }

    pub fn denial(&self, plugin: &str, reason: &'static str) {
        self.denials.get_or_create(&Self::key(plugin, reason)).inc();
    }

    pub fn trap(&self, plugin: &str, reason: &'static str) {
        self.traps.get_or_create(&Self::key(plugin, reason)).inc();
    }

    pub fn instance(&self, plugin: &str, event: &'static str) {
        self.instances.get_or_create(&Self::key(plugin, event)).inc();
    }

    pub fn denials(&self, plugin: &str, reason: &str) -> u64 {
        self.denials.get_or_create(&Self::key(plugin, reason)).get()
    }

    pub fn traps(&self, plugin: &str, reason: &str) -> u64 {
        self.traps.get_or_create(&Self::key(plugin, reason)).get()
    }

    /// The counters in the Prometheus text format (for tests and `--metrics` dumps).
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String");
        out
    }
}
