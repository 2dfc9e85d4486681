//! Lambda entry point: the cache connection is built once per instance, then every batch of
//! stream records is applied, on a runtime sized to the environment (`shared::runtime`).

/// mimalloc rather than glibc's malloc: a warm invocation makes a few thousand small
/// allocations (the SDK's request, the event, JSON), which it serves with less CPU
/// (BENCHMARKS.md, "Cutting the CPU").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::build()?.block_on(cache_sync_fn::run())
}
