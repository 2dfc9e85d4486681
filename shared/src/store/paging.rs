//! Pages of lists that live in several partitions: the feed (its shards of the feed index,
//! and the legacy index partition) and a post's comments (its comment shards, and the legacy
//! partition). A page is the merge, by id, of one `Query` per partition, each bounded by the
//! cursor's id on its sort key, so the cursor is one id whatever partition the item came from.
//! Ids are ULIDs and unique, so the merge is a total order: following the cursor visits every
//! item once, in order, while items are added (they get larger ids than any already listed).
//!
//! Also every page of one query in turn ([`Pages`]): what a sweep deletes.

use std::collections::VecDeque;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::dynamo::{classify, Item};
use super::dynamo::{Page, StoreError};

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
    pub(super) fn after(
        query: QueryFluentBuilder,
        operation: &'static str,
        start: Option<Item>,
    ) -> Self {
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

    /// Where the next page would start (`None` once the last page was read): what a sweep
    /// saves to go on later.
    pub(super) fn resume_key(&self) -> Option<Option<&Item>> {
        self.next.as_ref().map(Option::as_ref)
    }

    /// The next page, of at most `limit` items (DynamoDB may stop earlier, at 1 MB).
    pub(super) async fn fetch(
        &mut self,
        limit: Option<i32>,
    ) -> Result<Option<Vec<Item>>, StoreError> {
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

/// Which way a list runs: by id, smallest first (a post's comments, oldest first) or largest
/// first (the feed, newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    Ascending,
    Descending,
}

impl Order {
    /// Whether id `a` comes before id `b` in this order.
    fn before(self, a: &str, b: &str) -> bool {
        match self {
            Order::Ascending => a < b,
            Order::Descending => a > b,
        }
    }
}

/// One partition of a list: its query (already bounded by the cursor), what it has read and
/// not yet merged, and whether it has more.
struct Source<T> {
    pages: Pages,
    buffer: VecDeque<T>,
}

impl<T> Source<T> {
    fn exhausted(&self) -> bool {
        self.buffer.is_empty() && self.pages.resume_key().is_none()
    }
}

/// The first `limit` items, in `order`, of the merge of `queries` (one per partition, each
/// already bounded past the cursor and running in `order`), and whether more follow.
///
/// It asks for one item more than `limit`: if that one exists, the page names its last id (the
/// cursor), so the last page says `nextCursor: null` instead of leading to an empty page. Each
/// partition is first asked for about its share of the page, all at once; a partition whose
/// items run out before the merge can tell what comes next is asked again, for what the page
/// still lacks. An item is taken only when every partition has shown its next item or has none
/// left, so nothing is skipped. `decode` may drop an item (`Ok(None)`).
pub(super) async fn merged_page<T>(
    queries: Vec<QueryFluentBuilder>,
    operation: &'static str,
    order: Order,
    limit: usize,
    decode: impl Fn(Item) -> Result<Option<T>, StoreError>,
    id: impl Fn(&T) -> &str,
) -> Result<Page<T>, StoreError> {
    let want = limit + 1;
    let share = (want / queries.len().max(1) + 2).min(want);
    let mut sources: Vec<Source<T>> = queries
        .into_iter()
        .map(|query| Source {
            pages: Pages::new(query, operation),
            buffer: VecDeque::new(),
        })
        .collect();
    let mut items = Vec::with_capacity(want);
    let mut first = true;
    while items.len() < want {
        let chunk = if first { share } else { want - items.len() };
        first = false;
        refill(&mut sources, chunk, &decode).await?;
        if sources
            .iter()
            .any(|s| s.buffer.is_empty() && !s.exhausted())
        {
            continue;
        }
        // Every partition shows its next item or has none: take the first in order, then as
        // many more as can be taken before some partition must be read again.
        loop {
            let best = sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.buffer.front().map(|item| (i, item)))
                .reduce(|best, next| {
                    if order.before(id(next.1), id(best.1)) {
                        next
                    } else {
                        best
                    }
                })
                .map(|(i, _)| i);
            let Some(best) = best else {
                // Nothing buffered and every partition exhausted: the list ends here.
                return Ok(finish(items, limit, &id));
            };
            if let Some(item) = sources[best].buffer.pop_front() {
                // One item in two partitions at once (a legacy item being moved): once.
                if items.last().is_none_or(|last| id(last) != id(&item)) {
                    items.push(item);
                }
            }
            if items.len() >= want || sources[best].buffer.is_empty() && !sources[best].exhausted()
            {
                break;
            }
        }
    }
    Ok(finish(items, limit, &id))
}

/// Reads the next page of every partition that has nothing buffered but more to read, all at
/// once, at most `chunk` items each.
async fn refill<T>(
    sources: &mut [Source<T>],
    chunk: usize,
    decode: &impl Fn(Item) -> Result<Option<T>, StoreError>,
) -> Result<(), StoreError> {
    let limit = i32::try_from(chunk.max(1)).unwrap_or(i32::MAX);
    let reads = sources
        .iter_mut()
        .filter(|s| s.buffer.is_empty() && !s.exhausted())
        .map(|source| async move {
            if let Some(page) = source.pages.fetch(Some(limit)).await? {
                for item in page {
                    if let Some(item) = decode(item)? {
                        source.buffer.push_back(item);
                    }
                }
            }
            Ok::<(), StoreError>(())
        });
    futures_util::future::try_join_all(reads).await?;
    Ok(())
}

/// The page of `limit` items out of up to `limit + 1`: the extra one only says more follow.
fn finish<T>(mut items: Vec<T>, limit: usize, id: &impl Fn(&T) -> &str) -> Page<T> {
    let last_id = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|item| id(item).to_owned())
    } else {
        None
    };
    Page { items, last_id }
}
