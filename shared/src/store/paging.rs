//! Pages of a `Query`, for both lists (the feed and a post's comments).

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::dynamo::{classify, Item};
use super::Page;
use super::StoreError;

/// Runs `query` from `start` until it has `limit` items and knows whether more follow.
///
/// It asks for one item more than `limit`: if that one exists, the page names its last id
/// (the cursor), so the last page says `nextCursor: null` instead of leading to an empty
/// page. It keeps querying while DynamoDB stops early (the 1 MB page limit).
pub(super) async fn query_page<T>(
    query: QueryFluentBuilder,
    operation: &'static str,
    limit: usize,
    mut start: Option<Item>,
    decode: impl Fn(Item) -> Result<T, StoreError>,
    id: impl Fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let mut items = Vec::with_capacity(limit + 1);
    while items.len() <= limit {
        let out = query
            .clone()
            .limit((limit + 1 - items.len()) as i32)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| classify(operation, e))?;
        for item in out.items.unwrap_or_default() {
            items.push(decode(item)?);
        }
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    let last_id = if items.len() > limit {
        items.truncate(limit);
        items.last().map(id)
    } else {
        None
    };
    Ok(Page { items, last_id })
}
