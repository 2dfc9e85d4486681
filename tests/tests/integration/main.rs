//! The integration tests: one binary, so the harness and the services are built once.

// The handlers' futures nest deeply (request span, invocation scope, idempotency, the cache's
// shared read, the SDK).
#![recursion_limit = "256"]

mod abuse_limits;
mod bad_input;
mod body_memory;
mod cache_aside;
mod cache_script;
mod cache_sync;
mod coherence;
mod comments_api;
mod concurrency;
mod contract;
mod events_files;
mod faults;
mod iam_auth;
mod idempotency;
mod interleavings;
mod metrics;
mod migration;
mod posts_api;
mod production_init;
mod races;
mod retries;
mod routing;
mod runtime_loop;
mod scale;
mod security;
mod slot_migration;
mod smoke;
mod stream_errors;
mod stream_poller;
mod template;
mod tokens;
mod users_api;
