//! What a function's router answers: the route a request matched, named once for logs and
//! metrics, and what to run.
//!
//! A route is named by its *route key*, in API Gateway's own form: `GET /posts/{postId}` for a
//! route, `ANY /posts/{postId}` for a known path with a method it does not serve, `$default`
//! for any other path. That is a small, fixed set (never an id, an email or a raw path), so it
//! can be a metric dimension, and it is the name the template and the API Gateway console use.

use lambda_http::http::Method;

use crate::error::AppError;

/// The route key of every path no route serves (API Gateway's catch-all route).
pub const UNMATCHED: &str = "$default";

/// A router's answer for one request.
#[derive(Debug)]
pub struct Matched<R> {
    /// `METHOD /template`, `ANY /template` or [`UNMATCHED`].
    pub route_key: &'static str,
    /// What to run, or the contract's `405`/`404`.
    pub route: Result<R, AppError>,
}

impl<R> Matched<R> {
    /// A route this function serves.
    pub fn found(route_key: &'static str, route: R) -> Self {
        Matched {
            route_key,
            route: Ok(route),
        }
    }

    /// A path this function serves, with a method it does not: `405` listing `allow`.
    pub fn not_allowed(route_key: &'static str, allow: &'static str) -> Self {
        Matched {
            route_key,
            route: Err(AppError::MethodNotAllowed { allow }),
        }
    }

    /// A path no route serves: `404`.
    pub fn not_found() -> Self {
        Matched {
            route_key: UNMATCHED,
            route: Err(AppError::NotFound("route")),
        }
    }
}

/// The path template of a route key (`/posts/{postId}` of `GET /posts/{postId}`); the key
/// itself when it has none ([`UNMATCHED`]).
pub fn template(route_key: &str) -> &str {
    route_key
        .split_once(' ')
        .map_or(route_key, |(_, template)| template)
}

/// A function's router: the request's method and path segments in, its match out. Plain
/// data, so a test can walk every route without a request.
pub type Router<R> = fn(&Method, &[&str]) -> Matched<R>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_of_route_keys() {
        assert_eq!(template("GET /posts/{postId}"), "/posts/{postId}");
        assert_eq!(template("ANY /users/me"), "/users/me");
        assert_eq!(template(UNMATCHED), "$default");
        let unmatched: Matched<()> = Matched::not_found();
        assert!(matches!(unmatched.route, Err(AppError::NotFound(_))));
        assert_eq!(unmatched.route_key, UNMATCHED);
    }
}
