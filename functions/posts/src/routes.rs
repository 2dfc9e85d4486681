//! One handler per route: parse and validate, call the domain, map the result.
//!
//! Reads that the cache may answer send the user's lookup and theirs together, so a warm
//! request waits on Redis once.

use std::time::Instant;

use lambda_http::{Body, Request, Response};
use shared::cache::posts::PostBody;
use shared::cursor::CursorScope;
use shared::domain::{now_rfc3339, Caption, ImageUrl, Post, PostPatch};
use shared::http::request::cursor_param;
use shared::http::{
    created, idempotent, if_match, if_none_match, json, limit_param, no_content, not_modified,
    page as page_of, path_id, raw_json, with_etag, IfMatch, JsonObject,
};
use shared::{App, AppError};

/// With an `Idempotency-Key`, at most one post per key (see [`idempotent`]): the post's id comes
/// from the key's claim, so a run after a `503` finds an earlier run's post as its own.
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    idempotent(&app.store, req, &user.id, "POST /posts", None, |id| async {
        let body = JsonObject::from_request(req)?;
        let caption = Caption::parse(body.required_str("caption")?)?;
        let image_url = body
            .nullable_str("imageUrl")?
            .flatten()
            .map(ImageUrl::parse)
            .transpose()?;
        let post = Post::new(
            id,
            user.id.clone(),
            user.name.clone(),
            caption,
            image_url,
            now_rfc3339(),
        );
        let stored = app.posts.create(&post).await?;
        Ok(with_etag(
            created(&stored.item, &format!("/posts/{}", post.id)),
            stored.item.version,
        ))
    })
    .await
}

/// The first page from the cache (sent with the user's lookup); a page after a cursor from the
/// table. A bad token is `401` before a bad parameter is `400`.
pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let limit = limit_param(req);
    let after = cursor_param(req)
        .map(|c| app.cursors.decode(CursorScope::Feed, &c))
        .transpose();
    let page = match (limit, after) {
        (Ok(limit), Ok(None)) => {
            let (user, page) = tokio::join!(
                app.auth.authenticate(req.headers()),
                app.posts.feed_page(limit)
            );
            user?;
            page?
        }
        (limit, after) => {
            app.auth.authenticate(req.headers()).await?;
            let limit = limit?;
            match after? {
                None => app.posts.feed_page(limit).await?,
                Some(after) => app.posts.feed_after(limit, &after).await?,
            }
        }
    };
    let next_cursor = page
        .last_id
        .map(|id| app.cursors.encode(CursorScope::Feed, &id))
        .transpose()?;
    Ok(page_of(&page.items, next_cursor.as_deref()))
}

/// With `If-None-Match` naming the post's current version (or `*`), `304` and no body.
pub async fn get(app: &App, req: &Request, id: &str) -> Result<Response<Body>, AppError> {
    let id = path_id(id, "post")?;
    let started = Instant::now();
    let (user, looked) = tokio::join!(app.auth.authenticate(req.headers()), app.posts.lookup(id));
    user?;
    let post = app
        .posts
        .resolve(id, looked, started)
        .await?
        .ok_or(AppError::NotFound("post"))?;
    Ok(respond_with(req, post))
}

fn respond_with(req: &Request, post: PostBody) -> Response<Body> {
    if if_none_match(req.headers()).is_some_and(|tags| tags.matches(post.version)) {
        return not_modified(post.version);
    }
    with_etag(raw_json(200, post.json), post.version)
}

pub async fn update(app: &App, req: &Request, id: &str) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let id = path_id(id, "post")?;
    let body = JsonObject::from_request(req)?;
    let caption = body
        .optional_str("caption")?
        .map(Caption::parse)
        .transpose()?;
    let image_url = match body.nullable_str("imageUrl")? {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(Some(ImageUrl::parse(raw)?)),
    };
    let patch = PostPatch::new(caption, image_url)?;
    let expected = IfMatch::expected(if_match(req.headers()));
    let post = app
        .posts
        .update(id, &user.id, patch, expected, now_rfc3339())
        .await?;
    Ok(with_etag(json(200, &post.item), post.item.version))
}

/// `204` at once, however many comments the post has: they are swept in the background, and
/// none is served from now on.
pub async fn delete(app: &App, req: &Request, id: &str) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let expected = IfMatch::expected(if_match(req.headers()));
    app.posts
        .delete(path_id(id, "post")?, &user.id, expected)
        .await?;
    Ok(no_content())
}
