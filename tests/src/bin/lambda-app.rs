//! The three API functions in one binary, started exactly as each function's `main.rs` starts
//! (`shared::app::run` on the runtime `shared::runtime` sizes: configuration from the
//! environment, secrets from Secrets Manager, the cache connection, prewarm, then
//! `lambda_http::run_concurrent`, one invocation at a time unless `AWS_LAMBDA_MAX_CONCURRENCY`
//! says more), routing each event to the function that serves its path. The tests of the
//! production init and of the runtime loop run it under their own Runtime API.

fn main() -> Result<(), lambda_http::Error> {
    shared::runtime::build()?.block_on(shared::app::run(integration_tests::handle))
}
