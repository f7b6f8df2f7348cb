//! Scheduling by fetch key.
//!
//! A fetch key is (store UID + generation, credential scope, request). Every key has a
//! phase inside each refresh interval, derived from a hash of the key, so that all
//! ExternalSecrets depending on a key wake at the same moment (no thundering herd after
//! a restart) and the first one's provider call serves the others: a value is reused
//! only within the refresh window it was fetched in. Errors are remembered per key with
//! exponential backoff (capped at [`MAX_BACKOFF`]) or the provider's Retry-After, so a
//! failing backend sees one call per key, not one per consumer. Provider calls run with
//! bounded concurrency, one slot reserved for new or edited objects, and a token bucket
//! per store. Calls of one isolation unit (store, scope) take turns, as the plugin host
//! runs them on the unit's one instance; they wait for their turn before taking a
//! slot, so a busy unit never holds slots other units could use.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};
use tokio::{sync::Semaphore, time::Instant};

/// Backoff cap per key for auth, config and transient errors.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// What a fetch is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// Store UID and generation: editing a store starts new keys.
    pub store: String,
    /// Credential scope: the consuming namespace, or the store itself.
    pub scope: String,
    /// The provider request, canonical JSON.
    pub request: String,
}

impl FetchKey {
    /// Stable phase of this key inside `interval`: the same on every replica and restart.
    pub fn phase(&self, interval: Duration) -> Duration {
        let mut hash = Sha256::new();
        hash.update(self.store.as_bytes());
        hash.update([0]);
        hash.update(self.scope.as_bytes());
        hash.update([0]);
        hash.update(self.request.as_bytes());
        let digest = hash.finalize();
        let n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        let millis = interval.as_millis().max(1) as u64;
        Duration::from_millis(n % millis)
    }

    /// Start of the refresh window containing `now` (wall clock, so replicas agree).
    pub fn window_start(&self, interval: Duration, now: SystemTime) -> SystemTime {
        if interval.is_zero() {
            return UNIX_EPOCH;
        }
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let period = interval.as_millis().max(1);
        let shifted = since_epoch.as_millis() + period - self.phase(interval).as_millis();
        let into_window = shifted % period;
        now - Duration::from_millis(into_window as u64)
    }

    /// When the next window starts: the moment consumers of this key refresh.
    pub fn next_due(&self, interval: Duration, now: SystemTime) -> SystemTime {
        self.window_start(interval, now) + interval
    }
}

/// The reason of a capability request the host refused (a credential reference
/// outside the store's rules, an undeclared one, a destination not granted).
pub const CAPABILITY_DENIED: &str = "CapabilityDenied";

/// Why a fetch failed, as the engine acts on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message} (retry after {retry_after:?})")]
    Throttled { retry_after: Duration, message: String },
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl FetchError {
    /// A condition reason for this kind of failure.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Unauthorized(_) => "ProviderUnauthorized",
            FetchError::Forbidden(_) => "ProviderForbidden",
            FetchError::Throttled { .. } => "ProviderThrottled",
            FetchError::InvalidConfig(_) => "InvalidProviderConfig",
            FetchError::Denied(_) => CAPABILITY_DENIED,
            FetchError::Unavailable(_) => "ProviderUnavailable",
            FetchError::Internal(_) => "ProviderError",
        }
    }
}

/// What a fetched value costs in memory.
pub trait ByteSize {
    fn byte_size(&self) -> usize;
}

/// How eager a fetch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// Periodic refresh: reuses values and remembered errors of the window.
    Periodic,
    /// New, edited or healing object: reuses values of the window, retries errors at
    /// once (the user may just have fixed them), and uses the reserved slot.
    Interactive,
    /// force-sync: always calls the provider (Retry-After still honoured).
    Fresh,
}

/// What [`Scheduler::fetch`] answered.
#[derive(Debug)]
pub struct Fetched<V> {
    pub result: Result<Arc<V>, FetchError>,
    /// The provider was not called: another consumer's answer was reused.
    pub deduplicated: bool,
    /// For errors: when this key may be tried again.
    pub retry_at: Option<Instant>,
}

struct Entry<V> {
    fetched_wall: SystemTime,
    result: Result<Arc<V>, FetchError>,
    /// Set for errors.
    retry_at: Option<Instant>,
    failures: u32,
    bytes: usize,
    last_used: Instant,
}

