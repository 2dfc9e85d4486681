//! Pages of a `Query`: a list's page (the feed and a post's comments), and every page of a
//! query in turn (a post's comments, swept when it is deleted).

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::dynamo::{classify, Item};
use super::Page;
use super::StoreError;

/// The pages of one `Query`, read one call at a time, each from where the last one stopped.
pub(super) struct Pages {
    query: QueryFluentBuilder,
    operation: &'static str,
    /// Where the next call starts: `Some(None)` at the start of the query, `None` once the
    /// last page was read.
    next: Option<Option<Item>>,
}

impl Pages {
    /// The pages of `query` from its start.
    pub(super) fn new(query: QueryFluentBuilder, operation: &'static str) -> Self {
        Self::after(query, operation, None)
    }

    /// The pages of `query` after the item whose key is `start` (from its start when `None`).
    fn after(query: QueryFluentBuilder, operation: &'static str, start: Option<Item>) -> Self {
        Pages {
            query,
            operation,
            next: Some(start),
        }
    }

    /// The next page's items; `None` once the last page was read.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<Item>>, StoreError> {
        self.fetch(None).await
    }

    /// The next page, of at most `limit` items (DynamoDB may stop earlier, at 1 MB).
    async fn fetch(&mut self, limit: Option<i32>) -> Result<Option<Vec<Item>>, StoreError> {
        let Some(start) = self.next.take() else {
            return Ok(None);
        };
        let out = self
            .query
            .clone()
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify(self.operation, e))?;
        self.next = out
            .last_evaluated_key
            .filter(|key| !key.is_empty())
            .map(Some);
        Ok(Some(out.items.unwrap_or_default()))
    }
}

/// Runs `query` from `start` until it has `limit` items and knows whether more follow.
///
/// It asks for one item more than `limit`: if that one exists, the page names its last id
/// (the cursor), so the last page says `nextCursor: null` instead of leading to an empty
/// page. It keeps querying while DynamoDB stops early (the 1 MB page limit).
pub(super) async fn query_page<T>(
    query: QueryFluentBuilder,
    operation: &'static str,
    limit: usize,
    start: Option<Item>,
    decode: impl Fn(Item) -> Result<T, StoreError>,
    id: impl Fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let mut items = Vec::with_capacity(limit + 1);
    let mut pages = Pages::after(query, operation, start);
    while items.len() <= limit {
        let Some(page) = pages.fetch(Some((limit + 1 - items.len()) as i32)).await? else {
            break;
        };
        for item in page {
            items.push(decode(item)?);
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
