//! A histogram of atomic buckets: observing is a few relaxed atomic adds and never takes a lock,
//! so request handlers and the SQLite writer can observe on every request or group. (The
//! prometheus-client `Histogram` takes a mutex per observation.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of request latencies, in nanoseconds (0.5 ms … 10 s).
pub const REQUEST_SECONDS: &[u64] = &[
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of waits for a pooled connection, in nanoseconds (50 µs … 5 s; the pool gives
/// up after 3 s).
pub const POOL_WAIT_SECONDS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Upper bounds of the SQLite writer's group sizes (a group is at most 16 jobs).
pub const GROUP_SIZES: &[u64] = &[1, 2, 4, 8, 16];

#[derive(Debug)]
struct Buckets {
    /// One count per bound, plus the `+Inf` bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// Observations are whole numbers (nanoseconds, or a count) encoded as `value / unit`.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [u64],
    unit: f64,
    buckets: Arc<Buckets>,
}

impl Histogram {
    fn new(bounds: &'static [u64], unit: f64) -> Self {
        Self {
            bounds,
            unit,
            buckets: Arc::new(Buckets {
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0),
            }),
        }
    }

    /// Durations, encoded in seconds; `bounds` in nanoseconds.
    pub fn seconds(bounds: &'static [u64]) -> Self {
        Self::new(bounds, 1e9)
    }

    /// Plain counts.
    pub fn counts(bounds: &'static [u64]) -> Self {
        Self::new(bounds, 1.0)
    }

    pub fn observe(&self, value: u64) {
        let slot = self
            .bounds
            .iter()
            .position(|&upper| value <= upper)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.buckets.counts.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.buckets.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far (the `_count` of the encoded histogram).
    pub fn count(&self) -> u64 {
        self.buckets
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .map(|&upper| upper as f64 / self.unit)
            .chain(std::iter::once(f64::INFINITY))
            .zip(
                self.buckets
                    .counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed)),
            )
            .collect();
        // `_count` from the buckets read, so it always equals the `+Inf` bucket.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.buckets.sum.load(Ordering::Relaxed) as f64 / self.unit;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_encoded_cumulatively_in_the_unit() {
        let h = Histogram::seconds(&[1_000_000, 10_000_000]);
        h.observe_duration(Duration::from_micros(500));
        h.observe_duration(Duration::from_millis(5));
        h.observe_duration(Duration::from_secs(1));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("wait_seconds", "test", h.clone());
        let mut text = String::new();
        assert!(prometheus_client::encoding::text::encode(&mut text, &registry).is_ok());
        assert!(
            text.contains("wait_seconds_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_bucket{le=\"0.01\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("wait_seconds_count 3"), "{text}");
        assert!(text.contains("wait_seconds_sum 1.0055"), "{text}");
        assert_eq!(h.count(), 3);
    }
}
