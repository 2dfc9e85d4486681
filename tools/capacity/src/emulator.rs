//! dynoxide served on a loopback port, as the harness's `Dynamo` serves it, with one change
//! the delete axis needs: its database is a file in RAM, so the tool can give the stream's
//! table the two indexes it lacks.
//!
//! dynoxide numbers each stream record `MAX(CAST(sequence_number AS INTEGER)) + 1` over every
//! record kept, and reads a shard ordered by that same expression, with no index on it: each
//! write scans the whole stream, so writing and then deleting 100,000 comments costs hours
//! (10^10 rows visited; 20,000 writes alone took 53 s in an optimized SQLite here). Indexes on
//! exactly those expressions make each a lookup (20,000 writes: 0.13 s) and change no answer.
//! Worth offering upstream.

use std::path::PathBuf;

use aws_sdk_dynamodb::Client;

/// The indexes dynoxide's stream table lacks: the numbering's `MAX` and `GetRecords`' range.
const STREAM_INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS capacity_stream_sequence ON _stream_records (table_name, CAST(sequence_number AS INTEGER))",
    "CREATE INDEX IF NOT EXISTS capacity_stream_shard_sequence ON _stream_records (table_name, shard_id, CAST(sequence_number AS INTEGER))",
];

/// The emulator; stops and removes its file when dropped.
pub struct Emulator {
    pub endpoint: String,
    /// A client straight to the emulator (not through the recorder).
    pub client: Client,
    server: tokio::task::JoinHandle<()>,
    dir: PathBuf,
}

impl Emulator {
    /// A fresh emulator with the project's table (`shared::store::schema`) named `table`.
    pub async fn start(table: &str) -> Result<Self, String> {
        let base = ["/dev/shm"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("capacity-dynoxide-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("db.sqlite");
        let path_text = path.to_str().ok_or("the database path is not UTF-8")?;
        let db = dynoxide::Database::new(path_text).map_err(|e| format!("dynoxide: {e}"))?;
        rusqlite::Connection::open(&path)
            .and_then(|conn| {
                STREAM_INDEXES
                    .iter()
                    .try_for_each(|sql| conn.execute(sql, []).map(|_| ()))
            })
            .map_err(|e| format!("indexing dynoxide's stream table: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let endpoint = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let server = tokio::spawn(dynoxide::server::serve_on(listener, db));
        let client = integration_tests::dynamo::client_for(&endpoint, None);
        shared::store::schema::create_table(&client, table).await?;
        Ok(Emulator {
            endpoint,
            client,
            server,
            dir,
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
