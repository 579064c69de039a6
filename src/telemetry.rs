//! Logging: `tracing` to stderr as JSON lines or text, filtered by `RUST_LOG` (default `info`);
//! `request` adds a span and a log line per HTTP request.

pub mod request;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::configuration::ConfigError;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One object per line: the event's fields at the top level, and the fields of the
        // request span it happened in (request id, client id) under `span`.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        // Colours only for a person at a terminal, never as escape codes in a file.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Lines for a person to read.
    Text,
}

impl LogFormat {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(ConfigError(format!(
                "log-format: `{raw}` is not json or text"
            ))),
        }
    }

    /// Text for a person at a terminal; JSON when something else collects the output.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Text
        } else {
            Self::Json
        }
    }
}
