//! The `users` function: registration, login, logout, and the caller's own profile.
//!
//! Routes: `POST /users`, `POST /auth/login`, `POST /auth/logout`, `GET|PATCH|DELETE /users/me`.

mod routes;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::http::Matched;
use shared::{App, AppError};

/// Entry point for one request; never fails (errors are contract responses).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    shared::http::serve("users", req, router, |route, req| run(app, route, req)).await
}

/// The routes this function serves.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Register,
    Login,
    Logout,
    Me,
    Rename,
    Delete,
}

/// The one place that knows this function's routes and their names. The users function is
/// also API Gateway's catch-all (`$default`), so every unknown path ends here as `404`.
pub fn router(method: &Method, segments: &[&str]) -> Matched<Route> {
    match (segments, method) {
        (["users"], &Method::POST) => Matched::found("POST /users", Route::Register),
        (["users"], _) => Matched::not_allowed("ANY /users", "POST"),
        (["auth", "login"], &Method::POST) => Matched::found("POST /auth/login", Route::Login),
        (["auth", "login"], _) => Matched::not_allowed("ANY /auth/login", "POST"),
        (["auth", "logout"], &Method::POST) => Matched::found("POST /auth/logout", Route::Logout),
        (["auth", "logout"], _) => Matched::not_allowed("ANY /auth/logout", "POST"),
        (["users", "me"], &Method::GET) => Matched::found("GET /users/me", Route::Me),
        (["users", "me"], &Method::PATCH) => Matched::found("PATCH /users/me", Route::Rename),
        (["users", "me"], &Method::DELETE) => Matched::found("DELETE /users/me", Route::Delete),
        (["users", "me"], _) => Matched::not_allowed("ANY /users/me", "GET, PATCH, DELETE"),
        _ => Matched::not_found(),
    }
}

async fn run(app: &App, route: Route, req: Request) -> Result<Response<Body>, AppError> {
    match route {
        Route::Register => routes::register(app, &req).await,
        Route::Login => routes::login(app, &req).await,
        Route::Logout => routes::logout(app, &req).await,
        Route::Me => routes::me(app, &req).await,
        Route::Rename => routes::rename(app, &req).await,
        Route::Delete => routes::delete(app, &req).await,
    }
}
