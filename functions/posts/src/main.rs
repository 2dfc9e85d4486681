//! Lambda entry point: the services are built once per instance, then every request is served,
//! one at a time on demand and many at once on Lambda Managed Instances, on a runtime sized to
//! the environment (`shared::runtime`).

/// mimalloc rather than glibc's malloc: a warm invocation makes a few thousand small
/// allocations (the SDK's request, the event, JSON), which it serves with less CPU
/// (BENCHMARKS.md, "Cutting the CPU").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::build()?.block_on(shared::app::run(posts_fn::handle))
}
