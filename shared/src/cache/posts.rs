//! Posts, the feed's first page and a post's first comments, cache-aside, and what every change
//! of a post or a comment writes to the cache.
//!
//! - **A post** (`post:v4:<id>`): its JSON as the response serves it, its `version` for the
//!   `ETag`, at its cache revision (every change of the post item bumps it: an edit, a new
//!   `commentCount`). A miss leases the entry, reads the item strongly consistent and writes
//!   it back into the leased entry; a post the table does not have is remembered briefly as
//!   "none"; a deleted one as gone for good. A new post's entry is leased before the post is
//!   written, and filled with it.
//! - **The feed's first page** (`feed:v4`, a [window](super::entry) of post ids, kept in the
//!   instance for at most 250 ms ([`super::near`]), as the feed may lag a write by 1 s): the
//!   ids, then the posts' own entries in one `MGET`. A miss leases the window, reads the feed
//!   index and fills it.
//! - **A post's first comments** (`comments:v4:<postId>`, a window of comments, whole): a miss
//!   leases it, reads the comment shards strongly consistent and fills it.
//! - **Changes** (create, edit, delete; a comment added, edited, removed; a count changed by the
//!   upkeep) go to the table first, then through the compare-and-set to every entry they
//!   touch that exists, before the request answers: a request that starts after the answer
//!   sees the change, on any instance (where there is no entry, its next read fills one from
//!   the table). A write Redis could not take reaches it through the stream (`cache-sync`
//!   writes the item as the table holds it then).
//!
//! Redis is never the truth: a failed or slow call is a read of the table (and no write-back);
//! anything unreadable is a miss. Deeper pages of the feed and of comments go to the table.

use std::sync::Arc;
use std::time::Instant;

use super::entry::{first_page, parse, Record, Revision};
use super::flights::Flights;
use super::kinds::{
    comments_key, post_key, Kind, WindowKind, COMMENTS, FEED, FEED_KEY, FEED_SUBJECT,
};
use super::near::Near;
use super::redis_cache::{Lease, RedisCache, WindowWrite, WriteOutcome};
use crate::domain::{Comment, ExpectedVersion, Post, PostPatch};
use crate::error::AppError;
use crate::metrics::CacheOutcome;
use crate::store::{Page, Remover, Store, Stored};

/// A post as a response serves it: its JSON, and its `version` for the `ETag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostBody {
    pub json: String,
    pub version: u64,
}

impl PostBody {
    fn of(post: &Stored<Post>) -> Result<Self, AppError> {
        Ok(PostBody {
            json: serde_json::to_string(&post.item)
                .map_err(|e| AppError::Internal(format!("encoding a post: {e}")))?,
            version: post.item.version,
        })
    }

    /// The post itself, for the rare caller that needs its fields (its author).
    pub fn post(&self) -> Result<Post, AppError> {
        serde_json::from_str(&self.json)
            .map_err(|e| AppError::Internal(format!("decoding a cached post: {e}")))
    }
}

/// What a look at a post's entry found.
#[derive(Debug)]
pub enum PostLookup {
    Found(PostBody),
    /// The post is gone, or the table had none a moment ago.
    Absent,
    /// Nothing usable.
    Empty,
    /// Redis failed or was too slow.
    Failed,
}

/// What a look at a window found: its bytes (the reader decides whether they answer its page),
/// or nothing, or a failure.
#[derive(Debug, Clone)]
pub enum WindowLookup {
    Found(Arc<[u8]>),
    Empty,
    Failed,
}

/// The feed's first posts as this instance read them last (kept near, [`super::near`]): ids
/// and JSON of the posts that exist, newest first, and whether the feed ends with them.
#[derive(Debug)]
struct FeedCopy {
    posts: Vec<(String, String)>,
    complete: bool,
}

impl FeedCopy {
    fn of(ids: Vec<String>, bodies: Vec<Option<String>>, complete: bool) -> Self {
        let posts = ids
            .into_iter()
            .zip(bodies)
            .filter_map(|(id, body)| Some((id, body?)))
            .collect();
        FeedCopy { posts, complete }
    }

