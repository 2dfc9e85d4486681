//! Every log line of the process, captured while a test runs, as production writes them
//! (JSON, span fields, the production filter that holds wire logs at DEBUG); and the pieces to
//! capture them from every thread of a multi-threaded runtime ([`Captured`], [`Anchor`]).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Captures this thread's log lines (the test must run on a current-thread runtime) that
/// `filter` (`EnvFilter` syntax) lets through, until the returned guard is dropped.
pub fn capture_logs(filter: &str) -> (Captured, CaptureGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(captured.clone())
        .finish()
        .with(shared::telemetry::redact_wire_logs());
    let anchor = tracing::Dispatch::new(Anchor);
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (
        captured,
        CaptureGuard {
            _guard: guard,
            _anchor: anchor,
        },
    )
}

/// Keeps a capture going until dropped.
#[must_use]
pub struct CaptureGuard {
    _guard: tracing::subscriber::DefaultGuard,
    _anchor: tracing::Dispatch,
}

/// Every log line, in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    /// Every line, parsed as JSON (panics on one that is not).
    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    pub fn clear(&self) {
        self.0.lock().expect("lock").clear();
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A dispatcher that sees nothing, kept alive while logs are captured. `tracing` caches each
/// callsite's interest for the whole process, computed by the first thread to reach it; while
/// one dispatcher is registered, against that thread's own default, so a sibling test (no
/// subscriber) would cache "never" and the event would be dropped in this test too. With two
/// registered, the interest is asked of every registered dispatcher, and each event's
/// `enabled` of the emitting thread's own.
pub struct Anchor;

impl tracing::Subscriber for Anchor {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
