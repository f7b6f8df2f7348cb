//! The engine's own writes, recognised when their watch events come back.
//!
//! - A Secret we wrote: its echo must not resync the ExternalSecret that wrote it; that
//!   resync would read a cache without the status write yet and redo the whole sync (a
//!   second GET and status write). A foreign edit or a delete carries another
//!   resourceVersion, or comes after the echo was consumed, and still resyncs at once.
//! - An ExternalSecret status we wrote after a successful sync: its reconcile needs no
//!   Secret GET unless a refresh is due (the Secret was valid at that write).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Resource, ResourceExt};

/// Bound of remembered writes whose echo never came (a watch restart can merge events).
const MAX_PENDING: usize = 100_000;

#[derive(Default)]
struct Pending {
    /// (namespace/name, resourceVersion) of Secrets we created or replaced.
    secrets: HashSet<(String, String)>,
    /// ExternalSecret uid -> resourceVersion of our status write after a successful sync.
    statuses: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct OwnWrites(Arc<Mutex<Pending>>);

impl OwnWrites {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a Secret as the apiserver returned it from our create or replace.
    pub fn record(&self, written: &Secret) {
        if let (Some(ns), Some(rv)) = (written.namespace(), written.resource_version()) {
            let mut pending = self.pending();
            if pending.secrets.len() >= MAX_PENDING {
                pending.secrets.clear();
            }
            pending.secrets.insert((format!("{ns}/{}", written.name_any()), rv));
        }
    }

    /// Whether a watch event of this Secret version is the echo of our own write
    /// (each echo is consumed once).
    pub fn is_echo(&self, namespace: &str, name: &str, resource_version: Option<&str>) -> bool {
        resource_version.is_some_and(|rv| self.pending().secrets.remove(&(format!("{namespace}/{name}"), rv.to_owned())))
    }

    /// Remembers the object our status write after a successful sync produced.
    pub fn record_synced_status<K: Resource>(&self, written: &K) {
        if let (Some(uid), Some(rv)) = (written.meta().uid.clone(), written.meta().resource_version.clone()) {
            let mut pending = self.pending();
            if pending.statuses.len() >= MAX_PENDING {
                pending.statuses.clear();
            }
            pending.statuses.insert(uid, rv);
        }
    }

    /// Whether this object is exactly that version (consumed once).
    pub fn is_synced_status_echo<K: Resource>(&self, obj: &K) -> bool {
        let (Some(uid), Some(rv)) = (obj.meta().uid.as_ref(), obj.meta().resource_version.as_ref()) else { return false };
        let mut pending = self.pending();
        match pending.statuses.get(uid) {
            Some(written) if written == rv => pending.statuses.remove(uid).is_some(),
            _ => false,
        }
    }

    /// Forgets the status echo of an ExternalSecret whose Secret someone else touched:
    /// the reconcile that event queues (possibly merged with the echo) must read the Secret.
    pub fn forget_synced_status(&self, uid: &str) {
        self.pending().statuses.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(rv: &str) -> Secret {
        Secret {
            metadata: ObjectMeta { name: Some("s".into()), namespace: Some("ns".into()), resource_version: Some(rv.into()), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn only_the_written_version_is_an_echo_and_only_once() {
        let own = OwnWrites::default();
        own.record(&secret("7"));
        assert!(!own.is_echo("ns", "s", Some("8")), "a later (foreign) version resyncs");
        assert!(!own.is_echo("other", "s", Some("7")));
        assert!(own.is_echo("ns", "s", Some("7")));
        assert!(!own.is_echo("ns", "s", Some("7")), "a delete carrying the same version after the echo resyncs");
        assert!(!own.is_echo("ns", "s", None));
    }

    #[test]
    fn a_status_echo_is_recognised_once_and_not_confused_with_a_secret() {
        let own = OwnWrites::default();
        let mut written = secret("9");
        written.metadata.uid = Some("u1".into());
        own.record_synced_status(&written);
        assert!(!own.is_echo("ns", "s", Some("9")));
        assert!(own.is_synced_status_echo(&written));
        assert!(!own.is_synced_status_echo(&written));
    }

    #[test]
    fn a_foreign_secret_event_cancels_the_pending_status_echo() {
        let own = OwnWrites::default();
        let mut written = secret("9");
        written.metadata.uid = Some("u1".into());
        own.record_synced_status(&written);
        own.forget_synced_status("u1");
        assert!(!own.is_synced_status_echo(&written), "a Secret deleted before the echo is read again");
    }
}
