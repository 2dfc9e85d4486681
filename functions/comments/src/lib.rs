//! The `comments` function: comments on a post.
//!
//! Routes: `POST|GET /posts/{postId}/comments`, `GET|PATCH|DELETE /posts/{postId}/comments/{commentId}`.

mod routes;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::{App, AppError};

/// Entry point for one request; never fails (errors are contract responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    shared::http::serve("comments", req, |req| route(app, req)).await
}

async fn route(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let segments = shared::http::path_segments(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (segments.as_slice(), method) {
        (["posts", post, "comments"], Method::POST) => routes::create(app, &req, post).await,
        (["posts", post, "comments"], Method::GET) => routes::list(app, &req, post).await,
        (["posts", post, "comments", id], Method::GET) => routes::get(app, &req, post, id).await,
        (["posts", post, "comments", id], Method::PATCH) => routes::update(app, &req, post, id).await,
        (["posts", post, "comments", id], Method::DELETE) => routes::delete(app, &req, post, id).await,
        (["posts", _, "comments"], _) => Err(AppError::MethodNotAllowed { allow: "GET, POST" }),
        (["posts", _, "comments", _], _) => Err(AppError::MethodNotAllowed { allow: "GET, PATCH, DELETE" }),
        _ => Err(AppError::NotFound("route")),
    }
}
