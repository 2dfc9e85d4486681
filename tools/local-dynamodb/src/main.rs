//! `local-dynamodb [--port N] [--table NAME] [--db FILE] [--also-bind ADDR]`: serves dynoxide
//! (an embeddable DynamoDB emulator) on 127.0.0.1 and creates the project's table, so
//! `scripts/dev` needs no Docker and no second toolchain. In memory unless `--db` names a file.
//! `--also-bind` serves the same database on another address of this host as well (the docker
//! bridge, so `sam local` containers reach it on Linux).

use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port")
        .unwrap_or_else(|| "8000".into())
        .parse()
        .map_err(|e| format!("--port: {e}"))?;
    let table = arg(&args, "--table").unwrap_or_else(|| "social".into());
    let db = match arg(&args, "--db") {
        Some(path) => dynoxide::Database::new(&path),
        None => dynoxide::Database::memory(),
    }
    .map_err(|e| format!("opening the database: {e}"))?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("binding port {port}: {e}"))?;
    if let Some(address) = arg(&args, "--also-bind") {
        let also = tokio::net::TcpListener::bind((address.as_str(), port))
            .await
            .map_err(|e| format!("binding {address}:{port}: {e}"))?;
        tokio::spawn(dynoxide::server::serve_on(also, db.clone()));
        println!("also serving on http://{address}:{port}");
    }
    let server = tokio::spawn(dynoxide::server::serve_on(listener, db));

    let endpoint = format!("http://127.0.0.1:{port}");
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let mut created = Err(String::new());
    for _ in 0..50 {
        created = shared::store::schema::create_table(&client, &table).await;
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    created.map_err(|e| format!("creating table {table}: {e}"))?;
    println!("local DynamoDB (dynoxide) ready at {endpoint}, table {table}");
    server.await.map_err(|e| format!("server stopped: {e}"))
}
