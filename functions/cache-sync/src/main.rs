//! Lambda entry point: the cache connection is built once per instance, then every batch of
//! stream records is applied.

// One thread: Lambda sends an instance one batch at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    cache_sync_fn::run().await
}