    /// The first page of `limit` posts, if these answer it whole.
    fn page(&self, limit: usize) -> Option<Page<String>> {
        let (posts, more) = first_page(self.posts.clone(), self.complete, limit)?;
        let last_id = more
            .then(|| posts.last().map(|(id, _)| id.clone()))
            .flatten();
        Some(Page {
            items: posts.into_iter().map(|(_, body)| body).collect(),
            last_id,
        })
    }
}

fn ids_ref(ids: &[String]) -> Vec<&str> {
    ids.iter().map(String::as_str).collect()
}

/// A page of a window: its `(id, body)` items, and the id the next page follows.
type WindowPage = (Vec<(String, String)>, Option<String>);

/// A window's first items as read from the table: owned, for sharing between misses.
#[derive(Debug, Clone)]
struct Filled {
    /// `(id, body)`, in the list's order; the feed's bodies are empty (ids only).
    items: Vec<(String, String)>,
    /// The list ends with these.
    complete: bool,
}

impl Filled {
    /// The first `limit` of them, and the id the next page follows. A fill read a whole window
    /// (or the whole list), so it answers any page up to the window's size.
    fn page(&self, limit: usize) -> WindowPage {
        let (items, more) = first_page(self.items.clone(), self.complete, limit)
            .unwrap_or_else(|| (self.items.clone(), !self.complete));
        let next = if more {
            items.last().map(|(id, _)| id.clone())
        } else {
            None
        };
        (items, next)
    }
}

type Shared<T> = Arc<Flights<Result<T, AppError>>>;

/// The posts and their pages as the functions see them: the store, fronted by the cache.
/// Built once per instance; clones share the reads in flight and the feed's near copy.
#[derive(Clone)]
pub struct Posts {
    store: Store,
    cache: RedisCache,
    feed_near: Near<FeedCopy>,
    post_reads: Shared<Option<Stored<Post>>>,
    window_reads: Shared<Filled>,
}

