//! The `users` function: registration, login, logout, and the caller's own profile.
//!
//! Routes: `POST /users`, `POST /auth/login`, `POST /auth/logout`, `GET|PATCH|DELETE /users/me`.

mod routes;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::{App, AppError};

/// Entry point for one request; never fails (errors are contract responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    shared::http::serve("users", req, |req| route(app, req)).await
}

async fn route(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let segments = shared::http::path_segments(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (segments.as_slice(), method) {
        (["users"], Method::POST) => routes::register(app, &req).await,
        (["auth", "login"], Method::POST) => routes::login(app, &req).await,
        (["auth", "logout"], Method::POST) => routes::logout(app, &req).await,
        (["users", "me"], Method::GET) => routes::me(app, &req).await,
        (["users", "me"], Method::PATCH) => routes::rename(app, &req).await,
        (["users", "me"], Method::DELETE) => routes::delete(app, &req).await,
        (["users"] | ["auth", "login" | "logout"], _) => Err(AppError::MethodNotAllowed { allow: "POST" }),
        (["users", "me"], _) => Err(AppError::MethodNotAllowed { allow: "GET, PATCH, DELETE" }),
        _ => Err(AppError::NotFound("route")),
    }
}
