//! What the local stack's metric lines add up to: the same Embedded Metric Format lines the
//! functions write in Lambda (`shared::metrics`), read back from a log and summed per function,
//! per route and per kind of cache entry, so a developer sees the numbers the dashboard would
//! show while using the API.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// What the cache answered: of every lookup, or of one kind's (`user`, `post`, `feed`,
/// `comments`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CacheStats {
    pub hits: f64,
    pub negatives: f64,
    pub misses: f64,
    pub errors: f64,
}

impl CacheStats {
    /// Lookups answered by the cache (items found, and "no such item"), out of all.
    pub fn hit_ratio(&self) -> Option<f64> {
        let served = self.hits + self.negatives;
        let lookups = served + self.misses + self.errors;
        (lookups > 0.0).then(|| served / lookups)
    }

    fn add(&mut self, doc: &Value) {
        let sum = |name: &str| values(&doc[name]).iter().sum::<f64>();
        self.hits += sum("CacheHits");
        self.negatives += sum("CacheNegatives");
        self.misses += sum("CacheMisses");
        self.errors += sum("CacheErrors");
    }
}

/// The numbers of one function.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FunctionStats {
    pub requests: f64,
    pub client_errors: f64,
    pub server_errors: f64,
    /// Every lookup of the function.
    pub cache: CacheStats,
    /// The lookups by kind of entry.
    pub by_kind: BTreeMap<String, CacheStats>,
    /// Latencies (ms) by route key.
    pub latency: BTreeMap<String, Vec<f64>>,
}

impl FunctionStats {
    /// Lookups answered by the cache, out of all.
    pub fn hit_ratio(&self) -> Option<f64> {
        self.cache.hit_ratio()
    }
}

/// Everything read so far, by function.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    pub functions: BTreeMap<String, FunctionStats>,
}

impl Stats {
    /// Adds every metric line in `text` (other lines, and the text around a line's JSON, are
    /// ignored: the log also holds the functions' own lines).
    pub fn read(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(doc) = emf_document(line) {
                self.add(&doc);
            }
        }
    }

    fn add(&mut self, doc: &Value) {
        let Some(function) = doc["Function"].as_str() else {
            return;
        };
        let route = doc["Route"].as_str();
        let stats = self.functions.entry(function.to_owned()).or_default();
        let sum = |name: &str| values(&doc[name]).iter().sum::<f64>();
        // Request counts come twice (by route and by function alone): count the by-route ones.
        if route.is_some() {
            stats.requests += sum("Requests");
            stats.client_errors += sum("ClientErrors");
            stats.server_errors += sum("ServerErrors");
        }
        // Cache counts come twice too (by kind and by function alone).
        match doc["Kind"].as_str() {
            Some(kind) => stats.by_kind.entry(kind.to_owned()).or_default().add(doc),
            None => stats.cache.add(doc),
        }
        if let Some(route) = route {
            let latencies = values(&doc["Latency"]);
            if !latencies.is_empty() {
                stats
                    .latency
                    .entry(route.to_owned())
                    .or_default()
                    .extend(latencies);
            }
        }
    }

    /// One block per function: a line of totals, then a line per route with its latency.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (function, stats) in &self.functions {
            let ratio = stats
                .hit_ratio()
                .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0));
            let _ = writeln!(
                out,
                "{function:<11} requests {:<6} cache hit ratio {ratio:<5} 4xx {:<5} 5xx {}",
                stats.requests, stats.client_errors, stats.server_errors
            );
            for (kind, cache) in &stats.by_kind {
                let ratio = cache
                    .hit_ratio()
                    .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0));
                let lookups = cache.hits + cache.negatives + cache.misses + cache.errors;
                let _ = writeln!(
                    out,
                    "  cache {kind:<9} lookups {lookups:<6} hit ratio {ratio}"
                );
            }
            for (route, latencies) in &stats.latency {
                let (p50, p99) = (percentile(latencies, 0.50), percentile(latencies, 0.99));
                let _ = writeln!(
                    out,
                    "  {route:<44} n {:<6} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms",
                    latencies.len()
                );
            }
        }
        if out.is_empty() {
            out.push_str("no metric lines yet: use the API\n");
        }
        out
    }
}

