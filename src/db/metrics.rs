//! What the storage layer measures: waits for a pooled connection, the SQLite writer's queue and
//! group sizes, and refresh families revoked (by reason), counted once their transaction commits.

use std::cell::RefCell;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::histogram::{self, Histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The reason stored with the family (`reuse_detected`, `revoked_by_client`, …).
    pub reason: String,
}

/// Shared by every clone of a `Database`; each field is a handle onto the same atomic values.
#[derive(Debug, Clone)]
pub struct DbMetrics {
    /// Time spent in the pool's `get()` (reads, and PostgreSQL writes).
    pub pool_wait: Histogram,
    /// SQLite: write jobs queued for the writer thread and not yet taken.
    pub writer_queue_depth: Gauge,
    /// SQLite: the bound of that queue (`--writer-queue`).
    pub writer_queue_capacity: Gauge,
    /// SQLite: jobs committed together in one transaction.
    pub writer_group_size: Histogram,
    pub family_revocations: Family<ReasonLabels, Counter>,
    /// Notified after a commit that revoked families: the back-channel logout task
    /// (`backchannel`) then looks for the deliveries those revocations queued.
    pub revocations_committed: Arc<tokio::sync::Notify>,
}

impl DbMetrics {
    pub fn new(writer_queue: usize) -> Self {
        let capacity = Gauge::default();
        capacity.set(i64::try_from(writer_queue).unwrap_or(i64::MAX));
        Self {
            pool_wait: Histogram::seconds(histogram::POOL_WAIT_SECONDS),
            writer_queue_depth: Gauge::default(),
            writer_queue_capacity: capacity,
            writer_group_size: Histogram::counts(histogram::GROUP_SIZES),
            family_revocations: Family::default(),
            revocations_committed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Count what a committed job revoked.
    pub(super) fn count(&self, revoked: Revocations) {
        if !revoked.0.is_empty() {
            self.revocations_committed.notify_one();
        }
        for (reason, families) in revoked.0 {
            self.family_revocations
                .get_or_create(&ReasonLabels { reason })
                .inc_by(families);
        }
    }
}

thread_local! {
    /// The revocations of the database job running on this thread, while one runs.
    static PENDING: RefCell<Option<Vec<(String, u64)>>> = const { RefCell::new(None) };
}

/// Called where families are revoked (`refresh_families::revoke`, `revoke_all_where`), inside a
/// database job; the job's caller counts them once the job's transaction has committed. Outside
/// a job (nothing to report to) it does nothing.
pub fn families_revoked(reason: &str, families: u64) {
    if families == 0 {
        return;
    }
    PENDING.with(|pending| {
        if let Some(list) = pending.borrow_mut().as_mut() {
            match list.iter_mut().find(|(r, _)| r == reason) {
                Some((_, n)) => *n += families,
                None => list.push((reason.to_string(), families)),
            }
        }
    });
}

/// The families one job revoked, by reason.
#[derive(Debug, Default)]
pub struct Revocations(Vec<(String, u64)>);

/// Run `job` and collect the revocations it makes. Nested jobs keep their own.
pub fn collect<T>(job: impl FnOnce() -> T) -> (T, Revocations) {
    /// Restores the outer job's list, also when `job` panics.
    struct Scope(Option<Option<Vec<(String, u64)>>>);
    impl Drop for Scope {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                PENDING.with(|p| *p.borrow_mut() = outer);
            }
        }
    }
    let mut scope = Scope(Some(PENDING.with(|p| p.replace(Some(Vec::new())))));
    let out = job();
    let mine = PENDING.with(|p| p.replace(scope.0.take().flatten()));
    (out, Revocations(mine.unwrap_or_default()))
}
