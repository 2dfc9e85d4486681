//! Lambda entry point: build the services once per instance, then serve requests.

use lambda_http::{service_fn, Error, Request};
use shared::App;

// One thread: Lambda sends an instance one event at a time, so more threads would only add
// wake-ups between them (and memory); Argon2 still runs off it, on the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let json_logs = shared::config::Config::from_env().map(|c| c.log_json).unwrap_or(true);
    shared::telemetry::init(json_logs);
    let app = App::from_env().await.inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    app.prewarm(std::time::Duration::from_millis(100)).await;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(users_fn::handle(app, req).await) }))
        .await
}
