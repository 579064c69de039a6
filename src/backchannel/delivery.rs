//! The delivery task of one node: leases due rows of the outbox, POSTs each logout token
//! (Back-Channel Logout 1.0 §2.5) and records the outcome. A token request never waits for it:
//! the revoking transaction only inserts the row.
//!
//! Several POSTs are in flight at once, bounded by `backchannel_logout_concurrency`, each with a
//! short timeout, so a slow or dead app holds one slot for at most the timeout and never delays
//! another app's logout. A failed POST (not 2xx, timed out, refused) is retried after a back-off
//! of 10 s doubling to at most an hour, until `backchannel_logout_attempts` are used up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web::Data;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use super::token::{LogoutClaims, sign_logout_token};
use crate::db::models::logout_deliveries::{self, Attempt, Claimed};
use crate::state::AppState;
use crate::tokens::keys::KeyAlgorithm;

/// The first retry waits this long; each further one twice as long as the one before …
const FIRST_RETRY: i64 = 10;
/// … but never longer than this.
const LONGEST_RETRY: i64 = 3600;
/// A lease outlives the POST's timeout by this much, so a row is never taken from a node that is
/// still sending it; after a crash the row is free again this long after the timeout.
const LEASE_MARGIN: i64 = 60;

/// Seconds to wait before the next attempt, after `attempts` failed ones (1 → 10 s, 2 → 20 s, …,
/// at most an hour).
pub fn backoff(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    FIRST_RETRY
        .saturating_mul(1_i64 << doublings)
        .min(LONGEST_RETRY)
}

/// The running task. Dropping it stops the task: nothing new is taken, and POSTs in flight
/// finish (each within the timeout) and record their outcome.
pub struct Running {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop and wait until the POSTs in flight have finished and been recorded.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "the back-channel logout task failed");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("backchannel::Running")
    }
}

/// Start this node's delivery task.
pub fn start(state: Data<AppState>) -> anyhow::Result<Running> {
    let settings = state.settings.backchannel;
    let http = reqwest::Client::builder()
        // §2.5: the POST goes to the registered URI only; a redirect is a failed delivery.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout.to_std())
        .connect_timeout(settings.timeout.to_std())
        .user_agent(concat!(
            "lineage/",
            env!("CARGO_PKG_VERSION"),
            " back-channel logout"
        ))
        .build()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(state, http, stopped));
    Ok(Running {
        stop,
        task: Some(task),
    })
}

/// What the task and its deliveries share.
struct Deliverer {
    state: Data<AppState>,
    http: reqwest::Client,
    /// One permit per POST in flight.
    slots: Arc<Semaphore>,
    /// Notified after a commit that revoked families (by the database) and after a delivery
    /// when more rows may be due than there were free slots.
    wake: Arc<Notify>,
    /// The last lease took every free slot: more rows may be waiting.
    backlog: AtomicBool,
}

async fn run(state: Data<AppState>, http: reqwest::Client, mut stop: watch::Receiver<bool>) {
    let settings = state.settings.backchannel;
    let wake = Arc::clone(&state.db.metrics().revocations_committed);
    let d = Arc::new(Deliverer {
        slots: Arc::new(Semaphore::new(settings.concurrency)),
        wake,
        state,
        http,
        backlog: AtomicBool::new(false),
    });
    let mut tick = tokio::time::interval(settings.interval.to_std());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
            () = d.wake.notified() => {}
            _ = tick.tick() => {}
        }
        send_due(&d).await;
    }
    // The POSTs in flight finish within their timeout; wait for them to record their outcome.
    let all = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
    let grace = settings.timeout.to_std() + Duration::from_secs(5);
    let _ = tokio::time::timeout(grace, d.slots.acquire_many(all)).await;
}

