//! Metrics, as CloudWatch Embedded Metric Format (EMF) lines: a JSON log line that CloudWatch
//! Logs turns into metrics, so a function publishes them by writing to stdout, with no API
//! call and no agent. The format is `metrics_cloudwatch_embedded`'s, a backend of the
//! `metrics` facade; the same lines come out of the local stack, where `scripts/stats` reads
//! them.
//!
//! What is measured, and where:
//! - every request ([`request_done`], from the HTTP wrapper): its count, its status class
//!   (every answer is counted in exactly one of `Successes`, `Redirections`, `ClientErrors`,
//!   `ServerErrors`) and latency, by function and route key (a fixed set: `GET /posts/{postId}`, never an id or a
//!   raw path);
//! - inside any invocation, by function: the cache's answers ([`cache_lookup`]: hit, miss,
//!   negative, error, also by [`Kind`] of entry; hits and negatives are DynamoDB reads
//!   avoided), the authentication's time ([`authenticated`]), every Redis command
//!   ([`redis_call`]) and every DynamoDB attempt ([`dynamodb_call`]), each with its latency;
//! - once per instance, on its first invocation: a cold start and the init's duration;
//! - the stream functions, per batch: `cache-sync` ([`sync_batch`]) its records applied,
//!   stale and failed, and the lag between a change and its arrival in the cache; `upkeep`
//!   ([`upkeep_batch`]) the comments it counted, removed and swept, and its lag; each, a batch
//!   that failed as a whole ([`sync_batch_failed`], [`upkeep_batch_failed`]).
//!
//! Which function a measurement belongs to comes from the invocation it happens in
//! ([`scope`], a task-local value): invocations that run at once in one environment keep
//! their measurements apart. A measurement outside any invocation (the init's prewarm) is not
//! recorded. Each invocation ends with a [`flush`]: the metrics since the last flush, one EMF
//! line per set of dimensions.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::Unit;

use crate::config::METRICS_NAMESPACE_VARIABLE;

/// The CloudWatch namespace when [`METRICS_NAMESPACE_VARIABLE`] is unset.
pub const DEFAULT_NAMESPACE: &str = "CachingCode";

/// What the cache said on a lookup, for logs and metrics (the cache-aside decides it,
/// [`cache_lookup`] counts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from Redis.
    Hit,
    /// Redis had nothing usable (or something provably older than the caller's token);
    /// DynamoDB answered.
    Miss,
    /// Redis said "no such item".
    Negative,
    /// Redis failed or was too slow; DynamoDB answered.
    Error,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Negative => "negative",
            CacheOutcome::Error => "error",
        }
    }
}

/// What a cache lookup was of, the `Kind` dimension: the kinds of entry the cache holds, each
/// counted apart (the cache's keys and sizes for each are its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user, by email.
    User,
    /// A post, by id.
    Post,
    /// The feed's first posts (their ids).
    Feed,
    /// A post's first comments.
    Comments,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Post => "post",
            Kind::Feed => "feed",
            Kind::Comments => "comments",
        }
    }
}

