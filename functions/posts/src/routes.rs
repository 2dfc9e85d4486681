//! One handler per route: parse and validate, call the domain, map the result.

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::cursor::CursorScope;
use shared::domain::{is_valid_id, new_id, now_rfc3339, Caption, ImageUrl, Post, PostPatch};
use shared::http::request::cursor_param;
use shared::http::{
    created, idempotent, if_match, if_none_match, json, limit_param, no_content, not_modified,
    with_etag, IfMatch, JsonObject,
};
use shared::{App, AppError};

/// A post id from the path; one that cannot be ours is simply not found.
fn post_id(raw: &str) -> Result<&str, AppError> {
    if is_valid_id(raw) {
        Ok(raw)
    } else {
        Err(AppError::NotFound("post"))
    }
}

/// With an `Idempotency-Key`, at most one post per key (see [`idempotent`]).
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    idempotent(&app.store, req, &user.id, "POST /posts", None, || async {
        let body = JsonObject::from_request(req)?;
        let caption = Caption::parse(body.required_str("caption")?)?;
        let image_url = body
            .nullable_str("imageUrl")?
            .flatten()
            .map(ImageUrl::parse)
            .transpose()?;
        let post = Post::new(
            new_id(),
            user.id.clone(),
            user.name.clone(),
            caption,
            image_url,
            now_rfc3339(),
        );
        app.store.create_post(&post).await?;
        Ok(with_etag(
            created(&post, &format!("/posts/{}", post.id)),
            post.version,
        ))
    })
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostPage {
    items: Vec<Post>,
    next_cursor: Option<String>,
}

pub async fn list(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    app.auth.authenticate(req.headers()).await?;
    let limit = limit_param(req)?;
    let after = cursor_param(req)
        .map(|c| app.cursors.decode(CursorScope::Feed, &c))
        .transpose()?;
    let page = app.store.list_posts(limit, after.as_deref()).await?;
    let next_cursor = page
        .last_id
        .map(|id| app.cursors.encode(CursorScope::Feed, &id))
        .transpose()?;
    Ok(json(
        200,
        &PostPage {
            items: page.items,
            next_cursor,
        },
    ))
}

/// With `If-None-Match` naming the post's current version (or `*`), `304` and no body.
pub async fn get(app: &App, req: &Request, id: &str) -> Result<Response<Body>, AppError> {
    app.auth.authenticate(req.headers()).await?;
    let post = app
        .store
        .get_post(post_id(id)?)
        .await?
        .ok_or(AppError::NotFound("post"))?;
    if if_none_match(req.headers()).is_some_and(|tags| tags.matches(post.version)) {
        return Ok(not_modified(post.version));
    }
    Ok(with_etag(json(200, &post), post.version))
}

pub async fn update(app: &App, req: &Request, id: &str) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let id = post_id(id)?;
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
        .store
        .update_post(id, &user.id, patch, expected, now_rfc3339())
        .await?;
    Ok(with_etag(json(200, &post), post.version))
}

pub async fn delete(app: &App, req: &Request, id: &str) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let expected = IfMatch::expected(if_match(req.headers()));
    app.store
        .delete_post(post_id(id)?, &user.id, expected)
        .await?;
    Ok(no_content())
}