/// Lease as many due rows as there are free slots and start a POST for each; again while every
/// slot was filled.
async fn send_due(d: &Arc<Deliverer>) {
    loop {
        let free = d.slots.available_permits();
        if free == 0 {
            // A finishing delivery wakes the task again.
            d.backlog.store(true, Ordering::Release);
            return;
        }
        let state = &d.state;
        let now = state.now();
        let lease_id = uuid::Uuid::new_v4().to_string();
        let leased_until = now + state.settings.backchannel.timeout + LEASE_MARGIN;
        let limit = i64::try_from(free).unwrap_or(i64::MAX);
        let lease = lease_id.clone();
        let claimed = state
            .db
            .write(move |c| logout_deliveries::claim(c, now, &lease, leased_until, limit))
            .await;
        let claimed = match claimed {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "back-channel logout: could not read the outbox");
                return;
            }
        };
        let full = claimed.len() == free;
        d.backlog.store(full, Ordering::Release);
        for row in claimed {
            // Only this loop takes permits, and it saw `free` of them.
            let Ok(permit) = Arc::clone(&d.slots).try_acquire_owned() else {
                break;
            };
            tokio::spawn(deliver(Arc::clone(d), row, lease_id.clone(), permit));
        }
        if !full {
            return;
        }
    }
}

/// One POST and its recorded outcome.
async fn deliver(
    d: Arc<Deliverer>,
    claimed: Claimed,
    lease_id: String,
    permit: OwnedSemaphorePermit,
) {
    let state = &d.state;
    let outcome = post(&d, &claimed).await;
    let now = state.now();
    let attempts = claimed.row.attempts + 1;
    let max_attempts = state.settings.backchannel.max_attempts;
    let (attempt, label) = match outcome {
        Ok(()) => (Attempt::Delivered, "delivered"),
        Err(error) if attempts < max_attempts => {
            let retry_at = Some(now + backoff(attempts));
            (Attempt::Failed { error, retry_at }, "failed")
        }
        Err(error) => {
            let retry_at = None;
            (Attempt::Failed { error, retry_at }, "given_up")
        }
    };
    match &attempt {
        Attempt::Delivered => {}
        Attempt::Failed { error, retry_at } => tracing::info!(
            client_id = %claimed.row.client_id,
            family_id = %claimed.row.family_id,
            attempts,
            error = %error,
            given_up = retry_at.is_none(),
            "back-channel logout not delivered"
        ),
    }
    state.metrics.backchannel_logout(label);
    let family_id = claimed.row.family_id.clone();
    let recorded = state
        .db
        .write(move |c| logout_deliveries::record(c, &family_id, &lease_id, &attempt, now))
        .await;
    if let Err(e) = recorded {
        // The lease runs out and the row is sent again: at least once, never lost.
        tracing::warn!(error = %e, "back-channel logout: could not record a delivery");
    }
    drop(permit);
    if d.backlog.load(Ordering::Acquire) {
        d.wake.notify_one();
    }
}

/// POST `logout_token=…` as `application/x-www-form-urlencoded` (§2.5); a 2xx answer is success
/// (§2.8). The token is signed now, so its `iat`/`exp` are those of this attempt.
async fn post(d: &Deliverer, claimed: &Claimed) -> Result<(), String> {
    let state = &d.state;
    let now = state.now();
    let keys = state.keys.current(&state.db, now).await;
    let alg: KeyAlgorithm = claimed.alg.parse().map_err(|_| {
        format!(
            "the client's signing algorithm `{}` is unknown",
            claimed.alg
        )
    })?;
    let row = &claimed.row;
    let claims = LogoutClaims::new(
        &state.issuer,
        &row.client_id,
        &row.user_id,
        &row.family_id,
        now,
    );
    let token =
        sign_logout_token(&keys, alg, &claims, now).map_err(|e| format!("signing failed: {e}"))?;
    let sent = d
        .http
        .post(&claimed.uri)
        .header(reqwest::header::CACHE_CONTROL, "no-store")
        .form(&[("logout_token", token.as_str())])
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!(
            "the client answered HTTP {}",
            resp.status().as_u16()
        )),
        Err(e) if e.is_timeout() => Err(format!(
            "no answer within {}",
            state.settings.backchannel.timeout
        )),
        Err(e) if e.is_connect() => Err("could not connect".to_string()),
        Err(e) => Err(format!("the request failed: {}", e.without_url())),
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_an_hour() {
        let waits: Vec<i64> = (1..=10).map(backoff).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
        assert_eq!(backoff(0), 10);
        assert_eq!(backoff(100), 3600);
        assert_eq!(backoff(i64::MAX), 3600);
    }
}
