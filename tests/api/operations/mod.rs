mod database_unavailable;
mod health;
mod lifecycle;
mod metrics;
mod request_id;
mod request_log;
mod request_metrics;
mod writer;
