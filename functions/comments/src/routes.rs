//! One handler per route: parse and validate, call the domain, map the result.

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::cursor::CursorScope;
use shared::domain::{is_valid_id, new_id, now_rfc3339, Comment, CommentText};
use shared::http::request::cursor_param;
use shared::http::{idempotent, json, limit_param, no_content, JsonObject};
use shared::{App, AppError};

/// Ids from the path; ones that cannot be ours are simply not found.
fn checked<'a>(raw: &'a str, what: &'static str) -> Result<&'a str, AppError> {
    if is_valid_id(raw) {
        Ok(raw)
    } else {
        Err(AppError::NotFound(what))
    }
}

/// With an `Idempotency-Key`, at most one comment per key (see [`idempotent`]).
pub async fn create(app: &App, req: &Request, post_id: &str) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let post_id = checked(post_id, "post")?;
    idempotent(
        &app.store,
        req,
        &user.id,
        "POST /posts/{postId}/comments",
        Some(post_id),
        || async {
            let body = JsonObject::from_request(req)?;
            let text = CommentText::parse(body.required_str("text")?)?;
            let now = now_rfc3339();
            let comment = Comment {
                id: new_id(),
                post_id: post_id.to_owned(),
                author_id: user.id.clone(),
                author_name: user.name.clone(),
                text: text.into_inner(),
                created_at: now.clone(),
                updated_at: now,
            };
            app.store.add_comment(&comment).await?;
            Ok(json(201, &comment))
        },
    )
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentPage {
    items: Vec<Comment>,
    next_cursor: Option<String>,
}

pub async fn list(app: &App, req: &Request, post_id: &str) -> Result<Response<Body>, AppError> {
    app.auth.authenticate(req.headers()).await?;
    let post_id = checked(post_id, "post")?;
    let limit = limit_param(req)?;
    let scope = CursorScope::Comments { post_id };
    let after = cursor_param(req)
        .map(|c| app.cursors.decode(scope, &c))
        .transpose()?;
    let (post, page) = tokio::try_join!(
        app.store.get_post(post_id),
        app.store.list_comments(post_id, limit, after.as_deref())
    )?;
    if post.is_none() {
        return Err(AppError::NotFound("post"));
    }
    let next_cursor = page
        .last_id
        .map(|id| app.cursors.encode(scope, &id))
        .transpose()?;
    Ok(json(
        200,
        &CommentPage {
            items: page.items,
            next_cursor,
        },
    ))
}

/// A comment whose post is gone is gone too (its post's delete is sweeping it).
pub async fn get(
    app: &App,
    req: &Request,
    post_id: &str,
    id: &str,
) -> Result<Response<Body>, AppError> {
    app.auth.authenticate(req.headers()).await?;
    let (post_id, id) = (checked(post_id, "comment")?, checked(id, "comment")?);
    let (comment, post) = tokio::try_join!(
        app.store.get_comment(post_id, id),
        app.store.get_post(post_id)
    )?;
    match (comment, post) {
        (Some(comment), Some(_)) => Ok(json(200, &comment)),
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
    let (post_id, id) = (checked(post_id, "comment")?, checked(id, "comment")?);
    let body = JsonObject::from_request(req)?;
    let text = CommentText::parse(body.required_str("text")?)?;
    let edit = app
        .store
        .update_comment(post_id, id, &user.id, text.into_inner(), now_rfc3339());
    let (comment, post) = tokio::try_join!(edit, app.store.get_post(post_id))?;
    if post.is_none() {
        return Err(AppError::NotFound("comment"));
    }
    Ok(json(200, &comment))
}

/// The comment's author or the post's author may delete it (decided in the store's write).
pub async fn delete(
    app: &App,
    req: &Request,
    post_id: &str,
    id: &str,
) -> Result<Response<Body>, AppError> {
    let user = app.auth.authenticate(req.headers()).await?;
    let (post_id, id) = (checked(post_id, "comment")?, checked(id, "comment")?);
    app.store.remove_comment(post_id, id, &user.id).await?;
    Ok(no_content())
}
