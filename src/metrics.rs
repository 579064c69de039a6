//! `GET /metrics`: Prometheus (OpenMetrics) text of what an operator watches.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
pub struct RetryLabels {
    /// `same` or `other`: whether the retry came from the IP and user agent of the rotation it
    /// repeats.
    pub origin: String,
}

pub struct Metrics {
    registry: Registry,
    pub refresh_grace_retries: Family<RetryLabels, Counter>,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub token_errors: Family<ErrorLabels, Counter>,
    pub refresh_reuse_detected: Counter,
    pub sign_ins: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lineage");
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        let token_errors = Family::<ErrorLabels, Counter>::default();
        let refresh_reuse_detected = Counter::default();
        let sign_ins = Family::<ResultLabels, Counter>::default();
        let refresh_grace_retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "refresh_grace_retries",
            "Refresh tokens presented again within the retry grace, answered with the same successor",
            refresh_grace_retries.clone(),
        );
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
        Self {
            registry,
            refresh_grace_retries,
            tokens_issued,
            token_errors,
            refresh_reuse_detected,
            sign_ins,
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

    pub fn grace_retry(&self, elsewhere: bool) {
        let origin = if elsewhere { "other" } else { "same" };
        self.refresh_grace_retries
            .get_or_create(&RetryLabels {
                origin: origin.into(),
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
        .body(state.metrics.render())
}
