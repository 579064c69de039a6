//! `GET /metrics`: Prometheus (OpenMetrics) text of what an operator watches.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
pub struct RateLimitLabels {
    pub endpoint: String,
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: String,
}

pub struct Metrics {
    registry: Registry,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub token_errors: Family<ErrorLabels, Counter>,
    pub refresh_reuse_detected: Counter,
    pub sign_ins: Family<ResultLabels, Counter>,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    pub rate_limit_keys: Family<LimitLabels, Gauge>,
    pub password_hashing_busy: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lineage");
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        let token_errors = Family::<ErrorLabels, Counter>::default();
        let refresh_reuse_detected = Counter::default();
        let sign_ins = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Successful token-endpoint responses by grant type",
            tokens_issued.clone(),
        );
        registry.register(
            "token_errors",
            "Token-endpoint errors by grant type and OAuth error code",
            token_errors.clone(),
        );
        registry.register(
            "refresh_reuse_detected",
            "Refresh tokens presented again after use; each revoked its family",
            refresh_reuse_detected.clone(),
        );
        registry.register(
            "sign_ins",
            "Sign-in attempts on the login page by result",
            sign_ins.clone(),
        );
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        let rate_limit_keys = Family::<LimitLabels, Gauge>::default();
        let password_hashing_busy = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused by an abuse limit, by endpoint and limit",
            rate_limited.clone(),
        );
        registry.register(
            "rate_limit_keys",
            "Keys (addresses, clients) an in-memory rate limiter of this node tracks",
            rate_limit_keys.clone(),
        );
        registry.register(
            "password_hashing_busy",
            "Requests answered 503 because every password-hashing worker and queue place was taken",
            password_hashing_busy.clone(),
        );
        Self {
            registry,
            tokens_issued,
            token_errors,
            refresh_reuse_detected,
            sign_ins,
            rate_limited,
            rate_limit_keys,
            password_hashing_busy,
        }
    }
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

    pub fn sign_in(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.sign_ins
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    pub fn rate_limited(&self, endpoint: &str, limit: crate::limits::LimitKind) {
        self.rate_limited
            .get_or_create(&RateLimitLabels {
                endpoint: endpoint.to_string(),
                limit: limit.as_str().to_string(),
            })
            .inc();
    }

    /// Read the limiters' sizes into their gauge (at every scrape).
    pub fn observe_limits(&self, limits: &crate::limits::Limits) {
        for (kind, keys) in limits.tracked_keys() {
            self.rate_limit_keys
                .get_or_create(&LimitLabels {
                    limit: kind.as_str().to_string(),
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

pub async fn endpoint(
    state: actix_web::web::Data<crate::state::AppState>,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body({
            state.metrics.observe_limits(&state.limits);
            state.metrics.render()
        })
}
