//! What every reconciler shares.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Client, Resource,
    runtime::{
        events::{Event, EventType, Recorder},
        reflector::Store,
    },
};
use lockstep_api::v1::{ClusterSecretStore, ExternalSecret, SecretStore};
use lockstep_credentials::CredentialBackend;
use lockstep_plugin_host::PluginHost;
use lockstep_sync::FetchResult;
use lockstep_templates::Renderer;

use crate::{
    fetch::{ByteSize, Scheduler},
    lease::LeaderGate,
    metrics::Metrics,
    own_writes::OwnWrites,
};

/// The field manager of status writes (server-side apply).
pub const STATUS_MANAGER: &str = "lockstep";

/// A provider answer as the scheduler holds it.
pub struct Answer(pub FetchResult);

impl ByteSize for Answer {
    fn byte_size(&self) -> usize {
        match &self.0 {
            FetchResult::Value(v) => v.len(),
            FetchResult::Map(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum(),
            FetchResult::NotFound => 0,
        }
    }
}

pub struct Context {
    /// The engine's client; mutating requests pass only while the lease is valid.
    pub client: Client,
    pub controller_class: String,
    pub host: PluginHost,
    pub credentials: Arc<dyn CredentialBackend>,
    pub scheduler: Scheduler<Answer>,
    pub metrics: Arc<Metrics>,
    pub gate: LeaderGate,
    /// Secrets just written by this engine, whose watch echo is ignored.
    pub own_writes: OwnWrites,
    pub recorder: Recorder,
    /// Whether Normal events are published (`--events all`).
    pub normal_events: bool,
    pub renderer: Renderer,
    pub stores: Store<SecretStore>,
    pub cluster_stores: Store<ClusterSecretStore>,
    pub namespaces: Store<Namespace>,
    pub external_secrets: Store<ExternalSecret>,
    pub store_requeue_interval: Duration,
    /// `--namespace`: the only namespace watched (cluster-scoped kinds are not).
    pub namespace: Option<String>,
}

impl Context {
    /// Whether a store's `spec.controller` selects this engine.
    pub fn serves_class(&self, class: Option<&str>) -> bool {
        match class.filter(|c| !c.is_empty()) {
            None => true,
            Some(c) => c == self.controller_class,
        }
    }

    /// Publishes an event; failures (e.g. lost lease) are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, note: String) {
        self.event_as(obj, type_, reason, reason, note).await;
    }

    /// Like [`Self::event`], with `action` naming what happened. kube's recorder folds
    /// events of one (type, reason, action, object) into a series that keeps the first
    /// note, so a different cause under the same reason needs its own action to be seen.
    pub async fn event_as<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String) {
        if type_ == EventType::Normal && !self.normal_events {
            return;
        }
        let event = Event { type_, reason: reason.to_owned(), note: Some(note), action: action.to_owned(), secondary: None };
        if let Err(error) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::debug!(%error, reason, "could not publish event");
        }
    }
}