/// The metrics the code emits: name, unit, and the sets of dimensions each is emitted with.
/// The dashboard and the alarms in `template.yaml` may name only these (a test checks). The
/// request counts come by route for the dashboard and by function alone for the alarms
/// (an alarm cannot add up a search's results).
pub const METRICS: &[(&str, Unit, &[&[&str]])] = &[
    (REQUESTS, Unit::Count, BY_ROUTE_AND_FUNCTION),
    (SUCCESSES, Unit::Count, BY_ROUTE_AND_FUNCTION),
    (REDIRECTIONS, Unit::Count, BY_ROUTE_AND_FUNCTION),
    (CLIENT_ERRORS, Unit::Count, BY_ROUTE_AND_FUNCTION),
    (SERVER_ERRORS, Unit::Count, BY_ROUTE_AND_FUNCTION),
    (LATENCY, Unit::Milliseconds, BY_ROUTE),
    (CACHE_HITS, Unit::Count, BY_KIND_AND_FUNCTION),
    (CACHE_MISSES, Unit::Count, BY_KIND_AND_FUNCTION),
    (CACHE_NEGATIVES, Unit::Count, BY_KIND_AND_FUNCTION),
    (CACHE_ERRORS, Unit::Count, BY_KIND_AND_FUNCTION),
    (DYNAMODB_READS_AVOIDED, Unit::Count, BY_FUNCTION),
    (AUTH_TIME, Unit::Milliseconds, BY_FUNCTION),
    (REDIS_CALLS, Unit::Count, BY_FUNCTION),
    (REDIS_LATENCY, Unit::Milliseconds, BY_FUNCTION),
    (DYNAMODB_CALLS, Unit::Count, BY_FUNCTION),
    (DYNAMODB_LATENCY, Unit::Milliseconds, BY_FUNCTION),
    (COLD_STARTS, Unit::Count, BY_FUNCTION),
    (INIT_DURATION, Unit::Milliseconds, BY_FUNCTION),
    (SYNC_RECORDS_APPLIED, Unit::Count, BY_FUNCTION),
    (SYNC_RECORDS_STALE, Unit::Count, BY_FUNCTION),
    (SYNC_RECORDS_FAILED, Unit::Count, BY_FUNCTION),
    (SYNC_BATCHES_FAILED, Unit::Count, BY_FUNCTION),
    (SYNC_LAG, Unit::Milliseconds, BY_FUNCTION),
    (COMMENTS_COUNTED, Unit::Count, BY_FUNCTION),
    (COMMENTS_REMOVED, Unit::Count, BY_FUNCTION),
    (COMMENTS_SWEPT, Unit::Count, BY_FUNCTION),
    (UPKEEP_BATCHES_FAILED, Unit::Count, BY_FUNCTION),
    (UPKEEP_LAG, Unit::Milliseconds, BY_FUNCTION),
];

const BY_FUNCTION: &[&[&str]] = &[&[FUNCTION]];
const BY_ROUTE: &[&[&str]] = &[&[FUNCTION, ROUTE]];
const BY_ROUTE_AND_FUNCTION: &[&[&str]] = &[&[FUNCTION, ROUTE], &[FUNCTION]];
const BY_KIND_AND_FUNCTION: &[&[&str]] = &[&[FUNCTION, KIND], &[FUNCTION]];

pub const FUNCTION: &str = "Function";
pub const ROUTE: &str = "Route";
/// What a cache lookup was of: `user`, `post`, `feed`, `comments` ([`Kind`]).
pub const KIND: &str = "Kind";

pub const REQUESTS: &str = "Requests";
/// Answers with a 2xx status.
pub const SUCCESSES: &str = "Successes";
/// Answers with a 3xx status (here, `304 Not Modified`).
pub const REDIRECTIONS: &str = "Redirections";
/// Answers with a 4xx status.
pub const CLIENT_ERRORS: &str = "ClientErrors";
/// Answers with a 5xx status.
pub const SERVER_ERRORS: &str = "ServerErrors";
pub const LATENCY: &str = "Latency";
pub const CACHE_HITS: &str = "CacheHits";
pub const CACHE_MISSES: &str = "CacheMisses";
pub const CACHE_NEGATIVES: &str = "CacheNegatives";
pub const CACHE_ERRORS: &str = "CacheErrors";
pub const DYNAMODB_READS_AVOIDED: &str = "DynamoDbReadsAvoided";
pub const AUTH_TIME: &str = "AuthTime";
pub const REDIS_CALLS: &str = "RedisCalls";
pub const REDIS_LATENCY: &str = "RedisLatency";
pub const DYNAMODB_CALLS: &str = "DynamoDbCalls";
pub const DYNAMODB_LATENCY: &str = "DynamoDbLatency";
pub const COLD_STARTS: &str = "ColdStarts";
pub const INIT_DURATION: &str = "InitDuration";
pub const SYNC_RECORDS_APPLIED: &str = "SyncRecordsApplied";
pub const SYNC_RECORDS_STALE: &str = "SyncRecordsStale";
pub const SYNC_RECORDS_FAILED: &str = "SyncRecordsFailed";
pub const SYNC_BATCHES_FAILED: &str = "SyncBatchesFailed";
pub const SYNC_LAG: &str = "SyncLag";
/// upkeep: comments counted into their post's `commentCount`.
pub const COMMENTS_COUNTED: &str = "CommentsCounted";
/// upkeep: deleted comments taken out of their count and the table.
pub const COMMENTS_REMOVED: &str = "CommentsRemoved";
/// upkeep: comments of deleted posts removed.
pub const COMMENTS_SWEPT: &str = "CommentsSwept";
pub const UPKEEP_BATCHES_FAILED: &str = "UpkeepBatchesFailed";
/// upkeep: how long a change took to be applied (the count's lag behind a comment).
pub const UPKEEP_LAG: &str = "UpkeepLag";

