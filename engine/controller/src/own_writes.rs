//! The engine's own writes, recognised when their watch events come back.
//!
//! - A Secret we wrote: its echo must not resync the ExternalSecret that wrote it; that
//!   resync would read a cache without the status write yet and redo the whole sync (a
//!   second GET and status write). A foreign edit or a delete carries another
//!   resourceVersion, or comes after the echo was consumed, and still resyncs at once.
//! - An ExternalSecret status we wrote after a successful sync: its reconcile needs no
//!   Secret GET unless a refresh is due (the Secret was valid at that write).
//! - Writes we skipped: a new ExternalSecret whose create met an existing Secret (its
//!   next sync reads first), and a refresh that changed nothing (no status write; its
//!   time schedules the next refresh instead of `status.refreshTime`).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::SystemTime,
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
    /// ExternalSecrets whose optimistic create found the Secret already there.
    create_conflicts: HashSet<String>,
    /// ExternalSecret uid -> last refresh that changed nothing (and so wrote no status).
    quiet_refreshes: HashMap<String, SystemTime>,
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

    /// Remembers that this ExternalSecret's create met an existing Secret: its next
    /// sync reads the Secret first.
    pub fn record_create_conflict(&self, uid: String) {
        let mut pending = self.pending();
        if pending.create_conflicts.len() >= MAX_PENDING {
            pending.create_conflicts.clear();
        }
        pending.create_conflicts.insert(uid);
    }

    /// Whether the last create of this ExternalSecret met an existing Secret (consumed once).
    pub fn take_create_conflict(&self, uid: &str) -> bool {
        self.pending().create_conflicts.remove(uid)
    }

    /// Remembers a refresh that found everything as it was: its time stands in for
    /// `status.refreshTime` (not written) when the next refresh is scheduled.
    pub fn record_quiet_refresh(&self, uid: String, at: SystemTime) {
        let mut pending = self.pending();
        if pending.quiet_refreshes.len() >= MAX_PENDING && !pending.quiet_refreshes.contains_key(&uid) {
            // Forgetting costs one early refresh each, never a missed one.
            pending.quiet_refreshes.clear();
        }
        pending.quiet_refreshes.insert(uid, at);
    }

    /// The last quiet refresh of this ExternalSecret, if one happened since the engine started.
    pub fn quiet_refresh(&self, uid: &str) -> Option<SystemTime> {
        self.pending().quiet_refreshes.get(uid).copied()
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
    fn quiet_refreshes_are_remembered_per_object() {
        let own = OwnWrites::default();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        assert_eq!(own.quiet_refresh("u1"), None);
        own.record_quiet_refresh("u1".into(), t);
        assert_eq!(own.quiet_refresh("u1"), Some(t));
        assert_eq!(own.quiet_refresh("u2"), None);
    }

    #[test]
    fn a_create_conflict_is_remembered_for_one_sync() {
        let own = OwnWrites::default();
        assert!(!own.take_create_conflict("u1"));
        own.record_create_conflict("u1".into());
        assert!(own.take_create_conflict("u1"), "the next sync reads the Secret first");
        assert!(!own.take_create_conflict("u1"), "and the one after may create optimistically again");
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
