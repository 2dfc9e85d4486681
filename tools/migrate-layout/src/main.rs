//! `migrate-layout`: moves the table's legacy items into the current layout
//! (docs/architecture.md, "Data model"), resumably. The table and its client come from the
//! functions' own variables (`TABLE_NAME`, `DYNAMODB_ENDPOINT`, the AWS credentials); the
//! progress is kept in `--checkpoint FILE` (default `migrate-layout.checkpoint`). When it says
//! "done", set the stack's `LegacyLayout` parameter to `false`.

use std::path::PathBuf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut checkpoint = PathBuf::from("migrate-layout.checkpoint");
    let mut page_size = 100;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--checkpoint" => checkpoint = args.next().ok_or("--checkpoint FILE")?.into(),
            "--page-size" => page_size = args.next().ok_or("--page-size N")?.parse()?,
            other => return Err(format!("unknown argument {other}; usage: migrate-layout [--checkpoint FILE] [--page-size N]").into()),
        }
    }
    let table = shared::config::TableConfig::from_env()?;
    let client = shared::store::client_from_config(&table).await;
    let store = shared::store::Store::new(client, table.table_name.clone());
    let run = migrate_layout::run(&store, &checkpoint, page_size, None).await?;
    println!(
        "{}: scanned {}, moved {} posts and {} comments{}",
        table.table_name,
        run.moved.scanned,
        run.moved.posts,
        run.moved.comments,
        if run.done {
            "; done: set LegacyLayout=false"
        } else {
            ""
        }
    );
    Ok(())
}
