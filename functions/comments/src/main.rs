//! Lambda entry point: the services are built once per instance, then every request is served.

// One thread: Lambda sends an instance one event at a time, so more threads would only add
// wake-ups between them (and memory); Argon2 still runs off it, on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run(comments_fn::handle).await
}
