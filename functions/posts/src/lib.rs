//! The `posts` function: the feed and single posts.
//!
//! Routes: `POST|GET /posts`, `GET|PATCH|DELETE /posts/{postId}`.

mod routes;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::{App, AppError};

/// Entry point for one request; never fails (errors are contract responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    shared::http::serve("posts", req, |req| route(app, req)).await
}

async fn route(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let segments = shared::http::path_segments(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (segments.as_slice(), method) {
        (["posts"], Method::POST) => routes::create(app, &req).await,
        (["posts"], Method::GET) => routes::list(app, &req).await,
        (["posts", id], Method::GET) => routes::get(app, &req, id).await,
        (["posts", id], Method::PATCH) => routes::update(app, &req, id).await,
        (["posts", id], Method::DELETE) => routes::delete(app, &req, id).await,
        (["posts"], _) => Err(AppError::MethodNotAllowed { allow: "GET, POST" }),
        (["posts", _], _) => Err(AppError::MethodNotAllowed { allow: "GET, PATCH, DELETE" }),
        _ => Err(AppError::NotFound("route")),
    }
}
