// The handlers' futures nest deeply (the cache-aside's shared read inside authentication inside
// each route), past the default depth rustc allows for computing their layout.
#![recursion_limit = "256"]

mod abuse_limits;
mod bad_input;
mod cache_aside;
mod cache_sync;
mod coherence;
mod comments_api;
mod concurrency;
mod contract;
mod events_files;
mod faults;
mod idempotency;
mod interleavings;
mod posts_api;
mod races;
mod retries;
mod security;
mod smoke;
mod stream_poller;
mod template;
mod tokens;
mod users_api;
