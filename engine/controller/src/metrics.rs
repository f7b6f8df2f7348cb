//! Prometheus metrics. ESO's names where the meaning matches (so existing dashboards
//! keep working), `lockstep_*` for the rest. Label values are object names, store
//! kinds, provider keys and fixed enums only, and series of deleted objects are removed,
//! so cardinality follows the number of objects, never the data.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder},
    metrics::{TypedMetric, counter::Counter, family::Family, gauge::Gauge, MetricType},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub name: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub name: String,
    pub namespace: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderCallLabels {
    /// The `spec.provider` key.
    pub provider: String,
    pub call: Call,
    pub status: CallStatus,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Call {
    Validate,
    GetSecret,
    GetSecretMap,
    FindSecrets,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum CallStatus {
    Success,
    NotFound,
    Error,
    Throttled,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// A counter exposed under its exact name (prometheus-client would append `_total`),
/// for ESO's `externalsecret_sync_calls_error`.
#[derive(Debug, Default, Clone)]
pub struct ExactNameCounter(Counter);

impl ExactNameCounter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for ExactNameCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for ExactNameCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.0.get() as i64))
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// All of the controller's metrics.
#[derive(Default)]
pub struct Metrics {
    pub sync_calls: Family<ObjectLabels, Counter>,
    pub sync_errors: Family<ObjectLabels, ExactNameCounter>,
    pub es_condition: Family<ConditionLabels, Gauge>,
    pub store_condition: Family<ConditionLabels, Gauge>,
    pub cluster_store_condition: Family<ConditionLabels, Gauge>,
    pub ces_condition: Family<ConditionLabels, Gauge>,
    pub provider_calls: Family<ProviderCallLabels, Counter>,
    pub dedupe_hits: Family<ProviderLabels, Counter>,
    pub fetch_cache_bytes: Gauge,
    pub leader: Gauge,
    /// ExternalSecrets with series, so those of deleted objects can be dropped.
    known_external_secrets: std::sync::Mutex<std::collections::HashSet<ObjectLabels>>,
}

impl Metrics {
    /// Registers everything in `registry` (the plugin host registers its trap and
    /// denial counters in the same registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("externalsecret_sync_calls", "ExternalSecret reconciles", self.sync_calls.clone());
        registry.register("externalsecret_sync_calls_error", "ExternalSecret reconciles that failed", self.sync_errors.clone());
        registry.register("externalsecret_status_condition", "ExternalSecret status condition (1 = current)", self.es_condition.clone());
        registry.register("secretstore_status_condition", "SecretStore status condition", self.store_condition.clone());
        registry.register("clustersecretstore_status_condition", "ClusterSecretStore status condition", self.cluster_store_condition.clone());
        registry.register("clusterexternalsecret_status_condition", "ClusterExternalSecret status condition", self.ces_condition.clone());
        registry.register("lockstep_provider_calls", "Calls into provider plugins", self.provider_calls.clone());
        registry.register("lockstep_fetch_dedupe_hits", "Fetches answered from a value fetched for the same key in the same refresh window", self.dedupe_hits.clone());
        registry.register("lockstep_fetch_cache_bytes", "Bytes of provider values held for reuse", self.fetch_cache_bytes.clone());
        registry.register("lockstep_leader", "1 while this replica holds a valid lease", self.leader.clone());
    }

    /// Sets a Ready condition gauge pair (ESO sets the current status to 1 and the others to 0).
    pub fn set_condition(family: &Family<ConditionLabels, Gauge>, name: &str, namespace: &str, status: &str) {
        for candidate in ["True", "False", "Unknown"] {
            let labels = ConditionLabels {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                condition: "Ready".to_owned(),
                status: candidate.to_owned(),
            };
            family.get_or_create(&labels).set(i64::from(candidate == status));
        }
    }

    /// Drops the series of a deleted object.
    pub fn forget_condition(family: &Family<ConditionLabels, Gauge>, name: &str, namespace: &str) {
        for candidate in ["True", "False", "Unknown"] {
            family.remove(&ConditionLabels {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                condition: "Ready".to_owned(),
                status: candidate.to_owned(),
            });
        }
    }

    /// Records that an ExternalSecret has series.
    pub fn saw_external_secret(&self, labels: &ObjectLabels) {
        let mut known = self.known_external_secrets.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains(labels) {
            known.insert(labels.clone());
        }
    }

    /// Drops the series of every ExternalSecret for which `exists` says no.
    pub fn retain_external_secrets(&self, exists: impl Fn(&ObjectLabels) -> bool) {
        let gone: Vec<ObjectLabels> = {
            let mut known = self.known_external_secrets.lock().unwrap_or_else(|e| e.into_inner());
            let gone = known.iter().filter(|l| !exists(l)).cloned().collect::<Vec<_>>();
            known.retain(|l| exists(l));
            gone
        };
        for labels in gone {
            self.forget_external_secret(&labels.name, &labels.namespace);
        }
    }

    pub fn forget_external_secret(&self, name: &str, namespace: &str) {
        let labels = ObjectLabels { name: name.to_owned(), namespace: namespace.to_owned() };
        self.sync_calls.remove(&labels);
        self.sync_errors.remove(&labels);
        Self::forget_condition(&self.es_condition, name, namespace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eso_names_are_exposed_exactly() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let labels = ObjectLabels { name: "es".into(), namespace: "ns".into() };
        metrics.sync_calls.get_or_create(&labels).inc();
        metrics.sync_errors.get_or_create(&labels).inc();
        Metrics::set_condition(&metrics.es_condition, "es", "ns", "False");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("externalsecret_sync_calls_total{name=\"es\",namespace=\"ns\"} 1"), "{text}");
        assert!(text.contains("externalsecret_sync_calls_error{name=\"es\",namespace=\"ns\"} 1"), "{text}");
        assert!(text.contains("externalsecret_status_condition{name=\"es\",namespace=\"ns\",condition=\"Ready\",status=\"False\"} 1"), "{text}");
        metrics.forget_external_secret("es", "ns");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("name=\"es\""), "{text}");
    }
}
