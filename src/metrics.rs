//! `GET /metrics`: Prometheus (OpenMetrics) text of what an operator watches.

pub mod histogram;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use self::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub grant_type: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered`, `failed` (to be retried) or `given_up`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// `same` or `other`: whether the retry came from the IP and user agent of the rotation it
    /// repeats.
    pub origin: String,
}

/// Labels of a request: all `'static`, so counting one allocates nothing. `route` is the
/// pattern that matched (`/account/families/{family_id}/revoke`) or `other`, never a path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

/// Latency is kept per status class (`2xx`, `4xx`, …): fewer series than one per status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// Where the request was refused (`token`, `login`, …).
    pub endpoint: &'static str,
    /// Which limit refused it (`per_client`, `per_ip`, …).
    pub limit: &'static str,
}

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::seconds(histogram::REQUEST_SECONDS)
}

pub struct Metrics {
    registry: Registry,
    pub refresh_grace_retries: Family<RetryLabels, Counter>,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub token_errors: Family<ErrorLabels, Counter>,
    pub refresh_reuse_detected: Counter,
    /// DPoP-bound refresh tokens presented without a proof by their key (refused, not revoked).
    pub refresh_wrong_dpop_key: Counter,
    pub sign_ins: Family<ResultLabels, Counter>,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_duration: LatencyFamily,
    /// Refresh tokens exchanged for a successor (not counting retries within the grace).
    pub refresh_rotations: Counter,
    /// Live refresh families, counted in the database at each scrape.
    pub refresh_families_active: Gauge,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    pub rate_limit_keys: Family<LimitLabels, Gauge>,
    pub password_hashing_busy: Counter,
    /// Back-channel logout attempts of this node, by outcome.
    pub backchannel_logout_deliveries: Family<OutcomeLabels, Counter>,
    /// Logout tokens queued and not yet delivered or given up, counted in the database at each
    /// scrape.
    pub backchannel_logout_pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("lineage");
        let http_request_duration =
            LatencyFamily::new_with_constructor(request_histogram as fn() -> Histogram);
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response head, \
             by method, route pattern and status class",
            Unit::Seconds,
            http_request_duration.clone(),
        );
        Self {
            refresh_grace_retries: registered(
                &mut r,
                "refresh_grace_retries",
                "Refresh tokens presented again within the retry grace, \
                 answered with the same successor",
            ),
            tokens_issued: registered(
                &mut r,
                "tokens_issued",
                "Successful token-endpoint responses by grant type",
            ),
            token_errors: registered(
                &mut r,
                "token_errors",
                "Token-endpoint errors by grant type and OAuth error code",
            ),
            refresh_reuse_detected: registered(
                &mut r,
                "refresh_reuse_detected",
                "Refresh tokens presented again after use; each revoked its family",
            ),
            refresh_wrong_dpop_key: registered(
                &mut r,
                "refresh_wrong_dpop_key",
                "DPoP-bound refresh tokens presented without a proof by their key; refused",
            ),
            sign_ins: registered(
                &mut r,
                "sign_ins",
                "Sign-in attempts on the login page by result",
            ),
            http_requests: registered(
                &mut r,
                "http_requests",
                "HTTP requests answered, by method, route pattern (`other`: no route) and status",
            ),
            http_request_duration,
            refresh_rotations: registered(
                &mut r,
                "refresh_rotations",
                "Refresh tokens exchanged for a successor (retries within the grace not included)",
            ),
            refresh_families_active: registered(
                &mut r,
                "refresh_families_active",
                "Refresh families neither revoked nor expired, \
                 counted in the database at each scrape",
            ),
            rate_limited: registered(
                &mut r,
                "rate_limited",
                "Requests refused by an abuse limit, by endpoint and limit",
            ),
            rate_limit_keys: registered(
                &mut r,
                "rate_limit_keys",
                "Keys (addresses, clients) an in-memory rate limiter of this node tracks",
            ),
            password_hashing_busy: registered(
                &mut r,
                "password_hashing_busy",
                "Requests answered 503 because every password-hashing worker and queue place \
                 was taken",
            ),
            backchannel_logout_deliveries: registered(
                &mut r,
                "backchannel_logout_deliveries",
                "Back-channel logout tokens POSTed by this node, by outcome \
                 (delivered, failed and to be retried, given_up)",
            ),
            backchannel_logout_pending: registered(
                &mut r,
                "backchannel_logout_pending",
                "Back-channel logout tokens waiting to be delivered, \
                 counted in the database at each scrape",
            ),
            registry: r,
        }
    }
}

