//! Logging: JSON lines in Lambda (CloudWatch-friendly, one field per value), plain text
//! locally. `RUST_LOG` filters as usual (default `info`).

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_span_events(FmtSpan::NONE);
    let result = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .without_time() // CloudWatch stamps each line
            .try_init()
    } else {
        builder.compact().try_init()
    };
    let _ = result;
}
