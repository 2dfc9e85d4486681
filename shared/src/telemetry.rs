//! Logging: JSON lines in Lambda (CloudWatch-friendly, one field per value), plain text
//! locally. `RUST_LOG` filters as usual (default `info`), except that the crates which print
//! whole HTTP messages at TRACE are held at DEBUG whatever it says ([`redact_wire_logs`]).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Crates whose TRACE lines hold whole requests and responses: the AWS SDK's print every
/// DynamoDB item (password hashes among them) and the Secrets Manager answers (the JWT key),
/// the Lambda runtime's print the raw event (tokens, login passwords).
const WIRE_LOGGERS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "aws_sdk_secretsmanager",
    "aws_config",
    "lambda_runtime",
    "lambda_http",
    "hyper",
    "hyper_util",
    "h2",
];

/// A filter that lets everything through except the TRACE lines of [`WIRE_LOGGERS`], so
/// `RUST_LOG=trace` while debugging never writes a secret to the logs.
pub fn redact_wire_logs() -> Targets {
    WIRE_LOGGERS.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |targets, target| {
        targets.with_target(*target, LevelFilter::DEBUG)
    })
}

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
            .finish()
            .with(redact_wire_logs())
            .try_init()
    } else {
        builder.compact().finish().with(redact_wire_logs()).try_init()
    };
    let _ = result;
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn wire_loggers_never_trace_and_the_rest_does() {
        let filter = redact_wire_logs();
        for target in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime::client::orchestrator::http",
            "lambda_runtime::layers::api_response",
            "aws_sdk_secretsmanager::operation::get_secret_value",
        ] {
            assert!(!filter.would_enable(target, &Level::TRACE), "{target} at TRACE");
            assert!(filter.would_enable(target, &Level::DEBUG), "{target} at DEBUG");
        }
        assert!(filter.would_enable("shared::cache", &Level::TRACE));
        assert!(filter.would_enable("users_fn", &Level::TRACE));
    }
}