type Collector = metrics_cloudwatch_embedded::Collector;

/// Where flushed lines go: stdout, unless [`redirect`]ed.
type Sink = Box<dyn Fn() -> Box<dyn Write> + Send + Sync>;

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();
static SINK: OnceLock<Sink> = OnceLock::new();
static INIT: Mutex<Option<(Instant, Option<Duration>)>> = Mutex::new(None);
static COLD: AtomicBool = AtomicBool::new(true);

/// Installs the process's recorder (the first call wins; later ones change nothing), with the
/// namespace from [`METRICS_NAMESPACE_VARIABLE`]. Called first thing at init, so the init's duration
/// is measured from here.
pub fn init() {
    COLLECTOR.get_or_init(|| {
        let namespace = std::env::var(METRICS_NAMESPACE_VARIABLE)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        if let Ok(mut init) = INIT.lock() {
            *init = Some((Instant::now(), None));
        }
        let installed = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace)
            .init();
        match installed {
            Ok(collector) => {
                for (name, unit, _) in METRICS {
                    metrics::describe_counter!(*name, *unit, "");
                }
                Some(collector)
            }
            // Another recorder is installed: measurements go there, and nothing is flushed.
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        }
    });
}

/// Marks the end of the init (services built, connections opened): the first invocation
/// reports the time since [`init`] as `InitDuration`.
pub fn init_done() {
    if let Ok(mut init) = INIT.lock() {
        if let Some((started, done @ None)) = init.as_mut() {
            *done = Some(started.elapsed());
        }
    }
}

/// Sends flushed lines to `writer` (made anew for each flush) instead of stdout: for tests and
/// the benchmark, which read them. The first call wins.
pub fn redirect(writer: impl Fn() -> Box<dyn Write> + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(writer));
}

/// Writes the metrics recorded since the last flush, one EMF line per set of dimensions.
///
/// The lines are gathered first and written in one `write_all`, to stdout (under its lock) or
/// to the redirected sink. So a reader of the output never meets half a line, whatever else
/// writes there at the same time: the log lines of invocations running at once on Managed
/// Instances, which CloudWatch Logs would otherwise read as one broken line and drop. (The
/// collector itself writes a line in several pieces.) It also costs one system call instead of
/// one per line (BENCHMARKS.md, "Cutting the CPU").
pub fn flush() {
    let Some(Some(collector)) = COLLECTOR.get() else {
        return;
    };
    let mut lines = Vec::with_capacity(2048);
    let result = collector.flush(&mut lines).and_then(|()| match SINK.get() {
        Some(sink) => sink().write_all(&lines),
        None => std::io::stdout().lock().write_all(&lines),
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "metrics not written");
    }
}

/// The invocation a measurement is made in.
struct Invocation {
    function: &'static str,
}

tokio::task_local! {
    static INVOCATION: Invocation;
}

/// Runs `invocation` as one invocation of `function`: measurements made while it runs are
/// that function's.
pub async fn scope<F: Future>(function: &'static str, invocation: F) -> F::Output {
    INVOCATION.scope(Invocation { function }, invocation).await
}

/// The function of the current invocation, if any.
fn current_function() -> Option<&'static str> {
    INVOCATION.try_with(|i| i.function).ok()
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1_000.0
}

/// A Redis command, however it ended.
pub fn redis_call(elapsed: Duration) {
    if let Some(function) = current_function() {
        metrics::counter!(REDIS_CALLS, FUNCTION => function).increment(1);
        metrics::histogram!(REDIS_LATENCY, FUNCTION => function).record(millis(elapsed));
    }
}

/// One attempt of a DynamoDB call.
pub fn dynamodb_call(elapsed: Duration) {
    if let Some(function) = current_function() {
        metrics::counter!(DYNAMODB_CALLS, FUNCTION => function).increment(1);
        metrics::histogram!(DYNAMODB_LATENCY, FUNCTION => function).record(millis(elapsed));
    }
}

