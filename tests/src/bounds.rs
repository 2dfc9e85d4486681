//! The bound a request must answer within while the cache misbehaves (a node killed, frozen,
//! or its slots moving): the Redis timeout, plus a DynamoDB read as slow as the slowest one
//! measured beside it (or the DynamoDB-only baseline), plus room for a loaded machine.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ApiResponse;

/// Room for a loaded, shared 2-core machine on top of what was measured.
pub const SLACK: Duration = Duration::from_millis(250);

/// One request of a run: when it started, how long it took, what it got.
pub struct Sample {
    pub started: Instant,
    pub took: Duration,
    pub response: ApiResponse,
}

/// Asserts every sample answered `200` with `expected` within
/// `timeout + max(baseline, the slowest probe read overlapping it) + SLACK`, where `probes`
/// are DynamoDB reads timed beside the run (start, duration). `what` names the run in the
/// failure. Returns the smallest margin under the bound and the slowest request.
pub fn assert_bounded(
    samples: &[Sample],
    probes: &[(Instant, Duration)],
    timeout: Duration,
    baseline: Duration,
    expected: &Value,
    what: &str,
) -> (Duration, Duration) {
    let (mut worst_margin, mut slowest) = (Duration::MAX, Duration::ZERO);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(
            (s.response.status, &s.response.body),
            (200, expected),
            "request {i} ({what}): {}",
            s.response.raw_body
        );
        let ended = s.started + s.took;
        let overlapping = probes
            .iter()
            .filter(|(p, took)| *p < ended && *p + *took > s.started)
            .map(|(_, t)| *t);
        let bound = timeout + overlapping.max().unwrap_or_default().max(baseline) + SLACK;
        assert!(
            s.took <= bound,
            "request {i} took {:?}, over {bound:?} ({what})",
            s.took
        );
        worst_margin = worst_margin.min(bound - s.took);
        slowest = slowest.max(s.took);
    }
    (worst_margin, slowest)
}
