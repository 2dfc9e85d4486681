//! One handler per route: parse and validate, call the domain, map the result.
//!
//! Every comment read checks its post first (from the cache): a comment of a deleted post is
//! not found, from the delete's answer on, while its sweep runs in the background.

use std::time::Instant;

use lambda_http::{Body, Request, Response};
use shared::cache::posts::comment_json;
use shared::cursor::CursorScope;
use shared::domain::{now_rfc3339, Comment, CommentText};
use shared::http::request::cursor_param;
use shared::http::{
    idempotent, json, limit_param, no_content, page, path_id, raw_json, JsonObject,
};
use shared::{App, AppError};

/// With an `Idempotency-Key`, at most one comment per key (see [`idempotent`]): the comment's id
/// comes from the key's claim, so a run after a `503` finds an earlier run's comment as its own.
pub async fn create(app: &App, req: &Request, post_id: &str) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let post_id = path_id(post_id, "post")?;
    idempotent(
        &app.store,
        req,
        &user.id,
        "POST /posts/{postId}/comments",
        Some(post_id),
        |id| async {
            let body = JsonObject::from_request(req)?;
            let text = CommentText::parse(body.required_str("text")?)?;
            let now = now_rfc3339();
            let comment = Comment {
                id,
                post_id: post_id.to_owned(),
                author_id: user.id.clone(),
                author_name: user.name.clone(),
                text: text.into_inner(),
                created_at: now.clone(),
                updated_at: now,
            };
            let stored = app.posts.add_comment(&comment).await?;
            Ok(json(201, &stored.item))
        },
    )
    .await
}

/// The first page from the cache (sent with the user's and the post's lookups); a page after a
/// cursor from the table. A bad token is `401` before a bad parameter is `400`.
pub async fn list(app: &App, req: &Request, post_id: &str) -> Result<Response<Body>, AppError> {
    let post_id = path_id(post_id, "post");
    let limit = limit_param(req);
    let started = Instant::now();
    let found = match (post_id, limit, cursor_param(req)) {
        (Ok(post_id), Ok(limit), None) => {
            let (user, post, comments) = tokio::join!(
                app.auth.authenticate(req.headers()),
                app.posts.lookup(post_id),
                app.posts.comments_lookup(post_id)
            );
            user?;
            if app.posts.resolve(post_id, post, started).await?.is_none() {
                return Err(AppError::NotFound("post"));
            }
            let found = app
                .posts
                .comments_page(post_id, limit, comments, started)
                .await?;
            (post_id, found)
        }
        (post_id, limit, cursor) => {
            app.auth.authenticate(req.headers()).await?;
            let post_id = post_id?;
            let limit = limit?;
            let scope = CursorScope::Comments { post_id };
            let after = cursor.map(|c| app.cursors.decode(scope, &c)).transpose()?;
            let listed = async {
                match &after {
                    None => {
                        let looked = app.posts.comments_lookup(post_id).await;
                        app.posts
                            .comments_page(post_id, limit, looked, started)
                            .await
                    }
                    Some(after) => app.posts.comments_after(post_id, limit, after).await,
                }
            };
            let (post, found) = tokio::join!(app.posts.get(post_id), listed);
            if post?.is_none() {
                return Err(AppError::NotFound("post"));
            }
            (post_id, found?)
        }
    };
    let (post_id, found) = found;
    let scope = CursorScope::Comments { post_id };
    let next_cursor = found
        .last_id
        .map(|id| app.cursors.encode(scope, &id))
        .transpose()?;
    Ok(page(&found.items, next_cursor.as_deref()))
}

/// A comment whose post is gone is gone too (its post's delete is sweeping it).
pub async fn get(
    app: &App,
    req: &Request,
    post_id: &str,
    id: &str,
) -> Result<Response<Body>, AppError> {
    app.auth.authenticate(req.headers()).await?;
    let (post_id, id) = (path_id(post_id, "comment")?, path_id(id, "comment")?);
    let (comment, post) = tokio::join!(app.store.get_comment(post_id, id), app.posts.get(post_id));
    match (comment?, post?) {
        (Some(comment), Some(_)) => Ok(raw_json(200, comment_json(&comment.item)?)),
        _ => Err(AppError::NotFound("comment")),
    }
}

/// The edit and the read of the post run together: if the post is gone, the comment is `404`
/// (an edit that reached it before the sweep goes with it).
pub async fn update(
    app: &App,
    req: &Request,
    post_id: &str,
    id: &str,
) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let (post_id, id) = (path_id(post_id, "comment")?, path_id(id, "comment")?);
    let body = JsonObject::from_request(req)?;
    let text = CommentText::parse(body.required_str("text")?)?;
    let edit = app
        .posts
        .update_comment(post_id, id, &user.id, text.into_inner(), now_rfc3339());
    let (comment, post) = tokio::join!(edit, app.posts.get(post_id));
    if post?.is_none() {
        return Err(AppError::NotFound("comment"));
    }
    Ok(json(200, &comment?.item))
}

/// The comment's author or the post's author may delete it.
pub async fn delete(
    app: &App,
    req: &Request,
    post_id: &str,
    id: &str,
) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let (post_id, id) = (path_id(post_id, "comment")?, path_id(id, "comment")?);
    app.posts
        .remove_comment(post_id, id, &user.id, now_rfc3339())
        .await?;
    Ok(no_content())
}
