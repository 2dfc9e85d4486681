//! The `comments` function: comments on a post.
//!
//! Routes: `POST|GET /posts/{postId}/comments`, `GET|PATCH|DELETE /posts/{postId}/comments/{commentId}`.

mod routes;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::http::Matched;
use shared::{App, AppError};

/// Entry point for one request; never fails (errors are contract responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    shared::http::serve("comments", req, router, |route, req| run(app, route, req)).await
}

/// The routes this function serves, with the path's parameters.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Create { post_id: String },
    List { post_id: String },
    Get { post_id: String, comment_id: String },
    Update { post_id: String, comment_id: String },
    Delete { post_id: String, comment_id: String },
}

/// The one place that knows this function's routes and their names.
pub fn router(method: &Method, segments: &[&str]) -> Matched<Route> {
    match (segments, method) {
        (["posts", post, "comments"], &Method::POST) => Matched::found(
            "POST /posts/{postId}/comments",
            Route::Create {
                post_id: (*post).to_owned(),
            },
        ),
        (["posts", post, "comments"], &Method::GET) => Matched::found(
            "GET /posts/{postId}/comments",
            Route::List {
                post_id: (*post).to_owned(),
            },
        ),
        (["posts", _, "comments"], _) => {
            Matched::not_allowed("ANY /posts/{postId}/comments", "GET, POST")
        }
        (["posts", post, "comments", id], method) => {
            let (post_id, comment_id) = ((*post).to_owned(), (*id).to_owned());
            match *method {
                Method::GET => Matched::found(
                    "GET /posts/{postId}/comments/{commentId}",
                    Route::Get {
                        post_id,
                        comment_id,
                    },
                ),
                Method::PATCH => Matched::found(
                    "PATCH /posts/{postId}/comments/{commentId}",
                    Route::Update {
                        post_id,
                        comment_id,
                    },
                ),
                Method::DELETE => Matched::found(
                    "DELETE /posts/{postId}/comments/{commentId}",
                    Route::Delete {
                        post_id,
                        comment_id,
                    },
                ),
                _ => Matched::not_allowed(
                    "ANY /posts/{postId}/comments/{commentId}",
                    "GET, PATCH, DELETE",
                ),
            }
        }
        _ => Matched::not_found(),
    }
}

async fn run(app: &App, route: Route, req: Request) -> Result<Response<Body>, AppError> {
    match route {
        Route::Create { post_id } => routes::create(app, &req, &post_id).await,
        Route::List { post_id } => routes::list(app, &req, &post_id).await,
        Route::Get {
            post_id,
            comment_id,
        } => routes::get(app, &req, &post_id, &comment_id).await,
        Route::Update {
            post_id,
            comment_id,
        } => routes::update(app, &req, &post_id, &comment_id).await,
        Route::Delete {
            post_id,
            comment_id,
        } => routes::delete(app, &req, &post_id, &comment_id).await,
    }
}
