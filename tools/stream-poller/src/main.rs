//! `stream-poller --dynamodb URL --table NAME --api URL --function NAME`: the local stack's
//! event source mapping. Reads the table's stream from the local DynamoDB and invokes the
//! function through the Lambda invoke API that `cargo lambda watch` serves, as Lambda would.

use stream_poller::{HttpInvoker, Poller, PollerConfig, StreamApi};

fn arg(args: &[String], flag: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    tracing_subscriber::fmt().compact().init();
    let args: Vec<String> = std::env::args().collect();
    let dynamodb = arg(&args, "--dynamodb", "http://127.0.0.1:8000");
    let table = arg(&args, "--table", "social");
    let api = arg(&args, "--api", "http://127.0.0.1:9000");
    let function = arg(&args, "--function", "cache-sync");
    let poller = Poller::new(StreamApi::new(&dynamodb), &table, PollerConfig::default()).await?;
    println!("stream poller: {table}'s stream at {dynamodb} -> {function} at {api}");
    poller.run(HttpInvoker::new(&api, &function)).await;
    Ok(())
}
