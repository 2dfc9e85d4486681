//! Moves a table's legacy items into the current layout (`shared::store` does each page), and
//! keeps where it got to in a file, so a run that stops (a timeout, a deploy, Ctrl-C) goes on
//! from there: a page done twice changes nothing more.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::store::{Moved, Store, StoreError};

/// How a run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub moved: Moved,
    /// The scan reached the table's end: the table holds no legacy item any more.
    pub done: bool,
}

/// Why a run stopped short.
#[derive(Debug)]
pub enum Error {
    Store(StoreError),
    Checkpoint(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => write!(f, "{e}"),
            Error::Checkpoint(e) => write!(f, "checkpoint: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Runs pages from the checkpoint in `checkpoint` (the table's start if there is none) until
/// the scan ends or `max_pages` pages are done, saving the next page's start after each.
pub async fn run(
    store: &Store,
    checkpoint: &Path,
    page_size: i32,
    max_pages: Option<usize>,
) -> Result<Run, Error> {
    let mut start = load(checkpoint)?;
    if start.as_ref().is_some_and(HashMap::is_empty) {
        return Ok(Run {
            done: true,
            ..Run::default()
        });
    }
    let mut run = Run::default();
    let mut pages = 0;
    loop {
        let (next, moved) = store
            .migrate_page(start.take(), page_size)
            .await
            .map_err(Error::Store)?;
        run.moved.scanned += moved.scanned;
        run.moved.posts += moved.posts;
        run.moved.comments += moved.comments;
        pages += 1;
        // An empty key marks the end, so a finished run stays finished.
        save(checkpoint, next.as_ref().unwrap_or(&HashMap::new()))?;
        match next {
            None => {
                run.done = true;
                return Ok(run);
            }
            Some(next) if max_pages.is_none_or(|max| pages < max) => start = Some(next),
            Some(_) => return Ok(run),
        }
    }
}

/// The saved start of the next page: `None` with no file (from the table's start).
fn load(path: &Path) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Checkpoint(e.to_string())),
    };
    let saved: HashMap<String, String> =
        serde_json::from_str(&text).map_err(|e| Error::Checkpoint(e.to_string()))?;
    Ok(Some(
        saved
            .into_iter()
            .map(|(k, v)| (k, AttributeValue::S(v)))
            .collect(),
    ))
}

/// Saves the next page's start: the key attributes, all strings in this table.
fn save(path: &Path, key: &HashMap<String, AttributeValue>) -> Result<(), Error> {
    let saved: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str())))
        .collect();
    let text = serde_json::to_string(&saved).map_err(|e| Error::Checkpoint(e.to_string()))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(|e| Error::Checkpoint(e.to_string()))?;
    std::fs::rename(&partial, path).map_err(|e| Error::Checkpoint(e.to_string()))
}