type Slot<V> = Arc<tokio::sync::Mutex<Option<Entry<V>>>>;

/// The per-process fetch scheduler; cheap to share.
pub struct Scheduler<V> {
    entries: Mutex<HashMap<FetchKey, Slot<V>>>,
    budget_bytes: usize,
    used_bytes: Mutex<usize>,
    calls: Arc<Semaphore>,
    periodic_calls: Arc<Semaphore>,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    store_rate: f64,
    /// One provider call at a time per isolation unit (store, scope).
    turns: Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>,
}

impl<V: ByteSize> Scheduler<V> {
    pub fn new(concurrency: usize, store_rate: f64, budget_bytes: usize) -> Self {
        let concurrency = concurrency.max(2);
        Self {
            entries: Mutex::default(),
            budget_bytes,
            used_bytes: Mutex::new(0),
            calls: Arc::new(Semaphore::new(concurrency)),
            periodic_calls: Arc::new(Semaphore::new(concurrency - 1)),
            buckets: Mutex::default(),
            store_rate,
            turns: Mutex::default(),
        }
    }

    /// Bytes of values currently held.
    pub fn cached_bytes(&self) -> usize {
        *self.used_bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers `key` from this window's value or remembered error, or calls `call`.
    /// Concurrent callers of one key wait for a single provider call.
    pub async fn fetch<F, Fut>(&self, key: &FetchKey, interval: Duration, urgency: Urgency, call: F) -> Fetched<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, FetchError>>,
    {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.entry(key.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        let now = Instant::now();
        let window = key.window_start(interval, SystemTime::now());
        if let Some(entry) = guard.as_mut() {
            let reusable = match (&entry.result, urgency) {
                (Err(FetchError::Throttled { .. }), _) => entry.retry_at.is_some_and(|at| now < at),
                (_, Urgency::Fresh) => false,
                (Ok(_), _) => !interval.is_zero() && entry.fetched_wall >= window,
                (Err(_), Urgency::Interactive) => false,
                (Err(_), Urgency::Periodic) => entry.retry_at.is_some_and(|at| now < at),
            };
            if reusable {
                entry.last_used = now;
                return Fetched { result: entry.result.clone(), deduplicated: true, retry_at: entry.retry_at };
            }
        }
        let failures = guard.as_ref().map_or(0, |e| e.failures);
        let turn = self.turn(key);
        let _turn = turn.lock().await;
        self.acquire_token(&key.store).await;
        let result = {
            let _permits = self.permits(urgency).await;
            call().await
        };
        let (result, retry_at, failures) = match result {
            Ok(value) => (Ok(Arc::new(value)), None, 0),
            Err(error) => {
                let failures = failures.saturating_add(1);
                let backoff = backoff(failures);
                let wait = match &error {
                    FetchError::Throttled { retry_after, .. } => (*retry_after).max(FIRST_BACKOFF),
                    _ => backoff,
                };
                (Err(error), Some(now + wait), failures)
            }
        };
        let bytes = match &result {
            Ok(value) => value.byte_size() + key.request.len() + key.store.len() + key.scope.len(),
            Err(_) => 0,
        };
        let old_bytes = guard.as_ref().map_or(0, |e| e.bytes);
        let keep = bytes <= self.budget_bytes;
        self.account(old_bytes, if keep { bytes } else { 0 });
        *guard = Some(Entry {
            fetched_wall: SystemTime::now(),
            result: result.clone(),
            retry_at,
            failures,
            bytes: if keep { bytes } else { 0 },
            last_used: now,
        });
        if !keep {
            // Too big to hold: answer this caller, keep only the timing.
            if let Some(entry) = guard.as_mut() {
                entry.fetched_wall = UNIX_EPOCH;
            }
        }
        drop(guard);
        self.evict_over_budget(key);
        Fetched { result, deduplicated: false, retry_at }
    }

    /// Drops every entry not used for `max_age` (called periodically).
    pub fn sweep(&self, max_age: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut freed = 0;
        entries.retain(|_, slot| match slot.try_lock() {
            Ok(guard) => match guard.as_ref() {
                Some(entry) if now.duration_since(entry.last_used) > max_age => {
                    freed += entry.bytes;
                    false
                }
                _ => true,
            },
            Err(_) => true,
        });
        drop(entries);
        self.account(freed, 0);
    }

    fn account(&self, remove: usize, add: usize) {
        let mut used = self.used_bytes.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(remove) + add;
    }

    /// Evicts least recently used values (never the one just written) until within budget.
    fn evict_over_budget(&self, keep: &FetchKey) {
        if self.cached_bytes() <= self.budget_bytes {
            return;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut candidates: Vec<(Instant, Slot<V>)> = entries
            .iter()
            .filter(|(k, _)| *k != keep)
            .filter_map(|(_, slot)| {
                let guard = slot.try_lock().ok()?;
                let entry = guard.as_ref()?;
                (entry.bytes > 0).then(|| (entry.last_used, slot.clone()))
            })
            .collect();
        drop(entries);
        candidates.sort_by_key(|(used, _)| *used);
        for (_, slot) in candidates {
            if self.cached_bytes() <= self.budget_bytes {
                break;
            }
            if let Ok(mut guard) = slot.try_lock() {
                if let Some(entry) = guard.as_mut() {
                    self.account(entry.bytes, 0);
                    entry.bytes = 0;
                    entry.fetched_wall = UNIX_EPOCH;
                    if entry.result.is_ok() {
                        *guard = None;
                    }
                }
            }
        }
    }

    /// The turn lock of `key`'s unit. Locks nobody holds or awaits carry no state
    /// and are dropped when a new one is made, so the map follows the active units.
    fn turn(&self, key: &FetchKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        let unit = (key.store.clone(), key.scope.clone());
        if let Some(t) = turns.get(&unit) {
            return t.clone();
        }
        turns.retain(|_, t| Arc::strong_count(t) > 1);
        turns.entry(unit).or_default().clone()
    }

    async fn permits(&self, urgency: Urgency) -> (Option<tokio::sync::OwnedSemaphorePermit>, tokio::sync::OwnedSemaphorePermit) {
        let periodic = match urgency {
            Urgency::Periodic => Some(self.periodic_calls.clone().acquire_owned().await.expect("never closed")),
            _ => None,
        };
        let call = self.calls.clone().acquire_owned().await.expect("never closed");
        (periodic, call)
    }

    async fn acquire_token(&self, store: &str) {
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
                let bucket = buckets.entry(store.to_owned()).or_insert_with(|| TokenBucket::new(self.store_rate));
                bucket.take()
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Token bucket: `rate` tokens per second, burst of twice that.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let burst = (rate * 2.0).max(1.0);
        Self { rate, burst, tokens: burst, at: Instant::now() }
    }

    /// Takes a token, or says how long to wait for one.
    fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    impl ByteSize for Vec<u8> {
        fn byte_size(&self) -> usize {
            self.len()
        }
    }

    fn key(request: &str) -> FetchKey {
        FetchKey { store: "uid/1".into(), scope: "ns".into(), request: request.into() }
    }

    #[test]
    fn phase_is_stable_and_spreads_keys() {
        let interval = Duration::from_secs(60);
        assert_eq!(key("a").phase(interval), key("a").phase(interval));
        let phases: std::collections::HashSet<_> = (0..50).map(|i| key(&format!("k{i}")).phase(interval).as_secs()).collect();
        assert!(phases.len() > 20, "keys should not share one phase: {phases:?}");
        let now = SystemTime::now();
        let start = key("a").window_start(interval, now);
        assert!(start <= now && now.duration_since(start).unwrap() < interval);
        assert_eq!(key("a").window_start(interval, start), start);
        assert_eq!(key("a").next_due(interval, now), start + interval);
    }

    #[tokio::test]
    async fn one_call_per_key_per_window() {
        let scheduler = Arc::new(Scheduler::<Vec<u8>>::new(4, 100.0, 1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let scheduler = scheduler.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                scheduler
                    .fetch(&key("same"), Duration::from_secs(3600), Urgency::Periodic, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(b"v".to_vec())
                    })
                    .await
                    .deduplicated
            }));
        }
        let mut deduped = 0;
        for task in tasks {
            deduped += usize::from(task.await.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(deduped, 49);
        // force-sync bypasses the window.
        let fresh = scheduler.fetch(&key("same"), Duration::from_secs(3600), Urgency::Fresh, || async { Ok(b"w".to_vec()) }).await;
        assert!(!fresh.deduplicated);
        assert_eq!(fresh.result.unwrap().as_slice(), b"w");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_of_one_unit_take_turns_without_holding_slots() {
        // Two periodic slots (one more is reserved); unit A has three keys due at once, unit B one.
        let scheduler = Arc::new(Scheduler::<Vec<u8>>::new(3, 1000.0, 1 << 20));
        let running_a = Arc::new(AtomicUsize::new(0));
        let max_a = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (scheduler, running_a, max_a) = (scheduler.clone(), running_a.clone(), max_a.clone());
            tasks.push(tokio::spawn(async move {
                let k = FetchKey { store: "a/1".into(), scope: "a".into(), request: format!("k{i}") };
                scheduler
                    .fetch(&k, Duration::from_secs(3600), Urgency::Periodic, || async {
                        let now = running_a.fetch_add(1, Ordering::SeqCst) + 1;
                        max_a.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        running_a.fetch_sub(1, Ordering::SeqCst);
                        Ok(b"a".to_vec())
                    })
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Unit B gets a slot while unit A's other keys wait for their turn.
        let started = Instant::now();
        let b = FetchKey { store: "b/1".into(), scope: "b".into(), request: "k".into() };
        scheduler.fetch(&b, Duration::from_secs(3600), Urgency::Periodic, || async { Ok(b"b".to_vec()) }).await.result.unwrap();
        assert!(started.elapsed() < Duration::from_millis(150), "unit B waited {:?} behind unit A", started.elapsed());
        for t in tasks {
            t.await.unwrap().result.unwrap();
        }
        assert_eq!(max_a.load(Ordering::SeqCst), 1, "calls of one unit must not overlap");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_per_key_and_throttle_waits() {
        let scheduler = Scheduler::<Vec<u8>>::new(2, 100.0, 1 << 20);
        let interval = Duration::from_secs(3600);
        let failing = || async { Err(FetchError::Unauthorized("AADSTS700213".into())) };
        let first = scheduler.fetch(&key("k"), interval, Urgency::Periodic, failing).await;
        assert!(!first.deduplicated);
        let again = scheduler.fetch(&key("k"), interval, Urgency::Periodic, failing).await;
        assert!(again.deduplicated, "periodic work must respect the backoff");
        let healing = scheduler.fetch(&key("k"), interval, Urgency::Interactive, failing).await;
        assert!(!healing.deduplicated, "an edit retries at once");
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), MAX_BACKOFF);

        let throttled = scheduler
            .fetch(&key("t"), interval, Urgency::Periodic, || async {
                Err(FetchError::Throttled { retry_after: Duration::from_secs(7), message: "slow down".into() })
            })
            .await;
        let retry_at = throttled.retry_at.unwrap();
        let during = scheduler.fetch(&key("t"), interval, Urgency::Fresh, || async { Ok(b"x".to_vec()) }).await;
        assert!(during.deduplicated, "Retry-After holds even for force-sync");
        tokio::time::advance(retry_at - Instant::now() + Duration::from_millis(1)).await;
        let after = scheduler.fetch(&key("t"), interval, Urgency::Periodic, || async { Ok(b"x".to_vec()) }).await;
        assert!(!after.deduplicated && after.result.is_ok());
    }

    #[tokio::test]
    async fn memory_stays_within_budget() {
        let scheduler = Scheduler::<Vec<u8>>::new(2, 1000.0, 10_000);
        for i in 0..100 {
            let _ = scheduler.fetch(&key(&format!("k{i}")), Duration::from_secs(3600), Urgency::Periodic, || async { Ok(vec![0u8; 1000]) }).await;
            assert!(scheduler.cached_bytes() <= 10_000, "{} bytes held", scheduler.cached_bytes());
        }
        let huge = scheduler.fetch(&key("huge"), Duration::from_secs(3600), Urgency::Periodic, || async { Ok(vec![0u8; 50_000]) }).await;
        assert_eq!(huge.result.unwrap().len(), 50_000);
        assert!(scheduler.cached_bytes() <= 10_000);
    }
}
