//! Logging: JSON lines in Lambda (CloudWatch-friendly, one field per value), plain text
//! locally. `RUST_LOG` filters as usual (default `info`), except that the crates which print
//! whole HTTP messages at TRACE are held at DEBUG whatever it says ([`redact_wire_logs`]).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{FmtSpan, Format, Json, JsonFields};
use tracing_subscriber::fmt::SubscriberBuilder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// A filter that lets everything through except the TRACE lines of `WIRE_LOGGERS`, so
/// `RUST_LOG=trace` while debugging never writes a secret to the logs.
pub fn redact_wire_logs() -> Targets {
    WIRE_LOGGERS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(*target, LevelFilter::DEBUG),
    )
}

/// What `RUST_LOG` asks for: a default level and `target=level` pairs, comma-separated
/// (`warn`, `info,shared=debug`). Unset, empty, or in `EnvFilter`'s span and field syntax
/// (`[span]`, `{field=value}`): `info`. A `Targets` filter rather than tracing-subscriber's
/// `EnvFilter`, which links a regex engine into the binary for field filters the functions
/// never use (what dropping it saved: BENCHMARKS.md, "Release profile").
pub fn level_filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.contains(['[', '{']))
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// The filter the environment asks for: `RUST_LOG` when set (levels by target, for local
/// debugging), else the application log level Lambda passes from the function's logging
/// configuration (`AWS_LAMBDA_LOG_LEVEL`, which an operator changes without a deploy of code),
/// else `info`.
pub fn filter_from_env(lookup: impl Fn(&str) -> Option<String>) -> Targets {
    let rust_log = lookup("RUST_LOG").filter(|v| !v.trim().is_empty());
    let lambda_level =
        || lookup("AWS_LAMBDA_LOG_LEVEL").map(|level| lambda_level(&level).to_owned());
    level_filter(rust_log.or_else(lambda_level).as_deref())
}

/// Lambda's level names (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`) as a filter.
fn lambda_level(level: &str) -> &'static str {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => "info",
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines ([`json_lines`]): what CloudWatch gets in Lambda.
    Json,
    /// Compact plain text, for a terminal.
    Text,
}

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init(format: LogFormat) {
    let filter = filter_from_env(|name| std::env::var(name).ok());
    let result = match format {
        LogFormat::Json => json_lines()
            .finish()
            .with(filter)
            .with(redact_wire_logs())
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_span_events(FmtSpan::NONE)
            .compact()
            .finish()
            .with(filter)
            .with(redact_wire_logs())
            .try_init(),
    };
    let _ = result;
}

/// The JSON lines the functions write in Lambda: one line an event, its fields flattened beside
/// the current span's (no list of the spans above it), no timestamp (CloudWatch stamps each
/// line). [`init`] writes them to stdout through the environment's filter; a test may give
/// them its own writer and filter.
pub fn json_lines() -> SubscriberBuilder<JsonFields, Format<Json, ()>> {
    tracing_subscriber::fmt()
        .with_span_events(FmtSpan::NONE)
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .without_time()
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
            assert!(
                !filter.would_enable(target, &Level::TRACE),
                "{target} at TRACE"
            );
            assert!(
                filter.would_enable(target, &Level::DEBUG),
                "{target} at DEBUG"
            );
        }
        assert!(filter.would_enable("shared::cache", &Level::TRACE));
        assert!(filter.would_enable("users_fn", &Level::TRACE));
    }

    #[test]
    fn lambdas_log_level_applies_unless_rust_log_says_otherwise() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let debug = filter_from_env(env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]));
        assert!(
            debug.would_enable("shared::cache", &Level::DEBUG)
                && !debug.would_enable("shared", &Level::TRACE)
        );
        let error = filter_from_env(env(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]));
        assert!(error.would_enable("x", &Level::ERROR) && !error.would_enable("x", &Level::WARN));
        let both = filter_from_env(env(&[
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
            ("RUST_LOG", "debug"),
        ]));
        assert!(both.would_enable("x", &Level::DEBUG), "RUST_LOG wins");
        let neither = filter_from_env(env(&[]));
        assert!(
            neither.would_enable("x", &Level::INFO) && !neither.would_enable("x", &Level::DEBUG)
        );
    }

    #[test]
    fn rust_log_sets_levels_by_target_and_defaults_to_info() {
        let info = level_filter(None);
        assert!(
            info.would_enable("shared::cache", &Level::INFO)
                && !info.would_enable("shared::cache", &Level::DEBUG)
        );
        let warn = level_filter(Some("warn"));
        assert!(
            warn.would_enable("posts_fn", &Level::WARN)
                && !warn.would_enable("posts_fn", &Level::INFO)
        );
        let mixed = level_filter(Some("info,shared=debug"));
        assert!(mixed.would_enable("shared::cache", &Level::DEBUG));
        assert!(!mixed.would_enable("hyper", &Level::DEBUG));
        for unsupported in ["", "  ", "[request]=debug", "shared[{user_id=1}]=trace"] {
            let f = level_filter(Some(unsupported));
            assert!(
                f.would_enable("x", &Level::INFO) && !f.would_enable("x", &Level::DEBUG),
                "{unsupported:?}"
            );
        }
    }
}
