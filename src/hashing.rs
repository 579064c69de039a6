//! Password hashing off the async workers, bounded. argon2id holds 19 MiB for each hash, so an
//! unbounded number of concurrent sign-ins is an unbounded amount of memory and CPU: here at most
//! `workers` hashes run at once on threads of their own, at most `queue` more wait for them, and
//! any caller beyond that is turned away at once (`Busy`: a 503 with `Retry-After`) instead of
//! piling up. The hashing threads run at a lower CPU priority (nice 10): a flood of sign-ins then
//! cannot starve token refreshes and health checks of CPU, while an idle machine still hashes at
//! full speed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A caller turned away by a full queue may try again after this many seconds.
pub const BUSY_RETRY_AFTER: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashingError {
    #[error("every password hashing slot and queue place is taken")]
    Busy,
    #[error("password hashing failed")]
    Failed,
}

type Job = Box<dyn FnOnce() + Send>;

/// A place in the pool (running or queued), taken before the caller does any other work for the
/// password check, so that a full pool turns a request away before it costs anything.
#[derive(Debug)]
pub struct Place {
    /// Held for its `Drop`: the place is free again when the job ends.
    _permit: OwnedSemaphorePermit,
}

pub struct HashingPool {
    /// One permit per running or queued job.
    admission: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// Callers turned away (a metric).
    busy: Counter,
}

impl std::fmt::Debug for HashingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingPool")
            .field("free", &self.admission.available_permits())
            .finish()
    }
}

impl HashingPool {
    /// Start `workers` hashing threads (they end when the pool is dropped).
    pub fn start(workers: usize, queue: usize, busy: Counter) -> anyhow::Result<Self> {
        let workers = workers.max(1);
        let jobs =
            crate::job_threads::start("password-hash", workers, lower_priority, |job: Job| job())?;
        Ok(Self {
            admission: Arc::new(Semaphore::new(workers + queue)),
            jobs,
            busy,
        })
    }

    /// Take a place, or `Busy` at once when every worker and queue place is taken.
    pub fn reserve(&self) -> Result<Place, HashingError> {
        match Arc::clone(&self.admission).try_acquire_owned() {
            Ok(permit) => Ok(Place { _permit: permit }),
            Err(_) => {
                self.busy.inc();
                Err(HashingError::Busy)
            }
        }
    }

    /// Run `job` (a hash or a verification) on a hashing thread, or refuse at once when the pool
    /// and its queue are full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, HashingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let place = self.reserve()?;
        self.run_in(place, job).await
    }

    /// Run `job` in a place taken earlier. The place is held until the job ends, even if the
    /// caller gives up waiting.
    pub async fn run_in<T, F>(&self, place: Place, job: F) -> Result<T, HashingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let _entered = span.enter();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(job));
            // Free the place before the caller hears back: its answer may lead straight to the
            // next request, which must not find this place still taken.
            drop(place);
            let _ = tx.send(outcome);
        });
        self.jobs.send(job).map_err(|_| HashingError::Failed)?;
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => {
                tracing::error!("a password hashing job panicked");
                Err(HashingError::Failed)
            }
            Err(_) => Err(HashingError::Failed),
        }
    }
}

/// Lower this thread's CPU priority (Linux: `setpriority` applies to one thread). Best effort.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        /// `nice` value of the hashing threads (0 = normal, 19 = lowest).
        const HASHING_NICENESS: i32 = 10;
        // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HASHING_NICENESS)
        };
        if result != 0 {
            tracing::debug!("could not lower the priority of a password-hashing thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_turns_callers_away_at_once() {
        let Ok(pool) = HashingPool::start(1, 1, Counter::default()) else {
            panic!("pool starts");
        };
        let pool = Arc::new(pool);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let mut held = Vec::new();
        // One job runs, one waits in the queue, both blocked until released.
        for _ in 0..2 {
            let (pool, hold) = (Arc::clone(&pool), Arc::clone(&hold));
            held.push(tokio::spawn(async move {
                pool.run(move || {
                    if let Ok(h) = hold.lock() {
                        let _ = h.recv();
                    }
                })
                .await
            }));
        }
        while pool.admission.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 1).await, Err(HashingError::Busy));
        for _ in 0..2 {
            let _ = release.send(());
        }
        for h in held {
            assert!(matches!(h.await, Ok(Ok(()))));
        }
        assert_eq!(pool.run(|| 2).await, Ok(2), "free again");
    }

    /// The caller hears back only once the place is free again: a request that follows its
    /// answer must never find the pool busy because of it.
    #[tokio::test]
    async fn a_place_is_free_again_when_the_caller_hears_back() {
        let Ok(pool) = HashingPool::start(1, 0, Counter::default()) else {
            panic!("pool starts");
        };
        for round in 0..2000 {
            assert!(pool.run(|| ()).await.is_ok(), "round {round}: ran");
            assert!(pool.reserve().is_ok(), "round {round}: the place is free");
        }
    }
}