/// The EMF document in a log line, if it holds one.
fn emf_document(line: &str) -> Option<Value> {
    let start = line.find("{\"_aws\"")?;
    let doc: Value = serde_json::from_str(line[start..].trim_end()).ok()?;
    doc["_aws"]["CloudWatchMetrics"].is_array().then_some(doc)
}

/// A metric's values: a number, or an array of them.
fn values(value: &Value) -> Vec<f64> {
    match value {
        Value::Number(n) => n.as_f64().into_iter().collect(),
        Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
        _ => Vec::new(),
    }
}

/// The `q` quantile (nearest rank) of `values`.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_add_up_by_function_and_route_and_other_lines_are_ignored() {
        let log = r#" INFO cargo_lambda_watch: starting function=users
{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function"]],"Metrics":[{"Name":"CacheHits","Unit":"Count"}]}]},"Function":"users","CacheHits":3,"CacheMisses":1}
[users] {"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function","Route"]],"Metrics":[]}]},"Function":"users","Route":"GET /users/me","Latency":[1.0,2.0,3.0],"Requests":3,"ClientErrors":1}
{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Function"]],"Metrics":[]}]},"Function":"users","Requests":3}
not json {"_aws": broken
"#;
        let mut stats = Stats::default();
        stats.read(log);
        let users = &stats.functions["users"];
        assert_eq!(
            (users.requests, users.client_errors, users.server_errors),
            (3.0, 1.0, 0.0)
        );
        assert_eq!(users.hit_ratio(), Some(0.75));
        assert_eq!(users.latency["GET /users/me"], [1.0, 2.0, 3.0]);
        let text = stats.render();
        assert!(
            text.contains("requests 3") && text.contains("75%") && text.contains("GET /users/me"),
            "{text}"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(
            (percentile(&values, 0.5), percentile(&values, 0.99)),
            (50.0, 99.0)
        );
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    /// The lines `shared::metrics` really writes read back as what was recorded.
    #[tokio::test]
    async fn the_functions_own_lines_read_back() {
        use std::sync::{Arc, Mutex};
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        shared::metrics::redirect(move || Box::new(Sink(sink.clone())));
        shared::metrics::init();
        let elapsed = std::time::Duration::from_millis(3);
        shared::metrics::scope("posts", async {
            use shared::cache::{CacheOutcome, Kind};
            shared::metrics::cache_lookup(Kind::User, CacheOutcome::Hit);
            shared::metrics::cache_lookup(Kind::Post, CacheOutcome::Hit);
            shared::metrics::request_done("posts", "GET /posts/{postId}", 200, elapsed);
            shared::metrics::cache_lookup(Kind::User, CacheOutcome::Hit);
            shared::metrics::cache_lookup(Kind::Post, CacheOutcome::Miss);
            shared::metrics::request_done("posts", "GET /posts/{postId}", 503, elapsed);
        })
        .await;
        let mut stats = Stats::default();
        stats.read(&String::from_utf8_lossy(&buffer.lock().expect("lock")));
        let posts = &stats.functions["posts"];
        assert_eq!((posts.requests, posts.server_errors), (2.0, 1.0));
        assert_eq!(posts.hit_ratio(), Some(0.75));
        assert_eq!(posts.by_kind["user"].hit_ratio(), Some(1.0));
        assert_eq!(posts.by_kind["post"].hit_ratio(), Some(0.5));
        assert!(
            stats
                .render()
                .contains("cache post      lookups 2      hit ratio 50%"),
            "{}",
            stats.render()
        );
        assert_eq!(posts.latency["GET /posts/{postId}"].len(), 2);
    }
}