/// A new metric, registered under `name` (the registry keeps a handle to the same values).
fn registered<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: prometheus_client::registry::Metric + Clone + Default,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn issued(&self, grant: &str) {
        self.tokens_issued
            .get_or_create(&GrantLabels {
                grant_type: grant.to_string(),
            })
            .inc();
    }

    pub fn error(&self, grant: &str, error: &str) {
        self.token_errors
            .get_or_create(&ErrorLabels {
                grant_type: grant.to_string(),
                error: error.to_string(),
            })
            .inc();
    }

    pub fn grace_retry(&self, elsewhere: bool) {
        let origin = if elsewhere { "other" } else { "same" };
        self.refresh_grace_retries
            .get_or_create(&RetryLabels {
                origin: origin.into(),
            })
            .inc();
    }

    /// One back-channel logout attempt: `delivered`, `failed` or `given_up`.
    pub fn backchannel_logout(&self, outcome: &'static str) {
        self.backchannel_logout_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn sign_in(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.sign_ins
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    /// The server's metrics together with those of its database.
    pub fn with_storage(db: &crate::db::Database) -> Self {
        let mut metrics = Self::default();
        let storage = db.metrics();
        let registry = &mut metrics.registry;
        registry.register_with_unit(
            "db_pool_wait",
            "Time spent waiting for a pooled database connection",
            Unit::Seconds,
            storage.pool_wait.clone(),
        );
        registry.register(
            "refresh_families_revoked",
            "Refresh families revoked, by reason, counted when the revocation commits",
            storage.family_revocations.clone(),
        );
        if db.url().is_sqlite() {
            registry.register(
                "db_writer_queue_depth",
                "SQLite: write jobs waiting for the writer thread",
                storage.writer_queue_depth.clone(),
            );
            registry.register(
                "db_writer_queue_capacity",
                "SQLite: write jobs that may wait before requests get 503 (--writer-queue)",
                storage.writer_queue_capacity.clone(),
            );
            registry.register(
                "db_writer_group_size",
                "SQLite: write jobs committed together in one transaction",
                storage.writer_group_size.clone(),
            );
        }
        metrics
    }

    /// One answered request. `route` is a registered pattern or `other`.
    pub fn request(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.http_request_duration
            .get_or_create(&LatencyLabels {
                method,
                route,
                status_class: status_class(status),
            })
            .observe_duration(took);
    }

    /// A request refused by an abuse limit.
    pub fn rate_limited(&self, endpoint: &'static str, limit: crate::limits::LimitKind) {
        self.rate_limited
            .get_or_create(&RateLimitLabels {
                endpoint,
                limit: limit.as_str(),
            })
            .inc();
    }

    /// Read the limiters' sizes into their gauge (at every scrape).
    pub fn observe_limits(&self, limits: &crate::limits::Limits) {
        for (kind, keys) in limits.tracked_keys() {
            self.rate_limit_keys
                .get_or_create(&LimitLabels {
                    limit: kind.as_str(),
                })
                .set(keys as i64);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

pub async fn endpoint(
    state: actix_web::web::Data<crate::state::AppState>,
) -> actix_web::HttpResponse {
    // One aggregate per scrape, on a pooled connection (never the SQLite writer). If the database
    // does not answer, the gauge keeps its last value and the rest is still served.
    let (now, max_rotations) = (state.now(), state.refresh_policy.max_rotations);
    match state
        .db
        .read(move |c| {
            let live = crate::db::models::refresh_families::count_live(c, now, max_rotations)?;
            let pending = crate::db::models::logout_deliveries::count_pending(c)?;
            Ok::<_, crate::db::StoreError>((live, pending))
        })
        .await
    {
        Ok((live, pending)) => {
            state.metrics.refresh_families_active.set(live);
            state.metrics.backchannel_logout_pending.set(pending);
        }
        Err(e) => tracing::warn!(
            error = %e,
            "/metrics: could not count the live refresh families and pending logouts"
        ),
    }
    actix_web::HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body({
            state.metrics.observe_limits(&state.limits);
            state.metrics.render()
        })
}