/// What the cache answered for one lookup of `kind` (the request's user, a post, a page): by
/// kind, and by function alone for the alarms. Hits and negatives are DynamoDB reads avoided.
pub fn cache_lookup(kind: Kind, outcome: CacheOutcome) {
    let Some(function) = current_function() else {
        return;
    };
    let name = match outcome {
        CacheOutcome::Hit => CACHE_HITS,
        CacheOutcome::Miss => CACHE_MISSES,
        CacheOutcome::Negative => CACHE_NEGATIVES,
        CacheOutcome::Error => CACHE_ERRORS,
    };
    metrics::counter!(name, FUNCTION => function, KIND => kind.as_str()).increment(1);
    metrics::counter!(name, FUNCTION => function).increment(1);
    if matches!(outcome, CacheOutcome::Hit | CacheOutcome::Negative) {
        metrics::counter!(DYNAMODB_READS_AVOIDED, FUNCTION => function).increment(1);
    }
}

/// How long authenticating the request took (token, user, checks).
pub fn authenticated(elapsed: Duration) {
    if let Some(function) = current_function() {
        metrics::histogram!(AUTH_TIME, FUNCTION => function).record(millis(elapsed));
    }
}

/// The metric counting answers of `status`'s class (RFC 9110's: successful, redirection,
/// client error, server error). A Lambda function cannot answer 1xx.
fn status_class(status: u16) -> Option<&'static str> {
    match status {
        200..=299 => Some(SUCCESSES),
        300..=399 => Some(REDIRECTIONS),
        400..=499 => Some(CLIENT_ERRORS),
        500..=599 => Some(SERVER_ERRORS),
        _ => None,
    }
}

/// The end of a request: its count, status class and latency by route, and on an instance's
/// first invocation its cold start. Then everything is flushed.
pub fn request_done(
    function: &'static str,
    route_key: &'static str,
    status: u16,
    elapsed: Duration,
) {
    metrics::counter!(REQUESTS, FUNCTION => function, ROUTE => route_key).increment(1);
    metrics::counter!(REQUESTS, FUNCTION => function).increment(1);
    if let Some(class) = status_class(status) {
        metrics::counter!(class, FUNCTION => function, ROUTE => route_key).increment(1);
        metrics::counter!(class, FUNCTION => function).increment(1);
    }
    metrics::histogram!(LATENCY, FUNCTION => function, ROUTE => route_key).record(millis(elapsed));
    invocation_done(function);
}

/// What a batch of `cache-sync` did.
pub fn sync_batch(applied: usize, stale: usize, failed: usize, lag: Option<Duration>) {
    let Some(function) = current_function() else {
        return;
    };
    metrics::counter!(SYNC_RECORDS_APPLIED, FUNCTION => function).increment(applied as u64);
    metrics::counter!(SYNC_RECORDS_STALE, FUNCTION => function).increment(stale as u64);
    metrics::counter!(SYNC_RECORDS_FAILED, FUNCTION => function).increment(failed as u64);
    if let Some(lag) = lag {
        metrics::histogram!(SYNC_LAG, FUNCTION => function).record(millis(lag));
    }
}

/// A `cache-sync` batch that failed as a whole (Lambda retries it).
pub fn sync_batch_failed() {
    if let Some(function) = current_function() {
        metrics::counter!(SYNC_BATCHES_FAILED, FUNCTION => function).increment(1);
    }
}

/// What a batch of the upkeep did.
pub fn upkeep_batch(counted: usize, removed: usize, swept: usize, lag: Option<Duration>) {
    let Some(function) = current_function() else {
        return;
    };
    metrics::counter!(COMMENTS_COUNTED, FUNCTION => function).increment(counted as u64);
    metrics::counter!(COMMENTS_REMOVED, FUNCTION => function).increment(removed as u64);
    metrics::counter!(COMMENTS_SWEPT, FUNCTION => function).increment(swept as u64);
    if let Some(lag) = lag {
        metrics::histogram!(UPKEEP_LAG, FUNCTION => function).record(millis(lag));
    }
}

