//! Lambda entry point: the cache connection and the table client are built once per instance,
//! then every batch of stream records is applied, on a runtime sized to the environment
//! (`shared::runtime`).

fn main() -> Result<(), lambda_runtime::Error> {
    shared::runtime::build()?.block_on(cache_sync_fn::run())
}
