//! The `posts` function: the feed and single posts.
//!
//! Routes: `POST|GET /posts`, `GET|PATCH|DELETE /posts/{postId}`.

mod routes;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::http::Matched;
use shared::{App, AppError};

/// Entry point for one request; never fails (errors are contract responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    shared::http::serve("posts", req, router, |route, req| run(app, route, req)).await
}

/// The routes this function serves, with the path's parameters.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Create,
    List,
    Get { post_id: String },
    Update { post_id: String },
    Delete { post_id: String },
}

/// The one place that knows this function's routes and their names.
pub fn router(method: &Method, segments: &[&str]) -> Matched<Route> {
    let post = |id: &str| id.to_owned();
    match (segments, method) {
        (["posts"], &Method::POST) => Matched::found("POST /posts", Route::Create),
        (["posts"], &Method::GET) => Matched::found("GET /posts", Route::List),
        (["posts"], _) => Matched::not_allowed("ANY /posts", "GET, POST"),
        (["posts", id], &Method::GET) => {
            Matched::found("GET /posts/{postId}", Route::Get { post_id: post(id) })
        }
        (["posts", id], &Method::PATCH) => {
            Matched::found("PATCH /posts/{postId}", Route::Update { post_id: post(id) })
        }
        (["posts", id], &Method::DELETE) => Matched::found(
            "DELETE /posts/{postId}",
            Route::Delete { post_id: post(id) },
        ),
        (["posts", _], _) => Matched::not_allowed("ANY /posts/{postId}", "GET, PATCH, DELETE"),
        _ => Matched::not_found(),
    }
}

async fn run(app: &App, route: Route, req: Request) -> Result<Response<Body>, AppError> {
    match route {
        Route::Create => routes::create(app, &req).await,
        Route::List => routes::list(app, &req).await,
        Route::Get { post_id } => routes::get(app, &req, &post_id).await,
        Route::Update { post_id } => routes::update(app, &req, &post_id).await,
        Route::Delete { post_id } => routes::delete(app, &req, &post_id).await,
    }
}
