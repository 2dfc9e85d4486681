//! The three API functions in one binary, started exactly as each function's `main.rs` starts
//! (`shared::app::run`: configuration from the environment, secrets from Secrets Manager, the
//! cache connection, prewarm, then `lambda_http::run`), routing each event to the function
//! that serves its path. The tests of the production init run it under their own Runtime API.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run(integration_tests::handle).await
}