impl Posts {
    pub fn new(store: Store, cache: RedisCache) -> Self {
        Posts {
            store,
            cache,
            feed_near: Near::default(),
            post_reads: Arc::default(),
            window_reads: Arc::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    // ----- a post -----

    /// One `GET` of a post's entry (what a request sends beside its user's, so both wait on
    /// the network together).
    pub async fn lookup(&self, post_id: &str) -> PostLookup {
        match self.cache.get(&post_key(post_id)).await {
            Ok(Some(raw)) => match parse(&raw).and_then(|entry| entry.item(post_id)) {
                Some(record) if record.live => match record.tag.parse() {
                    Ok(version) => PostLookup::Found(PostBody {
                        json: record.body.to_owned(),
                        version,
                    }),
                    Err(_) => PostLookup::Empty,
                },
                Some(_) => PostLookup::Absent,
                None => PostLookup::Empty,
            },
            Ok(None) => PostLookup::Empty,
            Err(_) => PostLookup::Failed,
        }
    }

    /// The post, from what [`Posts::lookup`] found: a miss reads the table and writes the
    /// answer back; a Redis failure reads the table and writes nothing (the request pays at
    /// most one Redis timeout).
    pub async fn resolve(
        &self,
        post_id: &str,
        looked: PostLookup,
        started: Instant,
    ) -> Result<Option<PostBody>, AppError> {
        let outcome = match &looked {
            PostLookup::Found(_) => CacheOutcome::Hit,
            PostLookup::Absent => CacheOutcome::Negative,
            PostLookup::Empty => CacheOutcome::Miss,
            PostLookup::Failed => CacheOutcome::Error,
        };
        crate::metrics::cache_lookup(Kind::Post, outcome);
        match looked {
            PostLookup::Found(body) => Ok(Some(body)),
            PostLookup::Absent => Ok(None),
            PostLookup::Failed => self
                .store
                .get_post(post_id)
                .await?
                .as_ref()
                .map(PostBody::of)
                .transpose(),
            PostLookup::Empty => {
                let read = || async {
                    let lease = self.lease_post(post_id).await;
                    let post = self.store.get_post(post_id).await?;
                    self.fill_post(post_id, post.as_ref(), lease.as_ref()).await;
                    Ok(post)
                };
                let key = post_key(post_id);
                self.post_reads
                    .run(&key, started, read)
                    .await?
                    .as_ref()
                    .map(PostBody::of)
                    .transpose()
            }
        }
    }

    /// The post, cache-aside.
    pub async fn get(&self, post_id: &str) -> Result<Option<PostBody>, AppError> {
        let started = Instant::now();
        let looked = self.lookup(post_id).await;
        self.resolve(post_id, looked, started).await
    }

    // ----- the feed's first page -----

    /// The feed's first `limit` posts (JSON), newest first, and the id the next page follows:
    /// from the instance's near copy of the feed's first posts, or from the window and the
    /// posts' entries in Redis, or from the table when Redis cannot say.
    pub async fn feed_page(&self, limit: usize) -> Result<Page<String>, AppError> {
        if limit > FEED.size {
            let page = self.store.list_posts(limit, None).await?;
            return bodies_of_posts(page);
        }
        if let Some(copy) = self.feed_near.get() {
            if let Some(page) = copy.page(limit) {
                crate::metrics::cache_lookup(Kind::Feed, CacheOutcome::Hit);
                return Ok(page);
            }
        }
        let started = Instant::now();
        let looked = match self.cache.get(FEED_KEY).await {
            Ok(Some(raw)) => WindowLookup::Found(raw.into()),
            Ok(None) => WindowLookup::Empty,
            Err(_) => WindowLookup::Failed,
        };
        let window = match &looked {
            WindowLookup::Found(raw) => parse(raw).and_then(|entry| {
                let (live, complete) = entry.inside(FEED_SUBJECT, FEED.order)?;
                let ids: Vec<String> = live.iter().map(|r| r.id.to_owned()).collect();
                // Served only if it answers this page: otherwise the table fills it.
                first_page(ids.clone(), complete, limit).map(|_| (ids, complete))
            }),
            _ => None,
        };
        let (ids, complete) = match window {
            Some(window) => {
                crate::metrics::cache_lookup(Kind::Feed, CacheOutcome::Hit);
                window
            }
            None if matches!(looked, WindowLookup::Failed) => {
                crate::metrics::cache_lookup(Kind::Feed, CacheOutcome::Error);
                let page = self.store.list_posts(limit, None).await?;
                return bodies_of_posts(page);
            }
            None => {
                crate::metrics::cache_lookup(Kind::Feed, CacheOutcome::Miss);
                let filled = self
                    .window_reads
                    .run(FEED_KEY, started, || self.fill_feed())
                    .await?;
                let ids = filled.items.into_iter().map(|(id, _)| id).collect();
                (ids, filled.complete)
            }
        };
        let bodies = self.post_bodies(&ids_ref(&ids)).await?;
        let copy = Arc::new(FeedCopy::of(ids, bodies, complete));
        self.feed_near.set(started, Arc::clone(&copy));
        copy.page(limit)
            .ok_or_else(|| AppError::Internal("the feed's first posts answer no page".into()))
    }

    /// The feed after the post `after`, from the table (only its first page is cached).
    pub async fn feed_after(&self, limit: usize, after: &str) -> Result<Page<String>, AppError> {
        bodies_of_posts(self.store.list_posts(limit, Some(after)).await?)
    }

    /// Leases the feed's first window, reads it from the table and writes it back.
    async fn fill_feed(&self) -> Result<Filled, AppError> {
        let lease = self.cache.lease_window(FEED_KEY, &FEED, FEED_SUBJECT).await;
        let page = self.store.feed_ids(FEED.size, None).await?;
        let complete = page.last_id.is_none();
        if let Some(lease) = &lease {
            let records: Vec<Record> = page
                .items
                .iter()
                .map(|id| Record::live(id.clone(), Revision::at(1), "", ""))
                .collect();
            self.cache
                .put_window(
                    FEED_KEY,
                    &FEED,
                    FEED_SUBJECT,
                    WindowWrite::Fill { complete, lease },
                    &records,
                )
                .await;
        }
        self.feed_near.clear();
        Ok(Filled {
            items: page
                .items
                .into_iter()
                .map(|id| (id, String::new()))
                .collect(),
            complete,
        })
    }

    /// The JSON of each of the posts `ids` (`None` for one that is gone), in order: their
    /// entries in one `MGET`, the rest leased, read from the table (strongly consistent, as a
    /// post's entry serves `GET /posts/{postId}` too) and written back.
    async fn post_bodies(&self, ids: &[&str]) -> Result<Vec<Option<String>>, AppError> {
        let owned: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        let keys: Vec<String> = ids.iter().map(|id| post_key(id)).collect();
        let raws = match self.cache.get_many(&keys).await {
            Ok(raws) => raws,
            Err(_) => {
                let posts = self.store.posts_by_id(&owned, false).await?;
                return ids
                    .iter()
                    .map(|id| {
                        posts
                            .iter()
                            .find(|p| p.item.id == *id)
                            .map(|p| PostBody::of(p).map(|b| b.json))
                            .transpose()
                    })
                    .collect();
            }
        };
        let mut bodies: Vec<Option<String>> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for (id, raw) in ids.iter().zip(&raws) {
            match raw.as_deref().and_then(parse).and_then(|e| e.item(id)) {
                Some(record) if record.live => bodies.push(Some(record.body.to_owned())),
                // Deleted: left out.
                Some(_) => bodies.push(None),
                None => {
                    missing.push((*id).to_owned());
                    bodies.push(None);
                }
            }
        }
        if !missing.is_empty() {
            let leases =
                futures_util::future::join_all(missing.iter().map(|id| self.lease_post(id))).await;
            let found = self.store.posts_by_id(&missing, true).await?;
            let writes = missing.iter().zip(&leases).map(|(id, lease)| {
                let post = found.iter().find(|post| post.item.id == *id);
                self.fill_post(id, post, lease.as_ref())
            });
            futures_util::future::join_all(writes).await;
            for post in &found {
                crate::metrics::cache_lookup(Kind::Post, CacheOutcome::Miss);
                if let Some(at) = ids.iter().position(|id| *id == post.item.id) {
                    bodies[at] = Some(PostBody::of(post)?.json);
                }
            }
        }
        Ok(bodies)
    }

    // ----- a post's first comments -----

    /// One `GET` of a post's first comments (sent beside the user's and the post's).
    pub async fn comments_lookup(&self, post_id: &str) -> WindowLookup {
        match self.cache.get(&comments_key(post_id)).await {
            Ok(Some(raw)) => WindowLookup::Found(raw.into()),
            Ok(None) => WindowLookup::Empty,
            Err(_) => WindowLookup::Failed,
        }
    }

    /// A post's first `limit` comments (JSON), oldest first, and the id the next page follows,
    /// from what [`Posts::comments_lookup`] found.
    pub async fn comments_page(
        &self,
        post_id: &str,
        limit: usize,
        looked: WindowLookup,
        started: Instant,
    ) -> Result<Page<String>, AppError> {
        if limit > COMMENTS.size || matches!(looked, WindowLookup::Failed) {
            if matches!(looked, WindowLookup::Failed) {
                crate::metrics::cache_lookup(Kind::Comments, CacheOutcome::Error);
            }
            let page = self.store.list_comments(post_id, limit, None).await?;
            return bodies_of_comments(page);
        }
        let key = comments_key(post_id);
        let (items, next) = match self.window_page(&COMMENTS, post_id, &looked, limit) {
            Some(page) => page,
            None => {
                crate::metrics::cache_lookup(Kind::Comments, CacheOutcome::Miss);
                let filled = self
                    .window_reads
                    .run(&key, started, || self.fill_comments(post_id))
                    .await?;
                filled.page(limit)
            }
        };
        Ok(Page {
            items: items.into_iter().map(|(_, body)| body).collect(),
            last_id: next,
        })
    }

    /// A post's comments after the comment `after`, from the table (only the first page is
    /// cached).
    pub async fn comments_after(
        &self,
        post_id: &str,
        limit: usize,
        after: &str,
    ) -> Result<Page<String>, AppError> {
        bodies_of_comments(
            self.store
                .list_comments(post_id, limit, Some(after))
                .await?,
        )
    }

    /// Leases a post's first comments, reads them from the table and writes them back.
    async fn fill_comments(&self, post_id: &str) -> Result<Filled, AppError> {
        let key = comments_key(post_id);
        let lease = self.cache.lease_window(&key, &COMMENTS, post_id).await;
        let page = self
            .store
            .list_comments(post_id, COMMENTS.size, None)
            .await?;
        let complete = page.last_id.is_none();
        let mut records = Vec::with_capacity(page.items.len());
        let mut items = Vec::with_capacity(page.items.len());
        for comment in &page.items {
            let body = comment_json(&comment.item)?;
            records.push(Record::live(
                comment.item.id.clone(),
                Revision::at(comment.rev),
                "",
                body.clone(),
            ));
            items.push((comment.item.id.clone(), body));
        }
        if let Some(lease) = &lease {
            self.cache
                .put_window(
                    &key,
                    &COMMENTS,
                    post_id,
                    WindowWrite::Fill { complete, lease },
                    &records,
                )
                .await;
        }
        Ok(Filled { items, complete })
    }

    /// The page of `limit` a window's bytes answer, counted as a hit, or `None`.
    fn window_page(
        &self,
        kind: &WindowKind,
        subject: &str,
        looked: &WindowLookup,
        limit: usize,
    ) -> Option<WindowPage> {
        let WindowLookup::Found(raw) = looked else {
            return None;
        };
        let page = parse(raw)?.page(subject, kind.order, limit)?;
        crate::metrics::cache_lookup(kind.kind, CacheOutcome::Hit);
        Some((
            page.records
                .iter()
                .map(|r| (r.id.to_owned(), r.body.to_owned()))
                .collect(),
            page.next.map(str::to_owned),
        ))
    }

    // ----- changes: the table, then the cache -----

    /// Creates a post, then writes it and its place in the feed to the cache. Its entry is
    /// leased first, so the first reads of the new post (from the feed's page, most likely)
    /// are hits.
    pub async fn create(&self, post: &Post) -> Result<Stored<Post>, AppError> {
        let lease = self.lease_post(&post.id).await;
        let stored = self.store.create_post(post).await?;
        let feed = [Record::live(post.id.clone(), Revision::at(1), "", "")];
        let (written, listed) = tokio::join!(
            self.fill_post(&post.id, Some(&stored), lease.as_ref()),
            self.put_feed(&feed)
        );
        written.min_outcome(listed).warn_if_failed("a new post");
        Ok(stored)
    }

    /// Edits a post, then writes it to the cache.
    pub async fn update(
        &self,
        post_id: &str,
        user_id: &str,
        patch: PostPatch,
        expected: ExpectedVersion,
        now: String,
    ) -> Result<Stored<Post>, AppError> {
        let stored = self
            .store
            .update_post(post_id, user_id, patch, expected, now)
            .await?;
        self.publish_post_state(post_id, &stored)
            .await
            .warn_if_failed("a post's edit");
        Ok(stored)
    }

    /// Deletes a post, then writes it gone, in its entry and in the feed.
    pub async fn delete(
        &self,
        post_id: &str,
        user_id: &str,
        expected: ExpectedVersion,
    ) -> Result<(), AppError> {
        self.store.delete_post(post_id, user_id, expected).await?;
        self.publish_post_gone(post_id)
            .await
            .warn_if_failed("a post's delete");
        Ok(())
    }

    /// Adds a comment to a post that exists (checked first, through the cache), then writes it
    /// to the post's first comments (where it lands only while they are fewer than the
    /// window's size).
    pub async fn add_comment(&self, comment: &Comment) -> Result<Stored<Comment>, AppError> {
        if self.get(&comment.post_id).await?.is_none() {
            return Err(AppError::NotFound("post"));
        }
        let stored = self.store.add_comment(comment).await?;
        self.publish_comment(&stored)
            .await
            .warn_if_failed("a new comment");
        Ok(stored)
    }

    /// Edits a comment, then writes it to its post's first comments.
    pub async fn update_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
        text: String,
        now: String,
    ) -> Result<Stored<Comment>, AppError> {
        let stored = self
            .store
            .update_comment(post_id, comment_id, user_id, text, now)
            .await?;
        self.publish_comment(&stored)
            .await
            .warn_if_failed("a comment's edit");
        Ok(stored)
    }

    /// Removes a comment (its author, or its post's author), then writes it gone.
    pub async fn remove_comment(
        &self,
        post_id: &str,
        comment_id: &str,
        user_id: &str,
        now: String,
    ) -> Result<(), AppError> {
        let post = self
            .get(post_id)
            .await?
            .ok_or(AppError::NotFound("comment"))?
            .post()?;
        let remover = if post.author_id == user_id {
            Remover::PostAuthor
        } else {
            Remover::Author
        };
        self.store
            .remove_comment(post_id, comment_id, user_id, remover, now)
            .await?;
        self.publish_comment_gone(post_id, comment_id)
            .await
            .warn_if_failed("a comment's delete");
        Ok(())
    }

    // ----- what the table holds, written to the cache (changes, the stream, the upkeep) -----

    /// Writes a post's state as the table holds it into its entry, if there is one.
    pub async fn publish_post_state(&self, post_id: &str, post: &Stored<Post>) -> WriteOutcome {
        let Some(record) = post_record(post_id, Some(post)) else {
            return WriteOutcome::Failed;
        };
        self.cache
            .put_item(&post_key(post_id), post_id, &record)
            .await
    }

    /// Writes back what a read of the table under `lease` found of a post: the post, or "the
    /// table has none" (`None`: briefly remembered; older than any state of the post).
    async fn fill_post(
        &self,
        post_id: &str,
        post: Option<&Stored<Post>>,
        lease: Option<&Lease>,
    ) -> WriteOutcome {
        let Some(record) = post_record(post_id, post) else {
            return WriteOutcome::Failed;
        };
        self.cache
            .fill_item(&post_key(post_id), post_id, &record, lease)
            .await
    }

    /// Writes a post gone for good: its entry, and its place in the feed.
    pub async fn publish_post_gone(&self, post_id: &str) -> WriteOutcome {
        let gone = [Record::gone(post_id, Revision::gone())];
        let key = post_key(post_id);
        let (written, listed) = tokio::join!(
            self.cache.put_item(&key, post_id, &gone[0]),
            self.put_feed(&gone)
        );
        written.min_outcome(listed)
    }

    /// Leases a post's entry before a read of the post that is written back (a miss, a new
    /// post, the stream's sync: [`Posts::sync_post_state`]).
    pub async fn lease_post(&self, post_id: &str) -> Option<Lease> {
        self.cache.lease_item(&post_key(post_id), post_id).await
    }

    /// Writes back what the stream's sync read of a post under `lease`, after a record named
    /// it: the post as the table holds it, or, when the table has it no more, gone for good
    /// (ids are never used again), in its entry and in the feed.
    pub async fn sync_post_state(
        &self,
        post_id: &str,
        lease: Option<&Lease>,
        post: Option<&Stored<Post>>,
    ) -> WriteOutcome {
        if post.is_some() {
            return self.fill_post(post_id, post, lease).await;
        }
        let gone = [Record::gone(post_id, Revision::gone())];
        let key = post_key(post_id);
        let (written, listed) = tokio::join!(
            self.cache.fill_item(&key, post_id, &gone[0], lease),
            self.put_feed(&gone)
        );
        written.min_outcome(listed)
    }

    /// Writes a post's place in the feed: there (a new post) or gone.
    pub async fn publish_feed(&self, post_id: &str, there: bool) -> WriteOutcome {
        let record = if there {
            Record::live(post_id, Revision::at(1), "", "")
        } else {
            Record::gone(post_id, Revision::gone())
        };
        self.put_feed(&[record]).await
    }

    async fn put_feed(&self, records: &[Record]) -> WriteOutcome {
        let written = self
            .cache
            .put_window(FEED_KEY, &FEED, FEED_SUBJECT, WindowWrite::Put, records)
            .await;
        self.feed_near.clear();
        written
    }

    /// Writes a comment as the table holds it to its post's first comments.
    pub async fn publish_comment(&self, comment: &Stored<Comment>) -> WriteOutcome {
        let Ok(body) = comment_json(&comment.item) else {
            return WriteOutcome::Failed;
        };
        let record = Record::live(comment.item.id.clone(), Revision::at(comment.rev), "", body);
        self.put_comments(&comment.item.post_id, &[record]).await
    }

    /// Writes a comment gone for good.
    pub async fn publish_comment_gone(&self, post_id: &str, comment_id: &str) -> WriteOutcome {
        self.put_comments(post_id, &[Record::gone(comment_id, Revision::gone())])
            .await
    }

    /// Writes comments' states (several of one post in one call: the stream's way).
    pub async fn put_comments(&self, post_id: &str, records: &[Record]) -> WriteOutcome {
        self.cache
            .put_window(
                &comments_key(post_id),
                &COMMENTS,
                post_id,
                WindowWrite::Put,
                records,
            )
            .await
    }
}

/// A comment's JSON, as a response serves it.
pub fn comment_json(comment: &Comment) -> Result<String, AppError> {
    serde_json::to_string(comment)
        .map_err(|e| AppError::Internal(format!("encoding a comment: {e}")))
}

fn bodies_of_posts(page: Page<Stored<Post>>) -> Result<Page<String>, AppError> {
    Ok(Page {
        items: page
            .items
            .iter()
            .map(|p| PostBody::of(p).map(|b| b.json))
            .collect::<Result<_, _>>()?,
        last_id: page.last_id,
    })
}

fn bodies_of_comments(page: Page<Stored<Comment>>) -> Result<Page<String>, AppError> {
    Ok(Page {
        items: page
            .items
            .iter()
            .map(|c| comment_json(&c.item))
            .collect::<Result<_, _>>()?,
        last_id: page.last_id,
    })
}

/// A post's record: as the table holds it (`Some`), or "the table has none" (`None`).
fn post_record(post_id: &str, post: Option<&Stored<Post>>) -> Option<Record> {
    Some(match post {
        Some(post) => {
            let body = PostBody::of(post).ok()?;
            Record::live(
                post_id,
                Revision::at(post.rev),
                body.version.to_string(),
                body.json,
            )
        }
        None => Record::gone(post_id, Revision::none()),
    })
}

impl WriteOutcome {
    /// The worse of two outcomes: a change is in the cache only when all its writes are.
    fn min_outcome(self, other: WriteOutcome) -> WriteOutcome {
        match (self, other) {
            (WriteOutcome::Failed, _) | (_, WriteOutcome::Failed) => WriteOutcome::Failed,
            (WriteOutcome::Stale, _) | (_, WriteOutcome::Stale) => WriteOutcome::Stale,
            (WriteOutcome::NoEntry, _) | (_, WriteOutcome::NoEntry) => WriteOutcome::NoEntry,
            _ => WriteOutcome::Written,
        }
    }
}