/// An upkeep batch that failed as a whole (Lambda retries it).
pub fn upkeep_batch_failed() {
    if let Some(function) = current_function() {
        metrics::counter!(UPKEEP_BATCHES_FAILED, FUNCTION => function).increment(1);
    }
}

/// The end of any invocation: its cold start, if it is the instance's first, then a flush.
pub fn invocation_done(function: &'static str) {
    if COLD.swap(false, Ordering::Relaxed) {
        metrics::counter!(COLD_STARTS, FUNCTION => function).increment(1);
        let init = INIT
            .lock()
            .ok()
            .and_then(|init| init.and_then(|(_, done)| done));
        if let Some(init) = init {
            metrics::histogram!(INIT_DURATION, FUNCTION => function).record(millis(init));
        }
    }
    flush();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    };

    use super::*;

    /// A counter's labels, in order: `(key, value)`.
    type Labels = Vec<(String, String)>;

    /// Every counter increment made while it is the recorder: name, labels, amount.
    #[derive(Default, Clone)]
    struct Increments(Arc<Mutex<Vec<(String, Labels, u64)>>>);

    struct Increment(Increments, String, Labels);

    impl CounterFn for Increment {
        fn increment(&self, value: u64) {
            self.0
                 .0
                .lock()
                .expect("lock")
                .push((self.1.clone(), self.2.clone(), value));
        }
        fn absolute(&self, _: u64) {
            panic!("counters are only incremented");
        }
    }

    impl Recorder for Increments {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            Counter::from_arc(Arc::new(Increment(
                self.clone(),
                key.name().to_owned(),
                labels,
            )))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// Every write a flush makes, as the sink received them.
    static WRITES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    struct RecordWrites;

    impl Write for RecordWrites {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            WRITES.lock().expect("lock").push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Flushes from many threads at once, as invocations on Managed Instances make them: each
    /// flush reaches the output in one write of whole lines, so nothing reading the output
    /// (CloudWatch Logs, a test) ever meets a line cut by another writer.
    #[test]
    fn a_flush_is_one_write_of_whole_lines() {
        redirect(|| Box::new(RecordWrites));
        init();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..50 {
                        request_done(
                            "posts",
                            "GET /posts/{postId}",
                            200,
                            Duration::from_millis(1),
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a thread");
        }
        let writes = WRITES.lock().expect("lock");
        assert!(writes.len() >= 50, "{} writes", writes.len());
        for write in writes.iter().filter(|w| !w.is_empty()) {
            let text = std::str::from_utf8(write).expect("utf-8");
            assert!(text.ends_with('\n'), "a write ends mid-line: {text:?}");
            for line in text.lines() {
                let doc: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
                assert!(doc.get("_aws").is_some(), "{line}");
            }
        }
    }

    #[test]
    fn every_answer_is_counted_once_in_its_status_class_by_route_and_by_function() {
        let by_route = vec![
            (FUNCTION.to_owned(), "posts".to_owned()),
            (ROUTE.to_owned(), "GET /posts/{postId}".to_owned()),
        ];
        let by_function = vec![(FUNCTION.to_owned(), "posts".to_owned())];
        for (status, class) in [
            (200, SUCCESSES),
            (201, SUCCESSES),
            (204, SUCCESSES),
            (304, REDIRECTIONS),
            (400, CLIENT_ERRORS),
            (401, CLIENT_ERRORS),
            (404, CLIENT_ERRORS),
            (412, CLIENT_ERRORS),
            (429, CLIENT_ERRORS),
            (500, SERVER_ERRORS),
            (503, SERVER_ERRORS),
        ] {
            let increments = Increments::default();
            metrics::with_local_recorder(&increments, || {
                request_done(
                    "posts",
                    "GET /posts/{postId}",
                    status,
                    Duration::from_millis(3),
                );
            });
            let mut counted: Vec<_> = increments.0.lock().expect("lock").clone();
            counted.retain(|(name, _, _)| name != COLD_STARTS);
            let expected = vec![
                (REQUESTS.to_owned(), by_route.clone(), 1),
                (REQUESTS.to_owned(), by_function.clone(), 1),
                (class.to_owned(), by_route.clone(), 1),
                (class.to_owned(), by_function.clone(), 1),
            ];
            assert_eq!(counted, expected, "{status}");
        }
    }
}
