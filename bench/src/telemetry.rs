//! `telemetry.*`: what the per-request log line and the metrics cost a warm invocation, in
//! this process: the "request done" line as the functions write it in Lambda (JSON, inside the
//! request span), and an invocation's metrics (a cache hit, its Redis call, the
//! authentication, the request) recorded and flushed as EMF lines. Written to memory, not to a
//! pipe: the write system call is the same for every line and not what is measured.

use std::time::{Duration, Instant};

use crate::report::{median, Report};

/// Runs `iterations` of each, in rounds, and reports the medians of the rounds.
pub async fn run(report: &mut Report, iterations: usize) {
    shared::metrics::redirect(|| Box::new(std::io::sink()));
    shared::metrics::init();
    let rounds = 7;
    let per_round = (iterations / rounds).max(1);
    let (mut logs, mut metrics) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        logs.push(per_iteration(per_round, log_line));
        let started = Instant::now();
        for _ in 0..per_round {
            shared::metrics::scope("posts", async { invocation_metrics() }).await;
        }
        metrics.push(started.elapsed().as_secs_f64() * 1e6 / per_round as f64);
    }
    let (log_us, metrics_us) = (median(&mut logs), median(&mut metrics));
    report.add("telemetry.log_line_us", log_us, "us", None);
    report.add("telemetry.metrics_us", metrics_us, "us", None);
    report.add(
        "telemetry.per_invocation_us",
        log_us + metrics_us,
        "us",
        None,
    );
}

fn per_iteration(iterations: usize, work: fn()) -> f64 {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .without_time()
        .with_writer(std::io::sink)
        .finish()
        .with(shared::telemetry::redact_wire_logs());
    tracing::subscriber::with_default(subscriber, || {
        let started = Instant::now();
        for _ in 0..iterations {
            work();
        }
        started.elapsed().as_secs_f64() * 1e6 / iterations as f64
    })
}

/// The request span and its one log line, as `shared::http::serve` writes them.
fn log_line() {
    let span = tracing::info_span!(
        "request",
        function = "posts",
        request_id = %"8f5a1d2c-6a43-4e0b-9d7e-2f1c3b4a5d6e",
        trace_id = "Root=1-6756a1b2-3c4d5e6f7a8b9c0d1e2f3a4b",
        method = %"GET",
        route = "/posts/{postId}",
        user_id = tracing::field::Empty,
        cache = tracing::field::Empty,
    );
    let _entered = span.enter();
    span.record("cache", "hit");
    span.record("user_id", "01JDQ8Z7K3M4N5P6Q7R8S9T0VW");
    tracing::info!(status = 200u16, latency_us = 812u64, "request done");
}

/// What a warm `GET /posts/{postId}` records, then its flush.
fn invocation_metrics() {
    let call = Duration::from_micros(250);
    shared::metrics::redis_call(call);
    shared::metrics::cache_lookup(shared::cache::Kind::User, shared::cache::CacheOutcome::Hit);
    shared::metrics::authenticated(call);
    shared::metrics::dynamodb_call(call);
    shared::metrics::request_done("posts", "GET /posts/{postId}", 200, call * 4);
}
