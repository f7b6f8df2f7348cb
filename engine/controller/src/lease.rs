//! Lease-based leader election with warm standbys.
//!
//! Every replica watches and keeps its caches warm; only the replica whose lease is
//! still valid *with margin* may call providers or write. The validity is measured on
//! this process's monotonic clock from the moment the last successful renewal was
//! *sent*, so a leader that is paused (SIGSTOP, a long GC-like stall) finds its lease
//! expired when it resumes and stops writing before another replica can take over.
//! Writes are refused in one place: the [`WriteGuardLayer`] on the kube client.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::config::LeaderElection;

/// Whether this replica may write right now.
#[derive(Clone, Debug)]
pub struct LeaderGate {
    state: Arc<watch::Sender<GateState>>,
}

#[derive(Clone, Copy, Debug)]
struct GateState {
    /// `None`: no election, always writable.
    valid_until: Option<Option<Instant>>,
    /// Incremented on every acquisition, so listeners can resync after a handover.
    term: u64,
}

/// Returned when a write is attempted without a valid lease.
#[derive(Debug, thiserror::Error)]
#[error("not the leader (or the lease is about to expire): write refused")]
pub struct NotLeader;

impl LeaderGate {
    /// A gate for a single replica without election: always open.
    pub fn always_open() -> Self {
        let (tx, _) = watch::channel(GateState { valid_until: None, term: 1 });
        Self { state: Arc::new(tx) }
    }

    /// A closed gate, opened by [`run_election`].
    pub fn elected() -> Self {
        let (tx, _) = watch::channel(GateState { valid_until: Some(None), term: 0 });
        Self { state: Arc::new(tx) }
    }

    pub fn is_open(&self) -> bool {
        match self.state.borrow().valid_until {
            None => true,
            Some(until) => until.is_some_and(|u| Instant::now() < u),
        }
    }

    pub fn check(&self) -> Result<(), NotLeader> {
        if self.is_open() { Ok(()) } else { Err(NotLeader) }
    }

    /// How long the gate stays open without a renewal (`None`: forever).
    pub fn remaining(&self) -> Option<Duration> {
        match self.state.borrow().valid_until {
            None => None,
            Some(until) => Some(until.map_or(Duration::ZERO, |u| u.saturating_duration_since(Instant::now()))),
        }
    }

    /// Yields once each time this replica acquires the lease (and once at start when
    /// there is no election), so controllers can reconcile everything after a handover.
    pub fn acquisitions(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let rx = self.state.subscribe();
        futures::stream::unfold((rx, 0u64), |(mut rx, seen)| async move {
            loop {
                let term = rx.borrow_and_update().term;
                if term > seen {
                    return Some(((), (rx, term)));
                }
                rx.changed().await.ok()?;
            }
        })
    }

    fn extend(&self, until: Instant, new_term: bool) {
        self.state.send_modify(|s| {
            s.valid_until = Some(Some(until));
            if new_term {
                s.term += 1;
            }
        });
    }

    fn close(&self) {
        self.state.send_modify(|s| {
            if s.valid_until.is_some() {
                s.valid_until = Some(None);
            }
        });
    }
}

/// Runs the election until `shutdown`, then releases the lease if held.
pub async fn run_election(client: Client, cfg: LeaderElection, gate: LeaderGate, shutdown: CancellationToken) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.lease_namespace);
    let mut observed = Observed::default();
    let mut leading = false;
    loop {
        let sent = Instant::now();
        match try_acquire_or_renew(&api, &cfg, &mut observed).await {
            Ok(true) => {
                if !leading {
                    tracing::info!(identity = %cfg.identity, lease = %cfg.lease_name, "acquired the lease");
                }
                gate.extend(sent + cfg.lease_duration - cfg.margin, !leading);
                leading = true;
            }
            Ok(false) => {
                if leading {
                    tracing::warn!(identity = %cfg.identity, "lost the lease to another replica");
                }
                gate.close();
                leading = false;
            }
            // The gate expires on its own if renewals keep failing.
            Err(error) => tracing::warn!(%error, "lease renewal failed"),
        }
        if !gate.is_open() && leading {
            tracing::warn!(identity = %cfg.identity, "lease expired before it could be renewed");
            leading = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.renew_interval) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if leading {
        gate.close();
        if let Err(error) = release(&api, &cfg).await {
            tracing::warn!(%error, "could not release the lease");
        } else {
            tracing::info!("released the lease");
        }
    }
}

/// When the holder's record last changed, on our clock: a lease counts as expired when
/// it has not changed for its duration, independent of clock skew between replicas.
#[derive(Default)]
struct Observed {
    resource_version: Option<String>,
    since: Option<Instant>,
}

async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaderElection, observed: &mut Observed) -> kube::Result<bool> {
    let now = MicroTime(Timestamp::now());
    let duration_secs = i32::try_from(cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(cfg.lease_name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let rv = lease.metadata.resource_version.clone();
    if observed.resource_version != rv {
        observed.resource_version = rv;
        observed.since = Some(Instant::now());
    }
    let held_by_me = holder.as_deref() == Some(cfg.identity.as_str());
    if !held_by_me {
        let their_duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
        let expired = observed.since.is_some_and(|since| since.elapsed() > their_duration);
        if holder.is_some() && !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(duration_secs);
    // `replace` carries the resourceVersion we read: a concurrent writer makes it fail with 409.
    match api.replace(&cfg.lease_name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, cfg: &LeaderElection) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await? else { return Ok(()) };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(&cfg.lease_name, &PostParams::default(), &lease).await.map(drop)
}

/// A tower layer for the kube client that refuses every mutating request while the
/// gate is closed. Reads always pass, so standbys keep their caches warm.
#[derive(Clone)]
pub struct WriteGuardLayer {
    gate: LeaderGate,
}

impl WriteGuardLayer {
    pub fn new(gate: LeaderGate) -> Self {
        Self { gate }
    }
}

impl<S> tower::Layer<S> for WriteGuardLayer {
    type Service = WriteGuard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WriteGuard { inner, gate: self.gate.clone() }
    }
}

#[derive(Clone)]
pub struct WriteGuard<S> {
    inner: S,
    gate: LeaderGate,
}

impl<S, B> tower::Service<http::Request<B>> for WriteGuard<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mutating = !matches!(*request.method(), http::Method::GET | http::Method::HEAD | http::Method::OPTIONS);
        if mutating && self.gate.check().is_err() {
            return Box::pin(async { Err(Box::new(NotLeader) as tower::BoxError) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gate_closes_on_its_own_when_not_renewed() {
        let gate = LeaderGate::elected();
        assert!(!gate.is_open());
        let mut acquisitions = Box::pin(gate.acquisitions());
        gate.extend(Instant::now() + Duration::from_secs(10), true);
        assert!(gate.is_open());
        futures::StreamExt::next(&mut acquisitions).await.unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!gate.is_open(), "an unrenewed lease must stop writes by itself");
        assert!(LeaderGate::always_open().is_open());
    }
}
